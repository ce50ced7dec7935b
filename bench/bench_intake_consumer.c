/*
 * bench_intake_consumer.c: intake-bench's consumer thread for --target intake. It reads every
 * topic bench-0 .. bench-(topics-1) from the shared-memory logs, in place, and hands each value
 * to consumer_deliver (latency, order, exactly-once accounting in bench_consumer.c). Two ways, by
 * --consumer: one consumer set (intake_consumer_set_*, the default) or one consumer handle per
 * topic polled in turn. Runs on the consumer thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_consumer.h"
#include "bench_time.h"
#include "common.h"

/* The value (field 3) of one encoded intake.v1.Record, with the consumer library's parser (the
 * one record parser, the same checks intaked makes): 0 with *value set (NULL and 0 bytes for
 * an empty value), or -EBADMSG. */
int bench_record_value(const uint8_t *record, size_t record_bytes, const uint8_t **value,
                       size_t *value_bytes) {
    struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
    int result = intake_record_parse(record, record_bytes, &view);
    if (result != 0) return result;
    *value = view.value.bytes;
    *value_bytes = view.value.length;
    return 0;
}

/*
 * ---- the intake consumer: every topic's shared-memory log, read in place -------------------
 *
 * consume_intake() is the consumer thread's body for --target intake; with --consumer handles
 * it runs consume_intake_handles(), which holds one include/intake/consumer.h handle per topic
 * bench-0 .. bench-(topics-1), registered (ephemeral) under the name "intake-bench", so block
 * retention holds the writer back while this thread lags: nothing is lost, the producers are
 * pushed back instead. (consume_intake_set() below does the same through one consumer set.)
 *   - intaked creates a topic's log when its worker first sees the topic, so logs appear while
 *     the run is on: opens that fail with -ENOENT are retried every BENCH_OPEN_RETRY_NS, and a
 *     log that appears during the run is read from its oldest record (all of it is ours).
 *     Logs already there before the producers start are left from earlier runs: read from
 *     their end.
 *   - Records are read as pointers into the mapping; the value (field 3) is found by walking
 *     the record's bytes (bench_record_value: intake_record_parse), never copied. One clock read per topic drain.
 *   - When every open topic is empty the thread sleeps on a log's futex with a short timeout,
 *     so it never spins and always sees stop_consuming.
 * Returns 0, or a negative errno after run_fail().
 */

/* Tries to open topic `topic`'s log; 0 when open or not there yet, negative errno otherwise.
 * The worker creates the file before it writes the header, so an open can see a log that is
 * there but not valid yet (-EINVAL): that is retried too, for BENCH_LOG_CREATE_TIMEOUT_NS. */
static int intake_topic_open(struct bench_run *run, uint32_t topic,
                             enum intake_consumer_start start) {
    struct consumer_state *consumer = &run->consumer;
    INTAKE_ASSERT(topic < run->options->topic_count);
    INTAKE_ASSERT(consumer->topic_logs[topic] == NULL);
    char name[BENCH_TOPIC_NAME_BYTES_MAX];
    snprintf(name, sizeof name, BENCH_INTAKE_TOPIC_PREFIX "%u", topic);
    struct intake_consumer_options open_options = {.start = start, .ephemeral = true};
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    int result =
        intake_consumer_open(run->options->shm_dir, name, BENCH_CONSUMER_NAME, &open_options,
                             &consumer->topic_logs[topic], why, sizeof(why));
    if (result == -ENOENT) return 0;
    uint64_t now_ns = intake_now_ns();
    if (result == -EINVAL) {
        if (consumer->unreadable_since_ns == 0) consumer->unreadable_since_ns = now_ns;
        if (now_ns - consumer->unreadable_since_ns < BENCH_LOG_CREATE_TIMEOUT_NS) return 0;
    }
    if (result != 0) {
        fprintf(stderr, "intake-bench: open %s: %s\n", name, why);
        run_fail(run, result, "intake consumer open");
        return result;
    }
    consumer->topics_open++;
    consumer->unreadable_since_ns = 0;
    return 0;
}

/* Opens every topic whose log has appeared since the last try (at most once per retry period). */
static int intake_topics_open_new(struct bench_run *run, enum intake_consumer_start start,
                                  uint64_t now_ns) {
    struct consumer_state *consumer = &run->consumer;
    uint32_t topic_count = run->options->topic_count;
    if (consumer->topics_open == topic_count || now_ns < consumer->next_open_try_ns) return 0;
    consumer->next_open_try_ns = now_ns + BENCH_OPEN_RETRY_NS;
    for (uint32_t topic = 0; topic < topic_count; topic++) {
        if (consumer->topic_logs[topic] != NULL) continue;
        int result = intake_topic_open(run, topic, start);
        if (result != 0) return result;
    }
    return 0;
}

/* Reads up to BENCH_POLL_RECORDS_MAX records of one topic; returns how many, or negative errno. */
static int intake_topic_drain(struct bench_run *run, uint32_t topic) {
    struct consumer_state *consumer = &run->consumer;
    struct intake_consumer *log = consumer->topic_logs[topic];
    INTAKE_ASSERT(log != NULL);
    uint64_t now_ns = intake_now_ns();
    int drained = 0;
    for (; drained < BENCH_POLL_RECORDS_MAX; drained++) {
        struct intake_consumer_record record;
        int polled = intake_consumer_poll(log, &record);
        if (polled == 0) break;
        if (polled < 0) {
            fprintf(stderr, "intake-bench: bench-%u: %s\n", topic, intake_consumer_error(log));
            run_fail(run, polled, "intake consumer poll");
            return polled;
        }
        consumer->missed += record.missed;
        const uint8_t *value = NULL;
        size_t value_bytes = 0;
        if (bench_record_value(record.bytes, record.length, &value, &value_bytes) != 0) {
            consumer->short_records++; /* counted as delivered but unusable */
            consumer->records++;
            continue;
        }
        consumer_deliver(consumer, run->options->connection_count, topic, value, value_bytes,
                         now_ns);
    }
    /* The commit heartbeats; the cursor itself is not needed (ephemeral slot). */
    if (drained > 0) intake_consumer_commit(log);
    return drained;
}

/* Sleeps until a record may be there: on one log's futex (rotating over several logs, with a
 * short timeout, since records may land in another one meanwhile), or briefly when none is open. */
static void intake_wait(struct bench_run *run, uint32_t *rotor) {
    struct consumer_state *consumer = &run->consumer;
    uint32_t topic_count = run->options->topic_count;
    if (consumer->topics_open == 0) {
        sleep_ns(BENCH_WAIT_MANY_TOPICS_NS);
        return;
    }
    bool one = consumer->topics_open == 1 && topic_count == 1;
    for (uint32_t step = 0; step < topic_count; step++) {
        *rotor = (*rotor + 1) % topic_count;
        if (consumer->topic_logs[*rotor] == NULL) continue;
        int result =
            intake_consumer_wait(consumer->topic_logs[*rotor],
                                 one ? BENCH_WAIT_ONE_TOPIC_NS : BENCH_WAIT_MANY_TOPICS_NS);
        (void)result; /* 1, 0 (timeout) and -EINTR all mean: poll again */
        return;
    }
}

/* One round over every topic with one handle per topic, polled in turn (--consumer handles).
 * Returns records read, or a negative errno. consume_intake_set is the same loop with a set. */
static int64_t intake_drain_all(struct bench_run *run) {
    struct consumer_state *consumer = &run->consumer;
    int64_t drained_total = 0;
    for (uint32_t topic = 0; topic < run->options->topic_count; topic++) {
        if (consumer->topic_logs[topic] == NULL) continue;
        int result = intake_topic_drain(run, topic);
        if (result < 0) return result;
        drained_total += result;
    }
    return drained_total;
}

static int consume_intake_handles(struct bench_run *run) {
    struct consumer_state *consumer = &run->consumer;
    uint32_t topic_count = run->options->topic_count;
    INTAKE_ASSERT(consumer->topic_logs != NULL);
    int result = intake_topics_open_new(run, INTAKE_CONSUMER_START_END, intake_now_ns());
    if (result != 0) return result;
    atomic_store(&run->consumer_ready, true);
    uint32_t rotor = 0;
    while (!atomic_load_explicit(&run->stop_consuming, memory_order_relaxed)) {
        result = intake_topics_open_new(run, INTAKE_CONSUMER_START_OLDEST, intake_now_ns());
        if (result != 0) break;
        int64_t drained_total = intake_drain_all(run);
        if (drained_total < 0) {
            result = (int)drained_total;
            break;
        }
        if (drained_total > 0)
            consumer_publish(run, intake_now_ns());
        else
            intake_wait(run, &rotor);
    }
    for (uint32_t topic = 0; topic < topic_count; topic++) {
        intake_consumer_close(consumer->topic_logs[topic]); /* NULL is fine */
        consumer->topic_logs[topic] = NULL;
    }
    return result < 0 ? result : 0;
}

/*
 * --consumer set: every topic through one intake_consumer_set (listed topics bench-0 ..
 * bench-(topics-1), ephemeral slots named "intake-bench"). Logs there at open are read from
 * their end, logs found later from their oldest record, as consume_intake_handles does. One
 * poll returns up to BENCH_POLL_RECORDS_MAX records of any topics; one wait sleeps on the
 * directory's futex word. The set's own bookkeeping (heartbeats, finding new logs) is its own.
 */
static int intake_set_open(struct bench_run *run) {
    struct consumer_state *consumer = &run->consumer;
    uint32_t topic_count = run->options->topic_count;
    char(*names)[BENCH_TOPIC_NAME_BYTES_MAX] = calloc(topic_count, sizeof *names);
    const char **pointers = calloc(topic_count, sizeof *pointers);
    int result = -ENOMEM;
    if (names && pointers) {
        for (uint32_t topic = 0; topic < topic_count; topic++) {
            snprintf(names[topic], sizeof names[topic], BENCH_INTAKE_TOPIC_PREFIX "%u", topic);
            pointers[topic] = names[topic];
        }
        struct intake_consumer_set_options set_options = {
            .consumer = &(struct intake_consumer_options){.start = INTAKE_CONSUMER_START_END,
                                                          .ephemeral = true},
            .topics_max = topic_count,
            .topics = pointers,
            .topic_count = topic_count};
        char why[INTAKE_CONSUMER_ERROR_BYTES];
        result = intake_consumer_set_open(run->options->shm_dir, BENCH_CONSUMER_NAME, &set_options,
                                          &consumer->set, why, sizeof why);
        if (result != 0) fprintf(stderr, "intake-bench: consumer set: %s\n", why);
    }
    free(names); /* the set keeps its own copies of the names */
    free(pointers);
    if (result != 0) run_fail(run, result, "intake consumer set open");
    return result;
}

/* The bench topic number of a set record (bench-N), cached per set topic index. */
static int64_t intake_set_topic_number(struct consumer_state *consumer,
                                       const struct intake_consumer_set_record *record,
                                       uint32_t topic_count) {
    INTAKE_ASSERT(record->topic_index < topic_count);
    int64_t *cached = &consumer->set_topic_number[record->topic_index];
    if (*cached < 0) {
        size_t prefix_bytes = strlen(BENCH_INTAKE_TOPIC_PREFIX);
        if (strncmp(record->topic, BENCH_INTAKE_TOPIC_PREFIX, prefix_bytes) != 0) return -1;
        unsigned long number = strtoul(record->topic + prefix_bytes, NULL, 10);
        if (number >= topic_count) return -1;
        *cached = (int64_t)number;
    }
    return *cached;
}

/* One set poll; returns records read, or a negative errno after run_fail(). */
static int64_t intake_drain_set(struct bench_run *run) {
    struct consumer_state *consumer = &run->consumer;
    int count =
        intake_consumer_set_poll(consumer->set, consumer->set_records, BENCH_POLL_RECORDS_MAX);
    if (count < 0) {
        fprintf(stderr, "intake-bench: set poll: %s\n", intake_consumer_set_error(consumer->set));
        run_fail(run, count, "intake consumer set poll");
        return count;
    }
    uint64_t now_ns = intake_now_ns();
    for (int index = 0; index < count; index++) {
        const struct intake_consumer_set_record *record = &consumer->set_records[index];
        int64_t topic = intake_set_topic_number(consumer, record, run->options->topic_count);
        const uint8_t *value = NULL;
        size_t value_bytes = 0;
        consumer->missed += record->record.missed;
        if (topic < 0 || bench_record_value(record->record.bytes, record->record.length, &value,
                                            &value_bytes) != 0) {
            consumer->short_records++; /* counted as delivered but unusable */
            consumer->records++;
            continue;
        }
        consumer_deliver(consumer, run->options->connection_count, (uint32_t)topic, value,
                         value_bytes, now_ns);
    }
    return count;
}

static int consume_intake_set(struct bench_run *run) {
    struct consumer_state *consumer = &run->consumer;
    int result = intake_set_open(run);
    if (result != 0) return result;
    atomic_store(&run->consumer_ready, true);
    while (!atomic_load_explicit(&run->stop_consuming, memory_order_relaxed)) {
        int64_t drained = intake_drain_set(run);
        if (drained < 0) {
            result = (int)drained;
            break;
        }
        if (drained > 0) {
            consumer_publish(run, intake_now_ns());
            continue;
        }
        int waited = intake_consumer_set_wait(consumer->set, BENCH_WAIT_ONE_TOPIC_NS);
        (void)waited; /* 1, 0 (timeout) and -EINTR all mean: poll again */
    }
    struct intake_consumer_set_stats stats = INTAKE_CONSUMER_SET_STATS_INIT;
    intake_consumer_set_stats(consumer->set, &stats);
    /* A topic the set had to close (damaged, replaced) may have lost records: not exactly once. */
    if (stats.topic_errors > 0) {
        fprintf(stderr, "intake-bench: consumer set closed %llu topics after errors: %s\n",
                (unsigned long long)stats.topic_errors, intake_consumer_set_error(consumer->set));
        consumer->short_records += stats.topic_errors;
    }
    intake_consumer_set_close(consumer->set);
    consumer->set = NULL;
    return result < 0 ? result : 0;
}

int consume_intake(struct bench_run *run) {
    return run->options->consumer_kind == CONSUMER_SET ? consume_intake_set(run)
                                                       : consume_intake_handles(run);
}
