/*
 * acl.c: the --acl file's parser and the questions asked of a policy (see acl.h). Runs on the
 * main thread at startup and on SIGHUP (parse), and on reactors (class_of, allows: read-only).
 *
 * One pass over the lines: each is cut into at most four tokens, checked, and turned into a
 * rule (its class and pattern) or a quota. The rules are then grouped by class with a counting
 * sort, so a class's rules are one run of the array, followed by the `*` rules every class
 * shares. Every reason names what is wrong in the words of acl.h.
 */
#include "acl.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "number_parse.h"
#include "record.h"

/* Tokens a rule has (`allow P produce T`, `quota P R B`); one more is an error. */
#define ACL_TOKENS_MAX 4u
/* A rule whose PRINCIPAL is `*`. */
#define ACL_CLASS_STAR UINT32_MAX

struct acl_token {
    const char *text;
    uint32_t length;
    bool quoted;
};

/* A rule as read, before grouping: its class (or ACL_CLASS_STAR) and pattern. */
struct acl_rule_read {
    uint32_t class_index;
    struct acl_rule rule;
};

struct acl_parser {
    struct acl_policy *policy;
    struct acl_rule_read *read; /* [ACL_RULES_MAX] */
    uint32_t read_count;
    uint32_t arena_used;
    uint32_t arena_capacity;
    bool star_quota_set;
    uint32_t star_quota_line;
    struct acl_quota star_quota;
    bool class_quota_set[ACL_CLASSES_MAX];
    uint32_t line;
    char *why;
    size_t why_capacity;
};

static int acl_fail(struct acl_parser *parser, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static int acl_fail(struct acl_parser *parser, const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    intake_error_vline(parser->why, parser->why_capacity, format, arguments);
    va_end(arguments);
    return -EINVAL;
}

static bool acl_is_space(char character) {
    return character == ' ' || character == '\t';
}

/* Cuts a line (no newline) into tokens; stops at an unquoted '#'. */
static int acl_tokenize(struct acl_parser *parser, const char *line, uint32_t length,
                        struct acl_token *tokens, uint32_t *count) {
    *count = 0;
    uint32_t index = 0;
    for (;;) {
        while (index < length && acl_is_space(line[index])) index++;
        if (index == length || line[index] == '#') return 0;
        if (*count == ACL_TOKENS_MAX)
            return acl_fail(parser, "too many words (a rule has %u)", ACL_TOKENS_MAX);
        struct acl_token *token = &tokens[(*count)++];
        token->quoted = line[index] == '"';
        if (token->quoted) {
            const char *close = memchr(line + index + 1, '"', length - index - 1);
            if (close == NULL) return acl_fail(parser, "a quoted name has no closing quote");
            token->text = line + index + 1;
            token->length = (uint32_t)(close - token->text);
            index = (uint32_t)(close - line) + 1;
            if (index < length && !acl_is_space(line[index]) && line[index] != '#')
                return acl_fail(parser, "a closing quote must end its word");
            continue;
        }
        token->text = line + index;
        while (index < length && !acl_is_space(line[index]) && line[index] != '#') {
            if (line[index] == '"') return acl_fail(parser, "a quote inside a word");
            index++;
        }
        token->length = (uint32_t)(line + index - token->text);
    }
}

static bool acl_token_is(const struct acl_token *token, const char *word) {
    return !token->quoted && token->length == strlen(word) &&
           memcmp(token->text, word, token->length) == 0;
}

static void acl_slots_insert(struct acl_policy *policy, uint32_t class_index) {
    uint32_t mask = INTAKE_ARRAY_LENGTH(policy->class_slots) - 1;
    uint32_t slot = (uint32_t)policy->classes[class_index].tag & mask;
    while (policy->class_slots[slot] != 0) slot = (slot + 1) & mask;
    policy->class_slots[slot] = (uint16_t)(class_index + 1);
}

static uint32_t acl_slots_find(const struct acl_policy *policy, uint64_t tag, const char *name,
                               uint32_t length) {
    uint32_t mask = INTAKE_ARRAY_LENGTH(policy->class_slots) - 1;
    /* At most ACL_CLASSES_MAX slots are used of twice as many: an empty one ends the probe. */
    for (uint32_t slot = (uint32_t)tag & mask;; slot = (slot + 1) & mask) {
        uint32_t entry = policy->class_slots[slot];
        if (entry == 0) return ACL_CLASS_OTHER;
        const struct acl_class *candidate = &policy->classes[entry - 1];
        if (candidate->tag == tag && candidate->name_length == length &&
            memcmp(candidate->name, name, length) == 0)
            return entry - 1;
    }
}

/* The class a PRINCIPAL token names (made on first mention), or ACL_CLASS_STAR. */
static int acl_class_for(struct acl_parser *parser, const struct acl_token *token,
                         uint32_t *class_index) {
    if (!token->quoted && token->length == 1 && token->text[0] == '*') {
        *class_index = ACL_CLASS_STAR;
        return 0;
    }
    if (token->length == 0) return acl_fail(parser, "an empty principal");
    if (token->length > PRINCIPAL_NAME_BYTES_MAX)
        return acl_fail(parser, "a principal of %u bytes (at most %u)", token->length,
                        PRINCIPAL_NAME_BYTES_MAX);
    if (token->length == strlen(ACL_OTHER_NAME) &&
        memcmp(token->text, ACL_OTHER_NAME, token->length) == 0)
        return acl_fail(parser, "\"" ACL_OTHER_NAME "\" is reserved: it stands for every "
                                "principal this file does not name");
    struct acl_policy *policy = parser->policy;
    uint64_t tag = principal_tag_of(token->text, token->length);
    uint32_t found = acl_slots_find(policy, tag, token->text, token->length);
    if (found != ACL_CLASS_OTHER) {
        *class_index = found;
        return 0;
    }
    if (policy->class_count == ACL_CLASSES_MAX)
        return acl_fail(parser, "more than %u principals named", ACL_PRINCIPALS_MAX);
    struct acl_class *class = &policy->classes[policy->class_count];
    class->tag = tag;
    class->name_length = (uint16_t)token->length;
    memcpy(class->name, token->text, token->length);
    class->name[token->length] = '\0';
    *class_index = policy->class_count++;
    acl_slots_insert(policy, *class_index);
    return 0;
}

/* TOPICS: a name, or a prefix ending in an unquoted '*'; UTF-8, as topics are. */
static int acl_pattern_of(struct acl_parser *parser, const struct acl_token *token,
                          struct acl_rule *rule) {
    rule->prefix = !token->quoted && token->length > 0 && token->text[token->length - 1] == '*';
    uint32_t length = token->length - (rule->prefix ? 1u : 0u);
    if (!rule->prefix && length == 0) return acl_fail(parser, "an empty topic");
    if (length > RECORD_TOPIC_BYTES_MAX)
        return acl_fail(parser, "a topic of %u bytes (at most %u)", length, RECORD_TOPIC_BYTES_MAX);
    if (!token->quoted && memchr(token->text, '*', length) != NULL)
        return acl_fail(parser, "'*' may only end a topic pattern (quote a name that holds one)");
    uint32_t state = 0;
    if (!intake_utf8_feed(&state, (const uint8_t *)token->text, length) || state != 0)
        return acl_fail(parser, "a topic that is not UTF-8");
    INTAKE_ASSERT(parser->arena_used + length <= parser->arena_capacity);
    rule->text_offset = parser->arena_used;
    rule->length = (uint16_t)length;
    memcpy(parser->policy->arena + parser->arena_used, token->text, length);
    parser->arena_used += length;
    return 0;
}

static int acl_parse_allow(struct acl_parser *parser, const struct acl_token *tokens,
                           uint32_t count) {
    if (count != 4) return acl_fail(parser, "allow takes PRINCIPAL produce TOPICS");
    if (!acl_token_is(&tokens[2], "produce"))
        return acl_fail(parser, "unknown operation \"%.*s\" (only produce)", (int)tokens[2].length,
                        tokens[2].text);
    if (parser->read_count == ACL_RULES_MAX)
        return acl_fail(parser, "more than %u allow rules", ACL_RULES_MAX);
    struct acl_rule_read *read = &parser->read[parser->read_count];
    int result = acl_class_for(parser, &tokens[1], &read->class_index);
    if (result == 0) result = acl_pattern_of(parser, &tokens[3], &read->rule);
    if (result < 0) return result;
    read->rule.line = parser->line;
    parser->read_count++;
    parser->policy->allow_lines++;
    return 0;
}

static int acl_rate_of(struct acl_parser *parser, const struct acl_token *token, uint64_t *rate) {
    char text[32];
    if (token->quoted || token->length == 0 || token->length >= sizeof(text))
        return acl_fail(parser, "bad rate \"%.*s\" (a whole number, K/M/G suffixes, at most 1024G)",
                        (int)token->length, token->text);
    memcpy(text, token->text, token->length);
    text[token->length] = '\0';
    /* The flags' number syntax; the refusal keeps the file's own wording. */
    const struct number_spec spec = NUMBER_COUNT_SPEC(0, ACL_RATE_MAX);
    if (number_parse("rate", text, &spec, rate, NULL, 0) != NUMBER_OK)
        return acl_fail(parser, "bad rate \"%s\" (a whole number, K/M/G suffixes, at most 1024G)",
                        text);
    return 0;
}

static int acl_parse_quota(struct acl_parser *parser, const struct acl_token *tokens,
                           uint32_t count) {
    if (count != 4) return acl_fail(parser, "quota takes PRINCIPAL RECORDS_PER_S BYTES_PER_S");
    uint32_t class_index = 0;
    struct acl_quota quota;
    int result = acl_class_for(parser, &tokens[1], &class_index);
    if (result == 0) result = acl_rate_of(parser, &tokens[2], &quota.records_per_second);
    if (result == 0) result = acl_rate_of(parser, &tokens[3], &quota.bytes_per_second);
    if (result < 0) return result;
    if (class_index == ACL_CLASS_STAR) {
        if (parser->star_quota_set)
            return acl_fail(parser, "a second quota for * (the first is on line %u)",
                            parser->star_quota_line);
        parser->star_quota_set = true;
        parser->star_quota_line = parser->line;
        parser->star_quota = quota;
    } else {
        struct acl_class *class = &parser->policy->classes[class_index];
        if (parser->class_quota_set[class_index])
            return acl_fail(parser, "a second quota for principal \"%s\" (the first is on line %u)",
                            class->name, class->quota_line);
        parser->class_quota_set[class_index] = true;
        class->quota = quota;
        class->quota_line = parser->line;
    }
    parser->policy->quota_lines++;
    return 0;
}

static int acl_parse_line(struct acl_parser *parser, const char *line, uint32_t length) {
    if (length > 0 && line[length - 1] == '\r') length--; /* a file written on Windows */
    if (memchr(line, '\0', length) != NULL) return acl_fail(parser, "a NUL byte");
    struct acl_token tokens[ACL_TOKENS_MAX];
    uint32_t count = 0;
    int result = acl_tokenize(parser, line, length, tokens, &count);
    if (result < 0 || count == 0) return result;
    if (acl_token_is(&tokens[0], "allow")) return acl_parse_allow(parser, tokens, count);
    if (acl_token_is(&tokens[0], "quota")) return acl_parse_quota(parser, tokens, count);
    return acl_fail(parser, "unknown rule \"%.*s\" (allow or quota)", (int)tokens[0].length,
                    tokens[0].text);
}

/* Groups the rules by class (a counting sort; `*` rules last) and gives every class without a
 * quota line of its own the `quota *` rates. */
static void acl_finish(struct acl_parser *parser) {
    struct acl_policy *policy = parser->policy;
    uint32_t star_count = 0;
    for (uint32_t index = 0; index < parser->read_count; index++) {
        uint32_t class_index = parser->read[index].class_index;
        if (class_index == ACL_CLASS_STAR)
            star_count++;
        else
            policy->classes[class_index].rule_count++;
    }
    uint32_t next = 0;
    for (uint32_t class_index = 0; class_index < policy->class_count; class_index++) {
        policy->classes[class_index].first_rule = next;
        next += policy->classes[class_index].rule_count;
        policy->classes[class_index].rule_count = 0;
    }
    policy->star_first = next;
    INTAKE_ASSERT(next + star_count == parser->read_count);
    for (uint32_t index = 0; index < parser->read_count; index++) {
        const struct acl_rule_read *read = &parser->read[index];
        if (read->class_index == ACL_CLASS_STAR) {
            policy->rules[next++] = read->rule;
            continue;
        }
        struct acl_class *class = &policy->classes[read->class_index];
        policy->rules[class->first_rule + class->rule_count++] = read->rule;
    }
    policy->rule_count = parser->read_count;
    for (uint32_t class_index = 0; class_index < policy->class_count; class_index++) {
        if (parser->class_quota_set[class_index] || !parser->star_quota_set) continue;
        policy->classes[class_index].quota = parser->star_quota;
        policy->classes[class_index].quota_line = parser->star_quota_line;
    }
}

static int acl_parse_lines(struct acl_parser *parser, const char *text, size_t length,
                           uint32_t *line) {
    size_t start = 0;
    while (start < length) {
        parser->line++;
        const char *newline = memchr(text + start, '\n', length - start);
        size_t end = newline ? (size_t)(newline - text) : length;
        if (end - start > ACL_LINE_BYTES_MAX) {
            *line = parser->line;
            return acl_fail(parser, "a line of %zu bytes (at most %u)", end - start,
                            ACL_LINE_BYTES_MAX);
        }
        int result = acl_parse_line(parser, text + start, (uint32_t)(end - start));
        if (result < 0) {
            *line = parser->line;
            return result;
        }
        start = end + 1;
    }
    return 0;
}

int acl_policy_parse(const char *text, size_t length, struct acl_policy **out, uint32_t *line,
                     char *why, size_t why_capacity) {
    INTAKE_ASSERT(text != NULL || length == 0);
    *out = NULL;
    *line = 0;
    struct acl_parser parser = {.why = why, .why_capacity = why_capacity};
    if (length > ACL_FILE_BYTES_MAX)
        return acl_fail(&parser, "%zu bytes (at most %u)", length, ACL_FILE_BYTES_MAX);
    struct acl_policy *policy = calloc(1, sizeof(*policy));
    parser.read = calloc(ACL_RULES_MAX, sizeof(*parser.read));
    if (policy != NULL) {
        /* Patterns are pieces of the text: the text's size bounds them. */
        parser.arena_capacity = (uint32_t)length + 1;
        policy->arena = malloc(parser.arena_capacity);
        policy->rules = calloc(ACL_RULES_MAX, sizeof(*policy->rules));
    }
    if (policy == NULL || parser.read == NULL || policy->arena == NULL || policy->rules == NULL) {
        acl_policy_free(policy);
        free(parser.read);
        return acl_fail(&parser, "out of memory");
    }
    parser.policy = policy;
    policy->class_count = 1;
    snprintf(policy->classes[ACL_CLASS_OTHER].name, sizeof(policy->classes[0].name), "%s",
             ACL_OTHER_NAME);
    policy->classes[ACL_CLASS_OTHER].name_length = (uint16_t)strlen(ACL_OTHER_NAME);
    int result = acl_parse_lines(&parser, text, length, line);
    if (result == 0) acl_finish(&parser);
    free(parser.read);
    if (result < 0) {
        acl_policy_free(policy);
        return result;
    }
    *out = policy;
    return 0;
}

int acl_policy_load(const char *path, struct acl_policy **out, char *why, size_t why_capacity) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat info;
    if (fd < 0 || fstat(fd, &info) != 0) {
        int error = errno;
        if (fd >= 0) close(fd);
        intake_error_line(why, why_capacity, "--acl %s: %s", path, strerror(error));
        return -error;
    }
    if (!S_ISREG(info.st_mode) || info.st_size > (off_t)ACL_FILE_BYTES_MAX) {
        close(fd);
        intake_error_line(why, why_capacity, "--acl %s: not a regular file of at most %u bytes",
                          path, ACL_FILE_BYTES_MAX);
        return -EINVAL;
    }
    /* One byte more than the limit, so a file that grew since fstat is still caught. */
    char *text = malloc(ACL_FILE_BYTES_MAX + 1);
    size_t length = 0;
    ssize_t got = 0;
    while (text != NULL && length <= ACL_FILE_BYTES_MAX &&
           (got = read(fd, text + length, ACL_FILE_BYTES_MAX + 1 - length)) > 0)
        length += (size_t)got;
    int error = got < 0 ? errno : 0;
    close(fd);
    if (text == NULL || error != 0) {
        free(text);
        intake_error_line(why, why_capacity, "--acl %s: %s", path,
                          text == NULL ? "out of memory" : strerror(error));
        return text == NULL ? -ENOMEM : -error;
    }
    uint32_t line = 0;
    char reason[ACL_WHY_BYTES];
    int result = acl_policy_parse(text, length, out, &line, reason, sizeof(reason));
    free(text);
    if (result < 0 && line > 0)
        intake_error_line(why, why_capacity, "--acl %s line %u: %s", path, line, reason);
    else if (result < 0)
        intake_error_line(why, why_capacity, "--acl %s: %s", path, reason);
    return result;
}

void acl_policy_free(struct acl_policy *policy) {
    if (policy == NULL) return;
    free(policy->rules);
    free(policy->arena);
    free(policy);
}

uint32_t acl_policy_class_of(const struct acl_policy *policy, const struct principal *principal) {
    INTAKE_ASSERT(policy->class_count >= 1);
    INTAKE_ASSERT(principal->name_length <= PRINCIPAL_NAME_BYTES_MAX);
    return acl_slots_find(policy, principal->tag, principal->name, principal->name_length);
}

static bool acl_rule_matches(const struct acl_policy *policy, const struct acl_rule *rule,
                             const char *name, uint32_t length) {
    const char *text = policy->arena + rule->text_offset;
    if (rule->prefix) return length >= rule->length && memcmp(name, text, rule->length) == 0;
    return length == rule->length && memcmp(name, text, length) == 0;
}

bool acl_policy_allows(const struct acl_policy *policy, uint32_t class_index, const char *name,
                       uint32_t length) {
    INTAKE_ASSERT(class_index < policy->class_count);
    INTAKE_ASSERT(policy->star_first <= policy->rule_count);
    const struct acl_class *class = &policy->classes[class_index];
    for (uint32_t index = 0; index < class->rule_count; index++)
        if (acl_rule_matches(policy, &policy->rules[class->first_rule + index], name, length))
            return true;
    for (uint32_t index = policy->star_first; index < policy->rule_count; index++)
        if (acl_rule_matches(policy, &policy->rules[index], name, length)) return true;
    return false;
}
