/*
 * intake_vm_gen: a deterministic record generator for the VM's daemon stage (tests/vm).
 *
 *   intake_vm_gen --topics A,B,... --seed S --min-bytes N [--only TOPIC] [--summary]
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
 *
 * Single-threaded, no allocation beyond one value buffer; built statically by tests/vm/run.
 * Exit status: 0, 1 on a write error, 2 on bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
};

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
static uint32_t gen_value(struct gen_topic *topic, uint8_t *value) {
    uint32_t limit = GEN_VALUE_BYTES_SMALL;
    if ((topic->records + 1) % GEN_LARGE_EVERY == 0) limit = GEN_VALUE_BYTES_LARGE;
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
            uint32_t value_length = gen_value(topic, value);
            sequence++;
            /* Records of other topics (with --only) advance the sequence but are not written. */
            bool write = !options->summary &&
                         (options->only == NULL || strcmp(options->only, topic->name) == 0);
            topic->bytes += gen_record(write ? stdout : NULL, topic, sequence, value, value_length);
            topic->records++;
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
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
        else
            return -1;
    }
    if (topics == NULL || gen_parse_topics(topics, options) < 0) return -1;
    for (uint32_t index = 0; index < options->topic_count; index++)
        /* xorshift64 must not start at zero; the odd constant keeps topics' streams apart. */
        options->topics[index].state = (options->seed + 1) * 0x9e3779b97f4a7c15ull + index * 2 + 1;
    return 0;
}

int main(int argc, char **argv) {
    struct gen_options options;
    if (gen_parse(argc, argv, &options) < 0) {
        fprintf(stderr, "usage: intake_vm_gen --topics A,B,... --seed S --min-bytes N "
                        "[--only TOPIC] [--summary]\n");
        return 2;
    }
    static uint8_t value[GEN_VALUE_BYTES_LARGE + 8];
    int result = gen_stream(&options, value);
    if (result == 0 && options.summary) gen_print_summary(&options);
    return result;
}
