/*
 * admission.c: from received chunks to records in topic queues, and the flow control around it.
 * Reactor thread only.
 *
 * A chunk is framed in place (framer.h); each complete record gets its topic and is pushed into
 * its topic's queue, from where the owning worker takes it. When the topic queue is full, the
 * record pool is empty (after taking what workers returned) or the connection's ack window is
 * full, the connection pauses: it stops being framed, what the kernel delivers waits in its
 * backlog, and it is retried each loop pass until space returns. A pause costs no system call:
 * the receive is cancelled only under buffer pressure (connection_backlog_pressed), and then
 * TCP pushes back on the producer.
 *
 * A record whose topic log is not open yet may come back failed (the log cannot be made, or
 * keeps a smaller record limit than --max-frame): the connection admits nothing after it until
 * it is back (PAUSE_TOPIC_LOG), so no record of a connection is committed beyond its final Ack.
 * Once a topic's log is open its limit is known here and records above it are refused at once.
 *
 * With --acl (access.c), a record's principal must be allowed its topic before anything is done
 * for it, and a principal over its quota pauses the connection (PAUSE_QUOTA) like a full queue.
 */
#include "reactor_internal.h"

/* ADMISSION_WAITING: admitted, and the connection waits for it to come back (PAUSE_TOPIC_LOG). */
enum admission_result { ADMISSION_DONE, ADMISSION_PAUSED, ADMISSION_WAITING };

/* Partial records hold their whole share of the pool: the frame waits, and the eviction pass
 * (timers.c) looks for the oldest one. */
static void connection_note_partial_cap(struct reactor *reactor) {
    INTAKE_ASSERT(reactor->partial_records >= reactor->partial_records_max);
    reactor->counters.partial_cap_pauses++;
    reactor->partial_cap_reached = true;
}

static void connection_pause(struct reactor *reactor, struct connection *connection,
                             enum connection_pause reason) {
    INTAKE_ASSERT(reason == PAUSE_TOPIC_QUEUE || reason == PAUSE_RECORD_POOL ||
                  reason == PAUSE_ACK_WINDOW || reason == PAUSE_TOPIC_LOG || reason == PAUSE_QUOTA);
    INTAKE_ASSERT(connection_is_open(connection));
    connection->phase = CONNECTION_PAUSED;
    connection->pause = (uint8_t)reason;
    if (reason == PAUSE_TOPIC_QUEUE) reactor->counters.pauses_topic_queue++;
    if (reason == PAUSE_RECORD_POOL) reactor->counters.pauses_record_pool++;
    if (reason == PAUSE_ACK_WINDOW) reactor->counters.pauses_ack_window++;
    if (reason == PAUSE_TOPIC_LOG) reactor->counters.pauses_topic_log++;
    if (reason == PAUSE_QUOTA) connection_quota_pause_started(reactor, connection);
    /* The receive stays live: most pauses last a loop pass or two, and a cancel plus a re-arm
     * cost more than the few chunks that arrive meanwhile (connection_receive_chunk cancels it
     * once the backlog presses on the buffers). */
    connection_list_add(reactor, connection, LIST_RETRY);
}

/* Routes a framed record (topic already resolved) into its topic queue. */
static enum admission_result
connection_admit(struct reactor *reactor, struct connection *connection, struct record *record) {
    const struct reactor_links *links = &reactor->links;
    INTAKE_ASSERT(record->topic_id < links->topics_max);
    INTAKE_ASSERT(record->slice_count > 0);
    if (reactor->acl != NULL && !connection_quota_open(reactor, connection)) {
        connection_pause(reactor, connection, PAUSE_QUOTA);
        return ADMISSION_PAUSED;
    }
    if (!ack_window_can_admit(&connection->window, record->sequence)) {
        connection_pause(reactor, connection, PAUSE_ACK_WINDOW);
        return ADMISSION_PAUSED;
    }
    record->connection_slot = connection_slot(reactor, connection);
    record->connection_generation = connection->generation;
    /* The position is taken only if the push succeeds; nobody else admits meanwhile. */
    uint32_t expected_position = ack_window_next_position(&connection->window, record->sequence);
    record->window_position = expected_position;
    /* Read once per chunk (or resume), not per record: records framed from one chunk were
     * received together, and a clock read per record showed in the profile. */
    record->receive_time_ns = reactor->admit_wall_ns;
    /* Read before the push: afterwards the record is the worker's. A limit of 0 means the
     * topic's log is not open (not yet, or it could not be made). */
    uint32_t topic_id = record->topic_id;
    uint32_t frame_bytes = record->frame_bytes;
    uint64_t sequence = record->sequence;
    uint32_t limit = topic_table_log_limit(topic_table_entry(links->topics, topic_id));
    bool may_fail = limit == 0 || frame_bytes > limit;
    if (topic_queue_push(&links->topic_queues[topic_id], record) == TOPIC_QUEUE_FULL) {
        connection_pause(reactor, connection, PAUSE_TOPIC_QUEUE);
        return ADMISSION_PAUSED;
    }
    /* From here the worker owns the record; the window entry is ours and the worker's return
     * is processed on this thread, after this function. Only the hand-off's copies of the
     * record's fields are read below. */
    uint32_t position = ack_window_admit(&connection->window, sequence);
    INTAKE_ASSERT(position == expected_position);
    if (sequence != 0) reactor->numbered_in_flight++;
    reactor->workers_to_wake[topic_id % links->worker_count] = true;
    reactor->counters.records_admitted++;
    counter_add(&links->received_cells[topic_id].records, 1);
    counter_add(&links->received_cells[topic_id].bytes, frame_bytes);
    if (reactor->acl != NULL) connection_quota_note(reactor, connection, frame_bytes);
    if (may_fail) {
        /* The framer stops here; the rest of the input waits in the backlog. */
        connection->awaited_position = position;
        connection_pause(reactor, connection, PAUSE_TOPIC_LOG);
        return ADMISSION_WAITING;
    }
    return ADMISSION_DONE;
}

/* With --acl, the topic is first looked up without being created, so a denied record creates
 * nothing. Returns the refusal, or NULL with *found FOUND (and *topic_id) or ABSENT. */
static const char *connection_route_acl(struct reactor *reactor, struct connection *connection,
                                        const struct record *record, const struct record_view *view,
                                        uint32_t *topic_id, enum topic_table_result *found) {
    *found = topic_table_find_view(reactor->links.topics, view, record->topic_offset,
                                   record->topic_length, topic_id);
    if (*found == TOPIC_TABLE_FOUND)
        return connection_acl_check_topic(reactor, connection, *topic_id);
    INTAKE_ASSERT(*found == TOPIC_TABLE_ABSENT);
    return connection_acl_check_name(reactor, connection, record);
}

/*
 * Finds the record's topic and checks the record against it. Returns NULL and sets *topic_id, or
 * the status and reason the connection ends with (the record is then not admitted):
 *   - with --acl, the connection's principal may produce to the topic (REJECTED otherwise);
 *   - a connection creates at most --topics-per-connection topics (each costs a --log-size log);
 *   - a topic's log keeps the record limit it was created with, which may be below today's
 *     --max-frame; a larger record is refused here, never handed to the log.
 */
static const char *connection_route(struct reactor *reactor, struct connection *connection,
                                    const struct record *record, uint32_t *topic_id,
                                    enum record_status *status) {
    const struct reactor_links *links = &reactor->links;
    struct record_view view = record_view_of(record);
    enum topic_table_result found = TOPIC_TABLE_ABSENT;
    if (reactor->acl != NULL) {
        const char *denied =
            connection_route_acl(reactor, connection, record, &view, topic_id, &found);
        if (denied != NULL) {
            *status = RECORD_STATUS_REJECTED;
            return denied;
        }
    }
    *status = RECORD_STATUS_RESOURCE_EXHAUSTED;
    if (found == TOPIC_TABLE_FOUND) {
        /* Found by the --acl lookup. */
    } else if (connection->topics_created < links->topics_per_connection) {
        found = topic_table_intern_view(links->topics, &view, record->topic_offset,
                                        record->topic_length, topic_id);
        if (found == TOPIC_TABLE_CREATED) connection->topics_created++;
    } else {
        found = topic_table_find_view(links->topics, &view, record->topic_offset,
                                      record->topic_length, topic_id);
    }
    if (found == TOPIC_TABLE_FULL) return "topic limit reached (--topics-max)";
    if (found == TOPIC_TABLE_ABSENT) {
        reactor->counters.topic_creations_refused++;
        snprintf(connection->end_detail_text, sizeof(connection->end_detail_text),
                 "this connection already created %u topics (--topics-per-connection)",
                 links->topics_per_connection);
        return connection->end_detail_text;
    }
    uint32_t limit = topic_table_log_limit(topic_table_entry(links->topics, *topic_id));
    if (limit != 0 && record->frame_bytes > limit) {
        reactor->counters.records_over_log_limit++;
        *status = RECORD_STATUS_REJECTED;
        record_over_log_limit_detail(connection->end_detail_text,
                                     sizeof(connection->end_detail_text), record->frame_bytes,
                                     limit);
        return connection->end_detail_text;
    }
    return NULL;
}

/* A complete record from the framer: its units are pinned; find its topic, admit it. */
static enum admission_result connection_take_record(struct reactor *reactor,
                                                    struct connection *connection) {
    struct record *record = framer_take_record(&connection->framer);
    INTAKE_ASSERT(record != NULL);
    INTAKE_ASSERT(record->slice_count > 0);
    /* Complete: no longer partial, and the frame deadline stops for it. */
    INTAKE_ASSERT(reactor->partial_records > 0);
    reactor->partial_records--;
    connection->frame_started_ns = 0;
    INTAKE_ASSERT(connection->slices_pinned == record->slice_count);
    connection->slices_pinned = 0;
    uint32_t topic_id = 0;
    enum record_status status = RECORD_STATUS_OK;
    const char *refusal = connection_route(reactor, connection, record, &topic_id, &status);
    if (refusal != NULL) {
        reactor_release_record(reactor, record);
        connection_end(reactor, connection, status, refusal);
        return ADMISSION_DONE;
    }
    record->topic_id = topic_id;
    enum admission_result admitted = connection_admit(reactor, connection, record);
    if (admitted == ADMISSION_PAUSED) connection->blocked_record = record;
    return admitted;
}

/* Pins the units of slices the framer added to its current record since the last call (a piece
 * merged into the previous slice is in the same unit, already pinned). */
static void connection_pin_new_slices(struct reactor *reactor, struct connection *connection) {
    const struct record *record = connection->framer.record;
    if (record == NULL) return;
    INTAKE_ASSERT(record->slice_count >= connection->slices_pinned);
    INTAKE_ASSERT(record->slice_count <= RECORD_SLICES_MAX);
    for (uint32_t index = connection->slices_pinned; index < record->slice_count; index++)
        rx_backend_ref(reactor->backend, record->slices[index].unit);
    connection->slices_pinned = record->slice_count;
}

/* Frames one chunk from *offset on until it is consumed, the connection pauses or ends. */
enum admission_frame_result connection_frame(struct reactor *reactor, struct connection *connection,
                                             const struct rx_chunk *chunk, uint32_t *offset) {
    INTAKE_ASSERT(*offset <= chunk->length);
    for (;;) {
        if (!connection_is_open(connection)) return ADMISSION_FRAME_ENDED;
        enum framer_event event =
            framer_feed(&connection->framer, chunk->bytes, chunk->length, chunk->unit, offset);
        connection_pin_new_slices(reactor, connection);
        switch (event) {
        case FRAMER_NEED_INPUT:
            INTAKE_ASSERT(*offset == chunk->length);
            /* A frame still open at the end of a chunk got its first byte by now. */
            if (!framer_is_idle(&connection->framer) && connection->frame_started_ns == 0)
                connection->frame_started_ns = reactor->now_ns;
            return ADMISSION_FRAME_CONSUMED;
        case FRAMER_NEED_RECORD: {
            struct record *record = NULL;
            if (reactor->partial_records < reactor->partial_records_max) {
                record = record_pool_take(&reactor->pool);
                if (record == NULL) {
                    /* Records the workers gave back are likely waiting on the return rings
                     * (they are otherwise taken once per loop pass, after the whole batch of
                     * completions): take them now rather than pause. A failed one may end
                     * this very connection. */
                    reactor_take_returns(reactor);
                    if (!connection_is_open(connection)) return ADMISSION_FRAME_ENDED;
                    record = record_pool_take(&reactor->pool);
                }
            } else {
                connection_note_partial_cap(reactor);
            }
            if (record == NULL) {
                connection_pause(reactor, connection, PAUSE_RECORD_POOL);
                return ADMISSION_FRAME_PAUSED;
            }
            reactor->partial_records++;
            framer_give_record(&connection->framer, record);
            break;
        }
        case FRAMER_RECORD:
            if (connection_take_record(reactor, connection) != ADMISSION_DONE)
                return ADMISSION_FRAME_PAUSED;
            break;
        case FRAMER_HELLO: connection_take_hello(reactor, connection); break;
        case FRAMER_ERROR:
            if (framer_rejected_for_identity(&connection->framer))
                reactor->counters.identity_rejections++;
            connection_end(reactor, connection, connection->framer.error_status,
                           connection->framer.error_detail);
            return ADMISSION_FRAME_ENDED;
        }
    }
}

/* Appends a chunk to the connection's backlog; the node keeps the chunk reference. */
bool connection_backlog_push(struct reactor *reactor, struct connection *connection,
                             const struct rx_chunk *chunk, uint32_t offset) {
    INTAKE_ASSERT(offset <= chunk->length);
    uint32_t index = reactor->backlog_free_head;
    if (index == REACTOR_NO_NODE) return false;
    INTAKE_ASSERT(index < reactor->backlog_node_count);
    struct backlog_node *node = &reactor->backlog_nodes[index];
    reactor->backlog_free_head = node->next;
    INTAKE_ASSERT(reactor->backlog_free_count > 0);
    reactor->backlog_free_count--;
    connection->backlog_chunks++;
    node->chunk = *chunk;
    node->next = REACTOR_NO_NODE;
    if (connection->backlog_tail == REACTOR_NO_NODE) {
        connection->backlog_head = index;
        connection->backlog_head_offset = offset;
    } else {
        reactor->backlog_nodes[connection->backlog_tail].next = index;
    }
    connection->backlog_tail = index;
    return true;
}

/* Gives the head backlog node back to the free list with its chunk reference. */
void connection_backlog_pop(struct reactor *reactor, struct connection *connection) {
    uint32_t index = connection->backlog_head;
    INTAKE_ASSERT(index != REACTOR_NO_NODE);
    struct backlog_node *node = &reactor->backlog_nodes[index];
    connection->backlog_head = node->next;
    connection->backlog_head_offset = 0;
    if (connection->backlog_head == REACTOR_NO_NODE) connection->backlog_tail = REACTOR_NO_NODE;
    rx_backend_unref(reactor->backend, node->chunk.unit);
    node->next = reactor->backlog_free_head;
    reactor->backlog_free_head = index;
    reactor->backlog_free_count++;
    INTAKE_ASSERT(connection->backlog_chunks > 0);
    connection->backlog_chunks--;
}

/* Whether a paused connection's live receive must stop: its backlog is long, receive units run
 * short (the paused connection would take them from those that read), or backlog nodes do. */
bool connection_backlog_pressed(const struct reactor *reactor,
                                const struct connection *connection) {
    if (connection->backlog_chunks >= REACTOR_PAUSED_BACKLOG_CHUNKS_MAX) return true;
    if (reactor->backlog_free_count <= reactor->backlog_reserve) return true;
    const struct rx_backend *backend = reactor->backend;
    return backend->ops->units_available(backend) <
           backend->unit_count / REACTOR_UNITS_RESERVE_SHARE;
}

/* A data chunk arrived for an open connection: framed, or kept in its backlog while paused. */
static void connection_take_chunk(struct reactor *reactor, struct connection *connection,
                                  const struct rx_chunk *chunk) {
    INTAKE_ASSERT(connection_is_open(connection));
    INTAKE_ASSERT(chunk->length > 0);
    reactor->admit_wall_ns = intake_wall_ns();
    if (connection->tls) {
        connection_tls_receive(reactor, connection, chunk);
        return;
    }
    uint32_t offset = 0;
    if (connection->phase == CONNECTION_READING) {
        INTAKE_ASSERT(connection->backlog_head == REACTOR_NO_NODE);
        if (connection_frame(reactor, connection, chunk, &offset) != ADMISSION_FRAME_PAUSED) {
            rx_backend_unref(reactor->backend, chunk->unit);
            return;
        }
    }
    if (!connection_backlog_push(reactor, connection, chunk, offset)) {
        /* Sized above what cancelled receives can deliver; reaching this is a defined limit. */
        reactor->counters.backlog_exhausted++;
        rx_backend_unref(reactor->backend, chunk->unit);
        connection_end(reactor, connection, RECORD_STATUS_RESOURCE_EXHAUSTED,
                       "receive backlog exhausted while the connection was paused");
        return;
    }
    bool receive_live = connection->receives_in_flight != 0 && !connection->receive_cancelling;
    if (receive_live && connection_backlog_pressed(reactor, connection))
        connection_cancel_receive(reactor, connection);
}

void connection_receive_chunk(struct reactor *reactor, struct connection *connection,
                              const struct rx_chunk *chunk) {
    connection_take_chunk(reactor, connection, chunk);
    /* What the chunk's records cost their principal, once per chunk. */
    if (reactor->acl != NULL) connection_quota_charge(reactor, connection);
}

/* Frames backlog chunks until empty, paused again or ended. */
static void connection_drain_backlog(struct reactor *reactor, struct connection *connection) {
    if (connection->tls) {
        connection_tls_process(reactor, connection);
        return;
    }
    while (connection->backlog_head != REACTOR_NO_NODE && connection->phase == CONNECTION_READING) {
        struct backlog_node *node = &reactor->backlog_nodes[connection->backlog_head];
        enum admission_frame_result result =
            connection_frame(reactor, connection, &node->chunk, &connection->backlog_head_offset);
        if (result == ADMISSION_FRAME_PAUSED) return;
        if (result == ADMISSION_FRAME_ENDED) return; /* connection_end freed the backlog */
        connection_backlog_pop(reactor, connection);
    }
}

/* Hysteresis: a connection paused on a full topic queue resumes once the queue is at most three
 * quarters full, so the worker has a run of records before the reactor pauses again (each pause
 * is a cancelled receive and a re-arm). One paused on a topic log resumes once the record it
 * waits for is back (committed; had it failed, the connection would have ended). */
static bool connection_may_resume(struct reactor *reactor, struct connection *connection) {
    if (connection->pause == PAUSE_QUOTA) {
        connection_account_throttle(reactor, connection);
        return connection_quota_open(reactor, connection);
    }
    if (connection->pause == PAUSE_TOPIC_LOG)
        return ack_window_has_returned(&connection->window, connection->awaited_position);
    if (connection->pause != PAUSE_TOPIC_QUEUE) return true;
    INTAKE_ASSERT(connection->blocked_record != NULL);
    const struct reactor_links *links = &reactor->links;
    uint32_t topic_id = connection->blocked_record->topic_id;
    uint64_t length = topic_queue_length(&links->topic_queues[topic_id]);
    return length <= (uint64_t)links->topic_queue_capacity * 3 / 4;
}

/* Tries to unpause a connection (on the retry pass): its held record, then its backlog. */
static void connection_try_resume(struct reactor *reactor, struct connection *connection) {
    if (connection->phase != CONNECTION_PAUSED) return;
    INTAKE_ASSERT(connection->pause != PAUSE_UNITS);
    if (!connection_may_resume(reactor, connection)) {
        connection_list_add(reactor, connection, LIST_RETRY);
        return;
    }
    connection->phase = CONNECTION_READING;
    connection->pause = PAUSE_NONE;
    /* Intake paused it: its deadlines start again. */
    connection->last_input_ns = reactor->now_ns;
    if (connection->frame_started_ns != 0) connection->frame_started_ns = reactor->now_ns;
    reactor->admit_wall_ns = intake_wall_ns();
    if (connection->blocked_record != NULL) {
        struct record *record = connection->blocked_record;
        connection->blocked_record = NULL;
        enum admission_result admitted = connection_admit(reactor, connection, record);
        if (admitted == ADMISSION_PAUSED) connection->blocked_record = record;
        if (admitted != ADMISSION_DONE) return;
    }
    connection_drain_backlog(reactor, connection);
    connection_maybe_rearm(reactor, connection);
    connection_touch(reactor, connection);
}

void connection_resume(struct reactor *reactor, struct connection *connection) {
    connection_try_resume(reactor, connection);
    /* What the resumed records cost their principal, before the loop pass ends. */
    if (reactor->acl != NULL) connection_quota_charge(reactor, connection);
}

/* The connection stops reading for good: input not framed yet, the record it holds back and
 * the partial record the framer holds let their units go. */
void connection_drop_input(struct reactor *reactor, struct connection *connection) {
    while (connection->backlog_head != REACTOR_NO_NODE) connection_backlog_pop(reactor, connection);
    if (connection->tls) connection_tls_input_dropped(reactor, connection);
    if (connection->blocked_record != NULL) {
        reactor_release_record(reactor, connection->blocked_record);
        connection->blocked_record = NULL;
    }
    if (!framer_is_idle(&connection->framer)) reactor->counters.frames_truncated++;
    struct record *partial = framer_release_record(&connection->framer);
    INTAKE_ASSERT(partial != NULL || connection->slices_pinned == 0);
    if (partial != NULL) {
        INTAKE_ASSERT(reactor->partial_records > 0);
        reactor->partial_records--;
        INTAKE_ASSERT(connection->slices_pinned <= partial->slice_count);
        for (uint32_t index = 0; index < connection->slices_pinned; index++)
            rx_backend_unref(reactor->backend, partial->slices[index].unit);
        record_pool_give(&reactor->pool, partial);
    }
    connection->slices_pinned = 0;
    connection->frame_started_ns = 0;
}
