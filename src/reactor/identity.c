/*
 * identity.c: producer identity on the reactor side (issues 12 and 17). Reactor thread.
 *
 * The framer enforces the wire rules (a Hello only as a connection's first frame; one
 * producer_id per connection; consecutive sequences on a connection) and keeps the connection's
 * producer_id. Here:
 *   - the connection's origin (record.h): at its first frame, its principal's tag and its
 *     producer_id with their keyed hash (keyed_hash.h), computed once; every record of the
 *     connection points at it, so the worker neither reads nor hashes the id per record;
 *   - its producer: the producer table's entry for (principal, producer_id), pinned from the
 *     Hello or first record until the connection ends (producer_table.h);
 *   - a Hello is not a record. While it arrives it is framed like any frame, into a record
 *     object of the pool, under the same limits; once complete that object goes straight back,
 *     never admitted. It is answered at once with Ack{OK, H}, H from the producer table (never
 *     into a gap);
 *   - every record with a producer_id is checked against what the daemon knows of its producer
 *     (the first of the connection against `seen` and the bound W, the rest at the front or
 *     inside a gap), and a record inside a gap is marked for the worker;
 *   - when a connection has every record back, its committed level and first sequence are
 *     folded into the producer table and its entry is let go.
 */
#include <inttypes.h>

#include "reactor_internal.h"

/* The origin, at the connection's first frame: the principal is fixed by then (the TLS
 * handshake sets it before any frame) and so is the producer_id (framer.h). */
static void connection_origin_fill(struct reactor *reactor, struct connection *connection) {
    if (connection->origin_ready) return;
    struct record_origin *origin = &connection->origin;
    origin->principal = connection->principal.tag;
    uint32_t length = 0;
    const uint8_t *id = framer_producer_id(&connection->framer, &length);
    origin->producer_id_length = length;
    origin->producer_hash = 0;
    if (id != NULL) {
        INTAKE_ASSERT(length >= 1 && length <= RECORD_PRODUCER_ID_BYTES_MAX);
        memcpy(origin->producer_id, id, length);
        origin->producer_hash =
            keyed_hash_producer(&reactor->hasher, origin->principal, id, length);
    }
    connection->origin_ready = true;
}

/* Pins the producer's entry: at a Hello only when the table knows the producer (a Hello of a
 * made-up id evicts nothing), at the first record always. False when the table is full of live
 * producers: the connection then ends RESOURCE_EXHAUSTED. */
static bool connection_producer_acquire(struct reactor *reactor, struct connection *connection,
                                        bool create) {
    if (connection->producer_entry != NULL || reactor->links.producers == NULL) return true;
    INTAKE_ASSERT(connection->origin.producer_id_length > 0);
    connection->producer_entry =
        producer_table_acquire(reactor->links.producers, &connection->origin, create);
    if (connection->producer_entry != NULL || !create) return true;
    reactor->counters.producer_refusals++;
    connection_end(reactor, connection, RECORD_STATUS_RESOURCE_EXHAUSTED,
                   "every producer intaked remembers is in use by a live connection "
                   "(--producers-max): try again later");
    return false;
}

void connection_take_hello(struct reactor *reactor, struct connection *connection) {
    struct record *record = framer_take_hello(&connection->framer);
    INTAKE_ASSERT(record != NULL);
    INTAKE_ASSERT(connection->slices_pinned == record->slice_count);
    /* The Hello's frame is complete: no longer a partial record, and never a record. */
    INTAKE_ASSERT(reactor->partial_records > 0);
    reactor->partial_records--;
    connection->frame_started_ns = 0;
    connection->slices_pinned = 0;
    reactor_release_record(reactor, record);
    connection_origin_fill(reactor, connection);
    INTAKE_ASSERT(connection->origin.producer_id_length > 0);
    INTAKE_ASSERT(!connection->hello_answer_pending);
    INTAKE_ASSERT(connection->ack_sent_sequence == 0);
    if (!connection_producer_acquire(reactor, connection, false)) return;
    connection->hello_answer =
        connection->producer_entry != NULL
            ? producer_table_hello_answer(reactor->links.producers, connection->producer_entry)
            : 0;
    connection->hello_answer_pending = true;
    reactor->counters.hellos_answered++;
    connection_flush_ack(reactor, connection);
}

/* Refuses a first record that runs too far ahead of its producer (rule 1 of
 * producer_table.h), naming the sequence, the bound and the producer. */
static void connection_refuse_ahead(struct reactor *reactor, struct connection *connection,
                                    uint64_t sequence, uint64_t known) {
    char id[FRAMER_ID_TEXT_BYTES];
    framer_id_text(connection->origin.producer_id, connection->origin.producer_id_length, id,
                   sizeof(id));
    snprintf(connection->end_detail_text, sizeof(connection->end_detail_text),
             "sequence %" PRIu64 " runs ahead of %" PRIu64
             ", the highest intaked has seen, by more "
             "than %llu (producer_id \"%s\"): out of order",
             sequence, known, (unsigned long long)PRODUCER_SEQUENCE_LEAD_MAX, id);
    reactor->counters.sequence_rejections++;
    connection_end(reactor, connection, RECORD_STATUS_REJECTED, connection->end_detail_text);
}

bool connection_check_sequence(struct reactor *reactor, struct connection *connection,
                               struct record *record) {
    connection_origin_fill(reactor, connection);
    record->origin = &connection->origin;
    if (record->producer_id_length == 0) return true;
    INTAKE_ASSERT(connection->origin.producer_id_length == record->producer_id_length);
    if (!connection_producer_acquire(reactor, connection, true)) return false;
    struct producer_table *table = reactor->links.producers;
    if (table == NULL) return true;
    enum producer_admission verdict;
    if (record->sequence_flags & RECORD_SEQUENCE_FIRST) {
        INTAKE_ASSERT(connection->producer_first_sequence == 0);
        uint64_t known = 0;
        verdict = producer_table_first(table, connection->producer_entry, record->sequence, &known);
        if (verdict == PRODUCER_AHEAD) {
            connection_refuse_ahead(reactor, connection, record->sequence, known);
            return false;
        }
        connection->producer_first_sequence = record->sequence;
    } else {
        INTAKE_ASSERT(connection->producer_first_sequence != 0);
        verdict = producer_table_next(table, connection->producer_entry, record->sequence);
    }
    INTAKE_ASSERT(verdict != PRODUCER_AHEAD);
    if (verdict == PRODUCER_ADMIT_GAP_FILL) {
        record->sequence_flags |= RECORD_SEQUENCE_GAP_FILL;
        reactor->counters.sequence_gap_fills++;
    }
    return true;
}

void connection_fold_identity(struct reactor *reactor, struct connection *connection) {
    INTAKE_ASSERT(ack_window_length(&connection->window) == 0);
    if (connection->producer_entry == NULL) return;
    /* Every record of this connection up to ack_sequence came back committed, whether or not
     * that Ack reached the peer: the level producer_table.h's argument needs. */
    producer_table_release(reactor->links.producers, connection->producer_entry,
                           connection->producer_first_sequence, connection->window.ack_sequence);
    connection->producer_entry = NULL;
}
