/*
 * render_prometheus.c: the Prometheus text exposition (format 0.0.4) of the counters region and
 * the topics' logs (see counters_render.h), for /metrics and `intake-stat --format prometheus`.
 *
 * The format wants each family's samples together, and most families have one sample per
 * topic: the topics are walked once, each topic's counters summed and its log looked at once
 * (intake_log_inspect), into one sample per topic and the consumers' lag lines; the families
 * are then written from those. Per-topic lines are appended, not formatted with printf, so a
 * scrape at 1,000 topics stays a few milliseconds of the metrics thread.
 */
#include <stdio.h>
#include <string.h>

#include "counters_health.h"
#include "counters_render.h"

static const char *const end_status_names[5] = {"ok", "rejected", "resource_exhausted",
                                                "shutting_down", "internal"};

static void family(struct text_buffer *out, const char *name, const char *type, const char *help) {
    text_buffer_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One per-reactor counter family: `offset` of the field in the reactor row. */
struct reactor_family {
    const char *name;
    const char *type;
    const char *help;
    size_t offset;
};

#define REACTOR_FIELD(field) offsetof(struct intake_counters_reactor_row, field)
static const struct reactor_family reactor_families[] = {
    {"intake_connections_open", "gauge", "Connections open now.", REACTOR_FIELD(connections_open)},
    {"intake_connections_accepted_total", "counter", "Connections accepted.",
     REACTOR_FIELD(connections_accepted)},
    {"intake_connections_refused_total", "counter",
     "Connections refused because every slot was taken (--connections-max).",
     REACTOR_FIELD(connections_refused)},
    {"intake_connections_closed_total", "counter", "Connections ended, for any reason.",
     REACTOR_FIELD(connections_closed)},
    {"intake_connections_lingered_total", "counter",
     "Closes that waited for the producer after a final non-OK Ack.",
     REACTOR_FIELD(connections_lingered)},
    {"intake_stalls_broken_total", "counter",
     "Connections ended to free receive buffers pinned by partially received records.",
     REACTOR_FIELD(stalls_broken)},
    {"intake_deadline_kills_total", "counter",
     "Connections ended by a deadline (idle or too slow producers).",
     REACTOR_FIELD(deadline_kills)},
    {"intake_deadline_kills_frame_total", "counter",
     "Connections ended because a record was not complete within --frame-timeout-ms.",
     REACTOR_FIELD(deadline_kills_frame)},
    {"intake_deadline_kills_idle_total", "counter",
     "Connections ended after --idle-timeout-ms of silence.", REACTOR_FIELD(deadline_kills_idle)},
    {"intake_records_over_log_limit_total", "counter",
     "Records refused because they are larger than their topic's log takes.",
     REACTOR_FIELD(records_over_log_limit)},
    {"intake_topic_creations_refused_total", "counter",
     "Connections ended for creating more topics than --topics-per-connection.",
     REACTOR_FIELD(topic_creations_refused)},
    {"intake_accept_errors_total", "counter", "Accept completions with an error.",
     REACTOR_FIELD(accept_errors)},
    {"intake_accept_pauses_total", "counter",
     "Accepting paused for a moment after EMFILE, ENFILE, ENOBUFS or ENOMEM.",
     REACTOR_FIELD(accept_pauses)},
    {"intake_partial_cap_pauses_total", "counter",
     "Frames that waited because partial records reached their share of the record pool.",
     REACTOR_FIELD(partial_cap_pauses)},
    {"intake_partial_evictions_total", "counter",
     "Connections ended to free record-pool entries held by partial records.",
     REACTOR_FIELD(partial_evictions)},
    {"intake_hellos_answered_total", "counter",
     "Hello frames answered with the producer's acknowledged sequence.",
     REACTOR_FIELD(hellos_answered)},
    {"intake_identity_rejections_total", "counter",
     "Connections rejected for their identity: a misplaced or malformed Hello, a producer_id of "
     "the wrong size or one that differs on a connection.",
     REACTOR_FIELD(identity_rejections)},
    {"intake_sequence_rejections_total", "counter",
     "Connections rejected for a sequence out of order on the connection, or a first record too "
     "far ahead of what intaked has seen of its producer.",
     REACTOR_FIELD(sequence_rejections)},
    {"intake_sequence_gap_fills_total", "counter",
     "Records inside a gap of their producer: appended, never answered as duplicates.",
     REACTOR_FIELD(sequence_gap_fills)},
    {"intake_producer_refusals_total", "counter",
     "Connections refused because every producer table entry was held by a live connection.",
     REACTOR_FIELD(producer_refusals)},
    {"intake_reactor_records_admitted_total", "counter",
     "Records framed, checked and queued to their topic.", REACTOR_FIELD(records_admitted)},
    {"intake_reactor_records_returned_total", "counter", "Records back from the workers.",
     REACTOR_FIELD(records_returned)},
    {"intake_reactor_records_failed_total", "counter",
     "Records back from the workers not committed.", REACTOR_FIELD(records_failed)},
    {"intake_frames_truncated_total", "counter",
     "Connections that ended with a partial record pending.", REACTOR_FIELD(frames_truncated)},
    {"intake_acks_sent_total", "counter", "Ack frames sent.", REACTOR_FIELD(acks_sent)},
    {"intake_backlog_exhausted_total", "counter", "Times the receive backlog nodes ran out.",
     REACTOR_FIELD(backlog_exhausted)},
    {"intake_reactor_wakeups_total", "counter", "Reactor wake-ups by workers.",
     REACTOR_FIELD(wakeups)},
    {"intake_reactor_submit_busy_total", "counter",
     "io_uring_enter answered EBUSY, EAGAIN or EINTR (reaped and retried).",
     REACTOR_FIELD(submit_busy)},
    {"intake_reactor_socket_option_errors_total", "counter",
     "setsockopt or shutdown failed on a connection.", REACTOR_FIELD(socket_option_errors)},
    {"intake_backend_bytes_received_total", "counter", "Bytes received by the receive backend.",
     REACTOR_FIELD(backend_bytes_received)},
    {"intake_backend_completions_total", "counter", "Receive completions with data.",
     REACTOR_FIELD(backend_completions)},
    {"intake_backend_units_recycled_total", "counter",
     "Receive units given back to the kernel (buffers re-added, refill entries posted).",
     REACTOR_FIELD(backend_units_recycled)},
    {"intake_backend_refill_flushes_total", "counter", "zcrx device-less refill flushes.",
     REACTOR_FIELD(backend_refill_flushes)},
    {"intake_backend_units_in_use", "gauge", "Receive units held by intake now.",
     REACTOR_FIELD(backend_units_in_use)},
};

static uint64_t reactor_field(const struct intake_counters_reactor_row *row, size_t offset) {
    return counters_load((const _Atomic uint64_t *)((const uint8_t *)row + offset));
}

static void render_reactors(const struct counters_view *view, uint64_t now_ns,
                            struct text_buffer *out) {
    const struct intake_counters_header *header = view->header;
    family(out, "intake_thread_heartbeat_age_seconds", "gauge",
           "Seconds since the thread's loop last stored its heartbeat (idle threads beat every "
           "second).");
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++) {
        uint64_t beat = counters_load(&counters_view_reactor(view, reactor)->heartbeat_ns);
        double age = beat == 0 || beat > now_ns ? 0.0 : (double)(now_ns - beat) / 1e9;
        text_buffer_printf(out, "intake_thread_heartbeat_age_seconds{thread=\"reactor-%u\"} %.3f\n",
                           reactor, age);
    }
    for (uint32_t worker = 0; worker < header->worker_count; worker++) {
        uint64_t beat = counters_load(&counters_view_worker(view, worker)->heartbeat_ns);
        double age = beat == 0 || beat > now_ns ? 0.0 : (double)(now_ns - beat) / 1e9;
        text_buffer_printf(out, "intake_thread_heartbeat_age_seconds{thread=\"worker-%u\"} %.3f\n",
                           worker, age);
    }
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(reactor_families); index++) {
        const struct reactor_family *entry = &reactor_families[index];
        family(out, entry->name, entry->type, entry->help);
        for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++)
            text_buffer_printf(out, "%s{reactor=\"%u\"} %lu\n", entry->name, reactor,
                               reactor_field(counters_view_reactor(view, reactor), entry->offset));
    }
    family(out, "intake_connections_ended_total", "counter",
           "Connections ended, by the status of their final Ack (ok: the producer closed).");
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++)
        for (uint32_t status = 0; status < INTAKE_ARRAY_LENGTH(end_status_names); status++)
            text_buffer_printf(
                out, "intake_connections_ended_total{reactor=\"%u\",status=\"%s\"} %lu\n", reactor,
                end_status_names[status],
                counters_load(&counters_view_reactor(view, reactor)->connections_ended[status]));
    family(out, "intake_pauses_total", "counter",
           "Times a connection stopped reading until space returned, by cause.");
    static const char *const causes[5] = {"topic_queue", "record_pool", "ack_window",
                                          "out_of_units", "topic_log"};
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++) {
        const struct intake_counters_reactor_row *row = counters_view_reactor(view, reactor);
        const _Atomic uint64_t *values[5] = {&row->pauses_topic_queue, &row->pauses_record_pool,
                                             &row->pauses_ack_window, &row->pauses_out_of_units,
                                             &row->pauses_topic_log};
        for (uint32_t cause = 0; cause < 5; cause++)
            text_buffer_printf(out, "intake_pauses_total{reactor=\"%u\",cause=\"%s\"} %lu\n",
                               reactor, causes[cause], counters_load(values[cause]));
    }
    family(out, "intake_backend_rearms_total", "counter",
           "Multishot receives re-armed, by why they ended.");
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++) {
        const struct intake_counters_reactor_row *row = counters_view_reactor(view, reactor);
        text_buffer_printf(
            out,
            "intake_backend_rearms_total{reactor=\"%u\",reason=\"out_of_units\"} %lu\n"
            "intake_backend_rearms_total{reactor=\"%u\",reason=\"cq_overflow\"} %lu\n"
            "intake_backend_rearms_total{reactor=\"%u\",reason=\"other\"} %lu\n",
            reactor, counters_load(&row->backend_rearms_out_of_units), reactor,
            counters_load(&row->backend_rearms_overflow), reactor,
            counters_load(&row->backend_rearms_other));
    }
}

/* TLS (issue 17): only when the daemon has a TLS listener. */
static const struct reactor_family tls_families[] = {
    {"intake_tls_handshakes_refused_total", "counter",
     "TLS connections refused because every handshake slot was taken (--handshakes-max).",
     REACTOR_FIELD(tls_handshakes_refused)},
    {"intake_tls_handshakes_in_progress", "gauge", "TLS handshakes running now.",
     REACTOR_FIELD(tls_handshakes_in_progress)},
    {"intake_tls_records_decrypted_total", "counter",
     "TLS application data records decrypted in place.", REACTOR_FIELD(tls_records_decrypted)},
    {"intake_tls_auth_failures_total", "counter",
     "TLS records whose authentication tag did not verify (each ended its connection).",
     REACTOR_FIELD(tls_auth_failures)},
    {"intake_tls_record_errors_total", "counter",
     "TLS records that broke another record-layer rule (each ended its connection).",
     REACTOR_FIELD(tls_record_errors)},
    {"intake_tls_alerts_received_total", "counter",
     "TLS error alerts received from peers (close_notify not counted).",
     REACTOR_FIELD(tls_alerts_received)},
};

static void render_tls(const struct counters_view *view, struct text_buffer *out) {
    const struct intake_counters_header *header = view->header;
    if (header->tls_listen[0] == '\0') return;
    family(out, "intake_tls_handshakes_total", "counter", "TLS handshakes completed.");
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++)
        text_buffer_printf(out, "intake_tls_handshakes_total{reactor=\"%u\"} %lu\n", reactor,
                           counters_load(&counters_view_reactor(view, reactor)->tls_handshakes_ok));
    family(out, "intake_tls_handshake_failures_total", "counter",
           "TLS handshakes that failed, by reason.");
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++)
        for (uint32_t reason = 0; reason < INTAKE_COUNTERS_HANDSHAKE_FAILURES; reason++)
            text_buffer_printf(
                out, "intake_tls_handshake_failures_total{reactor=\"%u\",reason=\"%s\"} %lu\n",
                reactor, counters_handshake_failure_reasons[reason],
                counters_load(
                    &counters_view_reactor(view, reactor)->tls_handshakes_failed[reason]));
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(tls_families); index++) {
        const struct reactor_family *entry = &tls_families[index];
        family(out, entry->name, entry->type, entry->help);
        for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++)
            text_buffer_printf(out, "%s{reactor=\"%u\"} %lu\n", entry->name, reactor,
                               reactor_field(counters_view_reactor(view, reactor), entry->offset));
    }
    family(out, "intake_tls_key_updates_total", "counter",
           "TLS key updates, by direction (received: the peer's read key moved on).");
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++) {
        const struct intake_counters_reactor_row *row = counters_view_reactor(view, reactor);
        text_buffer_printf(out,
                           "intake_tls_key_updates_total{reactor=\"%u\",direction=\"received\"} "
                           "%lu\nintake_tls_key_updates_total{reactor=\"%u\",direction=\"sent\"} "
                           "%lu\n",
                           reactor, counters_load(&row->tls_key_updates_received), reactor,
                           counters_load(&row->tls_key_updates_sent));
    }
}

static void render_workers(const struct counters_view *view, struct text_buffer *out) {
    static const struct {
        const char *name, *help;
        size_t offset;
    } worker_families[] = {
        {"intake_worker_records_committed_total", "Records appended to logs and published.",
         offsetof(struct intake_counters_worker_row, records_committed)},
        {"intake_worker_bytes_copied_total",
         "Payload bytes copied into logs (the one user-space copy).",
         offsetof(struct intake_counters_worker_row, bytes_copied)},
        {"intake_worker_records_rejected_total", "Records the full decode rejected.",
         offsetof(struct intake_counters_worker_row, records_rejected)},
        {"intake_worker_records_failed_total", "Records answered INTERNAL or SHUTTING_DOWN.",
         offsetof(struct intake_counters_worker_row, records_failed)},
        {"intake_worker_records_duplicate_total",
         "Records answered OK without appending: their producer's sequence was committed.",
         offsetof(struct intake_counters_worker_row, records_duplicate)},
        {"intake_worker_publishes_total", "Log publishes (batches).",
         offsetof(struct intake_counters_worker_row, publishes)},
        {"intake_worker_log_full_waits_total", "Times a full log (block mode) made a worker wait.",
         offsetof(struct intake_counters_worker_row, log_full_waits)},
        {"intake_worker_log_retries_total", "Topic logs that had failed, asked for again.",
         offsetof(struct intake_counters_worker_row, log_retries)},
        {"intake_worker_sleeps_total", "Times a worker slept with nothing to do.",
         offsetof(struct intake_counters_worker_row, sleeps)},
    };
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(worker_families); index++) {
        family(out, worker_families[index].name, "counter", worker_families[index].help);
        for (uint32_t worker = 0; worker < view->header->worker_count; worker++) {
            const uint8_t *row = (const uint8_t *)counters_view_worker(view, worker);
            text_buffer_printf(
                out, "%s{worker=\"%u\"} %lu\n", worker_families[index].name, worker,
                counters_load((const _Atomic uint64_t *)(row + worker_families[index].offset)));
        }
    }
}

/* ------------------------------------------------------------------- topics --- */

/* The topic families, in the order they are written: the counters region's, then the log's. */
enum topic_value {
    TOPIC_RECEIVED_RECORDS,
    TOPIC_RECEIVED_BYTES,
    TOPIC_COMMITTED_RECORDS,
    TOPIC_COMMITTED_BYTES,
    TOPIC_REJECTED,
    TOPIC_FAILED,
    TOPIC_DUPLICATE,
    TOPIC_EVICTIONS,
    TOPIC_UNREMEMBERED,
    TOPIC_REBUILDS,
    TOPIC_UNPROTECTED,
    TOPIC_REPAIRS,
    TOPIC_LOG_COMMIT_POSITION, /* the first of the log's: absent when the log is unreadable */
    TOPIC_LOG_NEXT_OFFSET,
    TOPIC_LOG_RETAINED_POSITION,
    TOPIC_VALUES,
};

static const struct {
    const char *name, *type, *help;
} topic_families[TOPIC_VALUES] = {
    {"intake_records_received_total", "counter", "Records admitted for the topic (all reactors)."},
    {"intake_bytes_received_total", "counter", "Record bytes admitted for the topic."},
    {"intake_records_committed_total", "counter", "Records committed to the topic's log."},
    {"intake_bytes_committed_total", "counter", "Record bytes committed to the topic's log."},
    {"intake_records_rejected_total", "counter", "Records of the topic the full decode rejected."},
    {"intake_records_failed_total", "counter",
     "Records of the topic answered INTERNAL or SHUTTING_DOWN."},
    {"intake_records_duplicate_total", "counter",
     "Records answered OK without appending: their producer's sequence was committed."},
    {"intake_dedupe_evictions_total", "counter",
     "Producers evicted from the topic's full deduplication table."},
    {"intake_dedupe_unremembered_total", "counter",
     "Producers back after eviction: their records were appended as new."},
    {"intake_dedupe_rebuilds_total", "counter",
     "Times the topic's deduplication table file was damaged and rebuilt from the log."},
    {"intake_dedupe_unprotected_total", "counter",
     "Records appended without deduplication protection (inside a gap of their producer, or "
     "a producer the table could not hold): a resend of one may land twice."},
    {"intake_dedupe_repairs_total", "counter",
     "Times the topic's deduplication table had a copy invalid and re-applied the whole log."},
    {"intake_log_commit_position_bytes", "gauge",
     "End of the published entries in the topic's log."},
    {"intake_log_next_offset", "gauge", "Offset the next record of the topic will get."},
    {"intake_log_retained_position_bytes", "gauge", "Oldest intact entry in the topic's log."},
};

/* One topic of one rendering: its escaped label (in renderer->labels) and its values. */
struct prometheus_topic_sample {
    uint32_t label_offset, label_length;
    bool log_known;
    uint64_t values[TOPIC_VALUES];
};

/* `metric{topic="label"} value`: the line is reserved whole, then filled with plain copies
 * (17,000 such lines make a scrape at 1,000 topics). */
static void sample_line(struct text_buffer *out, const char *metric, size_t metric_length,
                        const char *label, uint32_t label_length, uint64_t value) {
    size_t line_max = metric_length + sizeof("{topic=\"\"} \n") + label_length + 20;
    if (out->truncated || line_max >= out->capacity - out->length) {
        out->truncated = true;
        return;
    }
    char *at = out->data + out->length;
    memcpy(at, metric, metric_length);
    at += metric_length;
    memcpy(at, "{topic=\"", 8);
    at += 8;
    memcpy(at, label, label_length);
    at += label_length;
    memcpy(at, "\"} ", 3);
    at += 3;
    char digits[20];
    size_t digit = text_u64_digits(value, digits);
    memcpy(at, digits + digit, sizeof(digits) - digit);
    at += sizeof(digits) - digit;
    *at++ = '\n';
    *at = '\0';
    out->length = (size_t)(at - out->data);
}

/* One consumer's two lag lines, into the renderer's side buffers. */
static void consumer_lines(struct counters_renderer *renderer, const char *topic_label,
                           uint32_t topic_label_length,
                           const struct intake_log_consumer *consumer) {
    struct text_buffer *buffers[2] = {&renderer->lag_bytes, &renderer->lag_records};
    static const char *const metrics[2] = {"intake_consumer_lag_bytes{topic=\"",
                                           "intake_consumer_lag_records{topic=\""};
    bool records_known = consumer->committed_offset != INTAKE_LOG_OFFSET_NONE;
    for (int metric = 0; metric < 2; metric++) {
        if (metric == 1 && !records_known) continue; /* absent before its first commit */
        struct text_buffer *out = buffers[metric];
        text_buffer_append_string(out, metrics[metric]);
        text_buffer_append(out, topic_label, topic_label_length);
        text_buffer_append_string(out, "\",consumer=\"");
        text_buffer_append_label_value(out, consumer->name);
        text_buffer_append_string(out, consumer->state == INTAKE_LOG_CONSUMER_ACTIVE
                                           ? "\",state=\"active\"} "
                                           : "\",state=\"detached\"} ");
        text_buffer_append_u64(out, metric == 0 ? consumer->lag_bytes : consumer->lag_records);
        text_buffer_append(out, "\n", 1);
    }
}

/* Walks the topics once: each one's counters, and one look at its log. Returns how many
 * samples were filled (false in *fits when the scratch could not hold them). */
static uint32_t topics_gather(struct counters_renderer *renderer, const struct counters_view *view,
                              size_t capacity, bool *fits) {
    *fits = counters_renderer_reserve(renderer, capacity);
    if (!*fits) return 0;
    uint32_t count = 0;
    char name[INTAKE_COUNTERS_TOPIC_NAME_BYTES];
    for (uint32_t topic_id = 0; topic_id < view->header->topics_max; topic_id++) {
        if (!counters_view_topic_name(view, topic_id, name)) continue;
        if (count == renderer->sample_capacity) {
            uint32_t grown = renderer->sample_capacity ? 2 * renderer->sample_capacity : 64;
            if (grown > view->header->topics_max) grown = view->header->topics_max;
            void *samples = realloc(renderer->samples, grown * sizeof(*renderer->samples));
            if (samples == NULL) {
                *fits = false;
                return count;
            }
            renderer->samples = samples;
            renderer->sample_capacity = grown;
        }
        struct prometheus_topic_sample *sample = &renderer->samples[count++];
        size_t label_start = renderer->labels.length;
        text_buffer_append_label_value(&renderer->labels, name);
        sample->label_offset = (uint32_t)label_start;
        sample->label_length = (uint32_t)(renderer->labels.length - label_start);
        struct counters_topic_totals totals;
        counters_view_topic_totals(view, topic_id, &totals);
        uint64_t counted[TOPIC_LOG_COMMIT_POSITION] = {
            totals.received_records, totals.received_bytes, totals.committed_records,
            totals.committed_bytes,  totals.rejected,       totals.failed,
            totals.duplicate,        totals.evictions,      totals.unremembered,
            totals.rebuilds,         totals.unprotected,    totals.repairs};
        memcpy(sample->values, counted, sizeof(counted));
        const struct intake_log_info *log = counters_renderer_look(renderer, name);
        sample->log_known = log != NULL;
        if (log == NULL) continue;
        sample->values[TOPIC_LOG_COMMIT_POSITION] = log->commit_position;
        sample->values[TOPIC_LOG_NEXT_OFFSET] = log->commit_offset;
        sample->values[TOPIC_LOG_RETAINED_POSITION] = log->retained_position;
        const char *label = renderer->labels.data + sample->label_offset;
        for (uint32_t index = 0; index < log->consumer_count; index++)
            consumer_lines(renderer, label, sample->label_length, &log->consumers[index]);
    }
    *fits = !renderer->labels.truncated && !renderer->lag_bytes.truncated &&
            !renderer->lag_records.truncated;
    return count;
}

static void render_topics(struct counters_renderer *renderer, const struct counters_view *view,
                          struct text_buffer *out) {
    bool fits = false;
    /* The scratch never needs more than the output: a buffer that overflows it overflows out. */
    uint32_t count = topics_gather(renderer, view, out->capacity, &fits);
    if (!fits) {
        out->truncated = true;
        return;
    }
    for (int value = 0; value < TOPIC_VALUES; value++) {
        family(out, topic_families[value].name, topic_families[value].type,
               topic_families[value].help);
        size_t metric_length = strlen(topic_families[value].name);
        for (uint32_t index = 0; index < count; index++) {
            const struct prometheus_topic_sample *sample = &renderer->samples[index];
            if (value >= TOPIC_LOG_COMMIT_POSITION && !sample->log_known) continue;
            sample_line(out, topic_families[value].name, metric_length,
                        renderer->labels.data + sample->label_offset, sample->label_length,
                        sample->values[value]);
        }
    }
    family(out, "intake_consumer_lag_bytes", "gauge",
           "Bytes published that the consumer has not released (commit_position - "
           "read_position).");
    text_buffer_append(out, renderer->lag_bytes.data, renderer->lag_bytes.length);
    family(out, "intake_consumer_lag_records", "gauge",
           "Records published since the consumer's last commit (absent before its first "
           "commit).");
    text_buffer_append(out, renderer->lag_records.data, renderer->lag_records.length);
}

/* Principals (issue 17: --acl): the rows in force, `other` included. */
static void render_principals(const struct counters_view *view, struct text_buffer *out) {
    uint64_t generation = 0, reload_failures = 0;
    bool enabled = counters_view_acl(view, &generation, &reload_failures);
    family(out, "intake_acl_enabled", "gauge", "1 when intaked runs with --acl.");
    text_buffer_printf(out, "intake_acl_enabled %d\n", enabled ? 1 : 0);
    if (!enabled) return;
    family(out, "intake_acl_rule_set", "gauge",
           "The --acl rule set in force: 1 at startup, one more per accepted SIGHUP reload.");
    text_buffer_printf(out, "intake_acl_rule_set %lu\n", generation);
    family(out, "intake_acl_reload_failures_total", "counter",
           "SIGHUP reloads refused (a bad --acl file): the rules in force stayed.");
    text_buffer_printf(out, "intake_acl_reload_failures_total %lu\n", reload_failures);
    static const struct {
        const char *name, *type, *help;
    } families[] = {
        {"intake_principal_records_admitted_total", "counter",
         "Records of the principal admitted (queued to their topic)."},
        {"intake_principal_bytes_admitted_total", "counter", "Their encoded bytes."},
        {"intake_principal_records_denied_total", "counter",
         "Records refused by --acl (answered REJECTED; nothing of them written)."},
        {"intake_principal_throttled_seconds_total", "counter",
         "Time the principal's connections spent paused for its quota, summed over them."},
        {"intake_principal_quota_pauses_total", "counter",
         "Times one of the principal's connections paused for its quota."},
        {"intake_principal_quota_records_per_second", "gauge",
         "The principal's records-per-second quota in force (0: unlimited)."},
        {"intake_principal_quota_bytes_per_second", "gauge",
         "The principal's bytes-per-second quota in force (0: unlimited)."},
    };
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(families); index++) {
        family(out, families[index].name, families[index].type, families[index].help);
        for (uint32_t row = 0; row < view->header->principal_row_count; row++) {
            struct counters_view_principal principal;
            if (!counters_view_principal(view, row, &principal) || !principal.in_force) continue;
            text_buffer_printf(out, "%s{principal=\"", families[index].name);
            text_buffer_append_label_value(out, principal.name);
            text_buffer_printf(out, "\"} ");
            uint64_t values[7] = {
                principal.records_admitted,      principal.bytes_admitted,
                principal.records_denied,        principal.throttled_ns,
                principal.quota_pauses,          principal.quota_records_per_second,
                principal.quota_bytes_per_second};
            if (index == 3)
                text_buffer_printf(out, "%.6f\n", (double)values[index] / 1e9);
            else
                text_buffer_printf(out, "%lu\n", values[index]);
        }
    }
}

void counters_render_prometheus(struct counters_renderer *renderer,
                                const struct counters_view *view, uint64_t now_ns,
                                struct text_buffer *out) {
    const struct intake_counters_header *header = view->header;
    uint32_t state = atomic_load_explicit((_Atomic uint32_t *)&header->state, memory_order_acquire);
    char why[128];
    family(out, "intake_info", "gauge", "Constant 1, labelled with the daemon's configuration.");
    text_buffer_printf(out, "intake_info{backend=\"");
    text_buffer_append_label_value(out, header->backend);
    text_buffer_printf(out, "\",listen=\"");
    text_buffer_append_label_value(out, header->listen);
    text_buffer_printf(out, "\",reactors=\"%u\",workers=\"%u\"} 1\n", header->reactor_count,
                       header->worker_count);
    family(out, "intake_state", "gauge", "0 starting, 1 running, 2 stopping, 3 stopped.");
    text_buffer_printf(out, "intake_state %u\n", state);
    family(out, "intake_ready", "gauge", "1 when /readyz answers 200.");
    text_buffer_printf(
        out, "intake_ready %d\n",
        counters_view_ready(view, now_ns, COUNTERS_VIEW_READY_NS, why, sizeof(why)) ? 1 : 0);
    family(out, "intake_start_time_seconds", "gauge", "When the daemon started (Unix time).");
    text_buffer_printf(out, "intake_start_time_seconds %.3f\n",
                       (double)header->start_wall_ns / 1e9);
    render_reactors(view, now_ns, out);
    render_tls(view, out);
    render_workers(view, out);
    uint64_t copied = 0, received = 0;
    counters_view_copy_account(view, &copied, &received);
    family(out, "intake_copy_ratio", "gauge",
           "Payload bytes copied in user space per byte received (at most 1: one copy).");
    text_buffer_printf(out, "intake_copy_ratio %.4f\n",
                       received ? (double)copied / (double)received : 0.0);
    family(out, "intake_log_capacity_bytes", "gauge", "Each topic log's ring (--log-size).");
    text_buffer_printf(out, "intake_log_capacity_bytes %lu\n", header->log_capacity_bytes);
    render_topics(renderer, view, out);
    render_principals(view, out);
}
