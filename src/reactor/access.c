/*
 * access.c: what a connection's principal may do (issue 17: --acl), asked per record by
 * admission.c. Reactor thread only; nothing here allocates, locks or makes a system call.
 *
 * The rule set is the one the reactor took at the start of its loop pass (reactor->acl). Each
 * connection keeps its principal's class in that set, looked up again only when the reactor has
 * taken a newer one (a reload), so rules apply from the next record framed, on connections that
 * were open before too.
 *
 * May it produce here? The set's decision cache answers per (class, topic id) with one relaxed
 * load; the first record of a class for a topic works the answer out from the rules and stores
 * it. For a topic that does not exist yet, the answer comes from the record's topic name before
 * the topic is created, so a denied record creates nothing.
 *
 * Quotas: a connection of a limited class checks its principal row's shared bucket before each
 * record (two relaxed loads), and charges what it admitted once per chunk (or every
 * REACTOR_QUOTA_CHARGE_RECORDS / _BYTES). While the bucket is in debt the connection is paused
 * (PAUSE_QUOTA): it stops being framed, its receive is cancelled once its backlog fills, and TCP
 * pushes back on the producer. Its waiting time is added to its principal's throttled time.
 * Once stopping, quotas no longer hold anything back: what was received is finished.
 */
#include <string.h>

#include "reactor_internal.h"

uint32_t connection_acl_lookup(struct reactor *reactor, struct connection *connection) {
    const struct acl_set *set = reactor->acl;
    INTAKE_ASSERT(set != NULL);
    INTAKE_ASSERT(connection->acl_generation < set->generation);
    uint32_t class_index = acl_policy_class_of(set->policy, &connection->principal);
    INTAKE_ASSERT(class_index < set->policy->class_count);
    connection->acl_class = (uint16_t)class_index;
    connection->principal_row = set->row_of_class[class_index];
    connection->quota_limited = quota_is_limited(&set->policy->classes[class_index].quota);
    connection->acl_generation = set->generation;
    return class_index;
}

static struct intake_counters_principal_cell *
connection_principal_cell(struct reactor *reactor, struct connection *connection) {
    connection_acl_class(reactor, connection);
    INTAKE_ASSERT(connection->principal_row < INTAKE_COUNTERS_PRINCIPAL_ROWS);
    return &reactor->links.principal_cells[connection->principal_row];
}

/* The refusal's detail names the principal and the topic (the Ack cuts it at its limit). */
static const char *connection_acl_refuse(struct reactor *reactor, struct connection *connection,
                                         const char *topic) {
    counter_add(&connection_principal_cell(reactor, connection)->records_denied, 1);
    intake_error_line(connection->end_detail_text, sizeof(connection->end_detail_text),
                      "principal \"%s\" may not produce to topic \"%s\" (--acl)",
                      connection->principal.name, topic);
    return connection->end_detail_text;
}

const char *connection_acl_decide_topic(struct reactor *reactor, struct connection *connection,
                                        uint32_t topic_id) {
    const struct acl_set *set = reactor->acl;
    uint32_t class_index = connection_acl_class(reactor, connection);
    enum acl_decision decision = acl_set_cached(set, class_index, topic_id);
    if (decision == ACL_DECISION_ALLOW) return NULL;
    const struct topic_entry *entry = topic_table_entry(reactor->links.topics, topic_id);
    INTAKE_ASSERT(entry != NULL); /* the id came from a lookup of this table */
    if (decision == ACL_DECISION_UNKNOWN) {
        bool allowed = acl_policy_allows(set->policy, class_index, entry->name, entry->name_length);
        acl_set_remember(set, class_index, topic_id, allowed);
        if (allowed) return NULL;
    }
    return connection_acl_refuse(reactor, connection, entry->name);
}

const char *connection_acl_check_name(struct reactor *reactor, struct connection *connection,
                                      const struct record *record) {
    char name[RECORD_TOPIC_BYTES_MAX + 1];
    struct record_view view = record_view_of(record);
    topic_table_copy_name(&view, record->topic_offset, record->topic_length, name);
    uint32_t class_index = connection_acl_class(reactor, connection);
    if (acl_policy_allows(reactor->acl->policy, class_index, name, record->topic_length))
        return NULL;
    return connection_acl_refuse(reactor, connection, name);
}

static const struct acl_quota *connection_quota(struct reactor *reactor,
                                                struct connection *connection) {
    uint32_t class_index = connection_acl_class(reactor, connection);
    return &reactor->acl->policy->classes[class_index].quota;
}

/* Charges the principal row's cells, and its bucket when the class has a quota. */
void connection_quota_charge(struct reactor *reactor, struct connection *connection) {
    if (connection->quota_records_pending == 0) return;
    INTAKE_ASSERT(reactor->acl != NULL);
    struct intake_counters_principal_cell *cell = connection_principal_cell(reactor, connection);
    counter_add(&cell->records_admitted, connection->quota_records_pending);
    counter_add(&cell->bytes_admitted, connection->quota_bytes_pending);
    const struct acl_quota *quota = connection_quota(reactor, connection);
    if (connection->quota_limited)
        quota_bucket_charge(&reactor->links.quota_buckets[connection->principal_row], quota,
                            connection->quota_records_pending, connection->quota_bytes_pending,
                            reactor->now_ns);
    connection->quota_records_pending = 0;
    connection->quota_bytes_pending = 0;
}

void connection_quota_note(struct reactor *reactor, struct connection *connection,
                           uint32_t frame_bytes) {
    connection->quota_records_pending++;
    connection->quota_bytes_pending += frame_bytes;
    if (connection->quota_records_pending >= REACTOR_QUOTA_CHARGE_RECORDS ||
        connection->quota_bytes_pending >= REACTOR_QUOTA_CHARGE_BYTES)
        connection_quota_charge(reactor, connection);
}

void connection_quota_pause_started(struct reactor *reactor, struct connection *connection) {
    INTAKE_ASSERT(connection->pause == PAUSE_QUOTA);
    connection->throttled_since_ns = reactor->now_ns;
    counter_add(&connection_principal_cell(reactor, connection)->quota_pauses, 1);
}

void connection_account_throttle(struct reactor *reactor, struct connection *connection) {
    INTAKE_ASSERT(connection->pause == PAUSE_QUOTA);
    INTAKE_ASSERT(connection->throttled_since_ns <= reactor->now_ns);
    uint64_t waited = reactor->now_ns - connection->throttled_since_ns;
    connection->throttled_since_ns = reactor->now_ns;
    if (waited != 0)
        counter_add(&connection_principal_cell(reactor, connection)->throttled_ns, waited);
}
