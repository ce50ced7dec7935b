/*
 * intake-tail: print the records of a topic's shared-memory log.
 *
 *   intake-tail --shm-dir DIR --topic T [--from-start|--from-end|--from-offset N] [--count N]
 *               [--follow] [--format json|text|raw] [--name CONSUMER]
 *
 * Single-threaded. Reads through the consumer library (include/intake/consumer.h) only: it
 * copies each record out of the mapping, checks the copy is still valid (overwrite mode), then
 * decodes it with a small protobuf field walker of its own (the bytes are an intake.v1.Record).
 * Without --name it registers as "intake-tail-<pid>", ephemeral (unregistered on exit), and
 * starts at the oldest record; with --name it resumes from that name's committed cursor and
 * commits as it goes. Gaps (overwrite mode, or a stale consumer in block mode) are reported on
 * stderr. Exit status: 0 normally, 1 with one line on stderr on errors, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "intake/consumer.h"
#include "varint.h"

/* How long one wait sleeps before checking for a stop signal again. */
#define TAIL_WAIT_NS 500000000ull
/* How often --follow looks again for a topic whose log does not exist yet. */
#define TAIL_OPEN_RETRY_NS 100000000L
/* Named consumers commit their cursor at least every this many records. */
#define TAIL_COMMIT_EVERY 1024u

enum tail_format { TAIL_FORMAT_JSON, TAIL_FORMAT_TEXT, TAIL_FORMAT_RAW };

struct tail_options {
    const char *directory;
    const char *topic;
    const char *name;
    struct intake_consumer_options start;
    uint64_t count; /* 0: no limit */
    bool follow;
    bool exit_when_idle; /* --follow ends once the writer is gone and everything is read */
    enum tail_format format;
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signal_number) {
    (void)signal_number;
    stop_requested = 1;
}

/* ---- a protobuf field walker over one encoded message ---- */

struct pb_field {
    uint32_t number;
    uint32_t wire_type;
    uint64_t value;       /* varint, fixed64 and fixed32 fields */
    const uint8_t *bytes; /* length-delimited fields */
    uint64_t length;
};

/* Reads the next field at *cursor; 1 with *field set, 0 at the end, -1 when malformed. */
static int pb_field_next(const uint8_t **cursor, const uint8_t *end, struct pb_field *field) {
    if (*cursor == end) return 0;
    uint64_t tag = 0;
    size_t used = 0;
    if (varint_decode(*cursor, (size_t)(end - *cursor), &tag, &used) != VARINT_OK) return -1;
    *cursor += used;
    field->number = (uint32_t)(tag >> 3);
    field->wire_type = (uint32_t)(tag & 7);
    if (field->number == 0 || tag >> 3 > UINT32_MAX) return -1;
    size_t left = (size_t)(end - *cursor);
    switch (field->wire_type) {
    case 0:
        if (varint_decode(*cursor, left, &field->value, &used) != VARINT_OK) return -1;
        *cursor += used;
        return 1;
    case 1:
    case 5: {
        size_t width = field->wire_type == 1 ? 8 : 4;
        if (left < width) return -1;
        field->value = 0;
        memcpy(&field->value, *cursor, width); /* little-endian host */
        *cursor += width;
        return 1;
    }
    case 2:
        if (varint_decode(*cursor, left, &field->length, &used) != VARINT_OK) return -1;
        *cursor += used;
        if (field->length > (uint64_t)(end - *cursor)) return -1;
        field->bytes = *cursor;
        *cursor += field->length;
        return 1;
    default: return -1; /* groups (3, 4) never appear in intake.proto */
    }
}

struct text {
    const uint8_t *bytes;
    uint64_t length;
};

struct record_fields {
    struct text topic, key, value;
    uint64_t timestamp_ns;
    uint32_t header_count;
};

/* Walks a Record; the last occurrence of a singular field wins (protobuf's rule). */
static int record_fields_read(const uint8_t *bytes, uint64_t length, struct record_fields *out) {
    static const uint8_t empty[1] = {0};
    memset(out, 0, sizeof(*out));
    out->topic = out->key = out->value = (struct text){empty, 0}; /* absent means empty */
    const uint8_t *cursor = bytes, *end = bytes + length;
    struct pb_field field;
    int result;
    while ((result = pb_field_next(&cursor, end, &field)) == 1) {
        bool delimited = field.wire_type == 2;
        struct text text = {field.bytes, field.length};
        if (field.number == 1 && delimited)
            out->topic = text;
        else if (field.number == 2 && delimited)
            out->key = text;
        else if (field.number == 3 && delimited)
            out->value = text;
        else if (field.number == 4 && field.wire_type == 0)
            out->timestamp_ns = field.value;
        else if (field.number == 6 && delimited)
            out->header_count++;
    }
    return result;
}

/* Reads a Header message's key (1) and value (2). */
static int header_fields_read(struct text message, struct text *key, struct text *value) {
    const uint8_t *cursor = message.bytes, *end = message.bytes + message.length;
    struct pb_field field;
    int result;
    *key = (struct text){(const uint8_t *)"", 0};
    *value = *key;
    while ((result = pb_field_next(&cursor, end, &field)) == 1) {
        if (field.wire_type != 2) continue;
        if (field.number == 1) *key = (struct text){field.bytes, field.length};
        if (field.number == 2) *value = (struct text){field.bytes, field.length};
    }
    return result;
}

/* ---- output ---- */

/* Printable: valid UTF-8 without control characters, so it prints as-is on one line. */
static bool text_printable(struct text text) {
    for (uint64_t index = 0; index < text.length; index++)
        if (text.bytes[index] < 0x20 || text.bytes[index] == 0x7f) return false;
    uint32_t state = 0;
    return intake_utf8_feed(&state, text.bytes, (size_t)text.length) && state == 0;
}

static void base64_write(FILE *out, struct text text) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint64_t index = 0;
    for (; index + 3 <= text.length; index += 3) {
        uint32_t group = (uint32_t)text.bytes[index] << 16 | (uint32_t)text.bytes[index + 1] << 8 |
                         text.bytes[index + 2];
        fputc(alphabet[group >> 18], out);
        fputc(alphabet[(group >> 12) & 63], out);
        fputc(alphabet[(group >> 6) & 63], out);
        fputc(alphabet[group & 63], out);
    }
    uint64_t left = text.length - index;
    if (left == 0) return;
    uint32_t group = (uint32_t)text.bytes[index] << 16;
    if (left == 2) group |= (uint32_t)text.bytes[index + 1] << 8;
    fputc(alphabet[group >> 18], out);
    fputc(alphabet[(group >> 12) & 63], out);
    fputc(left == 2 ? alphabet[(group >> 6) & 63] : '=', out);
    fputc('=', out);
}

/* Printable text is free of control characters: only '"' and '\\' need escaping. */
static void json_string_write(FILE *out, struct text text) {
    fputc('"', out);
    for (uint64_t index = 0; index < text.length; index++) {
        uint8_t byte = text.bytes[index];
        if (byte == '"' || byte == '\\') fputc('\\', out);
        fputc(byte, out);
    }
    fputc('"', out);
}

/* ,"name":"text" when printable, else ,"name_base64":"..." */
static void json_field_write(FILE *out, const char *name, struct text text, bool comma) {
    bool printable = text_printable(text);
    fprintf(out, "%s\"%s%s\":", comma ? "," : "", name, printable ? "" : "_base64");
    if (printable) {
        json_string_write(out, text);
        return;
    }
    fputc('"', out);
    base64_write(out, text);
    fputc('"', out);
}

static void json_headers_write(FILE *out, struct text record) {
    const uint8_t *cursor = record.bytes, *end = record.bytes + record.length;
    struct pb_field field;
    bool first = true;
    fputs(",\"headers\":[", out);
    while (pb_field_next(&cursor, end, &field) == 1) {
        if (field.number != 6 || field.wire_type != 2) continue;
        struct text key, value;
        if (header_fields_read((struct text){field.bytes, field.length}, &key, &value) < 0)
            continue;
        fputs(first ? "{" : ",{", out);
        json_field_write(out, "key", key, false);
        json_field_write(out, "value", value, true);
        fputc('}', out);
        first = false;
    }
    fputc(']', out);
}

static void record_json_write(FILE *out, const struct intake_consumer_record *record,
                              struct text bytes) {
    fprintf(out, "{\"offset\":%" PRIu64 ",\"sequence\":%" PRIu64 ",\"receive_time_ns\":%" PRIu64,
            record->offset, record->sequence, record->receive_time_ns);
    struct record_fields fields;
    if (record_fields_read(bytes.bytes, bytes.length, &fields) < 0) {
        fputs(",\"malformed\":true", out);
        json_field_write(out, "record", bytes, true);
        fputs("}\n", out);
        return;
    }
    json_field_write(out, "topic", fields.topic, true);
    json_field_write(out, "key", fields.key, true);
    json_field_write(out, "value", fields.value, true);
    fprintf(out, ",\"timestamp_ns\":%" PRIu64, fields.timestamp_ns);
    json_headers_write(out, bytes);
    fputs("}\n", out);
}

static void text_field_write(FILE *out, const char *name, struct text text) {
    bool printable = text_printable(text);
    fprintf(out, " %s%s=", name, printable ? "" : "_base64");
    if (printable && text.length != 0)
        fwrite(text.bytes, 1, (size_t)text.length, out);
    else
        base64_write(out, text);
}

static void record_text_write(FILE *out, const struct intake_consumer_record *record,
                              struct text bytes) {
    fprintf(out, "%" PRIu64 " %" PRIu64, record->offset, record->sequence);
    struct record_fields fields;
    if (record_fields_read(bytes.bytes, bytes.length, &fields) < 0) {
        text_field_write(out, "malformed_record", bytes);
    } else {
        text_field_write(out, "key", fields.key);
        text_field_write(out, "value", fields.value);
    }
    fputc('\n', out);
}

/* Exactly as on the wire: varint length, then the record's bytes. */
static void record_raw_write(FILE *out, struct text bytes) {
    uint8_t prefix[VARINT_BYTES_MAX];
    size_t prefix_length = varint_encode(bytes.length, prefix);
    fwrite(prefix, 1, prefix_length, out);
    fwrite(bytes.bytes, 1, (size_t)bytes.length, out);
}

/* ---- the loop ---- */

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: intake-tail --shm-dir DIR --topic T [--from-start|--from-end|--from-offset N]\n"
        "                   [--count N] [--follow [--exit-when-idle]] [--format json|text|raw]\n"
        "                   [--name CONSUMER]\n"
        "  --follow waits for new records (and for the topic's log, until it exists); it says\n"
        "  so once when the log's writer (intaked) is gone, and with --exit-when-idle it then\n"
        "  exits 0 after reading what is left\n"
        "  default start: the oldest record; with --name, that consumer's committed cursor\n"
        "  default --shm-dir: /dev/shm/intake (intaked's default)\n");
}

static bool number_parse(const char *text, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-') return false;
    *out = value;
    return true;
}

/* Returns 0 when parsed, 2 on bad usage (after printing why). */
static int options_parse(int argc, char **argv, struct tail_options *options) {
    static const struct option long_options[] = {{"shm-dir", required_argument, NULL, 'd'},
                                                 {"topic", required_argument, NULL, 't'},
                                                 {"from-start", no_argument, NULL, 's'},
                                                 {"from-end", no_argument, NULL, 'e'},
                                                 {"from-offset", required_argument, NULL, 'o'},
                                                 {"count", required_argument, NULL, 'c'},
                                                 {"follow", no_argument, NULL, 'f'},
                                                 {"format", required_argument, NULL, 'F'},
                                                 {"name", required_argument, NULL, 'n'},
                                                 {"help", no_argument, NULL, 'h'},
                                                 {"exit-when-idle", no_argument, NULL, 'x'},
                                                 {NULL, 0, NULL, 0}};
    bool start_given = false;
    int option;
    while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (option) {
        case 'd': options->directory = optarg; break;
        case 't': options->topic = optarg; break;
        case 's':
            options->start.start = INTAKE_CONSUMER_START_OLDEST;
            start_given = true;
            break;
        case 'e':
            options->start.start = INTAKE_CONSUMER_START_END;
            start_given = true;
            break;
        case 'o':
            options->start.start = INTAKE_CONSUMER_START_OFFSET;
            start_given = true;
            if (!number_parse(optarg, &options->start.start_offset)) goto bad;
            break;
        case 'c':
            if (!number_parse(optarg, &options->count)) goto bad;
            break;
        case 'f': options->follow = true; break;
        case 'x': options->exit_when_idle = true; break;
        case 'F':
            if (strcmp(optarg, "json") == 0)
                options->format = TAIL_FORMAT_JSON;
            else if (strcmp(optarg, "text") == 0)
                options->format = TAIL_FORMAT_TEXT;
            else if (strcmp(optarg, "raw") == 0)
                options->format = TAIL_FORMAT_RAW;
            else
                goto bad;
            break;
        case 'n': options->name = optarg; break;
        case 'h': usage(stdout); exit(0);
        default: goto bad;
        }
    }
    if (optind != argc || options->topic == NULL) goto bad;
    options->start.ephemeral = options->name == NULL;
    if (!start_given)
        options->start.start =
            options->name ? INTAKE_CONSUMER_START_COMMITTED : INTAKE_CONSUMER_START_OLDEST;
    return 0;
bad:
    usage(stderr);
    return 2;
}

struct tail_state {
    const struct tail_options *options;
    struct intake_consumer *consumer;
    uint8_t *copy;
    size_t copy_capacity;
    uint64_t printed;
    uint64_t missed;
    bool writer_gone_said; /* the "writer has exited" line was printed since it was last seen */
};

/* Copies the record out of the mapping and checks the copy is intact (overwrite mode may
 * reuse the bytes at any time). False: it was overwritten; count it as missed. */
static bool record_copy(struct tail_state *state, const struct intake_consumer_record *record) {
    if (record->length > state->copy_capacity) {
        size_t capacity = state->copy_capacity * 2;
        while (capacity < record->length) capacity *= 2;
        uint8_t *copy = realloc(state->copy, capacity);
        if (copy == NULL) {
            fprintf(stderr, "intake-tail: out of memory for a %u-byte record\n", record->length);
            exit(1);
        }
        state->copy = copy;
        state->copy_capacity = capacity;
    }
    memcpy(state->copy, record->bytes, record->length);
    return intake_consumer_record_valid(state->consumer, record);
}

static void record_print(struct tail_state *state, const struct intake_consumer_record *record) {
    if (record->missed != 0) {
        fflush(stdout);
        fprintf(stderr, "intake-tail: missed %" PRIu64 " records\n", record->missed);
        state->missed += record->missed;
    }
    if (!record_copy(state, record)) {
        fflush(stdout);
        fprintf(stderr, "intake-tail: missed 1 records (overwritten while reading)\n");
        state->missed++;
        return;
    }
    struct text bytes = {state->copy, record->length};
    if (state->options->format == TAIL_FORMAT_JSON)
        record_json_write(stdout, record, bytes);
    else if (state->options->format == TAIL_FORMAT_TEXT)
        record_text_write(stdout, record, bytes);
    else
        record_raw_write(stdout, bytes);
    state->printed++;
}

/* Runs until the end (no --follow), --count records, or a stop signal. 0 or an exit code. */
static int tail_run(struct tail_state *state) {
    const struct tail_options *options = state->options;
    while (!stop_requested) {
        if (options->count != 0 && state->printed >= options->count) return 0;
        struct intake_consumer_record record;
        int polled = intake_consumer_poll(state->consumer, &record);
        if (polled < 0) {
            fprintf(stderr, "intake-tail: %s\n", intake_consumer_error(state->consumer));
            return 1;
        }
        if (polled == 1) {
            record_print(state, &record);
            if (options->name && state->printed % TAIL_COMMIT_EVERY == 0)
                intake_consumer_commit(state->consumer);
            continue;
        }
        if (!options->follow) return 0;
        if (fflush(stdout) != 0) return errno == EPIPE ? 0 : 1;
        /* Idle: nothing left to read. Is anyone still writing? (Checked only when idle, so a
         * busy follower pays nothing for it.) */
        bool writer_alive = intake_consumer_writer_alive(state->consumer);
        if (writer_alive) {
            state->writer_gone_said = false;
        } else if (!state->writer_gone_said) {
            fprintf(stderr, "intake-tail: the log's writer (intaked) has exited%s\n",
                    options->exit_when_idle ? "; stopping once what is left is read"
                                            : "; waiting for it to come back");
            state->writer_gone_said = true;
            /* It may have published more between our last poll and its exit: poll again. */
            continue;
        } else if (options->exit_when_idle) {
            return 0; /* polled empty after the writer was gone: nothing more can come */
        }
        if (options->name) intake_consumer_commit(state->consumer);
        int waited = intake_consumer_wait(state->consumer, TAIL_WAIT_NS);
        if (waited < 0 && waited != -EINTR) {
            fprintf(stderr, "intake-tail: %s\n", intake_consumer_error(state->consumer));
            return 1;
        }
    }
    return 0;
}

static void signals_install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_stop_signal; /* no SA_RESTART: the futex wait returns EINTR */
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv) {
    struct tail_options options = {0};
    options.directory = "/dev/shm/intake";
    options.format = TAIL_FORMAT_JSON;
    int result = options_parse(argc, argv, &options);
    if (result != 0) return result;
    char default_name[32];
    snprintf(default_name, sizeof(default_name), "intake-tail-%d", (int)getpid());
    struct tail_state state = {.options = &options};
    signals_install();
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    bool waiting_said = false;
    for (;;) {
        result = intake_consumer_open(options.directory, options.topic,
                                      options.name ? options.name : default_name, &options.start,
                                      &state.consumer, why, sizeof(why));
        /* A follower may start before the topic exists (intaked creates a topic's log when the
         * topic is configured or first used): wait for it, saying so once. */
        if (result != -ENOENT || !options.follow || stop_requested) break;
        if (!waiting_said) fprintf(stderr, "intake-tail: %s; waiting for it\n", why);
        waiting_said = true;
        struct timespec pause = {0, TAIL_OPEN_RETRY_NS};
        nanosleep(&pause, NULL);
    }
    if (result != 0) {
        fprintf(stderr, "intake-tail: %s\n", why);
        return stop_requested ? 0 : 1;
    }
    state.copy_capacity = 1u << 16;
    state.copy = malloc(state.copy_capacity);
    if (state.copy == NULL) {
        fprintf(stderr, "intake-tail: out of memory\n");
        intake_consumer_close(state.consumer);
        return 1;
    }
    int code = tail_run(&state);
    if (options.name) intake_consumer_commit(state.consumer);
    intake_consumer_close(state.consumer);
    free(state.copy);
    if (fflush(stdout) != 0 && errno != EPIPE) {
        fprintf(stderr, "intake-tail: writing output: %s\n", strerror(errno));
        return 1;
    }
    return code;
}
