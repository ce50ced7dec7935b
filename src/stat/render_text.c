/*
 * render_text.c: the terminal rendering of intake-stat (see counters_render.h): one line per
 * reactor, worker and topic with the names intaked's shutdown lines use, and each topic's
 * consumers with their lag. Logs are read through intake_log_inspect.
 */
#include <stdio.h>

#include "counters_health.h"
#include "counters_render.h"

static void render_text_reactor(const struct counters_view *view, uint32_t reactor, uint64_t now_ns,
                                struct text_buffer *out) {
    const struct intake_counters_reactor_row *row = counters_view_reactor(view, reactor);
    uint64_t beat = counters_load(&row->heartbeat_ns);
    text_buffer_printf(
        out,
        "reactor %u: heartbeat %.1fs ago connections open=%lu accepted=%lu "
        "refused=%lu closed=%lu failed=%lu lingered=%lu stalls_broken=%lu "
        "deadline_kills=%lu\n",
        reactor, beat && beat <= now_ns ? (double)(now_ns - beat) / 1e9 : 0.0,
        counters_load(&row->connections_open), counters_load(&row->connections_accepted),
        counters_load(&row->connections_refused), counters_load(&row->connections_closed),
        counters_load(&row->connections_failed), counters_load(&row->connections_lingered),
        counters_load(&row->stalls_broken), counters_load(&row->deadline_kills));
    text_buffer_printf(
        out,
        "  ended ok=%lu rejected=%lu resource_exhausted=%lu shutting_down=%lu "
        "internal=%lu\n",
        counters_load(&row->connections_ended[0]), counters_load(&row->connections_ended[1]),
        counters_load(&row->connections_ended[2]), counters_load(&row->connections_ended[3]),
        counters_load(&row->connections_ended[4]));
    text_buffer_printf(
        out,
        "  records admitted=%lu returned=%lu failed=%lu truncated_frames=%lu "
        "acks=%lu pauses topic_queue=%lu record_pool=%lu ack_window=%lu "
        "out_of_units=%lu topic_log=%lu over_log_limit=%lu "
        "topic_creations_refused=%lu backlog_exhausted=%lu wakeups=%lu submit_busy=%lu "
        "socket_option_errors=%lu deadline_kills frame=%lu idle=%lu "
        "accept_errors=%lu accept_pauses=%lu partial_cap_pauses=%lu "
        "partial_evictions=%lu hellos_answered=%lu identity_rejections=%lu "
        "sequence_rejections=%lu sequence_gap_fills=%lu producer_refusals=%lu\n",
        counters_load(&row->records_admitted), counters_load(&row->records_returned),
        counters_load(&row->records_failed), counters_load(&row->frames_truncated),
        counters_load(&row->acks_sent), counters_load(&row->pauses_topic_queue),
        counters_load(&row->pauses_record_pool), counters_load(&row->pauses_ack_window),
        counters_load(&row->pauses_out_of_units), counters_load(&row->pauses_topic_log),
        counters_load(&row->records_over_log_limit), counters_load(&row->topic_creations_refused),
        counters_load(&row->backlog_exhausted), counters_load(&row->wakeups),
        counters_load(&row->submit_busy), counters_load(&row->socket_option_errors),
        counters_load(&row->deadline_kills_frame), counters_load(&row->deadline_kills_idle),
        counters_load(&row->accept_errors), counters_load(&row->accept_pauses),
        counters_load(&row->partial_cap_pauses), counters_load(&row->partial_evictions),
        counters_load(&row->hellos_answered), counters_load(&row->identity_rejections),
        counters_load(&row->sequence_rejections), counters_load(&row->sequence_gap_fills),
        counters_load(&row->producer_refusals));
    text_buffer_printf(
        out,
        "  backend bytes_received=%lu completions=%lu units_recycled=%lu rearms "
        "out_of_units=%lu overflow=%lu other=%lu refill_flushes=%lu "
        "units_in_use=%lu\n",
        counters_load(&row->backend_bytes_received), counters_load(&row->backend_completions),
        counters_load(&row->backend_units_recycled),
        counters_load(&row->backend_rearms_out_of_units),
        counters_load(&row->backend_rearms_overflow), counters_load(&row->backend_rearms_other),
        counters_load(&row->backend_refill_flushes), counters_load(&row->backend_units_in_use));
}

static void render_text_topic(struct counters_renderer *renderer, const struct counters_view *view,
                              uint32_t topic_id, const char *name, struct text_buffer *out) {
    struct counters_topic_totals totals;
    counters_view_topic_totals(view, topic_id, &totals);
    text_buffer_printf(out,
                       "topic %s: received records=%lu bytes=%lu committed records=%lu "
                       "bytes=%lu rejected=%lu failed=%lu duplicate=%lu dedupe_evictions=%lu "
                       "dedupe_unremembered=%lu dedupe_rebuilds=%lu dedupe_unprotected=%lu "
                       "dedupe_repairs=%lu",
                       name, totals.received_records, totals.received_bytes,
                       totals.committed_records, totals.committed_bytes, totals.rejected,
                       totals.failed, totals.duplicate, totals.evictions, totals.unremembered,
                       totals.rebuilds, totals.unprotected, totals.repairs);
    const struct intake_log_info *log = counters_renderer_look(renderer, name);
    if (log == NULL) {
        text_buffer_printf(out, " log unreadable in %s\n", renderer->log_directory);
        return;
    }
    text_buffer_printf(out, " log commit_position=%lu next_offset=%lu retained_position=%lu\n",
                       log->commit_position, log->commit_offset, log->retained_position);
    for (uint32_t index = 0; index < log->consumer_count; index++) {
        const struct intake_log_consumer *consumer = &log->consumers[index];
        text_buffer_printf(out, "  consumer %s (%s): lag bytes=%lu", consumer->name,
                           consumer->state == INTAKE_LOG_CONSUMER_ACTIVE ? "active" : "detached",
                           consumer->lag_bytes);
        if (consumer->committed_offset != INTAKE_LOG_OFFSET_NONE)
            text_buffer_printf(out, " records=%lu\n", consumer->lag_records);
        else
            text_buffer_printf(out, " records=? (never committed)\n");
    }
}

/* TLS (issue 17): only when the daemon has a TLS listener. */
static void render_text_tls(const struct counters_view *view, uint32_t reactor,
                            struct text_buffer *out) {
    if (view->header->tls_listen[0] == '\0') return;
    const struct intake_counters_reactor_row *row = counters_view_reactor(view, reactor);
    text_buffer_printf(out, "  tls handshakes ok=%lu", counters_load(&row->tls_handshakes_ok));
    for (uint32_t reason = 0; reason < INTAKE_COUNTERS_HANDSHAKE_FAILURES; reason++)
        text_buffer_printf(out, " failed_%s=%lu", counters_handshake_failure_reasons[reason],
                           counters_load(&row->tls_handshakes_failed[reason]));
    text_buffer_printf(
        out,
        " refused=%lu in_progress=%lu records_decrypted=%lu auth_failures=%lu "
        "record_errors=%lu key_updates_received=%lu key_updates_sent=%lu "
        "alerts_received=%lu\n",
        counters_load(&row->tls_handshakes_refused),
        counters_load(&row->tls_handshakes_in_progress), counters_load(&row->tls_records_decrypted),
        counters_load(&row->tls_auth_failures), counters_load(&row->tls_record_errors),
        counters_load(&row->tls_key_updates_received), counters_load(&row->tls_key_updates_sent),
        counters_load(&row->tls_alerts_received));
}

/* Principals (issue 17: --acl): the rows in force. */
static void render_text_principals(const struct counters_view *view, struct text_buffer *out) {
    uint64_t generation = 0, reload_failures = 0;
    if (!counters_view_acl(view, &generation, &reload_failures)) return;
    text_buffer_printf(out, "acl: rule set %lu reload_failures=%lu\n", generation, reload_failures);
    for (uint32_t row = 0; row < view->header->principal_row_count; row++) {
        struct counters_view_principal principal;
        if (!counters_view_principal(view, row, &principal) || !principal.in_force) continue;
        text_buffer_printf(out,
                           "principal %s: records admitted=%lu bytes=%lu denied=%lu "
                           "throttled=%.3fs quota_pauses=%lu quota records/s=%lu bytes/s=%lu\n",
                           principal.name, principal.records_admitted, principal.bytes_admitted,
                           principal.records_denied, (double)principal.throttled_ns / 1e9,
                           principal.quota_pauses, principal.quota_records_per_second,
                           principal.quota_bytes_per_second);
    }
}

void counters_render_text(struct counters_renderer *renderer, const struct counters_view *view,
                          uint64_t now_ns, struct text_buffer *out) {
    const struct intake_counters_header *header = view->header;
    const char *directory = renderer->log_directory;
    uint32_t state = atomic_load_explicit((_Atomic uint32_t *)&header->state, memory_order_acquire);
    char why[128];
    bool ready = counters_view_ready(view, now_ns, COUNTERS_VIEW_READY_NS, why, sizeof(why));
    text_buffer_printf(
        out, "intake pid %d state %s ready %s%s%s backend %s listen %s%s%s logs %s\n", header->pid,
        counters_state_name(state), ready ? "yes" : "no", ready ? "" : " ", ready ? "" : why,
        header->backend[0] ? header->backend : "?", header->listen,
        header->tls_listen[0] ? " tls " : "", header->tls_listen, directory);
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++) {
        render_text_reactor(view, reactor, now_ns, out);
        render_text_tls(view, reactor, out);
    }
    for (uint32_t worker = 0; worker < header->worker_count; worker++) {
        const struct intake_counters_worker_row *row = counters_view_worker(view, worker);
        uint64_t beat = counters_load(&row->heartbeat_ns);
        text_buffer_printf(
            out,
            "worker %u: heartbeat %.1fs ago records committed=%lu rejected=%lu "
            "failed=%lu duplicate=%lu bytes_copied=%lu publishes=%lu "
            "log_full_waits=%lu log_retries=%lu sleeps=%lu\n",
            worker, beat && beat <= now_ns ? (double)(now_ns - beat) / 1e9 : 0.0,
            counters_load(&row->records_committed), counters_load(&row->records_rejected),
            counters_load(&row->records_failed), counters_load(&row->records_duplicate),
            counters_load(&row->bytes_copied), counters_load(&row->publishes),
            counters_load(&row->log_full_waits), counters_load(&row->log_retries),
            counters_load(&row->sleeps));
    }
    char name[INTAKE_COUNTERS_TOPIC_NAME_BYTES];
    for (uint32_t topic_id = 0; topic_id < header->topics_max; topic_id++)
        if (counters_view_topic_name(view, topic_id, name))
            render_text_topic(renderer, view, topic_id, name, out);
    uint64_t copied = 0, received = 0;
    counters_view_copy_account(view, &copied, &received);
    text_buffer_printf(out, "copy account: copied_bytes=%lu received_bytes=%lu ratio=%.4f\n",
                       copied, received, received ? (double)copied / (double)received : 0.0);
    render_text_principals(view, out);
}
