/*
 * pipeline_acl.h: the daemon's side of --acl (issue 17): loading the rule set at startup,
 * reloading it on SIGHUP, and what the reactors share for it (the rule-set exchange, the quota
 * buckets, the principal rows of the counters region). Main thread only; the reactors reach it
 * only through their links (acl_exchange.h, quota.h, their principal cells).
 *
 * Principal rows. Each class of a rule set (acl.h) has a row of the counters region and the
 * quota bucket of the same index: row 0 is `other`; a named principal keeps its row for as long
 * as the files name it, so a reload that keeps a principal keeps its counters and its bucket's
 * debt. A principal the new file does not name keeps its row (no longer in force) until the row
 * is needed for another name and no rule set a reactor may hold uses it; the row's counters then
 * restart from baselines (counters_format.h) and its bucket from zero.
 *
 * Reload. The new file is parsed whole before anything changes, so a bad file leaves the rules
 * in force untouched. Then the new set is published, every reactor is woken to take it, and the
 * reload waits (at most PIPELINE_ACL_TAKE_WAIT_NS) until each has: once pipeline_acl_reload
 * returns, every record a reactor frames is checked against the new rules, also on connections
 * that were open before. Connections are never closed by a reload.
 */
#ifndef INTAKE_PIPELINE_ACL_H
#define INTAKE_PIPELINE_ACL_H

#include <stdbool.h>
#include <stdint.h>

#include "acl.h"
#include "acl_exchange.h"
#include "counters_region.h"
#include "doorbell.h"
#include "quota.h"

/* How long a reload waits for every reactor to take the new rules (they wake on their doorbell,
 * and at least once a heartbeat interval anyway). */
#define PIPELINE_ACL_TAKE_WAIT_NS 5000000000ull

struct pipeline_acl {
    bool enabled; /* --acl given: without it nothing here is used */
    const char *path;
    uint32_t topics_max;
    uint32_t reactor_count;
    struct doorbell *reactor_doorbells; /* rung so that reactors take a new set at once */
    struct counters_region *counters;
    struct acl_exchange exchange;
    struct quota_bucket *buckets; /* [INTAKE_COUNTERS_PRINCIPAL_ROWS], by principal row */
    /* Which principal each row belongs to (the main thread's own copy: counters are never read
     * back to decide anything). Length 0: never used. */
    uint16_t row_name_lengths[INTAKE_COUNTERS_PRINCIPAL_ROWS];
    char (*row_names)[PRINCIPAL_NAME_BYTES_MAX + 1];
    uint64_t reload_failures;
};

/* Main thread, before the reactors are created: with `policy` (from --acl `path`; taken, also on
 * failure), sets up the exchange (generation 1), the buckets and the rows. Without (policy
 * NULL), leaves everything off. On failure `why` holds one line. */
int pipeline_acl_start(struct pipeline_acl *acl, const char *path, struct acl_policy *policy,
                       uint32_t topics_max, uint32_t reactor_count,
                       struct doorbell *reactor_doorbells, struct counters_region *counters,
                       char *why, size_t why_capacity) INTAKE_MUST_CHECK;
/* Main thread (SIGHUP), while the reactors run, with --acl: re-reads the file and hands the new
 * rules to every reactor. 0 with one line in `why` saying what is in force now; or negative
 * with one line in `why` saying why not, and the old rules still in force. */
int pipeline_acl_reload(struct pipeline_acl *acl, char *why, size_t why_capacity) INTAKE_MUST_CHECK;
/* Main thread, after every reactor has stopped. */
void pipeline_acl_destroy(struct pipeline_acl *acl);

/* What a reactor's links carry (NULL without --acl). */
static inline struct acl_exchange *pipeline_acl_exchange(struct pipeline_acl *acl) {
    return acl->enabled ? &acl->exchange : NULL;
}

/* One line describing the rules in force (startup and reload lines). */
void pipeline_acl_describe(const struct pipeline_acl *acl, char *line, size_t capacity);

#endif
