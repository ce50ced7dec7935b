/*
 * reactor.c: the receive thread (see reactor.h for the contract).
 *
 * One loop shape: submit and wait, walk a bounded batch of completions, dispatch on the tag
 * decoded from user_data, advance the CQ once per batch, then do the batched work: records
 * returned by workers, connections waiting for space, acks, buffer returns, worker wake-ups.
 *
 * Connection life: OPEN (reading) -> ENDING (no more reading: peer closed, bad input, reset or
 * shutdown; records already admitted still commit and get acked) -> FREE once nothing of it is
 * in flight (no receive armed, no send in flight, every admitted record returned).
 */
#include "reactor.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "ack_frame.h"
#include "ack_window.h"
#include "framer.h"
#include "pipeline.h"
#include "record.h"
#include "record_pool.h"
#include "rx_backend.h"
#include "rx_zcrx.h"
#include "worker.h"

/* Most completions handled before the batched work runs again. */
#define REACTOR_CQE_BATCH_MAX 512
/* While a connection is blocked on a topic queue that other reactors' records may fill, the
 * worker that drains it wakes those reactors, not this one: look again this often. */
#define REACTOR_BLOCKED_RECHECK_NS 1000000ll
/* Lingering close: after a final Ack, input is read and discarded until the peer closes, at most
 * this long without input, and this long in all. */
#define REACTOR_LINGER_IDLE_NS 1000000000ll
#define REACTOR_LINGER_TOTAL_NS 2000000000ull
/* Most returned records taken from one return ring per iteration. */
#define REACTOR_RETURN_BATCH_MAX 256
#define REACTOR_SQ_ENTRIES 1024
#define NO_NODE UINT32_MAX

/* --- user_data: tag (8 bits) | connection slot (24 bits) | connection generation (32 bits) --- */
enum reactor_tag {
    TAG_ACCEPT = 1,
    TAG_RECEIVE = 2,
    TAG_SEND = 3,
    TAG_CANCEL = 4,
    TAG_WAKE = 5,
    TAG_LINGER = 6,          /* a discarding receive of a lingering close, or its linked timeout */
};
/* Set on the linked timeout of a linger receive; tags stay below it. */
#define USER_DATA_LINGER_TIMEOUT (1ull << 7)
#define USER_DATA_SLOT_BITS 24
_Static_assert(USER_DATA_SLOT_BITS + 8 + 32 == 64, "user_data fields fill 64 bits");

static uint64_t user_data_encode(enum reactor_tag tag, uint32_t slot, uint32_t generation) {
    INTAKE_ASSERT(slot < (1u << USER_DATA_SLOT_BITS));
    return (uint64_t)tag | ((uint64_t)slot << 8) | ((uint64_t)generation << 32);
}
static enum reactor_tag user_data_tag(uint64_t data) { return (enum reactor_tag)(data & 0x7f); }
static bool user_data_is_linger_timeout(uint64_t data) { return (data & USER_DATA_LINGER_TIMEOUT) != 0; }
static uint32_t user_data_slot(uint64_t data) {
    return (uint32_t)(data >> 8) & ((1u << USER_DATA_SLOT_BITS) - 1);
}
static uint32_t user_data_generation(uint64_t data) { return (uint32_t)(data >> 32); }

enum connection_state { CONNECTION_FREE = 0, CONNECTION_OPEN, CONNECTION_ENDING };

/* Why an open connection is not reading. */
enum connection_block {
    BLOCK_NONE = 0,
    BLOCK_TOPIC_QUEUE,  /* its next record's topic queue is full */
    BLOCK_RECORD_POOL,  /* the reactor's record pool is empty */
    BLOCK_ACK_WINDOW,   /* too many of its records are not committed yet */
    BLOCK_TOPIC_LOG,    /* its last record went to a topic whose log was not open: wait for it */
};

/* A received chunk not framed yet (its connection was blocked). Holds the chunk reference. */
struct backlog_node {
    struct rx_chunk chunk;
    uint32_t next;
};

struct connection {
    int fd;
    uint32_t generation;
    uint8_t state;             /* enum connection_state */
    uint8_t block;             /* enum connection_block */
    bool receive_armed;        /* a multishot receive is live in the kernel */
    bool cancel_in_flight;
    bool waiting_for_units;    /* its receive ended for lack of units */
    bool peer_closed;
    bool socket_dead;          /* reset or send failure: nothing more can be sent */
    bool on_retry_list;
    bool on_ack_list;
    bool on_units_list;
    bool send_in_flight;
    bool final_ack_sent;
    bool lingering;            /* write side shut, reading and discarding until the peer closes */
    bool linger_done;
    uint8_t linger_operations; /* linger receive and its linked timeout still in the kernel */
    uint64_t linger_deadline_ns;
    uint8_t end_status;        /* enum record_status; OK for an orderly end */
    const char *end_detail;    /* end_detail_text, a static string, or NULL */
    uint32_t topics_created;   /* topics this connection created (--topics-per-connection) */
    uint32_t awaited_position; /* BLOCK_TOPIC_LOG: the ack window position waited for */
    struct framer framer;
    /* Slices of the framer's current record that hold a unit reference: a record's units are
     * pinned slice by slice as they are added, because the chunks they came from are released
     * as soon as the framer has walked past them. */
    uint32_t slices_pinned;
    struct record *blocked_record; /* framed, topic resolved, not admitted yet */
    uint32_t backlog_head;     /* backlog_node indexes, NO_NODE when empty */
    uint32_t backlog_tail;
    uint32_t backlog_head_offset; /* bytes of the head chunk already framed */
    struct ack_window window;
    uint64_t ack_sent_sequence;
    uint32_t send_length;
    uint32_t send_offset;
    uint8_t send_buffer[ACK_FRAME_BYTES_MAX];
    /* The final Ack's reason, copied: it often comes from a record that is freed before the Ack
     * goes out. Longer than an Ack carries, so the encoder cuts it at a UTF-8 boundary. */
    char end_detail_text[ACK_DETAIL_BYTES_MAX + 56];
};

struct reactor_counters {
    uint64_t connections_accepted;
    uint64_t connections_refused;   /* every slot was taken */
    uint64_t connections_closed;
    uint64_t connections_failed;    /* ended by bad input or a limit (got a non-OK ack) */
    uint64_t records_admitted;
    uint64_t records_returned;
    uint64_t records_failed;        /* came back not committed */
    uint64_t frames_truncated;      /* a partial frame was pending when its connection ended */
    uint64_t acks_sent;
    uint64_t pauses_topic_queue;
    uint64_t pauses_record_pool;
    uint64_t pauses_ack_window;
    uint64_t pauses_topic_log;      /* a record went to a topic whose log was not open yet */
    uint64_t records_over_log_limit; /* refused: larger than their topic's log takes */
    uint64_t topic_creations_refused; /* --topics-per-connection reached */
    uint64_t pauses_out_of_units;
    uint64_t backlog_exhausted;
    uint64_t stalls_broken;         /* connections ended to free buffers pinned by partial frames */
    uint64_t lingered;              /* closes that waited for the peer after a final Ack */
    uint64_t wakeups;
};

struct reactor {
    struct pipeline *pipeline;
    uint32_t index;
    pthread_t thread;
    bool thread_started;
    sem_t started;
    int start_result;
    char start_why[256];
    char fallback_reason[256];

    struct io_uring ring;
    bool ring_ready;
    struct rx_backend *backend;
    /* --max-frame, or lower when the backend's fragments cannot hold it in RECORD_SLICES_MAX
     * slices (zcrx hands out fixed-size fragments). */
    uint32_t frame_bytes_max;
    int listen_fd;
    bool accept_armed;
    bool accept_cancelled;

    struct record_pool pool;
    struct connection *connections;
    uint32_t connection_count_max;
    uint32_t *free_slots;
    uint32_t free_slot_count;
    uint64_t *window_sequences;     /* all connections' ack windows, carved per slot */
    uint8_t *window_committed;
    size_t window_region_bytes;

    struct backlog_node *backlog_nodes;
    uint32_t backlog_node_count;
    uint32_t backlog_free_head;

    uint32_t *retry_list;           /* blocked connections, slots */
    uint32_t retry_count;
    uint32_t *ack_list;             /* connections whose ack may need sending, slots */
    uint32_t ack_count;
    uint32_t *units_wait_list;      /* receives that ended for lack of units, slots */
    uint32_t units_wait_count;
    bool *workers_to_wake;

    int wake_fd;
    uint64_t wake_value;
    /* Where lingering connections' discarded input lands; shared, never read. */
    uint8_t linger_scratch[16384];
    /* 1 while the reactor may sleep in the kernel: a worker that returns records then writes
     * the eventfd. Exchanged to 0 by whoever wakes it, so one wake-up costs one write. */
    _Atomic int wake_armed;
    _Atomic bool report_requested;
    bool stop_started;
    /* A stall seen once waits for confirmation: seen again after a timed wait with no progress
     * in between (buffers the kernel filled for completions not yet reaped look pinned). */
    bool stall_suspected;
    uint64_t stall_progress_mark;
    uint32_t open_connections;
    struct reactor_counters counters;
};

static void connection_maybe_finish(struct reactor *reactor, struct connection *connection);
static void reactor_continue_stop(struct reactor *reactor);
static void connection_resume(struct reactor *reactor, struct connection *connection);

static uint32_t connection_slot(const struct reactor *reactor, const struct connection *connection) {
    return (uint32_t)(connection - reactor->connections);
}

/* ---------------------------------------------------------------- submission helpers --- */

/* An SQE, submitting first when the SQ is full (so callers never fail for lack of room). */
static struct io_uring_sqe *reactor_sqe(struct reactor *reactor) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&reactor->ring);
    if (sqe != NULL) return sqe;
    io_uring_submit(&reactor->ring);
    sqe = io_uring_get_sqe(&reactor->ring);
    INTAKE_ASSERT(sqe != NULL);
    return sqe;
}

static void reactor_arm_accept(struct reactor *reactor) {
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_multishot_accept(sqe, reactor->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, user_data_encode(TAG_ACCEPT, 0, 0));
    reactor->accept_armed = true;
}

static void reactor_arm_wake(struct reactor *reactor) {
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_read(sqe, reactor->wake_fd, &reactor->wake_value, sizeof(reactor->wake_value), 0);
    io_uring_sqe_set_data64(sqe, user_data_encode(TAG_WAKE, 0, 0));
}

static void connection_arm_receive(struct reactor *reactor, struct connection *connection) {
    INTAKE_ASSERT(!connection->receive_armed);
    uint64_t data = user_data_encode(TAG_RECEIVE, connection_slot(reactor, connection),
                                     connection->generation);
    if (reactor->backend->ops->arm(reactor->backend, &reactor->ring, connection->fd, data) == -EBUSY) {
        io_uring_submit(&reactor->ring);
        int result = reactor->backend->ops->arm(reactor->backend, &reactor->ring, connection->fd, data);
        INTAKE_ASSERT(result == 0);
    }
    connection->receive_armed = true;
    connection->waiting_for_units = false;
}

static void connection_cancel_receive(struct reactor *reactor, struct connection *connection) {
    if (!connection->receive_armed || connection->cancel_in_flight) return;
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_cancel64(sqe, user_data_encode(TAG_RECEIVE, connection_slot(reactor, connection),
                                                 connection->generation), 0);
    io_uring_sqe_set_data64(sqe, user_data_encode(TAG_CANCEL, connection_slot(reactor, connection),
                                                  connection->generation));
    connection->cancel_in_flight = true;
}

/* Re-arms the receive of a connection that may read again. */
static void connection_maybe_rearm(struct reactor *reactor, struct connection *connection) {
    if (connection->state != CONNECTION_OPEN || connection->receive_armed) return;
    if (reactor->stop_started) return;
    if (connection->peer_closed || connection->block != BLOCK_NONE) return;
    if (connection->backlog_head != NO_NODE || connection->waiting_for_units) return;
    if (connection->cancel_in_flight) return;
    connection_arm_receive(reactor, connection);
}

/* -------------------------------------------------------------------- slot lists --- */

static void list_add(uint32_t *list, uint32_t *count, bool *on_list, uint32_t slot) {
    if (*on_list) return;
    *on_list = true;
    list[(*count)++] = slot;
}

static void reactor_note_ack(struct reactor *reactor, struct connection *connection) {
    list_add(reactor->ack_list, &reactor->ack_count, &connection->on_ack_list,
             connection_slot(reactor, connection));
}

/* ------------------------------------------------------------- record admission --- */

/* Drops a record's unit references and gives it back to the pool. */
static void reactor_release_record(struct reactor *reactor, struct record *record) {
    for (uint32_t index = 0; index < record->slice_count; index++)
        rx_backend_unref(reactor->backend, record->slices[index].unit);
    record_pool_give(&reactor->pool, record);
}

static void connection_block(struct reactor *reactor, struct connection *connection,
                             enum connection_block reason) {
    INTAKE_ASSERT(reason != BLOCK_NONE);
    connection->block = (uint8_t)reason;
    if (reason == BLOCK_TOPIC_QUEUE) reactor->counters.pauses_topic_queue++;
    if (reason == BLOCK_RECORD_POOL) reactor->counters.pauses_record_pool++;
    if (reason == BLOCK_ACK_WINDOW) reactor->counters.pauses_ack_window++;
    if (reason == BLOCK_TOPIC_LOG) reactor->counters.pauses_topic_log++;
    /* Stop the multishot so the kernel stops filling our buffers for a connection we cannot
     * serve; what it delivers before the cancel lands waits in the backlog. */
    connection_cancel_receive(reactor, connection);
    bool on_list = connection->on_retry_list;
    list_add(reactor->retry_list, &reactor->retry_count, &on_list, connection_slot(reactor, connection));
    connection->on_retry_list = on_list;
}

/* Ends reading on a connection; records already admitted still commit and are acked. A non-OK
 * status is sent in the final Ack once they have. */
static void connection_end(struct reactor *reactor, struct connection *connection,
                           enum record_status status, const char *detail) {
    if (connection->state != CONNECTION_OPEN) return;
    connection->state = CONNECTION_ENDING;
    connection->end_status = (uint8_t)status;
    connection->end_detail = NULL;
    if (detail != NULL) {
        if (detail != connection->end_detail_text)
            snprintf(connection->end_detail_text, sizeof(connection->end_detail_text), "%s", detail);
        connection->end_detail = connection->end_detail_text;
    }
    if (status != RECORD_STATUS_OK && status != RECORD_STATUS_SHUTTING_DOWN)
        reactor->counters.connections_failed++;
    connection_cancel_receive(reactor, connection);
    /* Unframed input will never be framed now: let its units go. */
    while (connection->backlog_head != NO_NODE) {
        struct backlog_node *node = &reactor->backlog_nodes[connection->backlog_head];
        uint32_t next = node->next;
        rx_backend_unref(reactor->backend, node->chunk.unit);
        node->next = reactor->backlog_free_head;
        reactor->backlog_free_head = connection->backlog_head;
        connection->backlog_head = next;
    }
    connection->backlog_tail = NO_NODE;
    if (connection->blocked_record != NULL) {
        reactor_release_record(reactor, connection->blocked_record);
        connection->blocked_record = NULL;
    }
    if (!framer_is_idle(&connection->framer)) reactor->counters.frames_truncated++;
    struct record *partial = framer_release_record(&connection->framer);
    if (partial != NULL) {
        for (uint32_t index = 0; index < connection->slices_pinned; index++)
            rx_backend_unref(reactor->backend, partial->slices[index].unit);
        record_pool_give(&reactor->pool, partial);
    }
    INTAKE_ASSERT(partial != NULL || connection->slices_pinned == 0);
    connection->slices_pinned = 0;
    connection->block = BLOCK_NONE;
    connection_maybe_finish(reactor, connection);
}

/* ADMIT_WAITING: admitted, and the connection waits for it to come back (BLOCK_TOPIC_LOG). */
enum admit_result { ADMIT_DONE, ADMIT_BLOCKED, ADMIT_WAITING };

/* Routes a framed record (topic already resolved) into its topic queue. */
static enum admit_result connection_admit(struct reactor *reactor, struct connection *connection,
                                          struct record *record) {
    struct pipeline *pipeline = reactor->pipeline;
    if (ack_window_is_full(&connection->window)) {
        connection_block(reactor, connection, BLOCK_ACK_WINDOW);
        return ADMIT_BLOCKED;
    }
    record->connection_slot = connection_slot(reactor, connection);
    record->connection_generation = connection->generation;
    /* The position is taken only if the push succeeds; nobody else admits meanwhile. */
    record->window_position = connection->window.tail;
    record->receive_time_ns = intake_wall_ns();
    /* Read before the push: afterwards the record is the worker's. A limit of 0 means the
     * topic's log is not open (not yet, or it could not be made). */
    uint32_t topic_id = record->topic_id;
    uint32_t limit = topic_table_log_limit(topic_table_entry(&pipeline->topics, topic_id));
    bool may_fail = limit == 0 || record->frame_bytes > limit;
    if (topic_queue_push(&pipeline->topic_queues[record->topic_id], record) == TOPIC_QUEUE_FULL) {
        connection_block(reactor, connection, BLOCK_TOPIC_QUEUE);
        return ADMIT_BLOCKED;
    }
    /* From here the worker owns the record; the window entry is ours and the worker's return
     * is processed on this thread, after this function. */
    uint32_t position = ack_window_admit(&connection->window, record->sequence);
    INTAKE_ASSERT(position == record->window_position);
    reactor->workers_to_wake[pipeline_topic_owner(pipeline, topic_id)] = true;
    reactor->counters.records_admitted++;
    if (may_fail) {
        /* The record may come back failed (its log cannot be made, or is too small): admit
         * nothing after it until it is back, so nothing of this connection is committed beyond
         * a final Ack. The framer stops here; its position is kept in the backlog. */
        connection->awaited_position = position;
        connection_block(reactor, connection, BLOCK_TOPIC_LOG);
        return ADMIT_WAITING;
    }
    return ADMIT_DONE;
}

/*
 * Finds the record's topic and checks the record against it. Returns NULL and sets *topic_id, or
 * the status and reason the connection ends with (the record is then not admitted):
 *   - a connection creates at most --topics-per-connection topics (each costs a --log-size log);
 *   - a topic's log keeps the record limit it was created with, which may be below today's
 *     --max-frame; a larger record is refused here, never handed to the log.
 */
static const char *connection_route(struct reactor *reactor, struct connection *connection,
                                    const struct record *record, uint32_t *topic_id,
                                    enum record_status *status) {
    const struct pipeline_config *config = &reactor->pipeline->config;
    struct topic_table *topics = &reactor->pipeline->topics;
    struct record_view view = record_view_of(record);
    enum topic_table_result found;
    *status = RECORD_STATUS_RESOURCE_EXHAUSTED;
    if (connection->topics_created < config->topics_per_connection) {
        found = topic_table_intern_view(topics, &view, record->topic_offset, record->topic_length,
                                        topic_id);
        if (found == TOPIC_TABLE_CREATED) connection->topics_created++;
    } else {
        found = topic_table_find_view(topics, &view, record->topic_offset, record->topic_length,
                                      topic_id);
    }
    if (found == TOPIC_TABLE_FULL) return "topic limit reached (--topics-max)";
    if (found == TOPIC_TABLE_ABSENT) {
        reactor->counters.topic_creations_refused++;
        snprintf(connection->end_detail_text, sizeof(connection->end_detail_text),
                 "this connection already created %u topics (--topics-per-connection)",
                 config->topics_per_connection);
        return connection->end_detail_text;
    }
    uint32_t limit = topic_table_log_limit(topic_table_entry(topics, *topic_id));
    if (limit != 0 && record->frame_bytes > limit) {
        reactor->counters.records_over_log_limit++;
        *status = RECORD_STATUS_REJECTED;
        record_over_log_limit_detail(connection->end_detail_text,
                                     sizeof(connection->end_detail_text), record->frame_bytes, limit);
        return connection->end_detail_text;
    }
    return NULL;
}

/* A complete record from the framer: pin its units, find its topic, admit it. */
static enum admit_result connection_take_record(struct reactor *reactor,
                                                struct connection *connection) {
    struct record *record = framer_take_record(&connection->framer);
    INTAKE_ASSERT(record != NULL && record->slice_count > 0);
    INTAKE_ASSERT(connection->slices_pinned == record->slice_count);
    connection->slices_pinned = 0;
    uint32_t topic_id = 0;
    enum record_status status = RECORD_STATUS_OK;
    const char *refusal = connection_route(reactor, connection, record, &topic_id, &status);
    if (refusal != NULL) {
        reactor_release_record(reactor, record);
        connection_end(reactor, connection, status, refusal);
        return ADMIT_DONE;
    }
    record->topic_id = topic_id;
    enum admit_result admitted = connection_admit(reactor, connection, record);
    if (admitted == ADMIT_BLOCKED) connection->blocked_record = record;
    return admitted;
}

enum frame_result { FRAME_CONSUMED, FRAME_BLOCKED, FRAME_ENDED };

/* Pins the units of slices the framer added to its current record since the last call (a piece
 * merged into the previous slice is in the same unit, already pinned). */
static void connection_pin_new_slices(struct reactor *reactor, struct connection *connection) {
    const struct record *record = connection->framer.record;
    if (record == NULL) return;
    INTAKE_ASSERT(record->slice_count >= connection->slices_pinned);
    for (uint32_t index = connection->slices_pinned; index < record->slice_count; index++)
        rx_backend_ref(reactor->backend, record->slices[index].unit);
    connection->slices_pinned = record->slice_count;
}

/* Frames one chunk from *offset on until it is consumed, the connection blocks or ends. */
static enum frame_result connection_frame(struct reactor *reactor, struct connection *connection,
                                          const struct rx_chunk *chunk, uint32_t *offset) {
    for (;;) {
        if (connection->state != CONNECTION_OPEN) return FRAME_ENDED;
        enum framer_event event = framer_feed(&connection->framer, chunk->bytes, chunk->length,
                                              chunk->unit, offset);
        connection_pin_new_slices(reactor, connection);
        switch (event) {
        case FRAMER_NEED_INPUT:
            INTAKE_ASSERT(*offset == chunk->length);
            return FRAME_CONSUMED;
        case FRAMER_NEED_RECORD: {
            struct record *record = record_pool_take(&reactor->pool);
            if (record == NULL) {
                connection_block(reactor, connection, BLOCK_RECORD_POOL);
                return FRAME_BLOCKED;
            }
            framer_give_record(&connection->framer, record);
            break;
        }
        case FRAMER_RECORD:
            if (connection_take_record(reactor, connection) != ADMIT_DONE) return FRAME_BLOCKED;
            break;
        case FRAMER_ERROR:
            connection_end(reactor, connection, connection->framer.error_status,
                           connection->framer.error_detail);
            return FRAME_ENDED;
        }
    }
}

/* Appends a chunk to the connection's backlog; the node keeps the chunk reference. */
static bool connection_backlog_push(struct reactor *reactor, struct connection *connection,
                                    const struct rx_chunk *chunk, uint32_t offset) {
    uint32_t index = reactor->backlog_free_head;
    if (index == NO_NODE) return false;
    struct backlog_node *node = &reactor->backlog_nodes[index];
    reactor->backlog_free_head = node->next;
    node->chunk = *chunk;
    node->next = NO_NODE;
    if (connection->backlog_tail == NO_NODE) {
        connection->backlog_head = index;
        connection->backlog_head_offset = offset;
    } else {
        reactor->backlog_nodes[connection->backlog_tail].next = index;
    }
    connection->backlog_tail = index;
    return true;
}

/* A data chunk arrived for an open connection. */
static void connection_receive_chunk(struct reactor *reactor, struct connection *connection,
                                     const struct rx_chunk *chunk) {
    bool must_queue = connection->backlog_head != NO_NODE || connection->block != BLOCK_NONE;
    uint32_t offset = 0;
    if (!must_queue) {
        enum frame_result result = connection_frame(reactor, connection, chunk, &offset);
        if (result != FRAME_BLOCKED) {
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
    }
}

/* Frames backlog chunks until empty or blocked again. */
static void connection_drain_backlog(struct reactor *reactor, struct connection *connection) {
    while (connection->backlog_head != NO_NODE && connection->block == BLOCK_NONE &&
           connection->state == CONNECTION_OPEN) {
        uint32_t index = connection->backlog_head;
        struct backlog_node *node = &reactor->backlog_nodes[index];
        enum frame_result result =
            connection_frame(reactor, connection, &node->chunk, &connection->backlog_head_offset);
        if (result == FRAME_BLOCKED) return;
        if (result == FRAME_ENDED) return; /* connection_end freed the backlog */
        connection->backlog_head = node->next;
        connection->backlog_head_offset = 0;
        if (connection->backlog_head == NO_NODE) connection->backlog_tail = NO_NODE;
        rx_backend_unref(reactor->backend, node->chunk.unit);
        node->next = reactor->backlog_free_head;
        reactor->backlog_free_head = index;
    }
}

/* Hysteresis: a connection paused on a full topic queue resumes once the queue is at most three
 * quarters full, so the worker has a run of records before the reactor pauses again (each pause
 * is a cancelled receive and a re-arm). One paused on a topic log resumes once the record it
 * waits for is back (committed; had it failed, the connection would have ended). */
static bool connection_may_resume(struct reactor *reactor, const struct connection *connection) {
    if (connection->block == BLOCK_TOPIC_LOG)
        return ack_window_has_returned(&connection->window, connection->awaited_position);
    if (connection->block != BLOCK_TOPIC_QUEUE) return true;
    INTAKE_ASSERT(connection->blocked_record != NULL);
    struct pipeline *pipeline = reactor->pipeline;
    uint64_t length = topic_queue_length(&pipeline->topic_queues[connection->blocked_record->topic_id]);
    return length <= (uint64_t)pipeline->config.topic_queue_capacity * 3 / 4;
}

/* Tries to unblock a connection: first its held record, then its backlog. */
static void connection_resume(struct reactor *reactor, struct connection *connection) {
    if (connection->state != CONNECTION_OPEN) return;
    if (!connection_may_resume(reactor, connection)) {
        list_add(reactor->retry_list, &reactor->retry_count, &connection->on_retry_list,
                 connection_slot(reactor, connection));
        return;
    }
    connection->block = BLOCK_NONE;
    if (connection->blocked_record != NULL) {
        struct record *record = connection->blocked_record;
        enum admit_result admitted = connection_admit(reactor, connection, record);
        if (admitted == ADMIT_BLOCKED) return;
        connection->blocked_record = NULL;
        if (admitted == ADMIT_WAITING) return;
    }
    connection_drain_backlog(reactor, connection);
    if (connection->block == BLOCK_NONE) connection_maybe_rearm(reactor, connection);
    connection_maybe_finish(reactor, connection);
}

/* ----------------------------------------------------------------------- acks --- */

static void connection_send(struct reactor *reactor, struct connection *connection) {
    INTAKE_ASSERT(connection->send_offset < connection->send_length);
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_send(sqe, connection->fd, connection->send_buffer + connection->send_offset,
                       connection->send_length - connection->send_offset, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, user_data_encode(TAG_SEND, connection_slot(reactor, connection),
                                                  connection->generation));
    connection->send_in_flight = true;
}

/* Sends the cumulative ack if it grew (coalesced: one send in flight per connection), or the
 * final ack once an ending connection has nothing left in flight. */
static void connection_flush_ack(struct reactor *reactor, struct connection *connection) {
    INTAKE_ASSERT(connection->state != CONNECTION_FREE);
    if (connection->send_in_flight || connection->socket_dead || connection->final_ack_sent) return;
    uint64_t sequence = connection->window.ack_sequence;
    bool ending_drained = connection->state == CONNECTION_ENDING &&
                          ack_window_length(&connection->window) == 0;
    bool final = ending_drained && connection->end_status != RECORD_STATUS_OK;
    if (!final && sequence <= connection->ack_sent_sequence) return;
    uint32_t status = final ? connection->end_status : RECORD_STATUS_OK;
    connection->send_length = (uint32_t)ack_frame_encode(sequence, status,
                                                         final ? connection->end_detail : NULL,
                                                         connection->send_buffer);
    connection->send_offset = 0;
    connection->ack_sent_sequence = sequence;
    if (final) connection->final_ack_sent = true;
    reactor->counters.acks_sent++;
    connection_send(reactor, connection);
}

static void reactor_on_send(struct reactor *reactor, struct connection *connection, int result) {
    connection->send_in_flight = false;
    if (result <= 0) {
        /* The peer is gone; its records still commit, nothing more is sent. */
        connection->socket_dead = true;
        connection_end(reactor, connection, RECORD_STATUS_OK, NULL);
    } else {
        connection->send_offset += (uint32_t)result;
        if (connection->send_offset < connection->send_length) {
            connection_send(reactor, connection);
            return;
        }
        connection_flush_ack(reactor, connection);
    }
    connection_maybe_finish(reactor, connection);
}

/* ---------------------------------------------------------- connection lifetime --- */

static void connection_open(struct reactor *reactor, int fd) {
    if (reactor->free_slot_count == 0 || reactor->stop_started) {
        /* Every slot is taken: refuse by closing at once (the producer sees a reset/EOF). */
        reactor->counters.connections_refused++;
        close(fd);
        return;
    }
    uint32_t slot = reactor->free_slots[--reactor->free_slot_count];
    struct connection *connection = &reactor->connections[slot];
    INTAKE_ASSERT(connection->state == CONNECTION_FREE);
    uint32_t generation = connection->generation + 1;
    memset(connection, 0, sizeof(*connection));
    connection->generation = generation;
    connection->fd = fd;
    connection->state = CONNECTION_OPEN;
    connection->backlog_head = NO_NODE;
    connection->backlog_tail = NO_NODE;
    size_t window_capacity = reactor->pipeline->config.ack_window_capacity;
    ack_window_init(&connection->window, reactor->window_sequences + (size_t)slot * window_capacity,
                    reactor->window_committed + (size_t)slot * window_capacity,
                    (uint32_t)window_capacity);
    framer_init(&connection->framer, reactor->frame_bytes_max);
    /* Acks are small and latency matters more than packing them. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    reactor->open_connections++;
    reactor->counters.connections_accepted++;
    connection_arm_receive(reactor, connection);
}

/*
 * Lingering close. A connection ended by intake (bad input, a limit, shutdown) may still be
 * sending; closing a socket with unread input makes the kernel send RST, and RST discards the
 * final Ack if it is still queued, so the producer would see "connection reset" instead of the
 * reason. So after the final Ack: shut the write side (FIN follows the Ack), read and discard
 * until the peer closes, for at most REACTOR_LINGER_IDLE_NS without input and
 * REACTOR_LINGER_TOTAL_NS in all, then close.
 */
static void connection_linger_arm(struct reactor *reactor, struct connection *connection) {
    static const struct __kernel_timespec idle = {0, REACTOR_LINGER_IDLE_NS};
    /* The receive and its timeout are linked: both must go in the same submission. */
    if (io_uring_sq_space_left(&reactor->ring) < 2) io_uring_submit(&reactor->ring);
    uint64_t data = user_data_encode(TAG_LINGER, connection_slot(reactor, connection),
                                     connection->generation);
    struct io_uring_sqe *receive = reactor_sqe(reactor);
    io_uring_prep_recv(receive, connection->fd, reactor->linger_scratch,
                       sizeof(reactor->linger_scratch), 0);
    io_uring_sqe_set_data64(receive, data);
    receive->flags |= IOSQE_IO_LINK;
    struct io_uring_sqe *timeout = reactor_sqe(reactor);
    io_uring_prep_link_timeout(timeout, (struct __kernel_timespec *)&idle, 0);
    io_uring_sqe_set_data64(timeout, data | USER_DATA_LINGER_TIMEOUT);
    connection->linger_operations += 2;
}

/* Only connections intake ends itself, with a peer that may still be sending, linger. */
static bool connection_should_linger(const struct connection *connection) {
    return connection->end_status != RECORD_STATUS_OK && connection->final_ack_sent &&
           !connection->socket_dead && !connection->peer_closed && !connection->linger_done;
}

static void connection_linger_start(struct reactor *reactor, struct connection *connection) {
    INTAKE_ASSERT(!connection->lingering);
    connection->lingering = true;
    reactor->counters.lingered++;
    connection->linger_deadline_ns = intake_now_ns() + REACTOR_LINGER_TOTAL_NS;
    shutdown(connection->fd, SHUT_WR);
    connection_linger_arm(reactor, connection);
}

/* Frees the slot once nothing of the connection is in flight anywhere. */
static void connection_maybe_finish(struct reactor *reactor, struct connection *connection) {
    if (connection->state == CONNECTION_OPEN && connection->peer_closed &&
        connection->backlog_head == NO_NODE && connection->blocked_record == NULL &&
        connection->block == BLOCK_NONE)
        connection_end(reactor, connection, RECORD_STATUS_OK, NULL);
    if (connection->state != CONNECTION_ENDING) return;
    if (ack_window_length(&connection->window) != 0) return;
    connection_flush_ack(reactor, connection);
    if (connection->receive_armed || connection->send_in_flight) return;
    if (connection->lingering) return;
    if (connection_should_linger(connection)) {
        connection_linger_start(reactor, connection);
        return;
    }
    /* Freed when delisted: the lists hold slots, and a slot must not change hands under them. */
    if (connection->on_retry_list || connection->on_ack_list || connection->on_units_list) return;
    close(connection->fd);
    connection->fd = -1;
    connection->state = CONNECTION_FREE;
    reactor->free_slots[reactor->free_slot_count++] = connection_slot(reactor, connection);
    INTAKE_ASSERT(reactor->free_slot_count <= reactor->connection_count_max);
    INTAKE_ASSERT(reactor->open_connections > 0);
    reactor->open_connections--;
    reactor->counters.connections_closed++;
}

/* --------------------------------------------------------------- completions --- */

static struct connection *reactor_connection_for(struct reactor *reactor, uint64_t data) {
    uint32_t slot = user_data_slot(data);
    INTAKE_ASSERT(slot < reactor->connection_count_max);
    struct connection *connection = &reactor->connections[slot];
    /* Every operation of a connection completes before its slot is freed and reused. */
    INTAKE_ASSERT(connection->generation == user_data_generation(data));
    INTAKE_ASSERT(connection->state != CONNECTION_FREE);
    return connection;
}

static void reactor_on_receive(struct reactor *reactor, const struct io_uring_cqe *cqe) {
    struct connection *connection = reactor_connection_for(reactor, cqe->user_data);
    struct rx_chunk chunk;
    int errno_value = 0;
    enum rx_event event = reactor->backend->ops->parse(reactor->backend, cqe, &chunk, &errno_value);
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        connection->receive_armed = false;
        connection->cancel_in_flight = false;
    }
    switch (event) {
    case RX_EVENT_DATA:
        if (connection->state == CONNECTION_OPEN) connection_receive_chunk(reactor, connection, &chunk);
        else rx_backend_unref(reactor->backend, chunk.unit);
        break;
    case RX_EVENT_END_OF_STREAM:
        connection->peer_closed = true;
        break;
    case RX_EVENT_OUT_OF_UNITS:
        reactor->counters.pauses_out_of_units++;
        connection->waiting_for_units = true;
        list_add(reactor->units_wait_list, &reactor->units_wait_count, &connection->on_units_list,
                 connection_slot(reactor, connection));
        break;
    case RX_EVENT_RETRY:
    case RX_EVENT_CANCELED:
        break;
    case RX_EVENT_ERROR:
        connection->socket_dead = true;
        connection_end(reactor, connection, RECORD_STATUS_OK, NULL);
        break;
    }
    connection_maybe_rearm(reactor, connection);
    connection_maybe_finish(reactor, connection);
}

/* A linger receive or its linked timeout completed. Input keeps the linger going (within its
 * total bound); end of stream, an error, or the idle timeout (which cancels the receive) end it.
 * Both operations must be back before the next arm or the close. */
static void reactor_on_linger(struct reactor *reactor, const struct io_uring_cqe *cqe) {
    bool is_timeout = user_data_is_linger_timeout(cqe->user_data);
    struct connection *connection =
        reactor_connection_for(reactor, cqe->user_data & ~USER_DATA_LINGER_TIMEOUT);
    INTAKE_ASSERT(connection->lingering);
    INTAKE_ASSERT(connection->linger_operations > 0);
    connection->linger_operations--;
    if (!is_timeout && !(cqe->res > 0 && intake_now_ns() < connection->linger_deadline_ns))
        connection->linger_done = true;
    if (connection->linger_operations > 0) return;
    if (!connection->linger_done) {
        connection_linger_arm(reactor, connection);
        return;
    }
    connection->lingering = false;
    connection_maybe_finish(reactor, connection);
}

static void reactor_on_accept(struct reactor *reactor, const struct io_uring_cqe *cqe) {
    if (!(cqe->flags & IORING_CQE_F_MORE)) reactor->accept_armed = false;
    if (cqe->res >= 0) connection_open(reactor, cqe->res);
    if (!reactor->accept_armed && !reactor->stop_started) reactor_arm_accept(reactor);
}

static void reactor_dispatch(struct reactor *reactor, const struct io_uring_cqe *cqe) {
    switch (user_data_tag(cqe->user_data)) {
    case TAG_ACCEPT:
        reactor_on_accept(reactor, cqe);
        break;
    case TAG_RECEIVE:
        reactor_on_receive(reactor, cqe);
        break;
    case TAG_SEND:
        reactor_on_send(reactor, reactor_connection_for(reactor, cqe->user_data), cqe->res);
        break;
    case TAG_CANCEL:
        break; /* the receive's own final completion says what happened */
    case TAG_LINGER:
        reactor_on_linger(reactor, cqe);
        break;
    case TAG_WAKE:
        reactor->counters.wakeups++;
        reactor_arm_wake(reactor);
        break;
    default:
        INTAKE_ASSERT(!"unknown completion tag");
    }
}

/* ----------------------------------------------------------- batched work --- */

static void reactor_take_returns(struct reactor *reactor) {
    struct pipeline *pipeline = reactor->pipeline;
    struct record *batch[REACTOR_RETURN_BATCH_MAX];
    for (uint32_t worker = 0; worker < pipeline->config.worker_count; worker++) {
        struct spsc_ring *ring = pipeline_return_ring(pipeline, worker, reactor->index);
        uint32_t count = spsc_ring_pop_batch(ring, batch, REACTOR_RETURN_BATCH_MAX);
        for (uint32_t index = 0; index < count; index++) {
            struct record *record = batch[index];
            INTAKE_ASSERT(record->reactor_index == reactor->index);
            INTAKE_ASSERT(record->connection_slot < reactor->connection_count_max);
            struct connection *connection = &reactor->connections[record->connection_slot];
            INTAKE_ASSERT(connection->generation == record->connection_generation);
            bool committed = record->status == RECORD_STATUS_OK;
            ack_window_complete(&connection->window, record->window_position, committed);
            /* Listed before anything may end it, so the slot stays ours until the ack pass. */
            reactor_note_ack(reactor, connection);
            if (!committed) {
                /* Before the record is freed: the connection copies the reason out of it. */
                reactor->counters.records_failed++;
                connection_end(reactor, connection, (enum record_status)record->status,
                               record->status_detail);
            }
            reactor_release_record(reactor, record);
            reactor->counters.records_returned++;
        }
    }
}

static void reactor_retry_blocked(struct reactor *reactor) {
    uint32_t count = reactor->retry_count;
    reactor->retry_count = 0;
    for (uint32_t index = 0; index < count; index++) {
        struct connection *connection = &reactor->connections[reactor->retry_list[index]];
        connection->on_retry_list = false;
        connection_resume(reactor, connection);
        if (connection->block != BLOCK_NONE && connection->state == CONNECTION_OPEN) {
            /* Still blocked: keep it listed (connection_block listed it again already). */
            INTAKE_ASSERT(connection->on_retry_list);
        }
        connection_maybe_finish(reactor, connection);
    }
}

static void reactor_flush_acks(struct reactor *reactor) {
    uint32_t count = reactor->ack_count;
    reactor->ack_count = 0;
    for (uint32_t index = 0; index < count; index++) {
        struct connection *connection = &reactor->connections[reactor->ack_list[index]];
        connection->on_ack_list = false;
        connection_flush_ack(reactor, connection);
        connection_maybe_finish(reactor, connection);
    }
}

/* Receives that ended for lack of units restart once units are back; connections that ended
 * meanwhile just leave the list. */
static void reactor_rearm_waiting_for_units(struct reactor *reactor) {
    if (reactor->units_wait_count == 0) return;
    bool units_back = reactor->backend->ops->units_available(reactor->backend) > 0;
    uint32_t count = reactor->units_wait_count;
    reactor->units_wait_count = 0;
    for (uint32_t index = 0; index < count; index++) {
        uint32_t slot = reactor->units_wait_list[index];
        struct connection *connection = &reactor->connections[slot];
        if (connection->state == CONNECTION_OPEN && !units_back) {
            reactor->units_wait_list[reactor->units_wait_count++] = slot;
            continue;
        }
        connection->on_units_list = false;
        connection->waiting_for_units = false;
        connection_maybe_rearm(reactor, connection);
        connection_maybe_finish(reactor, connection);
    }
}

static void reactor_wake_workers(struct reactor *reactor) {
    struct pipeline *pipeline = reactor->pipeline;
    for (uint32_t worker = 0; worker < pipeline->config.worker_count; worker++) {
        if (!reactor->workers_to_wake[worker]) continue;
        reactor->workers_to_wake[worker] = false;
        worker_wake(pipeline->workers[worker]);
    }
}

static bool reactor_returns_pending(struct reactor *reactor) {
    struct pipeline *pipeline = reactor->pipeline;
    for (uint32_t worker = 0; worker < pipeline->config.worker_count; worker++)
        if (!spsc_ring_is_empty(pipeline_return_ring(pipeline, worker, reactor->index))) return true;
    return false;
}

/* Shutdown, first step: stop accepting and reading; everything admitted still completes. */
static void reactor_begin_stop(struct reactor *reactor) {
    reactor->stop_started = true;
    if (reactor->accept_armed && !reactor->accept_cancelled) {
        struct io_uring_sqe *sqe = reactor_sqe(reactor);
        io_uring_prep_cancel64(sqe, user_data_encode(TAG_ACCEPT, 0, 0), 0);
        io_uring_sqe_set_data64(sqe, user_data_encode(TAG_CANCEL, 0, 0));
        reactor->accept_cancelled = true;
    }
    reactor_continue_stop(reactor);
}

/* Every iteration while stopping: no receive is re-armed (connection_maybe_rearm checks), live
 * ones are cancelled, and a connection ends once the input it already holds (a blocked record
 * or backlog, retried as space returns) is admitted. A pass over the slots per iteration, only
 * during shutdown. */
static void reactor_continue_stop(struct reactor *reactor) {
    for (uint32_t slot = 0; slot < reactor->connection_count_max; slot++) {
        struct connection *connection = &reactor->connections[slot];
        if (connection->state != CONNECTION_OPEN) continue;
        connection_cancel_receive(reactor, connection);
        if (connection->blocked_record != NULL || connection->backlog_head != NO_NODE) continue;
        connection_end(reactor, connection, RECORD_STATUS_SHUTTING_DOWN, "intake is shutting down");
    }
}

/*
 * Receive buffers are shared by a reactor's connections, and a partially received record pins
 * the buffers holding its first part. When every buffer is pinned that way, each of those
 * records waits for buffers that only its own completion would free: no progress is possible
 * (nothing is at the workers to come back, nobody is blocked on anything else). Copying the
 * partial records out would break the one-copy rule, so the connection pinning the most ends
 * with RESOURCE_EXHAUSTED (its records before that point still commit and are acked). Sizing
 * --buffers x --buffer-size above (connections sending at once) x (their largest records)
 * keeps this from happening at all.
 */
static bool reactor_stalled(struct reactor *reactor) {
    return reactor->units_wait_count != 0 && reactor->retry_count == 0 &&
           reactor->backend->ops->units_available(reactor->backend) == 0 &&
           reactor->counters.records_admitted == reactor->counters.records_returned &&
           io_uring_cq_ready(&reactor->ring) == 0;
}

static void reactor_break_stall(struct reactor *reactor) {
    uint64_t progress = reactor->backend->stats.completions + reactor->backend->stats.units_recycled +
                        reactor->counters.records_returned + reactor->counters.connections_closed;
    if (!reactor_stalled(reactor)) {
        reactor->stall_suspected = false;
        return;
    }
    if (!reactor->stall_suspected || progress != reactor->stall_progress_mark) {
        reactor->stall_suspected = true; /* reactor_wait looks again after a timed wait */
        reactor->stall_progress_mark = progress;
        return;
    }
    reactor->stall_suspected = false;
    struct connection *largest = NULL;
    for (uint32_t slot = 0; slot < reactor->connection_count_max; slot++) {
        struct connection *connection = &reactor->connections[slot];
        if (connection->state != CONNECTION_OPEN || connection->slices_pinned == 0) continue;
        if (largest == NULL || connection->slices_pinned > largest->slices_pinned) largest = connection;
    }
    if (largest == NULL) return;
    reactor->counters.stalls_broken++;
    connection_end(reactor, largest, RECORD_STATUS_RESOURCE_EXHAUSTED,
                   "receive buffers exhausted by partially received records; "
                   "raise --buffers or --buffer-size, or lower --max-frame");
}

static bool reactor_finished(const struct reactor *reactor) {
    return reactor->stop_started && reactor->open_connections == 0 && !reactor->accept_armed;
}

static void reactor_wait(struct reactor *reactor) {
    /* Dekker-style handshake with workers: announce we may sleep, then look once more at the
     * return rings. A worker publishes a return (release store of the ring tail), then checks
     * wake_armed; one of the two sides always sees the other (both are seq_cst). */
    atomic_store(&reactor->wake_armed, 1);
    if (reactor_returns_pending(reactor) || atomic_load(&reactor->report_requested)) {
        atomic_store(&reactor->wake_armed, 0);
        /* Not sleeping, but with deferred task running completions are only posted when we
         * ask for events: submit and run task work without waiting. */
        io_uring_submit_and_get_events(&reactor->ring);
        return;
    }
    if (reactor->retry_count > 0 || reactor->stall_suspected) {
        struct __kernel_timespec timeout = {0, REACTOR_BLOCKED_RECHECK_NS};
        struct io_uring_cqe *cqe = NULL;
        io_uring_submit_and_wait_timeout(&reactor->ring, &cqe, 1, &timeout, NULL);
    } else {
        io_uring_submit_and_wait(&reactor->ring, 1);
    }
    atomic_store(&reactor->wake_armed, 0);
}

static void reactor_process_completions(struct reactor *reactor) {
    struct io_uring_cqe *cqe;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&reactor->ring, head, cqe) {
        reactor_dispatch(reactor, cqe);
        if (++seen == REACTOR_CQE_BATCH_MAX) break;
    }
    io_uring_cq_advance(&reactor->ring, seen);
}

static void reactor_loop(struct reactor *reactor) {
    struct pipeline *pipeline = reactor->pipeline;
    reactor_arm_accept(reactor);
    reactor_arm_wake(reactor);
    for (;;) {
        if (atomic_load_explicit(&pipeline->stopping, memory_order_acquire)) {
            if (!reactor->stop_started) reactor_begin_stop(reactor);
            else reactor_continue_stop(reactor);
        }
        if (atomic_exchange(&reactor->report_requested, false))
            reactor_print_counters(reactor, stderr, "on request");
        reactor_take_returns(reactor);
        reactor_retry_blocked(reactor);
        reactor_flush_acks(reactor);
        reactor_break_stall(reactor);
        rx_backend_flush(reactor->backend, &reactor->ring);
        reactor_rearm_waiting_for_units(reactor);
        reactor_wake_workers(reactor);
        if (reactor_finished(reactor)) break;
        reactor_wait(reactor);
        reactor_process_completions(reactor);
        reactor_wake_workers(reactor);
    }
}

/* -------------------------------------------------------------- setup, teardown --- */

static int reactor_setup_ring(struct reactor *reactor, enum rx_backend_kind kind) {
    struct io_uring_params params;
    memset(&params, 0, sizeof(params));
    /* One thread submits and reaps (single issuer); task work runs when we wait (deferred), so
     * completions are posted in batches; the CQ is sized for multishot bursts. */
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
                   rx_backend_ring_flags(kind);
    params.cq_entries = reactor->pipeline->config.cq_entries;
    int result = io_uring_queue_init_params(REACTOR_SQ_ENTRIES, &reactor->ring, &params);
    if (result < 0) {
        snprintf(reactor->start_why, sizeof(reactor->start_why),
                 "io_uring setup failed: %s%s", strerror(-result),
                 result == -EINVAL ? " (needs Linux 6.1+ for SINGLE_ISSUER and DEFER_TASKRUN)" : "");
        return result;
    }
    reactor->ring_ready = true;
    return 0;
}

static void reactor_fill_backend_config(const struct reactor *reactor, enum rx_backend_kind kind,
                                        struct rx_backend_config *backend) {
    const struct pipeline_config *config = &reactor->pipeline->config;
    memset(backend, 0, sizeof(*backend));
    backend->kind = kind;
    backend->reactor_index = (uint16_t)reactor->index;
    backend->buffer_count = config->buffer_count;
    backend->buffer_bytes = config->buffer_bytes;
    backend->buffer_group = 0;
    backend->zcrx_interface = config->zcrx_interface;
    backend->zcrx_queue = reactor->index < config->zcrx_queue_count ? config->zcrx_queues[reactor->index]
                                                                     : reactor->index;
    backend->zcrx_nodev = config->zcrx_nodev;
    backend->zcrx_area_bytes = config->zcrx_area_bytes;
    backend->zcrx_rx_buffer_bytes = config->zcrx_rx_buffer_bytes;
    /* Above the most units that can be in flight: each zcrx completion holds one receive
     * buffer of the area until it is refilled, so the area's buffer count bounds them. */
    uint64_t rx_buffer_bytes = config->zcrx_rx_buffer_bytes ? config->zcrx_rx_buffer_bytes : 4096;
    uint64_t area_buffers = config->zcrx_area_bytes / rx_buffer_bytes;
    uint32_t refill = 64;
    while (refill < area_buffers && refill < 32768) refill <<= 1;
    backend->zcrx_refill_entries = refill;
}

/* Ring + backend, with auto falling back from zcrx to pbuf. Runs on the reactor thread. */
static int reactor_setup_backend(struct reactor *reactor) {
    enum backend_choice choice = reactor->pipeline->config.backend;
    struct rx_backend_config backend;
    if (choice != BACKEND_CHOICE_PBUF) {
        int result = reactor_setup_ring(reactor, RX_BACKEND_ZCRX);
        if (result < 0) return result;
        reactor_fill_backend_config(reactor, RX_BACKEND_ZCRX, &backend);
        result = rx_backend_create(&backend, &reactor->ring, &reactor->backend, reactor->start_why,
                                   sizeof(reactor->start_why));
        if (result == 0) return 0;
        if (choice == BACKEND_CHOICE_ZCRX) return result;
        snprintf(reactor->fallback_reason, sizeof(reactor->fallback_reason), "%s", reactor->start_why);
        reactor->start_why[0] = '\0';
        io_uring_queue_exit(&reactor->ring);
        reactor->ring_ready = false;
    }
    int result = reactor_setup_ring(reactor, RX_BACKEND_PBUF);
    if (result < 0) return result;
    reactor_fill_backend_config(reactor, RX_BACKEND_PBUF, &backend);
    return rx_backend_create(&backend, &reactor->ring, &reactor->backend, reactor->start_why,
                             sizeof(reactor->start_why));
}

/* A record of N bytes in fragments of F bytes spans at most ceil(N / F) + 1 of them (its ends
 * may share fragments with its neighbours): zcrx caps what --max-frame can promise. */
static void reactor_limit_frame(struct reactor *reactor) {
    reactor->frame_bytes_max = reactor->pipeline->config.frame_bytes_max;
    if (reactor->backend->kind != RX_BACKEND_ZCRX) return;
    struct rx_zcrx_info info;
    rx_zcrx_info(reactor->backend, &info);
    uint64_t fragment_bytes = info.rx_buffer_bytes ? info.rx_buffer_bytes : 4096;
    uint64_t limit = fragment_bytes * (RECORD_SLICES_MAX - 2);
    if (limit < reactor->frame_bytes_max) reactor->frame_bytes_max = (uint32_t)limit;
}

static void *reactor_thread_main(void *argument) {
    struct reactor *reactor = argument;
    reactor->start_result = reactor_setup_backend(reactor);
    if (reactor->start_result == 0) reactor_limit_frame(reactor);
    int result = reactor->start_result;
    sem_post(&reactor->started);
    if (result == 0) reactor_loop(reactor);
    return NULL;
}

static int reactor_open_listener(struct reactor *reactor, char *why, size_t why_capacity) {
    const struct pipeline_config *config = &reactor->pipeline->config;
    int fd = socket(config->listen_address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, why_capacity, "socket: %s", strerror(errno));
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Every reactor listens on the same port; the kernel spreads connections over them. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&config->listen_address, config->listen_address_length) < 0 ||
        listen(fd, 4096) < 0) {
        int error = errno;
        snprintf(why, why_capacity, "cannot listen on %s: %s", config->listen_text, strerror(error));
        close(fd);
        return -error;
    }
    reactor->listen_fd = fd;
    return 0;
}

static int reactor_allocate(struct reactor *reactor) {
    const struct pipeline_config *config = &reactor->pipeline->config;
    uint32_t slots = config->connections_max;
    reactor->connection_count_max = slots;
    reactor->connections = calloc(slots, sizeof(struct connection));
    reactor->free_slots = malloc(slots * sizeof(uint32_t));
    reactor->retry_list = malloc(slots * sizeof(uint32_t));
    reactor->ack_list = malloc(slots * sizeof(uint32_t));
    reactor->units_wait_list = malloc(slots * sizeof(uint32_t));
    reactor->workers_to_wake = calloc(config->worker_count, sizeof(bool));
    /* Receives cancelled for a pause may still deliver up to a CQ's worth of completions. */
    reactor->backlog_node_count = config->cq_entries * 2 + slots;
    reactor->backlog_nodes = malloc(reactor->backlog_node_count * sizeof(struct backlog_node));
    size_t window_entries = (size_t)slots * config->ack_window_capacity;
    reactor->window_region_bytes = window_entries * (sizeof(uint64_t) + 1);
    /* Mapped, so an idle connection's window costs no resident memory. */
    void *windows = mmap(NULL, reactor->window_region_bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (windows == MAP_FAILED) windows = NULL;
    reactor->window_sequences = windows;
    reactor->window_committed = windows ? (uint8_t *)windows + window_entries * sizeof(uint64_t) : NULL;
    if (!reactor->connections || !reactor->free_slots || !reactor->retry_list || !reactor->ack_list ||
        !reactor->units_wait_list || !reactor->workers_to_wake || !reactor->backlog_nodes || !windows)
        return -ENOMEM;
    for (uint32_t slot = 0; slot < slots; slot++) {
        reactor->free_slots[slot] = slots - 1 - slot;
        reactor->connections[slot].fd = -1;
    }
    reactor->free_slot_count = slots;
    for (uint32_t node = 0; node < reactor->backlog_node_count; node++)
        reactor->backlog_nodes[node].next = node + 1 < reactor->backlog_node_count ? node + 1 : NO_NODE;
    reactor->backlog_free_head = 0;
    return record_pool_init(&reactor->pool, config->records_in_flight_max, (uint16_t)reactor->index);
}

int reactor_create(struct pipeline *pipeline, uint32_t index, struct reactor **out, char *why,
                   size_t why_capacity) {
    struct reactor *reactor = calloc(1, sizeof(*reactor));
    if (reactor == NULL) return -ENOMEM;
    reactor->pipeline = pipeline;
    reactor->index = index;
    reactor->listen_fd = -1;
    reactor->wake_fd = eventfd(0, EFD_CLOEXEC);
    sem_init(&reactor->started, 0, 0);
    int result = reactor->wake_fd < 0 ? -errno : reactor_allocate(reactor);
    if (result < 0) snprintf(why, why_capacity, "reactor %u: out of memory at startup", index);
    if (result == 0) result = reactor_open_listener(reactor, why, why_capacity);
    if (result < 0) {
        reactor_destroy(reactor);
        return result;
    }
    *out = reactor;
    return 0;
}

int reactor_start(struct reactor *reactor, char *why, size_t why_capacity) {
    int result = pthread_create(&reactor->thread, NULL, reactor_thread_main, reactor);
    if (result != 0) {
        snprintf(why, why_capacity, "reactor %u: cannot start thread: %s", reactor->index,
                 strerror(result));
        return -result;
    }
    reactor->thread_started = true;
    sem_wait(&reactor->started);
    if (reactor->start_result < 0) {
        snprintf(why, why_capacity, "reactor %u: %s", reactor->index, reactor->start_why);
        pthread_join(reactor->thread, NULL);
        reactor->thread_started = false;
    }
    return reactor->start_result;
}

const char *reactor_backend_name(const struct reactor *reactor) {
    return reactor->backend ? reactor->backend->ops->name : "none";
}

uint32_t reactor_frame_bytes_max(const struct reactor *reactor) {
    return reactor->frame_bytes_max;
}

int reactor_listen_fd(const struct reactor *reactor) {
    return reactor->listen_fd;
}

const char *reactor_fallback_reason(const struct reactor *reactor) {
    return reactor->fallback_reason;
}

static void reactor_force_wake(struct reactor *reactor) {
    uint64_t one = 1;
    ssize_t written = write(reactor->wake_fd, &one, sizeof(one));
    INTAKE_ASSERT(written == (ssize_t)sizeof(one));
}

void reactor_wake(struct reactor *reactor) {
    /* Pairs with reactor_wait: the caller published its work before this seq_cst exchange. */
    if (atomic_load(&reactor->wake_armed) == 0) return;
    if (atomic_exchange(&reactor->wake_armed, 0) == 0) return;
    reactor_force_wake(reactor);
}

void reactor_request_report(struct reactor *reactor) {
    atomic_store(&reactor->report_requested, true);
    reactor_force_wake(reactor);
}

void reactor_join(struct reactor *reactor) {
    if (!reactor->thread_started) return;
    reactor_force_wake(reactor);
    pthread_join(reactor->thread, NULL);
    reactor->thread_started = false;
}

bool reactor_try_join(struct reactor *reactor, uint32_t timeout_ms) {
    if (!reactor->thread_started) return true;
    reactor_force_wake(reactor);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += (long)timeout_ms * 1000000L;
    deadline.tv_sec += deadline.tv_nsec / 1000000000L;
    deadline.tv_nsec %= 1000000000L;
    if (pthread_timedjoin_np(reactor->thread, NULL, &deadline) != 0) return false;
    reactor->thread_started = false;
    return true;
}

void reactor_destroy(struct reactor *reactor) {
    if (reactor == NULL) return;
    INTAKE_ASSERT(!reactor->thread_started);
    if (reactor->backend != NULL)
        reactor->backend->ops->destroy(reactor->backend, reactor->ring_ready ? &reactor->ring : NULL);
    if (reactor->ring_ready) io_uring_queue_exit(&reactor->ring);
    if (reactor->listen_fd >= 0) close(reactor->listen_fd);
    if (reactor->wake_fd >= 0) close(reactor->wake_fd);
    if (reactor->window_sequences != NULL) munmap(reactor->window_sequences, reactor->window_region_bytes);
    record_pool_destroy(&reactor->pool);
    free(reactor->connections);
    free(reactor->free_slots);
    free(reactor->retry_list);
    free(reactor->ack_list);
    free(reactor->units_wait_list);
    free(reactor->workers_to_wake);
    free(reactor->backlog_nodes);
    sem_destroy(&reactor->started);
    free(reactor);
}

void reactor_print_counters(struct reactor *reactor, FILE *out, const char *when) {
    const struct reactor_counters *c = &reactor->counters;
    const struct rx_backend_stats *b = &reactor->backend->stats;
    fprintf(out,
            "intaked: reactor %u (%s) %s: connections accepted=%lu refused=%lu closed=%lu failed=%lu "
            "records admitted=%lu returned=%lu failed=%lu truncated_frames=%lu acks=%lu "
            "pauses topic_queue=%lu record_pool=%lu ack_window=%lu out_of_units=%lu topic_log=%lu "
            "over_log_limit=%lu topic_creations_refused=%lu "
            "backlog_exhausted=%lu stalls_broken=%lu lingered=%lu wakeups=%lu\n",
            reactor->index, reactor_backend_name(reactor), when, c->connections_accepted,
            c->connections_refused, c->connections_closed, c->connections_failed, c->records_admitted,
            c->records_returned, c->records_failed, c->frames_truncated, c->acks_sent,
            c->pauses_topic_queue, c->pauses_record_pool, c->pauses_ack_window, c->pauses_out_of_units,
            c->pauses_topic_log, c->records_over_log_limit, c->topic_creations_refused,
            c->backlog_exhausted, c->stalls_broken, c->lingered, c->wakeups);
    fprintf(out,
            "intaked: reactor %u backend %s: bytes_received=%lu completions=%lu units_recycled=%lu "
            "rearms out_of_units=%lu overflow=%lu other=%lu refill_flushes=%lu units_in_use=%u\n",
            reactor->index, reactor_backend_name(reactor), b->bytes_received, b->completions,
            b->units_recycled, b->rearms_out_of_units, b->rearms_overflow, b->rearms_other,
            b->refill_flushes, reactor->backend->units_referenced - reactor->backend->units_held_by_kernel);
    fflush(out);
}

bool reactor_all_units_returned(const struct reactor *reactor) {
    return reactor->backend->units_referenced == reactor->backend->units_held_by_kernel &&
           reactor->pool.free_count == reactor->pool.capacity;
}

uint64_t reactor_bytes_received(const struct reactor *reactor) {
    return reactor->backend->stats.bytes_received;
}
