/*
 * consumer.c: reading a topic's log (include/intake/consumer.h): poll, one record or a batch,
 * commit, and the futex wait. Opening and closing are consumer_open.c.
 *
 * Thread: one thread per handle. Everything read from the files is input: checked, never
 * asserted on; every failure returns an error with its reason line. Each barrier below says
 * which step of the protocol (shm_log_format.h) it implements.
 */
#include "intake/consumer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "crc32c.h"
#include "fault_guard.h"
#include "intake/shm_log_format.h"
#include "consumer_internal.h"

/* ---------------------------------------------------------------- reading --- */

void consumer_heartbeat(struct intake_consumer *consumer, uint64_t now_ns) {
    struct shm_log_consumer_slot *slot = consumer->slot;
    atomic_store_explicit(&slot->heartbeat_ns, now_ns, memory_order_relaxed);
    /* We hold the slot's lock, so it is ours: a state someone else wrote is put back (the
     * writer counts us again from its next scan). */
    if (atomic_load_explicit(&slot->state, memory_order_relaxed) != SHM_LOG_SLOT_ACTIVE)
        atomic_store_explicit(&slot->state, SHM_LOG_SLOT_ACTIVE, memory_order_release);
}

bool intake_consumer_record_valid(const struct intake_consumer *consumer,
                                  const struct intake_consumer_record *record) {
    /* A record of another handle (or none) is not one this handle can vouch for. */
    if (consumer == NULL || record == NULL || record->bytes < consumer->ring ||
        record->bytes >= consumer->ring + consumer->capacity)
        return false;
    if (atomic_load_explicit(&consumer->log_broken, memory_order_acquire)) return false;
    return entry_still_intact(consumer->header, record->opaque_position);
}

enum entry_outcome {
    ENTRY_RECORD,  /* *record filled, position advanced */
    ENTRY_SKIPPED, /* padding or a record below the expected offset; position advanced */
    ENTRY_LAPPED,  /* the writer overwrote it; read again from retained_position */
    ENTRY_BAD,     /* intact but failed its checks */
};

static enum entry_outcome entry_read(struct intake_consumer *consumer,
                                     struct intake_consumer_record *record) {
    uint64_t position = consumer->position;
    uint64_t room = consumer->capacity - (position & (consumer->capacity - 1));
    if (room < SHM_LOG_ENTRY_HEADER_BYTES) {
        /* Implicit padding at the ring end. A writer publishes whole entries, so the commit
         * position is never inside it: one there is damage, not something to walk past (it
         * would put us beyond the commit, back to retained, and round again). */
        if (room > consumer->commit_cached - position) {
            consumer_fail(consumer,
                          "%s: commit position %llu is inside the padding at the ring's end: "
                          "log damaged",
                          consumer->path, (unsigned long long)consumer->commit_cached);
            return ENTRY_BAD;
        }
        consumer->position += room;
        return ENTRY_SKIPPED;
    }
    const uint8_t *at = consumer->ring + (position & (consumer->capacity - 1));
    struct shm_log_entry_header entry;
    memcpy(&entry, at, sizeof(entry)); /* may be torn in overwrite mode: checked below */
    const uint8_t *bytes = at + SHM_LOG_ENTRY_HEADER_BYTES;
    bool padding = entry.length == SHM_LOG_ENTRY_LENGTH_PADDING;
    uint64_t span = padding ? room : shm_log_entry_span(entry.length);
    bool fits = (padding || (entry.length <= consumer->record_bytes_max && span <= room)) &&
                span <= consumer->commit_cached - position;
    uint32_t checksum = fits ? shm_log_entry_checksum(&entry, bytes, intake_crc32c) : 0;
    if (!entry_still_intact(consumer->header, position)) return ENTRY_LAPPED;
    if (!fits || checksum != entry.checksum) {
        consumer_fail(consumer,
                      "%s: entry at position %llu failed its checks (length %u): log "
                      "damaged",
                      consumer->path, (unsigned long long)position, entry.length);
        return ENTRY_BAD;
    }
    consumer->position += span;
    uint64_t expected = consumer->expected_offset;
    if (padding || (expected != SHM_LOG_OFFSET_NONE && entry.offset < expected))
        return ENTRY_SKIPPED;
    record->bytes = bytes;
    record->length = entry.length;
    record->offset = entry.offset;
    record->sequence = entry.sequence;
    record->receive_time_ns = entry.receive_time_ns;
    record->principal = entry.principal;
    record->missed = expected == SHM_LOG_OFFSET_NONE ? 0 : entry.offset - expected;
    record->opaque_position = position;
    consumer->expected_offset = entry.offset + 1;
    consumer->missed_total += record->missed;
    return ENTRY_RECORD;
}

static int consumer_poll_entries(struct intake_consumer *consumer, uint64_t now_ns,
                                 struct intake_consumer_record *records, uint32_t capacity) {
    INTAKE_ASSERT(records != NULL);
    INTAKE_ASSERT(capacity > 0);
    const struct shm_log_header *header = consumer->header;
    if (consumer_broken(consumer)) return -EIO;
    consumer_heartbeat(consumer, now_ns);
    /* The release store of read_position releases the records poll returned before: the
     * caller's reads of their bytes happen before the writer (acquire-loading it) reuses them. */
    atomic_store_explicit(&consumer->slot->read_position, consumer->position, memory_order_release);
    bool resynced = false;
    uint32_t count = 0;
    for (uint32_t step = 0; step < CONSUMER_POLL_STEPS_MAX; step++) {
        /* The acquire load pairs with the writer's release store in publish: every entry below
         * the loaded commit_position is complete. commit_position is always loaded before
         * retained_position: then commit - retained never exceeds the capacity for a writer
         * that keeps its rules, however far it moves between the two loads. */
        if (consumer->position >= consumer->commit_cached)
            consumer->commit_cached =
                atomic_load_explicit(&header->commit_position, memory_order_acquire);
        uint64_t retained = atomic_load_explicit(&header->retained_position, memory_order_acquire);
        if (retained > consumer->commit_cached) {
            consumer->commit_cached =
                atomic_load_explicit(&header->commit_position, memory_order_acquire);
            retained = atomic_load_explicit(&header->retained_position, memory_order_acquire);
        }
        uint64_t commit = consumer->commit_cached;
        /* Retired ahead of what is published (a batch larger than the ring): wait for it. */
        if (retained > commit) return (int)count;
        if (!positions_plausible(consumer, commit, retained)) {
            if (count > 0) return (int)count; /* the next call reports it */
            consumer_fail(consumer,
                          "%s: log positions are inconsistent (retained %llu, commit "
                          "%llu): log damaged",
                          consumer->path, (unsigned long long)retained, (unsigned long long)commit);
            return -EBADMSG;
        }
        if (consumer->position == commit) return (int)count;
        /* Behind retained: lapped, the next record's offset tells the gap. Beyond commit: the
         * log went backwards under us; start over from retained, the offset rule skips what we
         * already returned. */
        if (consumer->position < retained || consumer->position > commit) {
            /* Lapped is the writer moving on; beyond the commit is the log itself moving back,
             * which happens once at most in a poll before it counts as damage. */
            if (consumer->position > commit && consumer->position >= retained) {
                if (resynced) {
                    consumer_fail(consumer,
                                  "%s: log positions went backwards (commit %llu below our "
                                  "position %llu): log damaged",
                                  consumer->path, (unsigned long long)commit,
                                  (unsigned long long)consumer->position);
                    return count > 0 ? (int)count : -EBADMSG;
                }
                resynced = true;
            }
            consumer->position = retained;
            continue;
        }
        switch (entry_read(consumer, &records[count])) {
        case ENTRY_RECORD:
            if (consumer_broken(consumer)) return -EIO;
            if (++count == capacity) return (int)count;
            continue;
        case ENTRY_SKIPPED:
        case ENTRY_LAPPED: continue;
        case ENTRY_BAD:
            if (consumer_broken(consumer)) return -EIO;
            if (count > 0) return (int)count; /* the next call retries, then reports */
            /* Once per poll, restart from retained_position: a bound that was briefly wrong
             * may have put us off an entry boundary. A second failure is reported. */
            if (resynced) return -EBADMSG;
            resynced = true;
            consumer->position = retained;
            continue;
        }
    }
    if (count > 0) return (int)count;
    consumer_fail(consumer, "%s: poll kept being lapped by the writer", consumer->path);
    return -EAGAIN;
}

int consumer_poll_batch(struct intake_consumer *consumer, uint64_t now_ns,
                        struct intake_consumer_record *records, uint32_t capacity) {
    int result = consumer_poll_entries(consumer, now_ns, records, capacity);
    /* A fault while reading the positions leaves zeros behind and looks like "nothing new":
     * say what happened now, not at the next call. */
    if (result == 0 && consumer_broken(consumer)) return -EIO;
    return result;
}

int intake_consumer_poll(struct intake_consumer *consumer, struct intake_consumer_record *record) {
    if (consumer == NULL || record == NULL) return -EINVAL;
    return consumer_poll_batch(consumer, intake_now_ns(), record, 1);
}

int intake_consumer_poll_batch(struct intake_consumer *consumer,
                               struct intake_consumer_record *records, uint32_t capacity) {
    if (consumer == NULL || (records == NULL && capacity > 0)) return -EINVAL;
    if (capacity == 0) return 0;
    return consumer_poll_batch(consumer, intake_now_ns(), records, capacity);
}

void intake_consumer_commit(struct intake_consumer *consumer) {
    if (consumer == NULL) return;
    struct shm_log_consumer_slot *slot = consumer->slot;
    if (consumer_broken(consumer)) return;
    consumer_heartbeat(consumer, intake_now_ns());
    atomic_store_explicit(&slot->committed_position, consumer->position, memory_order_relaxed);
    /* The release store of the offset publishes the committed pair to a later open of this
     * name (which acquire-loads the offset). */
    atomic_store_explicit(&slot->committed_offset, consumer->expected_offset, memory_order_release);
}

long consumer_futex_wait(const SHM_LOG_ATOMIC(uint32_t) * word, uint32_t expected,
                         uint64_t timeout_ns) {
    struct timespec timeout = {(time_t)(timeout_ns / 1000000000ull),
                               (long)(timeout_ns % 1000000000ull)};
    return syscall(SYS_futex, (const uint32_t *)word, FUTEX_WAIT, expected, &timeout, NULL, 0);
}

/* Whether the log's path now names another file: the writer quarantined ours and made a new
 * one, so nothing more will come here. Checked only when a wait times out (one stat). */
bool consumer_replaced(struct intake_consumer *consumer) {
    struct stat ours, named;
    if (fstat(consumer->fd, &ours) != 0) return false;
    if (stat(consumer->path, &named) == 0 && named.st_ino == ours.st_ino &&
        named.st_dev == ours.st_dev)
        return false;
    consumer_fail(consumer,
                  "%s was replaced (the writer quarantined and recreated the log): "
                  "close and reopen",
                  consumer->path);
    return true;
}

uint64_t consumer_wait_slice_ns(const struct shm_log_header *header) {
    uint64_t stale_ns = atomic_load_explicit(&header->consumer_stale_ns, memory_order_relaxed);
    if (stale_ns == 0) return CONSUMER_WAIT_SLICE_NS_DEFAULT;
    uint64_t slice_ns = stale_ns / 4;
    if (slice_ns < CONSUMER_WAIT_SLICE_NS_MIN) slice_ns = CONSUMER_WAIT_SLICE_NS_MIN;
    if (slice_ns > CONSUMER_WAIT_SLICE_NS_MAX) slice_ns = CONSUMER_WAIT_SLICE_NS_MAX;
    return slice_ns;
}

int intake_consumer_wait(struct intake_consumer *consumer, uint64_t timeout_ns) {
    if (consumer == NULL) return -EINVAL;
    const struct shm_log_header *header = consumer->header;
    /* Saturating: a timeout past the end of the clock (UINT64_MAX) is no deadline. */
    uint64_t deadline_ns = intake_deadline_ns(timeout_ns);
    for (;;) {
        if (consumer_broken(consumer)) return -EIO;
        consumer_heartbeat(consumer, intake_now_ns());
        /* The futex word is loaded before the recheck below: a publish after this load
         * changes it, so FUTEX_WAIT returns at once instead of sleeping through the publish. */
        uint32_t sequence = atomic_load_explicit(&header->commit_sequence, memory_order_acquire);
        atomic_store_explicit(&consumer->consumers->readers_waiting, 1, memory_order_relaxed);
        /* Dekker with publish: our flag store, then our commit_position load; the writer's
         * commit_position store, then its flag load. Both sides fence seq_cst. */
        atomic_thread_fence(memory_order_seq_cst);
        /* The acquire load pairs with publish's release store of commit_position. */
        uint64_t commit = atomic_load_explicit(&header->commit_position, memory_order_acquire);
        uint64_t retained = atomic_load_explicit(&header->retained_position, memory_order_relaxed);
        /* Something for poll: new entries, or a log that moved under us (poll recovers or says
         * why). A retained bound above commit is a transient poll would only wait out. */
        if (commit != consumer->position && retained <= commit) return 1;
        uint64_t now_ns = intake_now_ns();
        if (now_ns >= deadline_ns) return consumer_replaced(consumer) ? -ESTALE : 0;
        uint64_t sleep_ns = deadline_ns - now_ns;
        if (sleep_ns > consumer_wait_slice_ns(header)) sleep_ns = consumer_wait_slice_ns(header);
        if (consumer_futex_wait(&header->commit_sequence, sequence, sleep_ns) != 0 &&
            errno == EINTR)
            return -EINTR;
    }
}
