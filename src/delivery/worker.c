/*
 * worker.c: the delivery thread (see worker.h for the contract).
 */
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "dedupe_table.h"
#include "log_opener.h"
#include "record_decode.h"
#include "shm_log.h"

/* Records taken from one topic queue before the log is published and the batch returned:
 * large enough to amortise the publish, small enough to keep acks prompt. */
#define WORKER_BATCH_MAX 64
/* How far ahead in its topic queue the worker prefetches records and their bytes: a record
 * and its payload were last written on the reactor's core, so each is a cache miss here; issued
 * early, the misses of several records overlap instead of adding up. */
#define WORKER_PREFETCH_RECORDS 4
#define WORKER_PREFETCH_PAYLOAD 2
/* Payload bytes of one record prefetched (a 256-byte record and its entry header). */
#define WORKER_PREFETCH_BYTES 320u
/* While a log is full (block mode), how often its consumers are re-checked. */
#define WORKER_FULL_RECHECK_NS 1000000ull
/* A topic whose log could not be made is tried again, when a record for it arrives, at most
 * this often (the space may have been freed; trying is a file creation and an allocation). */
#define WORKER_LOG_RETRY_NS 1000000000ull

struct worker_topic {
    struct topic_log_slot log_slot; /* filled by the log opener (log_opener.h) */
    struct record *stalled;         /* could not be appended: the log was full */
    uint64_t failed_since_ns;       /* when the worker first saw the log FAILED; 0 otherwise */
};

struct worker_counters {
    uint64_t records_committed;
    uint64_t bytes_copied;      /* payload bytes copied into logs: the one user-space copy */
    uint64_t records_rejected;  /* nanopb disagreed with the scan (sanitizer builds only) */
    uint64_t records_failed;    /* log unavailable or too small, or abandoned at shutdown */
    uint64_t records_duplicate; /* answered OK without appending (dedupe_table.h) */
    uint64_t log_retries;       /* a failed topic log asked for again */
    uint64_t publishes;
    uint64_t log_full_waits;
    uint64_t sleeps;
};

struct worker {
    struct worker_links links;
    uint32_t index;
    pthread_t thread;
    bool thread_started;
    struct worker_topic *topics; /* local index = topic id / worker_count */
    uint32_t topic_slots;
    bool *reactors_to_wake;
    _Atomic bool report_requested;
    struct worker_counters counters;
};

/* ---------------------------------------------------------------- per topic --- */

static struct worker_topic *worker_topic_of(struct worker *worker, uint32_t topic_id) {
    INTAKE_ASSERT(topic_id % worker->links.worker_count == worker->index);
    uint32_t local = topic_id / worker->links.worker_count;
    INTAKE_ASSERT(local < worker->topic_slots);
    return &worker->topics[local];
}

/* The topic's log state, asking the opener for the log the first time the worker sees the topic
 * (also before any record, so consumers of configured topics can attach early). */
static enum topic_log_state worker_topic_log(struct worker *worker, uint32_t topic_id,
                                             struct worker_topic *topic) {
    /* Acquire: pairs with the opener's release store; slot->log is complete once READY. */
    enum topic_log_state state = atomic_load_explicit(&topic->log_slot.state, memory_order_acquire);
    if (state != TOPIC_LOG_NONE) return state;
    const struct topic_entry *entry = topic_table_entry(worker->links.topics, topic_id);
    if (entry == NULL) return TOPIC_LOG_NONE; /* id reserved, name not published yet: next pass */
    counters_topic_name(&worker->links.topic_rows[topic_id], entry->name, entry->name_length);
    log_opener_request(worker->links.log_opener, topic_id, worker->index, &topic->log_slot);
    return TOPIC_LOG_REQUESTED;
}

/* Hands a batch back: each run of records from one reactor goes onto its return ring with one
 * publish (the tail's release store), and the reactor is rung once per pass. */
static void worker_return_batch(struct worker *worker, struct record *const *batch,
                                uint32_t count) {
    uint32_t start = 0;
    while (start < count) {
        /* Read before the push: once pushed, the records belong to their reactor, which may
         * reuse them at once. */
        uint16_t reactor = batch[start]->reactor_index;
        INTAKE_ASSERT(reactor < worker->links.reactor_count);
        uint32_t end = start + 1;
        while (end < count && batch[end]->reactor_index == reactor) end++;
        spsc_ring_push_batch(&worker->links.return_rings[reactor], batch + start, end - start);
        worker->reactors_to_wake[reactor] = true;
        start = end;
    }
}

/* A topic whose log could not be made: once WORKER_LOG_RETRY_NS have passed since the worker
 * saw the failure and a record is waiting, ask the opener again. Returns true when it asked
 * (the records wait for the outcome); until then records are answered with the reason. */
static bool worker_topic_retry_log(struct worker *worker, uint32_t topic_id,
                                   struct worker_topic *topic) {
    uint64_t now = intake_now_ns();
    if (topic->failed_since_ns == 0) {
        topic->failed_since_ns = now;
        return false;
    }
    if (now - topic->failed_since_ns < WORKER_LOG_RETRY_NS) return false;
    if (topic_queue_length(&worker->links.topic_queues[topic_id]) == 0) return false;
    topic->failed_since_ns = 0;
    worker->counters.log_retries++;
    log_opener_request(worker->links.log_opener, topic_id, worker->index, &topic->log_slot);
    return true;
}

/* A log recreated after damage is made at today's --log-size: its record limit may differ from
 * the one reactors check at admission (published by the opener). Publish the new one; a store
 * only when it changed, since reactors read it for every record. */
static void worker_note_log_limit(struct worker *worker, uint32_t topic_id,
                                  struct worker_topic *topic) {
    uint64_t limit = shm_log_record_bytes_max(topic->log_slot.log);
    uint32_t bytes = limit < UINT32_MAX ? (uint32_t)limit : UINT32_MAX;
    const struct topic_entry *entry = topic_table_entry(worker->links.topics, topic_id);
    INTAKE_ASSERT(entry != NULL);
    if (bytes == 0 || topic_table_log_limit(entry) == bytes) return;
    topic_table_publish_log_limit(worker->links.topics, topic_id, bytes);
}

/* A record the log cannot take: answered with a reason composed into the record itself, so the
 * reason stays put until its reactor has read it, whatever happens to the topic meanwhile. */
static void worker_refuse(struct worker *worker, struct record *record, enum record_status status,
                          const char *reason) {
    record->status = status;
    snprintf(record->status_text, sizeof(record->status_text), "%s", reason);
    record->status_detail = record->status_text;
    worker->counters.records_failed++;
    counter_add(&worker->links.topic_rows[record->topic_id].records_failed, 1);
}

/* A record at or below its producer's highest committed sequence on this topic is answered OK
 * and not appended (dedupe_table.h); *entry is for dedupe_table_appended otherwise. */
static bool worker_is_duplicate(struct worker *worker, struct worker_topic *topic,
                                struct record *record, uint32_t *entry) {
    struct dedupe_table *table = topic->log_slot.dedupe;
    if (table == NULL || record->producer_id_length == 0) return false;
    /* The framer made every record of a connection carry the connection's producer_id, which
     * its origin holds with the keyed hash: nothing is read or hashed here. */
    INTAKE_ASSERT(record->origin->producer_id_length == record->producer_id_length);
    if (dedupe_table_check(table, record->origin, record->sequence, record->sequence_flags,
                           entry) == DEDUPE_NEW)
        return false;
    record->status = RECORD_STATUS_OK;
    record->log_offset = DEDUPE_NOT_APPENDED; /* not counted as committed */
    worker->counters.records_duplicate++;
    counter_add(&worker->links.topic_rows[record->topic_id].records_duplicate, 1);
    return true;
}

/* After each publish: the table learns the batch's outcome; its counts go to the topic row. */
static void worker_dedupe_batch_end(struct worker *worker, uint32_t topic_id,
                                    struct worker_topic *topic, bool published) {
    struct dedupe_table *table = topic->log_slot.dedupe;
    if (table == NULL) return;
    dedupe_table_batch_end(table, published, shm_log_next_offset(topic->log_slot.log));
    const struct dedupe_table_counts *counts = dedupe_table_counts(table);
    struct intake_counters_topic_row *row = &worker->links.topic_rows[topic_id];
    counter_set(&row->dedupe_evictions, counts->evictions);
    counter_set(&row->dedupe_unremembered, counts->unremembered);
    counter_set(&row->dedupe_rebuilds, counts->rebuilds);
    counter_set(&row->dedupe_unprotected, counts->unprotected);
    counter_set(&row->dedupe_repairs, counts->repairs);
}

/*
 * Parse once: the reactor's record_scan checked every field and filled in what delivery needs
 * (topic, sequence, timestamp, producer id), so release builds do not parse the record again.
 * record_decode (nanopb) stays the scan's oracle: the fuzz pair property (tests/fuzz) proves
 * that every record the scan admits it accepts with the same fields, and sanitizer builds (the
 * ASan and TSan test suites) run it here on every delivered record as a second check on real
 * traffic. Returns false when it refused the record (answered REJECTED, never expected).
 */
static bool worker_check_decode(struct worker *worker, struct record *record) {
#if defined(INTAKE_SANITIZED)
    struct record_view view = record_view_of(record);
    struct record_decoded decoded;
    const char *detail = NULL;
    if (record_decode(&view, &decoded, &detail) != RECORD_DECODE_OK) {
        record->status = RECORD_STATUS_REJECTED;
        record->status_detail = detail ? detail : "record failed to decode";
        worker->counters.records_rejected++;
        counter_add(&worker->links.topic_rows[record->topic_id].records_rejected, 1);
        return false;
    }
    /* Both parsers read the same bytes with the same last-one-wins rule. */
    INTAKE_ASSERT(decoded.sequence == record->sequence);
    INTAKE_ASSERT(decoded.timestamp_ns == record->timestamp_ns);
    INTAKE_ASSERT(decoded.topic.offset == record->topic_offset);
    INTAKE_ASSERT(decoded.topic.length == record->topic_length);
#else
    (void)worker;
    (void)record;
#endif
    return true;
}

/* Appends one record. Returns false when the log is full (the record is kept). */
static bool worker_deliver(struct worker *worker, struct worker_topic *topic, struct record *record,
                           bool *appended) {
    struct shm_log *log = topic->log_slot.log;
    if (log == NULL) {
        /* The slot is FAILED and stays so while we serve it: only this worker asks again. */
        worker_refuse(worker, record, (enum record_status)topic->log_slot.failure_status,
                      topic->log_slot.failure);
        return true;
    }
    if (!worker_check_decode(worker, record)) return true;
    INTAKE_ASSERT(record->origin != NULL);
    uint32_t dedupe_entry = DEDUPE_ENTRY_NONE;
    if (worker_is_duplicate(worker, topic, record, &dedupe_entry)) return true;
    uint64_t offset = 0;
    enum shm_log_append_result result = shm_log_append(
        log, record->slices, record->slice_count, record->frame_bytes, record->sequence,
        record->receive_time_ns, record->origin->principal, &offset);
    if (result == SHM_LOG_FULL) {
        if (!atomic_load(worker->links.abandon_waiting)) return false;
        record->status = RECORD_STATUS_SHUTTING_DOWN;
        record->status_detail = "shutdown deadline passed while the topic's log was full";
        worker->counters.records_failed++;
        counter_add(&worker->links.topic_rows[record->topic_id].records_failed, 1);
        return true;
    }
    if (result == SHM_LOG_TOO_LARGE) {
        /* The log was created with a smaller --log-size and keeps its record limit. Reactors
         * refuse these at admission once the log is open; one admitted before lands here (its
         * connection waits for it, so nothing after it is committed). */
        uint64_t limit = shm_log_record_bytes_max(log);
        char reason[RECORD_STATUS_TEXT_BYTES];
        record_over_log_limit_detail(reason, sizeof(reason), record->frame_bytes,
                                     limit < UINT32_MAX ? (uint32_t)limit : UINT32_MAX);
        worker_refuse(worker, record, RECORD_STATUS_REJECTED, reason);
        return true;
    }
    if (result == SHM_LOG_BROKEN) {
        record->status = RECORD_STATUS_INTERNAL;
        record->status_detail = "the topic's log file was damaged under the daemon; it is being "
                                "recreated";
        worker->counters.records_failed++;
        counter_add(&worker->links.topic_rows[record->topic_id].records_failed, 1);
        return true;
    }
    record->status = RECORD_STATUS_OK;
    record->log_offset = offset;
    if (topic->log_slot.dedupe != NULL && record->producer_id_length != 0)
        dedupe_table_appended(topic->log_slot.dedupe, dedupe_entry, record->sequence, offset);
    worker->counters.records_committed++;
    worker->counters.bytes_copied += record->frame_bytes;
    *appended = true;
    return true;
}

/* Asks for the lines of records further down the queue: the descriptor of one several places
 * ahead, and the first bytes of one that is nearer (its descriptor asked for earlier). */
static void worker_prefetch(struct topic_queue *queue) {
    struct record *ahead = topic_queue_peek(queue, WORKER_PREFETCH_RECORDS);
    if (ahead != NULL) {
        __builtin_prefetch(ahead);
        __builtin_prefetch((const char *)ahead + INTAKE_CACHE_LINE_BYTES);
    }
    struct record *near = topic_queue_peek(queue, WORKER_PREFETCH_PAYLOAD);
    if (near == NULL || near->slice_count == 0) return;
    const char *bytes = (const char *)near->slices[0].bytes;
    uint32_t length = near->slices[0].length;
    if (length > WORKER_PREFETCH_BYTES) length = WORKER_PREFETCH_BYTES;
    for (uint32_t offset = 0; offset < length; offset += INTAKE_CACHE_LINE_BYTES)
        __builtin_prefetch(bytes + offset);
}

/* Serves one topic: a batch from its queue, one publish, then the batch goes back. Returns
 * whether anything moved; sets *stalled when the log is full with records waiting. */
static bool worker_serve_topic(struct worker *worker, uint32_t topic_id, bool *stalled) {
    struct worker_topic *topic = worker_topic_of(worker, topic_id);
    enum topic_log_state log_state = worker_topic_log(worker, topic_id, topic);
    /* Until the opener is done, the topic's records wait in its queue (it wakes us). */
    if (log_state == TOPIC_LOG_NONE || log_state == TOPIC_LOG_REQUESTED) return false;
    if (log_state == TOPIC_LOG_FAILED && worker_topic_retry_log(worker, topic_id, topic))
        return false;
    if (topic->stalled != NULL && !shm_log_refresh_space(topic->log_slot.log) &&
        !atomic_load(worker->links.abandon_waiting)) {
        *stalled = true;
        return false;
    }
    struct record *batch[WORKER_BATCH_MAX];
    uint32_t count = 0;
    bool appended = false;
    INTAKE_ASSERT(topic_id < worker->links.topics_max);
    struct topic_queue *queue = &worker->links.topic_queues[topic_id];
    while (count < WORKER_BATCH_MAX) {
        struct record *record = topic->stalled ? topic->stalled : topic_queue_pop(queue);
        topic->stalled = NULL;
        if (record == NULL) break;
        worker_prefetch(queue);
        INTAKE_ASSERT(record->topic_id == topic_id);
        if (!worker_deliver(worker, topic, record, &appended)) {
            topic->stalled = record;
            worker->counters.log_full_waits++;
            *stalled = true;
            break;
        }
        batch[count++] = record;
    }
    if (appended) {
        /* Publish before returning: the reactor acks what comes back, and acked means readable.
         * A log that broke under the batch made none of it readable: answer it as failed. */
        bool published = shm_log_publish(topic->log_slot.log);
        worker_dedupe_batch_end(worker, topic_id, topic, published);
        if (!published) {
            for (uint32_t index = 0; index < count; index++) {
                if (batch[index]->status != RECORD_STATUS_OK) continue;
                if (batch[index]->log_offset == DEDUPE_NOT_APPENDED) continue; /* committed */
                batch[index]->status = RECORD_STATUS_INTERNAL;
                batch[index]->status_detail = "the topic's log file was damaged under the "
                                              "daemon; it is being recreated";
                worker->counters.records_committed--;
                worker->counters.records_failed++;
                counter_add(&worker->links.topic_rows[topic_id].records_failed, 1);
            }
        }
        /* The region's per-topic figures count what became readable (published), only. */
        for (uint32_t index = 0; index < count; index++) {
            if (batch[index]->status != RECORD_STATUS_OK) continue;
            if (batch[index]->log_offset == DEDUPE_NOT_APPENDED) continue;
            counter_add(&worker->links.topic_rows[topic_id].records_committed, 1);
            counter_add(&worker->links.topic_rows[topic_id].bytes_committed,
                        batch[index]->frame_bytes);
        }
        worker->counters.publishes++;
        worker_note_log_limit(worker, topic_id, topic);
    }
    worker_return_batch(worker, batch, count);
    return count > 0;
}

/* ---------------------------------------------------------------- the loop --- */

static void worker_wake_reactors(struct worker *worker) {
    for (uint32_t reactor = 0; reactor < worker->links.reactor_count; reactor++) {
        if (!worker->reactors_to_wake[reactor]) continue;
        worker->reactors_to_wake[reactor] = false;
        doorbell_ring(&worker->links.reactor_doorbells[reactor]);
    }
}

static bool worker_queues_empty(struct worker *worker) {
    const struct worker_links *links = &worker->links;
    uint32_t topic_count = topic_table_count(links->topics);
    for (uint32_t id = worker->index; id < topic_count; id += links->worker_count) {
        struct worker_topic *topic = worker_topic_of(worker, id);
        enum topic_log_state state =
            atomic_load_explicit(&topic->log_slot.state, memory_order_acquire);
        if (state == TOPIC_LOG_NONE) return false; /* a log to ask for */
        /* A topic waiting for its log has nothing for us to do: the opener wakes us. */
        if (state == TOPIC_LOG_REQUESTED) continue;
        if (topic_queue_length(&links->topic_queues[id]) != 0) return false;
    }
    return true;
}

static void worker_sleep(struct worker *worker, bool stalled) {
    worker->counters.sleeps++;
    if (stalled) {
        /* A consumer must read before we can go on; it does not know us, so look again soon. */
        uint32_t token = doorbell_token(worker->links.doorbell);
        doorbell_sleep(worker->links.doorbell, token, WORKER_FULL_RECHECK_NS);
        return;
    }
    /* The doorbell handshake (doorbell.h): arm, look at the queues again, then sleep. */
    uint32_t token = doorbell_arm(worker->links.doorbell);
    if (worker_queues_empty(worker) && !atomic_load(worker->links.stopping) &&
        !atomic_load(&worker->report_requested))
        /* Not longer than a heartbeat interval: readiness probes read the heartbeat. */
        doorbell_sleep(worker->links.doorbell, token, INTAKE_COUNTERS_HEARTBEAT_INTERVAL_NS);
    doorbell_disarm(worker->links.doorbell);
}

/* Copies the worker's counters into its row of the counters region, with a heartbeat. Once per
 * loop iteration: relaxed stores of values only this thread writes. */
static void worker_publish_counters(struct worker *worker) {
    const struct worker_counters *c = &worker->counters;
    struct intake_counters_worker_row *row = worker->links.counters_row;
    INTAKE_ASSERT(row != NULL);
    counter_set(&row->heartbeat_ns, intake_now_ns());
    counter_set(&row->records_committed, c->records_committed);
    counter_set(&row->bytes_copied, c->bytes_copied);
    counter_set(&row->records_rejected, c->records_rejected);
    counter_set(&row->records_failed, c->records_failed);
    counter_set(&row->publishes, c->publishes);
    counter_set(&row->log_full_waits, c->log_full_waits);
    counter_set(&row->log_retries, c->log_retries);
    counter_set(&row->sleeps, c->sleeps);
    counter_set(&row->records_duplicate, c->records_duplicate);
}

static void *worker_thread_main(void *argument) {
    struct worker *worker = argument;
    const struct worker_links *links = &worker->links;
    for (;;) {
        worker_publish_counters(worker);
        if (atomic_exchange(&worker->report_requested, false))
            worker_print_counters(worker, stderr, "on request");
        bool progress = false;
        bool stalled = false;
        uint32_t topic_count = topic_table_count(links->topics);
        for (uint32_t id = worker->index; id < topic_count; id += links->worker_count)
            progress |= worker_serve_topic(worker, id, &stalled);
        worker_wake_reactors(worker);
        if (progress) continue;
        /* Reactors have drained (every record they admitted came back), so nothing is left. */
        if (atomic_load(links->stopping) && !stalled) break;
        worker_publish_counters(worker); /* before sleeping: readers see the latest */
        worker_sleep(worker, stalled);
    }
    worker_publish_counters(worker); /* the final values, for readers after exit */
    return NULL;
}

/* ------------------------------------------------------------ setup, teardown --- */

int worker_create(const struct worker_links *links, struct worker **out) {
    INTAKE_ASSERT(links->index < links->worker_count);
    INTAKE_ASSERT(links->doorbell != NULL && links->doorbell->kind == DOORBELL_FUTEX);
    struct worker *worker = calloc(1, sizeof(*worker));
    if (worker == NULL) return -ENOMEM;
    worker->links = *links;
    worker->index = links->index;
    worker->topic_slots = links->topics_max / links->worker_count + 1;
    worker->topics = calloc(worker->topic_slots, sizeof(struct worker_topic));
    worker->reactors_to_wake = calloc(links->reactor_count, sizeof(bool));
    if (worker->topics == NULL || worker->reactors_to_wake == NULL) {
        worker_destroy(worker);
        return -ENOMEM;
    }
    *out = worker;
    return 0;
}

int worker_start(struct worker *worker, char *why, size_t why_capacity) {
    int result = pthread_create(&worker->thread, NULL, worker_thread_main, worker);
    if (result != 0) {
        snprintf(why, why_capacity, "worker %u: cannot start thread: %s", worker->index,
                 strerror(result));
        return -result;
    }
    worker->thread_started = true;
    return 0;
}

void worker_request_report(struct worker *worker) {
    atomic_store(&worker->report_requested, true);
    doorbell_ring_always(worker->links.doorbell);
}

void worker_join(struct worker *worker) {
    if (!worker->thread_started) return;
    doorbell_ring_always(worker->links.doorbell);
    pthread_join(worker->thread, NULL);
    worker->thread_started = false;
}

void worker_destroy(struct worker *worker) {
    if (worker == NULL) return;
    INTAKE_ASSERT(!worker->thread_started);
    for (uint32_t local = 0; local < worker->topic_slots && worker->topics; local++) {
        INTAKE_ASSERT(worker->topics[local].stalled == NULL);
        if (worker->topics[local].log_slot.log != NULL)
            shm_log_close(worker->topics[local].log_slot.log);
        dedupe_table_close(worker->topics[local].log_slot.dedupe);
    }
    free(worker->topics);
    free(worker->reactors_to_wake);
    free(worker);
}

void worker_print_counters(struct worker *worker, FILE *out, const char *when) {
    const struct worker_counters *c = &worker->counters;
    fprintf(out,
            "intaked: worker %u %s: records committed=%" PRIu64 " rejected=%" PRIu64
            " failed=%" PRIu64 " duplicate=%" PRIu64 " bytes_copied=%" PRIu64 " publishes=%" PRIu64
            " log_full_waits=%" PRIu64 " log_retries=%" PRIu64 " sleeps=%" PRIu64 "\n",
            worker->index, when, c->records_committed, c->records_rejected, c->records_failed,
            c->records_duplicate, c->bytes_copied, c->publishes, c->log_full_waits, c->log_retries,
            c->sleeps);
    fflush(out);
}

uint64_t worker_bytes_copied(const struct worker *worker) {
    return worker->counters.bytes_copied;
}
