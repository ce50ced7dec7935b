/*
 * bridge_topics.h: the set of intake topics the bridge forwards, each with its consumer handle,
 * its Kafka target and its forwarding state.
 *
 * Two ways to fill it: named topics (--topic, repeatable), which are opened as soon as their
 * logs exist; or every topic (--all-topics): the shm directory is scanned for topic logs,
 * again every scan interval, so topics created later are picked up. The table is bounded
 * (--topics-max); topics beyond it are counted and logged once each scan, never opened.
 *
 * Thread: main thread only. Entries never move (stable pointers: librdkafka's delivery reports
 * carry them as opaque values).
 */
#ifndef BRIDGE_TOPICS_H
#define BRIDGE_TOPICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <intake/consumer.h>

/* An intake topic name with its NUL (intake topics are at most 255 bytes). */
#define BRIDGE_TOPIC_NAME_BYTES 256
/* A Kafka topic name with its NUL (Kafka allows 249 bytes of [A-Za-z0-9._-]). */
#define BRIDGE_KAFKA_TOPIC_BYTES 250

enum bridge_topic_phase {
    BRIDGE_TOPIC_WAITING = 0,    /* named with --topic, its log does not exist yet */
    BRIDGE_TOPIC_RESUMING = 1,   /* opened; what Kafka already has is not known yet */
    BRIDGE_TOPIC_FORWARDING = 2, /* records flow */
    BRIDGE_TOPIC_UNMAPPABLE = 3, /* its name maps to no valid Kafka topic: never forwarded */
};

struct bridge_topic {
    enum bridge_topic_phase phase;
    char name[BRIDGE_TOPIC_NAME_BYTES];
    char kafka_topic[BRIDGE_KAFKA_TOPIC_BYTES];
    struct intake_consumer *consumer; /* NULL while WAITING */
    /* A second, ephemeral consumer slot ("<name>~hold") that stays at the committed cursor: the
     * main consumer's poll releases records to intaked's writer as soon as they are polled,
     * but a record in flight is not in Kafka yet. The anchor keeps every uncommitted record in
     * the log (block retention holds from the lowest live slot), so a purge or a reopen can
     * read them again. It is advanced after each commit (bridge_topics_anchor_advance). */
    struct intake_consumer *anchor;
    uint64_t log_id; /* the log's creation time (ns): see bridge_resume.h */

    /* Read-back (RESUMING): stage 0 asks for the target partition, stage 1 for the dead-letter
     * topic; the first answer is kept here meanwhile. */
    uint32_t resume_stage;
    bool resume_main_found;
    uint64_t resume_main_offset;
    char resume_main_why[256];

    /* Records up to skip_through are in Kafka already (found by bridge_resume). */
    bool skip_active;
    uint64_t skip_through;

    /* Forwarding (bridge_forward.c and the main loop). */
    uint64_t in_flight; /* handed to librdkafka, no delivery report yet */
    bool uncommitted;   /* records polled since the last commit */
    bool draining;      /* polling paused until in_flight reaches 0, then commit */
    bool holding;       /* `held` was polled but librdkafka's queue was full */
    struct intake_consumer_record held;
    uint64_t last_commit_ns;
    bool anchor_behind;         /* committed since the anchor last caught up */
    uint64_t last_heartbeat_ns; /* main slot */
    uint64_t anchor_heartbeat_ns;

    /* Counters. */
    uint64_t forwarded;     /* delivery reports without error for the Kafka topic */
    uint64_t dead_lettered; /* delivered to the dead-letter topic instead */
    uint64_t skipped;       /* already in Kafka at startup */
    uint64_t missed;        /* lost in the log before the bridge read them (see the docs) */
    uint64_t commits;
};

struct bridge_topic_table {
    struct bridge_topic *topics; /* `capacity` entries, allocated once */
    uint32_t count;
    uint32_t capacity;
    const char *shm_dir;
    const char *consumer_name;
    const char *kafka_topic_template; /* "{topic}" is replaced by the intake topic */
    uint64_t refused_full;            /* topics seen while the table was full (last scan) */
    /* Looks at the logs' headers (the consumer library's intake_log_inspect): opened at the
     * first look; `info` holds the last one. */
    struct intake_log_inspector *inspector;
    struct intake_log_info info;
};

int bridge_topics_init(struct bridge_topic_table *table, uint32_t capacity, const char *shm_dir,
                       const char *consumer_name, const char *kafka_topic_template)
    __attribute__((warn_unused_result));
/* Closes every consumer (keeping committed cursors) and frees the table. */
void bridge_topics_destroy(struct bridge_topic_table *table);

/* Adds topic `name` (WAITING, or UNMAPPABLE when its Kafka name is invalid). -ENOSPC when
 * the table is full, -EEXIST when it is there already. */
int bridge_topics_add(struct bridge_topic_table *table, const char *name, struct bridge_topic **out)
    __attribute__((warn_unused_result));

/* Tries to open every WAITING topic's log. Opened topics become RESUMING. Returns how many
 * opened; a log that does not exist yet stays WAITING, silently; other failures are printed. */
uint32_t bridge_topics_open_waiting(struct bridge_topic_table *table);

/* Closes a topic's consumer (its committed cursor stays) and opens it again, so it reads from
 * that cursor and goes through RESUMING once more. Only with nothing in flight. Returns as
 * bridge_topics_open_waiting would for this topic: 0, -ENOENT (WAITING again) or an error. */
int bridge_topics_reopen(struct bridge_topic_table *table, struct bridge_topic *topic)
    __attribute__((warn_unused_result));

/* Moves the topic's anchor up to the main consumer's committed cursor (call right after a
 * commit). Reads at most `records_max` records per call; returns 0 when the anchor has caught
 * up, 1 when it has more to read (call again), negative on a log error. */
int bridge_topics_anchor_advance(struct bridge_topic *topic, uint32_t records_max)
    __attribute__((warn_unused_result));

/* Suffix of the anchor slot's name; --consumer-name leaves room for it. */
#define BRIDGE_ANCHOR_SUFFIX "~hold"

/* --all-topics: adds every topic with a log in the shm directory that is not in the table.
 * Returns how many were added, or negative errno when the directory cannot be read. */
int bridge_topics_scan(struct bridge_topic_table *table) __attribute__((warn_unused_result));

/* Writes the Kafka topic for intake topic `name` under `template` into `out`
 * (BRIDGE_KAFKA_TOPIC_BYTES). Returns 0, or -EINVAL when the result is not a legal Kafka topic
 * name (empty, ".", "..", too long, or a byte outside [A-Za-z0-9._-]). */
int bridge_kafka_topic_for(const char *template, const char *name, char *out)
    __attribute__((warn_unused_result));

#endif
