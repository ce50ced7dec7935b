/*
 * intake_vm_gen: a deterministic record generator for the VM's daemon stage (tests/vm).
 *
 *   intake_vm_gen --topics A,B,... --seed S --min-bytes N [--only TOPIC] [--summary]
 *                 [--large-bytes N]
 *                 [--tls-connect ADDR:PORT --tls-ca FILE [--tls-cert FILE --tls-key FILE]]
 *
 * Writes varint-delimited intake.v1.Records to stdout, exactly as a producer puts them on the
 * wire: round-robin over the topics, one record per topic per round, until every topic's share of
 * the stream holds at least N bytes. Each record carries topic (1), key (2), value (3) and
 * sequence (5, 1.. over the whole stream, so `intake-produce --delimited --acks` can wait for the
 * acknowledgement of the last one). Values are pseudo-random bytes of pseudo-random length (with
 * an occasional record far larger than a receive fragment), all from the seed.
 *
 * The same arguments give the same bytes, which is the whole point: piped into intake-produce
 * they are the input; run again with --only TOPIC they are the expected output of
 * `intake-tail --topic TOPIC --from-start --format raw`, compared byte for byte.
 * --summary prints "records=R bytes=B" (for --only TOPIC, or the whole stream) instead.
 * --large-bytes caps the occasional large value (default 128 KiB).
 *
 * With --tls-connect the stream goes to intaked's TLS listener instead of stdout, through
 * OpenSSL (a TLS stack intake did not write): TLS 1.3, the server verified against --tls-ca, a
 * client certificate when given, the stream in 16 KiB TLS records. It then reads intaked's Acks
 * until the last record's sequence is acknowledged, closes with close_notify, and prints
 * "acked R records". Any Ack that is not OK, or a connection that ends first, is an error.
 *
 * Single-threaded, no allocation beyond one value buffer (and OpenSSL's own); built statically
 * by tests/vm/run. Exit status: 0, 1 on a write, TLS or Ack error, 2 on bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/* Topics one stream interleaves, at most. */
#define GEN_TOPICS_MAX 16u
/* Ordinary values are 1..GEN_VALUE_BYTES_SMALL bytes; every GEN_LARGE_EVERY-th record of a
 * topic is up to GEN_VALUE_BYTES_LARGE, so records span many receive fragments. The large size
 * stays well under what 64 slices (RECORD_SLICES_MAX) of page-sized zcrx fragments can hold:
 * a 256 KiB record arrives in more than 64 fragments and the daemon rejects it (see
 * docs/zcrx.md, "Record size under zcrx"). */
#define GEN_VALUE_BYTES_SMALL 16384u
#define GEN_VALUE_BYTES_LARGE (128u * 1024u)
#define GEN_LARGE_EVERY       61u
/* A stream stops after this many rounds whatever --min-bytes says (a bound on the loop). */
#define GEN_ROUNDS_MAX 100000000ull

struct gen_topic {
    const char *name;
    size_t name_bytes;
    uint64_t state; /* xorshift64 state of this topic's values */
    uint64_t records;
    uint64_t bytes; /* delimited bytes written for this topic */
};

struct gen_options {
    struct gen_topic topics[GEN_TOPICS_MAX];
    uint32_t topic_count;
    uint64_t seed;
    uint64_t min_bytes;
    const char *only;
    bool summary;
    uint32_t large_bytes;
    uint64_t last_sequence;
    const char *tls_connect, *tls_ca, *tls_certificate, *tls_key;
};

/* Where records go: stdout, or a TLS connection (through a FILE* whose buffer is one record). */
static FILE *gen_out;

static uint64_t gen_next(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

static size_t gen_varint(uint64_t value, uint8_t *out) {
    size_t length = 0;
    while (value >= 0x80) {
        out[length++] = (uint8_t)(value | 0x80);
        value >>= 7;
    }
    out[length++] = (uint8_t)value;
    return length;
}

static size_t gen_varint_bytes(uint64_t value) {
    uint8_t scratch[10];
    return gen_varint(value, scratch);
}

/* Fills `value` for the topic's next record; returns its length. */
static uint32_t gen_value(struct gen_topic *topic, uint8_t *value, uint32_t large_bytes) {
    uint32_t limit = GEN_VALUE_BYTES_SMALL;
    if ((topic->records + 1) % GEN_LARGE_EVERY == 0) limit = large_bytes;
    uint32_t length = 1 + (uint32_t)(gen_next(&topic->state) % limit);
    for (uint32_t index = 0; index < length; index += 8) {
        uint64_t word = gen_next(&topic->state);
        uint32_t take = length - index < 8 ? length - index : 8;
        memcpy(value + index, &word, take);
    }
    return length;
}

/* Writes one delimited record (or only counts it when `out` is NULL); returns its bytes. */
static uint64_t gen_record(FILE *out, const struct gen_topic *topic, uint64_t sequence,
                           const uint8_t *value, uint32_t value_length) {
    uint8_t key[24];
    int key_length = snprintf((char *)key, sizeof(key), "k%" PRIu64, topic->records);
    uint64_t body = 1 + gen_varint_bytes(topic->name_bytes) + topic->name_bytes + 1 +
                    gen_varint_bytes((uint64_t)key_length) + (uint64_t)key_length + 1 +
                    gen_varint_bytes(value_length) + value_length + 1 + gen_varint_bytes(sequence);
    uint64_t total = gen_varint_bytes(body) + body;
    if (out == NULL) return total;
    uint8_t head[64];
    size_t used = gen_varint(body, head);
    head[used++] = 0x0a; /* field 1 topic, length-delimited */
    used += gen_varint(topic->name_bytes, head + used);
    fwrite(head, 1, used, out);
    fwrite(topic->name, 1, topic->name_bytes, out);
    used = 0;
    head[used++] = 0x12; /* field 2 key */
    used += gen_varint((uint64_t)key_length, head + used);
    memcpy(head + used, key, (size_t)key_length);
    used += (size_t)key_length;
    head[used++] = 0x1a; /* field 3 value */
    used += gen_varint(value_length, head + used);
    fwrite(head, 1, used, out);
    fwrite(value, 1, value_length, out);
    used = 0;
    head[used++] = 0x28; /* field 5 sequence, varint */
    used += gen_varint(sequence, head + used);
    fwrite(head, 1, used, out);
    return total;
}

static bool gen_done(const struct gen_options *options) {
    for (uint32_t index = 0; index < options->topic_count; index++)
        if (options->topics[index].bytes < options->min_bytes) return false;
    return true;
}

static int gen_stream(struct gen_options *options, uint8_t *value) {
    uint64_t sequence = 0;
    for (uint64_t round = 0; round < GEN_ROUNDS_MAX && !gen_done(options); round++) {
        for (uint32_t index = 0; index < options->topic_count; index++) {
            struct gen_topic *topic = &options->topics[index];
            uint32_t value_length = gen_value(topic, value, options->large_bytes);
            sequence++;
            /* Records of other topics (with --only) advance the sequence but are not written. */
            bool write = !options->summary &&
                         (options->only == NULL || strcmp(options->only, topic->name) == 0);
            topic->bytes +=
                gen_record(write ? gen_out : NULL, topic, sequence, value, value_length);
            topic->records++;
        }
    }
    options->last_sequence = sequence;
    if (fflush(gen_out) != 0 || ferror(gen_out)) {
        fprintf(stderr, "intake_vm_gen: write: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

static void gen_print_summary(const struct gen_options *options) {
    uint64_t records = 0;
    uint64_t bytes = 0;
    for (uint32_t index = 0; index < options->topic_count; index++) {
        const struct gen_topic *topic = &options->topics[index];
        if (options->only != NULL && strcmp(options->only, topic->name) != 0) continue;
        records += topic->records;
        bytes += topic->bytes;
    }
    printf("records=%" PRIu64 " bytes=%" PRIu64 "\n", records, bytes);
}

/* Splits "A,B,C" in place into the topic table; each topic's values get their own seed. */
static int gen_parse_topics(char *list, struct gen_options *options) {
    for (char *name = strtok(list, ","); name != NULL; name = strtok(NULL, ",")) {
        if (options->topic_count == GEN_TOPICS_MAX || strlen(name) > 255) return -1;
        struct gen_topic *topic = &options->topics[options->topic_count++];
        topic->name = name;
        topic->name_bytes = strlen(name);
    }
    return options->topic_count > 0 ? 0 : -1;
}

static int gen_parse(int argc, char **argv, struct gen_options *options) {
    memset(options, 0, sizeof(*options));
    char *topics = NULL;
    for (int index = 1; index < argc; index++) {
        const char *flag = argv[index];
        const char *argument = index + 1 < argc ? argv[index + 1] : NULL;
        if (strcmp(flag, "--summary") == 0) {
            options->summary = true;
            continue;
        }
        if (argument == NULL) return -1;
        index++;
        if (strcmp(flag, "--topics") == 0)
            topics = argv[index];
        else if (strcmp(flag, "--seed") == 0)
            options->seed = strtoull(argument, NULL, 10);
        else if (strcmp(flag, "--min-bytes") == 0)
            options->min_bytes = strtoull(argument, NULL, 10);
        else if (strcmp(flag, "--only") == 0)
            options->only = argument;
        else if (strcmp(flag, "--large-bytes") == 0)
            options->large_bytes = (uint32_t)strtoul(argument, NULL, 10);
        else if (strcmp(flag, "--tls-connect") == 0)
            options->tls_connect = argument;
        else if (strcmp(flag, "--tls-ca") == 0)
            options->tls_ca = argument;
        else if (strcmp(flag, "--tls-cert") == 0)
            options->tls_certificate = argument;
        else if (strcmp(flag, "--tls-key") == 0)
            options->tls_key = argument;
        else
            return -1;
    }
    if (topics == NULL || gen_parse_topics(topics, options) < 0) return -1;
    if (options->large_bytes == 0) options->large_bytes = GEN_VALUE_BYTES_LARGE;
    if (options->large_bytes > GEN_VALUE_BYTES_LARGE) return -1;
    if (options->tls_connect != NULL && options->tls_ca == NULL) return -1;
    for (uint32_t index = 0; index < options->topic_count; index++)
        /* xorshift64 must not start at zero; the odd constant keeps topics' streams apart. */
        options->topics[index].state = (options->seed + 1) * 0x9e3779b97f4a7c15ull + index * 2 + 1;
    return 0;
}

/* ------------------------------------------------------------ TLS mode --- */

static SSL *gen_tls;

static ssize_t gen_tls_write(void *cookie, const char *bytes, size_t length) {
    (void)cookie;
    size_t written = 0;
    while (written < length) {
        int result = SSL_write(gen_tls, bytes + written, (int)(length - written));
        if (result <= 0) {
            ERR_print_errors_fp(stderr);
            errno = EIO;
            return -1;
        }
        written += (size_t)result;
    }
    return (ssize_t)length;
}

static int gen_tls_fail(const char *what) {
    fprintf(stderr, "intake_vm_gen: %s\n", what);
    ERR_print_errors_fp(stderr);
    return 1;
}

/* Connects to ADDR:PORT (IPv4) and completes the handshake; the stream then goes to gen_out. */
static int gen_tls_open(const struct gen_options *options) {
    char host[64];
    const char *colon = strrchr(options->tls_connect, ':');
    if (colon == NULL || (size_t)(colon - options->tls_connect) >= sizeof(host))
        return gen_tls_fail("--tls-connect wants ADDR:PORT");
    memcpy(host, options->tls_connect, (size_t)(colon - options->tls_connect));
    host[colon - options->tls_connect] = '\0';
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) return gen_tls_fail("bad address");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0)
        return gen_tls_fail("cannot connect");
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    if (context == NULL || SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION) != 1 ||
        SSL_CTX_load_verify_locations(context, options->tls_ca, NULL) != 1)
        return gen_tls_fail("cannot set up the TLS client");
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, NULL);
    if (options->tls_certificate != NULL &&
        (SSL_CTX_use_certificate_file(context, options->tls_certificate, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_use_PrivateKey_file(context, options->tls_key, SSL_FILETYPE_PEM) != 1))
        return gen_tls_fail("cannot load the client certificate");
    gen_tls = SSL_new(context);
    if (gen_tls == NULL || SSL_set_fd(gen_tls, fd) != 1 || SSL_connect(gen_tls) != 1)
        return gen_tls_fail("TLS handshake failed");
    cookie_io_functions_t functions = {.write = gen_tls_write};
    gen_out = fopencookie(NULL, "w", functions);
    /* One 16 KiB TLS record per buffer flush. */
    if (gen_out == NULL || setvbuf(gen_out, NULL, _IOFBF, 16384) != 0)
        return gen_tls_fail("fopencookie");
    return 0;
}

/* A varint at buffer[*cursor..end): false when it does not end there. */
static bool gen_read_varint(const uint8_t *buffer, size_t end, size_t *cursor, uint64_t *value) {
    *value = 0;
    for (int shift = 0; *cursor < end && shift < 64; shift += 7) {
        uint8_t byte = buffer[(*cursor)++];
        *value |= (uint64_t)(byte & 0x7f) << shift;
        if (byte < 0x80) return true;
    }
    return false;
}

/* Reads Acks until `last` is acknowledged; each must be OK (no status, no detail). */
static int gen_tls_wait_acks(uint64_t last) {
    static uint8_t buffer[65536];
    size_t held = 0;
    uint64_t acked = 0;
    while (acked < last) {
        int read = SSL_read(gen_tls, buffer + held, (int)(sizeof(buffer) - held));
        if (read <= 0) return gen_tls_fail("the connection ended before the last Ack");
        held += (size_t)read;
        size_t position = 0;
        for (;;) {
            size_t cursor = position;
            uint64_t length = 0;
            if (!gen_read_varint(buffer, held, &cursor, &length) || held - cursor < length) break;
            size_t end = cursor + (size_t)length;
            while (cursor < end) {
                uint64_t tag = 0, value = 0;
                if (!gen_read_varint(buffer, end, &cursor, &tag) || tag != 0x08 ||
                    !gen_read_varint(buffer, end, &cursor, &value))
                    return gen_tls_fail("an Ack that is not OK");
                if (value > acked) acked = value;
            }
            position = end;
        }
        memmove(buffer, buffer + position, held - position);
        held -= position;
    }
    SSL_shutdown(gen_tls);
    return 0;
}

int main(int argc, char **argv) {
    struct gen_options options;
    if (gen_parse(argc, argv, &options) < 0) {
        fprintf(stderr, "usage: intake_vm_gen --topics A,B,... --seed S --min-bytes N "
                        "[--only TOPIC] [--summary] [--large-bytes N] [--tls-connect ADDR:PORT "
                        "--tls-ca FILE [--tls-cert FILE --tls-key FILE]]\n");
        return 2;
    }
    gen_out = stdout;
    if (options.tls_connect != NULL && gen_tls_open(&options) != 0) return 1;
    static uint8_t value[GEN_VALUE_BYTES_LARGE + 8];
    int result = gen_stream(&options, value);
    if (result == 0 && options.tls_connect != NULL) {
        result = gen_tls_wait_acks(options.last_sequence);
        if (result == 0) printf("acked %" PRIu64 " records\n", options.last_sequence);
    }
    if (result == 0 && options.summary) gen_print_summary(&options);
    return result;
}
