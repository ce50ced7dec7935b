/*
 * consumer_set_internal.h: what the consumer set's two files share (not part of consumer.h).
 *   consumer_set.c       open and close, members, the directory listing, poll
 *   consumer_set_wait.c  the directory's wake-up files (intake.notify), wait, writer_alive
 * Thread: the thread that owns the set, as for consumer.h.
 */
#ifndef INTAKE_CONSUMER_SET_INTERNAL_H
#define INTAKE_CONSUMER_SET_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "consumer_internal.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"

/* Records one poll takes from a topic before moving on, unless the options say otherwise. */
#define SET_PER_TOPIC_BATCH_DEFAULT 64u
#define SET_PER_TOPIC_BATCH_MAX     4096u
/* Topics waiting for a log, or closed after an error, are tried again this often (and at once
 * when intake.notify says a log was created). */
#define SET_RETRY_INTERVAL_NS 1000000000ull
/* A topic whose poll failed its checks (a damaged log, -EBADMSG) is left alone this long before
 * it is polled again, so a damaged log costs one failed poll a second, never a spinning set. */
#define SET_DAMAGED_RETRY_NS 1000000000ull
/* A topic whose writer lapped it for a whole poll (-EAGAIN) is polled again after this. */
#define SET_LAPPED_RETRY_NS 10000000ull
/* Without intake.notify, wait looks at the logs this often. */
#define SET_POLL_INTERVAL_NS 10000000ull
/* Descriptors a set leaves for the rest of the process when it raises the soft limit. */
#define SET_DESCRIPTORS_SPARE 256u
/* The directory listing buffer. */
#define SET_LISTING_BYTES 32768u

enum member_state {
    MEMBER_WAITING = 0, /* a listed topic without a log (yet) */
    MEMBER_OPEN = 1,    /* `consumer` is open */
    MEMBER_CLOSED = 2,  /* closed after an error; reopened at resume_offset when found */
};

struct set_member {
    struct intake_consumer consumer; /* valid while MEMBER_OPEN */
    enum member_state state;
    char topic[SHM_LOG_TOPIC_BYTES];
    char base_name[SHM_LOG_FILE_NAME_BYTES]; /* the log's file name without ".log" */
    uint64_t inode;                          /* of the log file it has open */
    uint64_t released_position;              /* read_position stored by its last poll */
    uint64_t resume_offset;                  /* MEMBER_CLOSED: the next offset it expects */
    /* MEMBER_OPEN: after a failed poll, neither polled nor counted as having records (so wait
     * sleeps) before this CLOCK_MONOTONIC time; 0 otherwise. */
    uint64_t retry_after_ns;
};

struct intake_consumer_set {
    char directory[4096];
    char name[INTAKE_CONSUMER_NAME_BYTES_MAX + 1];
    struct intake_consumer_options consumer_options;
    bool all_topics;
    uint32_t topics_max;
    uint32_t per_topic_batch;
    struct set_member *members; /* [topics_max]; the first member_count are in use */
    uint32_t member_count;
    int32_t *index;          /* [index_capacity]: member by base name hash, -1 empty */
    uint32_t index_capacity; /* a power of two, at least twice topics_max */
    uint32_t next_member;    /* where the next poll starts (round robin) */
    struct intake_consumer_record *scratch; /* [per_topic_batch] */
    int directory_fd;
    /* The directory's wake-up files; notify == NULL while the directory has none. */
    int notify_fd, waiters_fd;
    const struct shm_log_notify *notify;
    struct shm_log_notify_waiters *waiters;
    int notify_guard, waiters_guard;
    atomic_bool notify_broken, waiters_broken;
    uint64_t notify_inode;
    uint64_t logs_changed_seen;
    uint64_t retry_after_ns;     /* next retry of waiting and closed topics, and of intake.notify */
    uint64_t heartbeat_after_ns; /* next heartbeat of every open topic */
    uint64_t heartbeat_interval_ns;
    struct intake_consumer_set_stats stats;
    uint8_t listing[SET_LISTING_BYTES];
    char error[INTAKE_CONSUMER_ERROR_BYTES];
};

/* Maps the directory's wake-up files when both are there and paired (set->notify stays NULL
 * otherwise: the set polls). */
void set_notify_try_open(struct intake_consumer_set *set);
/* Unmaps them (truncated, replaced, or the set closes). */
void set_notify_unmap(struct intake_consumer_set *set);
/* Once per poll or wait step: rescans when logs may have appeared, heartbeats every topic. */
void set_maintain(struct intake_consumer_set *set, uint64_t now_ns);
/* Whether the member is held back at `now_ns` after a failed poll (see retry_after_ns). */
static inline bool set_member_resting(const struct set_member *member, uint64_t now_ns) {
    return member->retry_after_ns > now_ns;
}

#endif
