/*
 * intake-tail: print the records of a topic's shared-memory log, or of several topics.
 *
 *   intake-tail --shm-dir DIR (--topic T ... | --all [--max-topics N])
 *               [--from-start|--from-end|--from-offset N] [--count N]
 *               [--follow] [--format json|text|raw] [--name CONSUMER]
 *
 * One --topic reads that topic through a consumer; several --topic flags, or --all (every topic
 * in the directory, including ones created later), read through one consumer set
 * (intake_consumer_set_*), which waits on the directory's futex word; each record is then
 * printed with its topic (json: a leading "topic" field; text: a leading word).
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
#include "tail_output.h"

/* How long one wait sleeps before checking for a stop signal again. */
#define TAIL_WAIT_NS 500000000ull
/* How often --follow looks again for a topic whose log does not exist yet. */
#define TAIL_OPEN_RETRY_NS 100000000L
/* Named consumers commit their cursor at least every this many records. */
#define TAIL_COMMIT_EVERY 1024u
/* Most --topic flags. */
#define TAIL_TOPICS_MAX 256
/* --max-topics default: intaked's --topics-max default. */
#define TAIL_ALL_TOPICS_DEFAULT 1024u
/* Records one poll of a set returns. */
#define TAIL_SET_BATCH 64u

enum tail_format { TAIL_FORMAT_JSON, TAIL_FORMAT_TEXT, TAIL_FORMAT_RAW };

struct tail_options {
    const char *directory;
    const char *topics[TAIL_TOPICS_MAX]; /* --topic, repeatable */
    uint32_t topic_count;
    bool all_topics;     /* --all */
    uint32_t max_topics; /* --max-topics: with --all, the most topics followed */
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

/* ---- the loop ---- */

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: intake-tail --shm-dir DIR (--topic T ... | --all [--max-topics N])\n"
        "                   [--from-start|--from-end|--from-offset N]\n"
        "                   [--count N] [--follow [--exit-when-idle]] [--format json|text|raw]\n"
        "                   [--name CONSUMER]\n"
        "  several --topic flags, or --all (every topic, including ones created later, up to\n"
        "  --max-topics, default 1024), print each record with its topic\n"
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
                                                 {"all", no_argument, NULL, 'a'},
                                                 {"max-topics", required_argument, NULL, 'm'},
                                                 {NULL, 0, NULL, 0}};
    bool start_given = false;
    int option;
    while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (option) {
        case 'd': options->directory = optarg; break;
        case 't':
            if (options->topic_count == TAIL_TOPICS_MAX) goto bad;
            options->topics[options->topic_count++] = optarg;
            break;
        case 'a': options->all_topics = true; break;
        case 'm': {
            uint64_t max_topics = 0;
            if (!number_parse(optarg, &max_topics) || max_topics == 0 ||
                max_topics > INTAKE_CONSUMER_SET_TOPICS_MAX)
                goto bad;
            options->max_topics = (uint32_t)max_topics;
            break;
        }
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
    if (optind != argc || (options->topic_count == 0) == !options->all_topics) goto bad;
    options->start.ephemeral = options->name == NULL;
    if (!start_given)
        options->start.start =
            options->name ? INTAKE_CONSUMER_START_COMMITTED : INTAKE_CONSUMER_START_OLDEST;
    return 0;
bad:
    usage(stderr);
    return 2;
}

/* What is read: one topic's consumer, or a set of topics. Exactly one is open. */
struct tail_state {
    const struct tail_options *options;
    struct intake_consumer *consumer;
    struct intake_consumer_set *set;
    uint8_t *copy;
    size_t copy_capacity;
    uint64_t printed;
    uint64_t missed;
    bool writer_gone_said; /* the "writer has exited" line was printed since it was last seen */
    char set_error_said[INTAKE_CONSUMER_ERROR_BYTES]; /* the set's last reason, once printed */
};

/* Copies the record out of the mapping and checks the copy is intact (overwrite mode may
 * reuse the bytes at any time). False: it was overwritten; count it as missed. */
static bool record_copy(struct tail_state *state, const struct intake_consumer_set_record *record) {
    if (record->record.length > state->copy_capacity) {
        size_t capacity = state->copy_capacity * 2;
        while (capacity < record->record.length) capacity *= 2;
        uint8_t *copy = realloc(state->copy, capacity);
        if (copy == NULL) {
            fprintf(stderr, "intake-tail: out of memory for a %u-byte record\n",
                    record->record.length);
            exit(1);
        }
        state->copy = copy;
        state->copy_capacity = capacity;
    }
    memcpy(state->copy, record->record.bytes, record->record.length);
    if (state->set != NULL) return intake_consumer_set_record_valid(state->set, record);
    return intake_consumer_record_valid(state->consumer, &record->record);
}

/* `record->topic` is NULL when reading one topic (printed without it). */
static void record_print(struct tail_state *state,
                         const struct intake_consumer_set_record *record) {
    const char *log_topic = record->topic;
    const char *of = log_topic != NULL ? " of topic " : "";
    if (record->record.missed != 0) {
        fflush(stdout);
        fprintf(stderr, "intake-tail: missed %" PRIu64 " records%s%s\n", record->record.missed, of,
                log_topic != NULL ? log_topic : "");
        state->missed += record->record.missed;
    }
    if (!record_copy(state, record)) {
        fflush(stdout);
        fprintf(stderr, "intake-tail: missed 1 records%s%s (overwritten while reading)\n", of,
                log_topic != NULL ? log_topic : "");
        state->missed++;
        return;
    }
    struct text bytes = {state->copy, record->record.length};
    if (state->options->format == TAIL_FORMAT_JSON)
        record_json_write(stdout, &record->record, bytes, log_topic);
    else if (state->options->format == TAIL_FORMAT_TEXT)
        record_text_write(stdout, &record->record, bytes, log_topic);
    else
        record_raw_write(stdout, bytes);
    state->printed++;
}

/* Up to `capacity` records from the consumer or the set: a count, or -1 (reason printed). */
static int tail_poll(struct tail_state *state, struct intake_consumer_set_record *records,
                     uint32_t capacity) {
    if (state->set == NULL) {
        records[0].topic = NULL;
        int polled = intake_consumer_poll(state->consumer, &records[0].record);
        if (polled >= 0) return polled;
        fprintf(stderr, "intake-tail: %s\n", intake_consumer_error(state->consumer));
        return -1;
    }
    int polled = intake_consumer_set_poll(state->set, records, capacity);
    /* A topic that failed is reopened by the set; say why once per new reason. */
    const char *reason = intake_consumer_set_error(state->set);
    if (reason[0] != '\0' && strcmp(reason, state->set_error_said) != 0) {
        fflush(stdout);
        fprintf(stderr, "intake-tail: %s\n", reason);
        snprintf(state->set_error_said, sizeof(state->set_error_said), "%s", reason);
    }
    if (polled >= 0) return polled;
    return -1;
}

static void tail_commit(struct tail_state *state) {
    if (state->set != NULL)
        intake_consumer_set_commit(state->set);
    else
        intake_consumer_commit(state->consumer);
}

/* Idle, following: is anyone still writing? true: stop now (--exit-when-idle and the writer
 * was already gone at the previous empty poll); *poll_again: poll once more first. */
static bool tail_writer_check(struct tail_state *state, bool *poll_again) {
    const struct tail_options *options = state->options;
    *poll_again = false;
    bool writer_alive = state->set != NULL ? intake_consumer_set_writer_alive(state->set)
                                           : intake_consumer_writer_alive(state->consumer);
    if (writer_alive) {
        state->writer_gone_said = false;
    } else if (!state->writer_gone_said) {
        fprintf(stderr, "intake-tail: the %s writer (intaked) has exited%s\n",
                state->set != NULL ? "logs'" : "log's",
                options->exit_when_idle ? "; stopping once what is left is read"
                                        : "; waiting for it to come back");
        state->writer_gone_said = true;
        /* It may have published more between our last poll and its exit: poll again. */
        *poll_again = true;
    } else if (options->exit_when_idle) {
        return true; /* polled empty after the writer was gone: nothing more can come */
    }
    return false;
}

/* Runs until the end (no --follow), --count records, or a stop signal. 0 or an exit code. */
static int tail_run(struct tail_state *state) {
    const struct tail_options *options = state->options;
    static struct intake_consumer_set_record records[TAIL_SET_BATCH];
    uint64_t uncommitted = 0;
    while (!stop_requested) {
        if (options->count != 0 && state->printed >= options->count) return 0;
        uint64_t capacity = TAIL_SET_BATCH;
        if (options->count != 0 && options->count - state->printed < capacity)
            capacity = options->count - state->printed;
        int polled = tail_poll(state, records, (uint32_t)capacity);
        if (polled < 0) return 1;
        for (int index = 0; index < polled; index++) record_print(state, &records[index]);
        uncommitted += (uint64_t)polled;
        if (options->name && uncommitted >= TAIL_COMMIT_EVERY) {
            tail_commit(state);
            uncommitted = 0;
        }
        if (polled > 0) continue;
        if (!options->follow) return 0;
        if (fflush(stdout) != 0) return errno == EPIPE ? 0 : 1;
        /* Checked only when idle, so a busy follower pays nothing for it. */
        bool poll_again = false;
        if (tail_writer_check(state, &poll_again)) return 0;
        if (poll_again) continue;
        if (options->name) tail_commit(state);
        uncommitted = 0;
        int waited = state->set != NULL ? intake_consumer_set_wait(state->set, TAIL_WAIT_NS)
                                        : intake_consumer_wait(state->consumer, TAIL_WAIT_NS);
        if (waited < 0 && waited != -EINTR) {
            fprintf(stderr, "intake-tail: %s\n",
                    state->set != NULL ? intake_consumer_set_error(state->set)
                                       : intake_consumer_error(state->consumer));
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

/* One topic: opens its consumer, waiting for the log with --follow. 0 or an exit code. */
static int tail_open_one(struct tail_state *state, const char *name) {
    const struct tail_options *options = state->options;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    bool waiting_said = false;
    int result;
    for (;;) {
        result = intake_consumer_open(options->directory, options->topics[0], name, &options->start,
                                      &state->consumer, why, sizeof(why));
        /* A follower may start before the topic exists (intaked creates a topic's log when the
         * topic is configured or first used): wait for it, saying so once. */
        if (result != -ENOENT || !options->follow || stop_requested) break;
        if (!waiting_said) fprintf(stderr, "intake-tail: %s; waiting for it\n", why);
        waiting_said = true;
        struct timespec pause = {0, TAIL_OPEN_RETRY_NS};
        nanosleep(&pause, NULL);
    }
    if (result == 0) return 0;
    fprintf(stderr, "intake-tail: %s\n", why);
    return stop_requested ? -1 : 1;
}

/* Several topics or all of them: one set. Listed topics without a log are waited for with
 * --follow (the set opens them when they appear) and are an error without. */
static int tail_open_set(struct tail_state *state, const char *name) {
    const struct tail_options *options = state->options;
    struct intake_consumer_set_options set_options = {
        .consumer = &options->start,
        .topics_max = options->all_topics ? options->max_topics : options->topic_count,
        .all_topics = options->all_topics,
        .topics = options->topics,
        .topic_count = options->all_topics ? 0 : options->topic_count,
    };
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    if (intake_consumer_set_open(options->directory, name, &set_options, &state->set, why,
                                 sizeof(why)) != 0) {
        fprintf(stderr, "intake-tail: %s\n", why);
        return 1;
    }
    struct intake_consumer_set_stats stats = INTAKE_CONSUMER_SET_STATS_INIT;
    intake_consumer_set_stats(state->set, &stats);
    const char *refused = intake_consumer_set_error(state->set);
    if (refused[0] != '\0') {
        fprintf(stderr, "intake-tail: %s\n", refused);
        snprintf(state->set_error_said, sizeof(state->set_error_said), "%s", refused);
    }
    if (stats.topics_waiting == 0) return 0;
    fprintf(stderr, "intake-tail: %u of the topics have no log in %s%s\n", stats.topics_waiting,
            options->directory, options->follow ? "; waiting for them" : "");
    return options->follow ? 0 : 1;
}

int main(int argc, char **argv) {
    struct tail_options options = {0};
    options.directory = "/dev/shm/intake";
    options.format = TAIL_FORMAT_JSON;
    options.max_topics = TAIL_ALL_TOPICS_DEFAULT;
    int result = options_parse(argc, argv, &options);
    if (result != 0) return result;
    char default_name[32];
    snprintf(default_name, sizeof(default_name), "intake-tail-%d", (int)getpid());
    const char *name = options.name ? options.name : default_name;
    struct tail_state state = {.options = &options};
    signals_install();
    bool several = options.all_topics || options.topic_count > 1;
    result = several ? tail_open_set(&state, name) : tail_open_one(&state, name);
    if (result != 0) {
        intake_consumer_set_close(state.set);
        return result < 0 ? 0 : result;
    }
    state.copy_capacity = 1u << 16;
    state.copy = malloc(state.copy_capacity);
    int code = 1;
    if (state.copy == NULL)
        fprintf(stderr, "intake-tail: out of memory\n");
    else
        code = tail_run(&state);
    if (options.name && state.copy != NULL) tail_commit(&state);
    intake_consumer_close(state.consumer);
    intake_consumer_set_close(state.set);
    free(state.copy);
    if (fflush(stdout) != 0 && errno != EPIPE) {
        fprintf(stderr, "intake-tail: writing output: %s\n", strerror(errno));
        return 1;
    }
    return code;
}
