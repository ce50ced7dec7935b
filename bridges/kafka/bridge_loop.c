/*
 * bridge_loop.c: the bridge's main loop (see bridge_loop.h): topic discovery, resume, reading,
 * producing, committing, heartbeats and shutdown.
 */
#include "bridge_loop.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_resume.h"
#include "bridge_topics.h"
#include "common.h"

volatile sig_atomic_t bridge_stop_requested;
volatile sig_atomic_t bridge_counters_requested;

#define NS_PER_MS 1000000ull
/* Records one topic may move per turn before the next topic gets its turn. */
#define LOOP_TOPIC_BUDGET 512
/* A consumer that is not polled is heartbeaten this often (intaked's stale time is seconds). */
#define LOOP_HEARTBEAT_NS (100 * NS_PER_MS)
/* How long one resume lookup may block, and how long the loop sleeps when idle. */
#define LOOP_RESUME_TIMEOUT_MS 2000
#define LOOP_RESUME_RETRY_NS   (500 * NS_PER_MS)
/* On SIGTERM, deliveries are awaited in slices of this, with heartbeats between them. */
#define LOOP_FLUSH_SLICE_MS 100
#define LOOP_IDLE_WAIT_NS   (20 * NS_PER_MS)
#define LOOP_IDLE_SERVE_MS  2
/* Records the anchor slot reads per turn while catching up with a commit. */
#define LOOP_ANCHOR_BUDGET 4096
/* How long to serve librdkafka when its queue is full before offering the record again. */
#define LOOP_FULL_SERVE_MS 10

struct bridge {
    const struct bridge_options *options;
    struct bridge_topic_table table;
    struct bridge_forward *forward;
    struct bridge_resume *resume;
    uint64_t start_ns;
    uint64_t settle_from_ns; /* start, or the last purge: resume waits the settle time after */
    bool resyncing;          /* purged; waiting for the purged reports before reading back */
    uint64_t resyncs;
    uint64_t next_scan_ns;
    uint64_t last_resume_error_ns;
    struct bridge_topic *resume_topic; /* the topic bridge_resume is looking up, or NULL */
    uint64_t next_resume_ns;           /* after a failed lookup, the next one waits */
    bool fatal;
};

static void counters_print(const struct bridge *bridge, const char *when) {
    uint64_t skipped = 0, missed = 0, commits = 0, forwarding = 0;
    for (uint32_t index = 0; index < bridge->table.count; index++) {
        const struct bridge_topic *topic = &bridge->table.topics[index];
        skipped += topic->skipped;
        missed += topic->missed;
        commits += topic->commits;
        forwarding += topic->phase == BRIDGE_TOPIC_FORWARDING;
    }
    const struct bridge_forward_counters *counters = bridge_forward_counters(bridge->forward);
    fprintf(stderr,
            "intake-kafka: %s: topics=%u forwarding=%" PRIu64 " delivered=%" PRIu64
            " dead_lettered=%" PRIu64 " too_large=%" PRIu64 " undecodable=%" PRIu64
            " skipped=%" PRIu64 " missed=%" PRIu64 " queue_full=%" PRIu64 " commits=%" PRIu64
            " purged=%" PRIu64 " resyncs=%" PRIu64 " in_flight=%" PRIu64 "\n",
            when, bridge->table.count, forwarding, counters->delivered, counters->dead_lettered,
            counters->too_large, counters->undecodable, skipped, missed, counters->queue_full,
            commits, counters->purged, bridge->resyncs, bridge_forward_in_flight(bridge->forward));
}

/* Keeps both consumer slots of a topic live in intaked's eyes. The main slot's polls heartbeat
 * too; the anchor polls only after commits, so it is heartbeaten here on its own clock. */
/* A wait's result: records or not is for the next poll to find out; a log file that was
 * replaced (intaked quarantined a damaged log) or truncated ends the bridge, whose restart
 * opens the new log (a new intake-log, so the read-back starts it afresh). */
static int wait_result_check(const struct bridge_topic *topic, int woke) {
    if (woke != -ESTALE && woke != -EIO) return 0;
    fprintf(stderr,
            "intake-kafka: topic %s: its log was %s under the bridge; stopping so that a "
            "restart opens it again\n",
            topic->name, woke == -ESTALE ? "replaced" : "truncated");
    return -1;
}

static int topic_heartbeat(struct bridge_topic *topic, uint64_t now_ns) {
    int status = 0;
    /* A zero-timeout wait only heartbeats and looks at the commit word: it releases nothing. */
    if (topic->consumer != NULL && now_ns - topic->last_heartbeat_ns >= LOOP_HEARTBEAT_NS) {
        status |= wait_result_check(topic, intake_consumer_wait(topic->consumer, 0));
        topic->last_heartbeat_ns = now_ns;
    }
    if (topic->anchor != NULL && now_ns - topic->anchor_heartbeat_ns >= LOOP_HEARTBEAT_NS) {
        status |= wait_result_check(topic, intake_consumer_wait(topic->anchor, 0));
        topic->anchor_heartbeat_ns = now_ns;
    }
    return status;
}

static void heartbeat_all(struct bridge *bridge, uint64_t now_ns) {
    for (uint32_t index = 0; index < bridge->table.count; index++)
        if (topic_heartbeat(&bridge->table.topics[index], now_ns) != 0) bridge->fatal = true;
}

static void discover(struct bridge *bridge, uint64_t now_ns) {
    if (now_ns < bridge->next_scan_ns) return;
    bridge->next_scan_ns = now_ns + bridge->options->scan_interval_ms * NS_PER_MS;
    if (bridge->options->all_topics) {
        int added = bridge_topics_scan(&bridge->table);
        if (added < 0)
            fprintf(stderr, "intake-kafka: cannot read %s: %s\n", bridge->options->shm_dir,
                    strerror(-added));
    }
    (void)bridge_topics_open_waiting(&bridge->table);
}

static void resume_error(struct bridge *bridge, const struct bridge_topic *topic, const char *why,
                         uint64_t now_ns) {
    if (now_ns - bridge->last_resume_error_ns < 1000 * NS_PER_MS) return;
    bridge->last_resume_error_ns = now_ns;
    fprintf(stderr, "intake-kafka: topic %s: cannot read back what Kafka has yet (%s); retrying\n",
            topic->name, why);
}

/* Hands bridge_resume the next lookup for `topic`: its target partition (stage 0), then the
 * dead-letter topic (stage 1). */
static void resume_request(struct bridge *bridge, struct bridge_topic *topic) {
    const struct bridge_options *options = bridge->options;
    struct bridge_resume_request request = {
        .partition = options->kafka_partition,
        .log_id = topic->log_id,
        .timeout_ms = LOOP_RESUME_TIMEOUT_MS,
    };
    bool dead = topic->resume_stage == 1;
    snprintf(request.kafka_topic, sizeof(request.kafka_topic), "%s",
             dead ? options->dead_letter_topic : topic->kafka_topic);
    snprintf(request.intake_topic, sizeof(request.intake_topic), "%s", topic->name);
    snprintf(request.instance, sizeof(request.instance), "%s", options->instance);
    /* Dead letters are rare and shared by every topic: a bounded look back is enough to find
     * one that was the topic's last word before a crash. */
    request.scan_max = dead ? options->resume_dead_letter_scan_max : options->resume_scan_max;
    if (bridge_resume_start(bridge->resume, &request) == 0) bridge->resume_topic = topic;
}

/* Both lookups are in: skip through the newest delivered offset of either, and forward. */
static void resume_finish(struct bridge *bridge, struct bridge_topic *topic,
                          const struct bridge_resume_result *dead, uint64_t now_ns) {
    const struct bridge_options *options = bridge->options;
    bool main_found = topic->resume_main_found;
    bool dead_found = dead->outcome == BRIDGE_RESUME_FOUND;
    topic->skip_active = main_found || dead_found;
    topic->skip_through = main_found ? topic->resume_main_offset : 0;
    if (dead_found && (!main_found || dead->offset > topic->resume_main_offset))
        topic->skip_through = dead->offset;
    topic->phase = BRIDGE_TOPIC_FORWARDING;
    topic->last_commit_ns = now_ns;
    topic->anchor_behind = true; /* from the oldest record up to the committed cursor */
    if (topic->skip_active)
        fprintf(stderr,
                "intake-kafka: topic %s -> %s [%d]: Kafka has it up to offset %" PRIu64
                ", forwarding after it\n",
                topic->name, topic->kafka_topic, options->kafka_partition, topic->skip_through);
    else
        fprintf(stderr,
                "intake-kafka: topic %s -> %s [%d]: nothing of this log in Kafka yet "
                "(%s)\n",
                topic->name, topic->kafka_topic, options->kafka_partition, topic->resume_main_why);
}

/* An answer from bridge_resume for the topic it was asked about. */
static void resume_answer(struct bridge *bridge, struct bridge_topic *topic,
                          const struct bridge_resume_result *result, uint64_t now_ns) {
    const struct bridge_options *options = bridge->options;
    if (result->outcome == BRIDGE_RESUME_ERROR) {
        resume_error(bridge, topic, result->why, now_ns);
        topic->resume_stage = 0;
        bridge->next_resume_ns = now_ns + LOOP_RESUME_RETRY_NS;
        return;
    }
    if (topic->resume_stage == 1) {
        topic->resume_stage = 0;
        resume_finish(bridge, topic, result, now_ns);
        return;
    }
    if (result->outcome == BRIDGE_RESUME_LIMIT) {
        fprintf(stderr,
                "intake-kafka: topic %s: none of the last %" PRIu64 " messages of %s [%d] came "
                "from this bridge, so what it delivered cannot be known; is another writer using "
                "that partition? (raise --resume-scan-max if not)\n",
                topic->name, options->resume_scan_max, topic->kafka_topic,
                options->kafka_partition);
        bridge->fatal = true;
        return;
    }
    topic->resume_main_found = result->outcome == BRIDGE_RESUME_FOUND;
    topic->resume_main_offset = result->offset;
    snprintf(topic->resume_main_why, sizeof(topic->resume_main_why), "%.200s", result->why);
    topic->resume_stage = 1;
    resume_request(bridge, topic);
}

/* Moves the read-backs along without blocking: takes an answer if there is one, else starts a
 * lookup for the next topic that waits for one, once the settle time since start (or since
 * the last purge) has passed: requests of an earlier producer that were already on their way
 * have landed by then. */
static void resume_pending(struct bridge *bridge, uint64_t now_ns) {
    if (bridge->resume_topic != NULL) {
        struct bridge_resume_result result;
        if (!bridge_resume_take(bridge->resume, &result)) return;
        struct bridge_topic *topic = bridge->resume_topic;
        bridge->resume_topic = NULL;
        resume_answer(bridge, topic, &result, now_ns);
        return;
    }
    if (now_ns - bridge->settle_from_ns < bridge->options->resume_settle_ms * NS_PER_MS) return;
    if (now_ns < bridge->next_resume_ns) return;
    for (uint32_t index = 0; index < bridge->table.count; index++) {
        struct bridge_topic *topic = &bridge->table.topics[index];
        if (topic->phase != BRIDGE_TOPIC_RESUMING) continue;
        topic->resume_stage = 0;
        resume_request(bridge, topic);
        return;
    }
}

/* Commits a topic whose polled records are all in Kafka. */
static void topic_commit_if_done(struct bridge *bridge, struct bridge_topic *topic,
                                 uint64_t now_ns) {
    if (topic->in_flight != 0) return;
    /* A held record is polled but not in Kafka: committing now would skip it on a restart.
     * The drain ends anyway (a dead letter waits for exactly this moment). */
    if (topic->uncommitted && !topic->holding) {
        intake_consumer_commit(topic->consumer);
        topic->uncommitted = false;
        topic->commits++;
        topic->last_commit_ns = now_ns;
        topic->anchor_behind = true;
    }
    if (topic->anchor_behind && !topic->holding) {
        int result = bridge_topics_anchor_advance(topic, LOOP_ANCHOR_BUDGET);
        if (result < 0) bridge->fatal = true;
        topic->anchor_behind = result == 1;
    }
    topic->draining = false;
}

/* Reads and forwards up to a budget of one topic's records. Returns records moved, or -1 when
 * forwarding failed for good. Sets *full when librdkafka's queue is full. */
static int topic_step(struct bridge *bridge, struct bridge_topic *topic, uint64_t now_ns,
                      bool *full) {
    const struct bridge_options *options = bridge->options;
    int moved = 0;
    while (moved < LOOP_TOPIC_BUDGET && !topic->draining) {
        if (!topic->holding) {
            int polled = intake_consumer_poll(topic->consumer, &topic->held);
            if (polled == 0) break;
            if (polled < 0) {
                fprintf(stderr, "intake-kafka: topic %s: %s\n", topic->name,
                        intake_consumer_error(topic->consumer));
                return -1;
            }
            topic->last_heartbeat_ns = now_ns; /* poll heartbeats */
            topic->holding = true;
            topic->uncommitted = true;
            if (topic->held.missed > 0) {
                topic->missed += topic->held.missed;
                fprintf(stderr,
                        "intake-kafka: topic %s: %" PRIu64 " record(s) before offset %" PRIu64
                        " were overwritten in the log before the bridge read them\n",
                        topic->name, topic->held.missed, topic->held.offset);
            }
            if (topic->skip_active && topic->held.offset <= topic->skip_through) {
                topic->skipped++;
                topic->holding = false;
                moved++;
                continue;
            }
        }
        enum bridge_forward_result result =
            bridge_forward_record(bridge->forward, topic, &topic->held);
        if (result == BRIDGE_FORWARD_FATAL) return -1;
        if (result == BRIDGE_FORWARD_FULL) {
            *full = true;
            break;
        }
        if (result == BRIDGE_FORWARD_WAIT) {
            topic->draining = true; /* until in_flight is 0; the record stays held */
            break;
        }
        topic->holding = false;
        moved++;
        if (topic->in_flight >= options->in_flight_max ||
            now_ns - topic->last_commit_ns >= options->commit_interval_ms * NS_PER_MS)
            topic->draining = true;
    }
    return moved;
}

/* One pass over the forwarding topics. Returns records moved, or -1 on a fatal error. */
static int forward_pass(struct bridge *bridge, uint64_t now_ns, bool *full) {
    int moved_total = 0;
    for (uint32_t index = 0; index < bridge->table.count && !*full; index++) {
        struct bridge_topic *topic = &bridge->table.topics[index];
        if (topic->phase != BRIDGE_TOPIC_FORWARDING) continue;
        topic_commit_if_done(bridge, topic, now_ns);
        int moved = topic_step(bridge, topic, now_ns, full);
        if (moved < 0) return -1;
        moved_total += moved;
    }
    return moved_total;
}

/* Nothing moved: sleep until records or reports are likely, without spinning. */
static void idle_wait(struct bridge *bridge) {
    struct bridge_topic *only = NULL;
    uint32_t forwarding = 0;
    for (uint32_t index = 0; index < bridge->table.count; index++) {
        struct bridge_topic *topic = &bridge->table.topics[index];
        if (topic->phase != BRIDGE_TOPIC_FORWARDING) continue;
        forwarding++;
        only = topic;
    }
    if (forwarding == 1 && bridge_forward_in_flight(bridge->forward) == 0 && !only->draining &&
        !only->holding) {
        /* One topic, nothing in flight: sleep on the log's futex (wakes on a publish). */
        int woke = intake_consumer_wait(only->consumer, LOOP_IDLE_WAIT_NS);
        if (wait_result_check(only, woke) != 0) bridge->fatal = true;
        only->last_heartbeat_ns = intake_now_ns();
        return;
    }
    (void)bridge_forward_serve(bridge->forward, LOOP_IDLE_SERVE_MS);
}

/* After a purge (see bridge_forward_uncertain): once every purged report is in, each topic with
 * records not committed reads again from its committed cursor, after finding what Kafka has. */
static void resync_step(struct bridge *bridge, uint64_t now_ns) {
    if (bridge_forward_in_flight(bridge->forward) != 0) return;
    for (uint32_t index = 0; index < bridge->table.count; index++) {
        struct bridge_topic *topic = &bridge->table.topics[index];
        if (topic->phase != BRIDGE_TOPIC_FORWARDING || (!topic->uncommitted && !topic->holding))
            continue;
        int result = bridge_topics_reopen(&bridge->table, topic);
        if (result != 0 && result != -ENOENT) bridge->fatal = true;
    }
    bridge->resyncing = false;
    bridge->resyncs++;
    bridge->settle_from_ns = now_ns;
}

/* Stop: deliver what is in flight (bounded), then commit what is fully delivered. */
static int shutdown_drain(struct bridge *bridge) {
    int status = 0;
    /* In slices, heartbeating between them: the slots keep holding the log meanwhile. */
    uint64_t deadline_ns = intake_now_ns() + bridge->options->shutdown_timeout_ms * NS_PER_MS;
    bool flushed = bridge->fatal;
    while (!flushed && intake_now_ns() < deadline_ns) {
        flushed = bridge_forward_flush(bridge->forward, LOOP_FLUSH_SLICE_MS) == 0;
        heartbeat_all(bridge, intake_now_ns());
    }
    if (!bridge->fatal && !flushed) {
        fprintf(stderr,
                "intake-kafka: %" PRIu64 " record(s) not delivered within "
                "--shutdown-timeout-ms; their cursor is not committed\n",
                bridge_forward_in_flight(bridge->forward));
        status = 1;
    }
    const char *why;
    if (bridge_forward_failed(bridge->forward, &why)) {
        fprintf(stderr,
                "intake-kafka: stopping: %s (nothing undelivered is committed; a "
                "restart resumes from what Kafka has)\n",
                why);
        return 1;
    }
    if (bridge->fatal) return 1;
    uint64_t now_ns = intake_now_ns();
    for (uint32_t index = 0; index < bridge->table.count; index++) {
        struct bridge_topic *topic = &bridge->table.topics[index];
        if (topic->phase == BRIDGE_TOPIC_FORWARDING) topic_commit_if_done(bridge, topic, now_ns);
    }
    return status;
}

static int bridge_open(struct bridge *bridge, const struct bridge_options *options) {
    char why[512] = "";
    if (bridge_topics_init(&bridge->table, options->topics_max, options->shm_dir,
                           options->consumer_name, options->kafka_topic_template) != 0) {
        fprintf(stderr, "intake-kafka: out of memory for %u topics\n", options->topics_max);
        return -1;
    }
    for (uint32_t index = 0; index < options->named_topic_count; index++) {
        int result = bridge_topics_add(&bridge->table, options->named_topics[index], NULL);
        if (result != 0 && result != -EEXIST) {
            fprintf(stderr, "intake-kafka: --topic %s: %s\n", options->named_topics[index],
                    result == -ENOSPC ? "more topics than --topics-max" : "invalid name");
            return -1;
        }
    }
    struct bridge_forward_options forward_options = {
        .settings = &options->kafka,
        .value_mode = options->value_mode,
        .dead_letter_topic = options->dead_letter_topic,
        .instance = options->instance,
        .partition = options->kafka_partition,
    };
    if (bridge_forward_open(&forward_options, &bridge->forward, why, sizeof(why)) != 0 ||
        bridge_resume_open(&options->kafka, &bridge->resume, why, sizeof(why)) != 0) {
        fprintf(stderr, "intake-kafka: %s\n", why);
        return -1;
    }
    return 0;
}

static void bridge_close(struct bridge *bridge) {
    bridge_resume_close(bridge->resume);
    bridge_forward_close(bridge->forward);
    if (bridge->table.topics != NULL) bridge_topics_destroy(&bridge->table);
}

int bridge_loop_run(const struct bridge_options *options) {
    struct bridge bridge = {.options = options, .start_ns = intake_now_ns()};
    bridge.settle_from_ns = bridge.start_ns;
    if (bridge_open(&bridge, options) != 0) {
        bridge_close(&bridge);
        return 1;
    }
    fprintf(stderr, "intake-kafka: forwarding %s from %s to %s as consumer %s, instance %s\n",
            options->all_topics ? "every topic" : "the named topics", options->shm_dir,
            options->kafka.brokers, options->consumer_name, options->instance);
    while (!bridge_stop_requested && !bridge.fatal) {
        uint64_t now_ns = intake_now_ns();
        if (bridge_counters_requested) {
            bridge_counters_requested = 0;
            counters_print(&bridge, "counters");
        }
        discover(&bridge, now_ns);
        resume_pending(&bridge, now_ns);
        (void)bridge_forward_serve(bridge.forward, 0);
        if (bridge_forward_failed(bridge.forward, NULL)) break;
        if (!bridge.resyncing && bridge_forward_uncertain(bridge.forward)) {
            fprintf(stderr,
                    "intake-kafka: a Kafka connection failed with %" PRIu64 " record(s) "
                    "in flight: dropping them and reading back what Kafka has\n",
                    bridge_forward_in_flight(bridge.forward));
            bridge_forward_purge(bridge.forward);
            bridge.resyncing = true;
        }
        if (bridge.resyncing) {
            heartbeat_all(&bridge, now_ns);
            (void)bridge_forward_serve(bridge.forward, LOOP_FULL_SERVE_MS);
            resync_step(&bridge, intake_now_ns());
            continue;
        }
        bool full = false;
        int moved = forward_pass(&bridge, now_ns, &full);
        if (moved < 0) {
            bridge.fatal = !bridge_forward_failed(bridge.forward, NULL);
            break;
        }
        heartbeat_all(&bridge, now_ns);
        if (full)
            (void)bridge_forward_serve(bridge.forward, LOOP_FULL_SERVE_MS);
        else if (moved == 0)
            idle_wait(&bridge);
    }
    int status = shutdown_drain(&bridge);
    counters_print(&bridge, "stopped");
    bridge_close(&bridge);
    return status;
}
