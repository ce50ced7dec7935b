/*
 * intake-produce: sends records to intaked. Single-threaded; one connection.
 *
 *   intake-produce --connect ADDR:PORT --topic T [--acks] [--key K]
 *                  [--delimited] [--count N --size BYTES] [--timeout-ms MS]
 *                  [--idempotent | --producer-id ID] [--first-sequence N]
 *                  [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]]
 *
 * Input, one of:
 *   stdin lines (default): each line is one record; its value is the line without the '\n'.
 *   --delimited: stdin holds varint-delimited encoded intake.v1.Records, forwarded byte for byte
 *                (their own topics and sequences apply; --topic and --key are not used).
 *   --count N --size BYTES: N synthetic records with BYTES-byte values.
 * With --acks, waits for the final cumulative ack and prints "acked N records (last sequence S)"
 * to stderr. Any error prints one line and exits 1; bad usage exits 2.
 *
 * --producer-id ID (or --idempotent, with a generated UUID) makes the producer idempotent
 * (include/intake/producer.h): acks, exactly once through reconnects and daemon restarts,
 * sequences from --first-sequence (default 1; continue a reused ID's sequence with it). A record
 * intake fails is printed ("record S failed: ...") and the run exits 1 at the end; the others
 * are still delivered. With --delimited the records must carry no sequence nor producer_id.
 *
 * --tls-ca FILE speaks TLS 1.3 to intaked's --tls-listen port and verifies its certificate
 * against FILE, for the name in --tls-server-name (default: the host of --connect);
 * --tls-cert and --tls-key present a client certificate (mutual TLS). See "TLS" in
 * include/intake/producer.h.
 */
#include <errno.h>
#include <poll.h>
#include <unistd.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake/producer.h"
#include "varint.h"

/* Largest delimited record read from stdin (the daemon's own --max-frame is usually lower). */
#define PRODUCE_DELIMITED_BYTES_MAX (64u * 1024u * 1024u)

struct produce_options {
    const char *address;
    const char *topic;
    const char *key;
    bool acks;
    bool delimited;
    uint64_t count;
    uint64_t size;
    int timeout_ms;
    bool idempotent;
    const char *producer_id;
    uint64_t first_sequence;
    const char *tls_ca;
    const char *tls_cert;
    const char *tls_key;
    const char *tls_server_name;
};

/* Failed records seen by the delivery callback (idempotent). */
static uint64_t produce_failed_records;

static void produce_usage(FILE *stream) {
    fprintf(stream,
            "usage: intake-produce --connect ADDR:PORT --topic T [--acks] [--key K]\n"
            "                      [--delimited] [--count N --size BYTES] [--timeout-ms MS]\n"
            "                      [--idempotent | --producer-id ID] [--first-sequence N]\n"
            "  --timeout-ms: longest wait for acks or for intake to accept data (30000)\n"
            "  --producer-id: exactly once with this id (1..64 bytes); --idempotent: a new id\n"
            "  --first-sequence: the first record's sequence (continue a reused id)\n"
            "  --tls-ca FILE: TLS 1.3, intake's certificate verified against this CA\n"
            "  --tls-cert FILE --tls-key FILE: a client certificate (mutual TLS)\n"
            "  --tls-server-name NAME: the name to verify and send (default: --connect's host)\n");
}

static int produce_parse(int argc, char **argv, struct produce_options *options) {
    static const struct option long_options[] = {
        {"connect", required_argument, NULL, 'c'},
        {"topic", required_argument, NULL, 't'},
        {"key", required_argument, NULL, 'k'},
        {"acks", no_argument, NULL, 'a'},
        {"delimited", no_argument, NULL, 'd'},
        {"count", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 's'},
        {"timeout-ms", required_argument, NULL, 'T'},
        {"idempotent", no_argument, NULL, 'i'},
        {"producer-id", required_argument, NULL, 'p'},
        {"first-sequence", required_argument, NULL, 'f'},
        {"tls-ca", required_argument, NULL, 'C'},
        {"tls-cert", required_argument, NULL, 'E'},
        {"tls-key", required_argument, NULL, 'K'},
        {"tls-server-name", required_argument, NULL, 'N'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(options, 0, sizeof(*options));
    options->timeout_ms = 30000;
    int option;
    while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (option) {
        case 'c': options->address = optarg; break;
        case 't': options->topic = optarg; break;
        case 'k': options->key = optarg; break;
        case 'a': options->acks = true; break;
        case 'd': options->delimited = true; break;
        case 'n': options->count = strtoull(optarg, NULL, 10); break;
        case 's': options->size = strtoull(optarg, NULL, 10); break;
        case 'T':
            options->timeout_ms = atoi(optarg);
            if (options->timeout_ms <= 0) {
                fprintf(stderr, "intake-produce: --timeout-ms must be a positive number of ms\n");
                return -1;
            }
            break;
        case 'i': options->idempotent = true; break;
        case 'p': options->producer_id = optarg; break;
        case 'f': options->first_sequence = strtoull(optarg, NULL, 10); break;
        case 'C': options->tls_ca = optarg; break;
        case 'E': options->tls_cert = optarg; break;
        case 'K': options->tls_key = optarg; break;
        case 'N': options->tls_server_name = optarg; break;
        case 'h': produce_usage(stdout); exit(0);
        default: return -1;
        }
    }
    const char *problem = NULL;
    if (optind != argc)
        problem = "unexpected argument";
    else if (options->address == NULL)
        problem = "--connect is required";
    else if (options->topic == NULL && !options->delimited)
        problem = "--topic is required";
    else if ((options->count == 0) != (options->size == 0))
        problem = "--count and --size go together";
    else if (options->count != 0 && options->delimited)
        problem = "--count excludes --delimited";
    else if (options->producer_id != NULL &&
             (options->producer_id[0] == '\0' || strlen(options->producer_id) > 64))
        problem = "--producer-id must be 1 to 64 bytes";
    else if (options->first_sequence != 0 && !options->idempotent && !options->producer_id)
        problem = "--first-sequence needs --producer-id or --idempotent";
    else if (options->tls_ca == NULL &&
             (options->tls_cert || options->tls_key || options->tls_server_name))
        problem = "--tls-cert, --tls-key and --tls-server-name need --tls-ca";
    else if ((options->tls_cert == NULL) != (options->tls_key == NULL))
        problem = "--tls-cert and --tls-key go together";
    if (options->producer_id != NULL) options->idempotent = true;
    if (options->idempotent) options->acks = true;
    if (problem == NULL) return 0;
    fprintf(stderr, "intake-produce: %s\n", problem);
    return -1;
}

static int produce_send_one(struct intake_producer *producer, const struct produce_options *options,
                            const void *value, size_t value_length) {
    size_t key_length = options->key ? strlen(options->key) : 0;
    uint64_t sequence = 0;
    return intake_producer_send(producer, options->topic, options->key, key_length, value,
                                value_length, 0, &sequence);
}

/* Fills `buffer` from stdin. Before a read that would block it flushes the producer: lines are
 * batched while input keeps coming and sent as soon as it pauses, so a live stream (a log tail,
 * the demo) flows at once and bulk input still goes out many records per write. */
static ssize_t produce_read_stdin(struct intake_producer *producer, char *buffer, size_t capacity,
                                  int *result) {
    struct pollfd input = {.fd = STDIN_FILENO, .events = POLLIN};
    if (poll(&input, 1, 0) == 0) {
        *result = intake_producer_flush(producer);
        if (*result < 0) return -1;
        /* Idempotent, with records pending (intake down, or acks to come): keep the producer
         * reconnecting and resending while the input is quiet. */
        struct intake_producer_stats stats = INTAKE_PRODUCER_STATS_INIT;
        intake_producer_stats(producer, &stats);
        while (stats.pending > 0 && poll(&input, 1, 100) == 0) {
            *result = intake_producer_poll(producer, 0);
            if (*result < 0) return -1;
            intake_producer_stats(producer, &stats);
        }
    }
    ssize_t got;
    do got = read(STDIN_FILENO, buffer, capacity);
    while (got < 0 && errno == EINTR);
    if (got < 0) *result = -errno;
    return got;
}

static int produce_lines(struct intake_producer *producer, const struct produce_options *options,
                         uint64_t *sent) {
    size_t capacity = 1u << 16;
    char *buffer = malloc(capacity);
    if (buffer == NULL) return -ENOMEM;
    size_t held = 0; /* bytes of an unfinished line at the front of buffer */
    int result = 0;
    for (;;) {
        if (held == capacity) {
            /* A line longer than the buffer: grow, bounded by what a record may carry. */
            char *grown = capacity < (1u << 26) ? realloc(buffer, capacity * 2) : NULL;
            if (grown == NULL) {
                result = -E2BIG;
                break;
            }
            buffer = grown;
            capacity *= 2;
        }
        ssize_t got = produce_read_stdin(producer, buffer + held, capacity - held, &result);
        if (got < 0) break;
        if (got == 0) {
            /* End of input: a last line without a newline is still a line. */
            if (held > 0 && (result = produce_send_one(producer, options, buffer, held)) == 0)
                (*sent)++;
            break;
        }
        size_t end = held + (size_t)got;
        size_t start = 0;
        for (char *newline; result == 0 && (newline = memchr(buffer + start, '\n', end - start));) {
            size_t length = (size_t)(newline - (buffer + start));
            result = produce_send_one(producer, options, buffer + start, length);
            if (result == 0) (*sent)++;
            start += length + 1;
        }
        if (result < 0) break;
        held = end - start;
        memmove(buffer, buffer + start, held);
    }
    free(buffer);
    return result;
}

static int produce_synthetic(struct intake_producer *producer,
                             const struct produce_options *options, uint64_t *sent) {
    char *value = malloc(options->size);
    if (value == NULL) return -ENOMEM;
    for (uint64_t index = 0; index < options->size; index++)
        value[index] = (char)('a' + index % 26);
    int result = 0;
    for (uint64_t index = 0; result == 0 && index < options->count; index++) {
        /* Stamp the record number at the front so records are distinguishable downstream. */
        int stamped = snprintf(value, options->size, "%" PRIu64, index + 1);
        if (stamped > 0 && (uint64_t)stamped < options->size) value[stamped] = ' ';
        result = produce_send_one(producer, options, value, options->size);
        if (result == 0) (*sent)++;
    }
    free(value);
    return result;
}

/* Reads one varint length prefix from stdin: 1 read, 0 clean end of input, -1 bad or truncated. */
static int produce_read_prefix(uint64_t *length) {
    struct varint_decoder decoder = {0, 0};
    for (;;) {
        int byte = getchar();
        if (byte == EOF) return decoder.bytes_seen == 0 ? 0 : -1;
        uint8_t value = (uint8_t)byte;
        size_t consumed = 0;
        enum varint_result result = varint_decoder_feed(&decoder, &value, 1, &consumed);
        if (result == VARINT_BAD) return -1;
        if (result == VARINT_OK) {
            *length = decoder.value;
            return 1;
        }
    }
}

static int produce_delimited(struct intake_producer *producer, uint64_t *sent,
                             uint64_t *last_sequence, const char **problem) {
    uint8_t *record = NULL;
    size_t capacity = 0;
    int result = 0;
    for (;;) {
        uint64_t length = 0;
        int prefix = produce_read_prefix(&length);
        if (prefix == 0) break;
        *problem = "stdin: bad or truncated length prefix";
        if (prefix < 0 || length > PRODUCE_DELIMITED_BYTES_MAX) {
            if (length > PRODUCE_DELIMITED_BYTES_MAX) *problem = "stdin: record longer than 64 MiB";
            result = -EINVAL;
            break;
        }
        if (length > capacity) {
            uint8_t *grown = realloc(record, (size_t)length);
            if (grown == NULL) {
                *problem = "out of memory";
                result = -ENOMEM;
                break;
            }
            record = grown;
            capacity = (size_t)length;
        }
        *problem = "stdin: input ends inside a record";
        if (length > 0 && fread(record, 1, (size_t)length, stdin) != length) {
            result = -EINVAL;
            break;
        }
        *problem = NULL;
        uint64_t sequence = 0;
        result = intake_producer_send_raw(producer, record, (size_t)length, &sequence);
        if (result < 0) break;
        (*sent)++;
        if (sequence > *last_sequence) *last_sequence = sequence;
    }
    free(record);
    return result;
}

/* Idempotent delivery reports: each failure gets one line. */
static void produce_report(void *context, const struct intake_producer_delivery *report) {
    (void)context;
    if (report->status == INTAKE_DELIVERY_OK) return;
    produce_failed_records++;
    fprintf(stderr, "intake-produce: record %" PRIu64 " (topic %.*s) failed: %s\n",
            report->sequence, (int)report->topic_length, report->topic, report->detail);
}

/* Prints the one error line for a failed run; exits 1. */
static void produce_fail(struct intake_producer *producer, const char *problem, int error) {
    if (problem != NULL)
        fprintf(stderr, "intake-produce: %s\n", problem);
    else if (producer != NULL && intake_producer_last_error(producer)[0] != '\0')
        fprintf(stderr, "intake-produce: %s\n", intake_producer_last_error(producer));
    else
        fprintf(stderr, "intake-produce: %s\n", strerror(-error));
    intake_producer_close(producer);
    exit(1);
}

int main(int argc, char **argv) {
    struct produce_options options;
    if (produce_parse(argc, argv, &options) < 0) {
        produce_usage(stderr);
        return 2;
    }
    /* --timeout-ms bounds both waits: for acks, and for intake to take more data (a topic
     * whose log is being created, or a full log, stops intake from reading). */
    struct intake_producer_config config = {
        .address = options.address,
        .io_timeout_ms = (uint32_t)options.timeout_ms,
        .acks = options.acks,
        .idempotent = options.idempotent,
        .producer_id = options.producer_id,
        .producer_id_length = options.producer_id ? strlen(options.producer_id) : 0,
        .first_sequence = options.first_sequence,
        .on_delivery = produce_report,
        .tls_ca_file = options.tls_ca,
        .tls_cert_file = options.tls_cert,
        .tls_key_file = options.tls_key,
        .tls_server_name = options.tls_server_name,
    };
    struct intake_producer *producer = NULL;
    char why[256];
    int result = intake_producer_open(&config, &producer, why, sizeof(why));
    if (result < 0) produce_fail(NULL, why, result);

    uint64_t sent = 0;
    uint64_t last_sequence = 0;
    const char *problem = NULL;
    if (options.delimited)
        result = produce_delimited(producer, &sent, &last_sequence, &problem);
    else if (options.count > 0)
        result = produce_synthetic(producer, &options, &sent);
    else
        result = produce_lines(producer, &options, &sent);
    if (result < 0) produce_fail(producer, problem, result);
    if (!options.delimited) last_sequence = intake_producer_last_sequence(producer);

    result = intake_producer_flush(producer);
    if (result < 0) produce_fail(producer, NULL, result);
    if (options.acks) {
        if (options.delimited && sent > 0 && last_sequence == 0)
            produce_fail(producer, "--acks: the records carry no sequence (field 5)", -EINVAL);
        if (options.idempotent) last_sequence = intake_producer_last_sequence(producer);
        result = intake_producer_wait_acks(producer, last_sequence, options.timeout_ms);
        if (options.idempotent && produce_failed_records > 0 && result != -ETIMEDOUT) {
            /* Each failure already has its line; the rest are delivered. */
            fprintf(stderr, "intake-produce: %" PRIu64 " of %" PRIu64 " records failed\n",
                    produce_failed_records, sent);
            intake_producer_close(producer);
            return 1;
        }
        if (result < 0) produce_fail(producer, NULL, result);
        fprintf(stderr, "acked %" PRIu64 " records (last sequence %" PRIu64 ")", sent,
                last_sequence);
        if (options.idempotent) {
            size_t id_length = 0;
            const char *id = intake_producer_id(producer, &id_length);
            fprintf(stderr, " producer_id=%.*s", (int)id_length, id);
        }
        fputc('\n', stderr);
    }
    intake_producer_close(producer);
    return 0;
}
