/*
 * acl.h: the --acl file (issue 17): who may produce to which topics, and at what rate. Pure code:
 * a parser from text to an immutable policy, and the questions the reactors ask of it. Any
 * thread; a policy is never changed after acl_policy_parse returns it.
 *
 * The file, one rule per line ('#' starts a comment, blank lines are ignored):
 *
 *   allow PRINCIPAL produce TOPICS
 *   quota PRINCIPAL RECORDS_PER_S BYTES_PER_S
 *
 *   - PRINCIPAL is a principal's name (principal.h: a client certificate's first URI SAN or its
 *     CN, or `anonymous`), or `*`: every principal, named ones included.
 *   - TOPICS is a topic name, or a prefix ending in `*` (`logs.*`; `*` alone is every topic).
 *   - RECORDS_PER_S, BYTES_PER_S: whole numbers with an optional K, M or G suffix (powers of
 *     1024, as for every intaked number), at most 1024G; 0 means unlimited.
 *   - Tokens are separated by spaces or tabs. A token in double quotes ("CN with spaces") is
 *     taken literally: it may hold spaces, '#' and '*', and a quoted '*' is no wildcard. A quote
 *     cannot appear inside a quoted token.
 *
 * Meaning:
 *   - What no rule allows is denied. A principal may produce to a topic when one of its own allow
 *     rules or one `allow *` rule matches it: rules add up, in any order, and repeating a rule
 *     changes nothing.
 *   - Classes. Every principal the file names (in an allow or quota line) is a class of its own;
 *     every other principal belongs to the one class `other` (class 0). Decisions, quotas and
 *     counters are per class, so their state is bounded by the file, never by the peers.
 *   - Quotas. A principal's own quota line sets its rates; a named principal without one, and the
 *     class `other`, take the `quota *` line if there is one (each named principal then has its
 *     own bucket at that rate, and all unnamed principals share one); otherwise they are
 *     unlimited. A second quota line for the same principal (or a second `quota *`) is an error.
 *   - `other` is reserved: it stands for the principals the file does not name, so no rule may
 *     name a principal `other`.
 *
 * Limits (a file beyond any of them is refused with its line number, as any malformed line is):
 * ACL_FILE_BYTES_MAX bytes, ACL_LINE_BYTES_MAX bytes per line, ACL_PRINCIPALS_MAX named
 * principals, ACL_RULES_MAX allow rules.
 */
#ifndef INTAKE_ACL_H
#define INTAKE_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "principal.h"

/* Largest --acl file, bytes. */
#define ACL_FILE_BYTES_MAX (1u << 20)
/* Longest line, bytes without its newline (two names of 255 bytes fit with room to spare). */
#define ACL_LINE_BYTES_MAX 1024u
/* Principals one file may name; with `other`, the classes fit a byte. */
#define ACL_PRINCIPALS_MAX 255u
#define ACL_CLASSES_MAX    (ACL_PRINCIPALS_MAX + 1u)
/* Allow lines in one file (`*` lines included). */
#define ACL_RULES_MAX 4096u
/* Largest rate a quota line takes (records or bytes per second). */
#define ACL_RATE_MAX (1ull << 40)
/* The class of every principal the file does not name. */
#define ACL_CLASS_OTHER 0u
/* Its name in counters and metrics (reserved in the file). */
#define ACL_OTHER_NAME "other"
/* Longest reason acl_policy_parse gives (the caller prefixes the file and line). */
#define ACL_WHY_BYTES 160u

/* One allow rule's topic pattern: its text lives in the policy's arena. */
struct acl_rule {
    uint32_t text_offset;
    uint16_t length; /* bytes of the name, or of the prefix without its '*' */
    bool prefix;     /* TOPICS ended in an unquoted '*' */
    uint32_t line;
};

/* A class's rates: 0 is unlimited. */
struct acl_quota {
    uint64_t records_per_second;
    uint64_t bytes_per_second;
};

struct acl_class {
    uint64_t tag; /* principal_tag_of(name); 0 for `other` */
    uint16_t name_length;
    char name[PRINCIPAL_NAME_BYTES_MAX + 1];
    uint32_t first_rule; /* its own rules: rules[first_rule .. first_rule + rule_count) */
    uint32_t rule_count;
    struct acl_quota quota; /* in force for the class (its own line, else `quota *`) */
    uint32_t quota_line;    /* the line that set it (0: unlimited by default) */
};

struct acl_policy {
    uint32_t class_count; /* named principals + 1 (`other` is class 0) */
    struct acl_class classes[ACL_CLASSES_MAX];
    /* Principal tag -> class, open addressing (twice the classes, a power of two); 0 is empty,
     * else class + 1. */
    uint16_t class_slots[2 * ACL_CLASSES_MAX];
    struct acl_rule *rules; /* named principals' rules grouped by class, then the `*` rules */
    uint32_t rule_count;
    uint32_t star_first; /* the `*` rules: rules[star_first .. rule_count) */
    char *arena;         /* the patterns' text */
    /* What the file said, for the startup and reload lines. */
    uint32_t allow_lines;
    uint32_t quota_lines;
};

/* Parses `length` bytes of `text` (a file's contents). On success *out is a new policy (free it
 * with acl_policy_free). On failure returns -EINVAL with *line the line number (from 1) and `why`
 * the reason; nothing is allocated. Allocates only here, sized from the file. */
int acl_policy_parse(const char *text, size_t length, struct acl_policy **out, uint32_t *line,
                     char *why, size_t why_capacity) INTAKE_MUST_CHECK;
/* Reads and parses the file at `path`. On failure `why` holds one line naming the file, and the
 * line number and reason when the text is at fault ("--acl F line 3: ..."). */
int acl_policy_load(const char *path, struct acl_policy **out, char *why,
                    size_t why_capacity) INTAKE_MUST_CHECK;
void acl_policy_free(struct acl_policy *policy);

/* The class of a proven principal: the class that names it, else ACL_CLASS_OTHER. */
uint32_t acl_policy_class_of(const struct acl_policy *policy, const struct principal *principal);
/* Whether class `class_index` may produce to the topic `name` (`length` bytes). O(rules of the
 * class + `*` rules): callers keep the answer (acl_exchange.h's decision cache). */
bool acl_policy_allows(const struct acl_policy *policy, uint32_t class_index, const char *name,
                       uint32_t length);
/* The class's name: the principal's, or ACL_OTHER_NAME. */
static inline const char *acl_policy_class_name(const struct acl_policy *policy,
                                                uint32_t class_index) {
    INTAKE_ASSERT(class_index < policy->class_count);
    return policy->classes[class_index].name;
}

#endif
