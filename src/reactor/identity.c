/*
 * identity.c: producer identity on the reactor side (issue 12). Reactor thread.
 *
 * The framer enforces the wire rules (a Hello only as a connection's first frame; one
 * producer_id per connection) and keeps the connection's producer_id. Here: a Hello is not a
 * record. While it arrives it is framed like any frame, into a record object of the pool (no
 * frame says what it is before its fields are read), under the same limits; once complete that
 * object goes straight back, never admitted, with no topic. It is answered at once with
 * Ack{OK, H}, H being the producer's acknowledged watermark from the daemon-wide producer table
 * (producer_table.h). When a connection with a producer_id has every record back, its
 * cumulative committed level is folded into that table, so the producer's next Hello learns it.
 */
#include "reactor_internal.h"

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
    uint32_t length = 0;
    const uint8_t *id = framer_producer_id(&connection->framer, &length);
    INTAKE_ASSERT(id != NULL);
    INTAKE_ASSERT(!connection->hello_answer_pending);
    INTAKE_ASSERT(connection->ack_sent_sequence == 0);
    connection->hello_answer = reactor->links.producers != NULL
                                   ? producer_table_lookup(reactor->links.producers, id, length)
                                   : 0;
    connection->hello_answer_pending = true;
    reactor->counters.hellos_answered++;
    connection_flush_ack(reactor, connection);
}

void connection_fold_identity(struct reactor *reactor, const struct connection *connection) {
    INTAKE_ASSERT(ack_window_length(&connection->window) == 0);
    uint32_t length = 0;
    const uint8_t *id = framer_producer_id(&connection->framer, &length);
    if (id == NULL || reactor->links.producers == NULL) return;
    /* Every record of this connection up to ack_sequence came back committed, whether or not
     * that Ack reached the peer: the level producer_table.h's argument needs. */
    producer_table_fold(reactor->links.producers, id, length, connection->window.ack_sequence);
}
