/*
 * bridge_topics.c: the bridge's topic table: named or discovered topics, their consumers and
 * Kafka targets (see bridge_topics.h).
 */
#include "bridge_topics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

int bridge_topics_init(struct bridge_topic_table *table, uint32_t capacity, const char *shm_dir,
                       const char *consumer_name, const char *kafka_topic_template) {
    INTAKE_ASSERT(capacity > 0);
    *table = (struct bridge_topic_table){0};
    table->topics = calloc(capacity, sizeof(table->topics[0]));
    if (table->topics == NULL) return -ENOMEM;
    table->capacity = capacity;
    table->shm_dir = shm_dir;
    table->consumer_name = consumer_name;
    table->kafka_topic_template = kafka_topic_template;
    return 0;
}

void bridge_topics_destroy(struct bridge_topic_table *table) {
    for (uint32_t index = 0; index < table->count; index++) {
        struct bridge_topic *topic = &table->topics[index];
        if (topic->consumer != NULL) intake_consumer_close(topic->consumer);
        /* After the main slot: between the two closes, the anchor still holds. */
        if (topic->anchor != NULL) intake_consumer_close(topic->anchor);
    }
    intake_log_inspector_close(table->inspector);
    free(table->topics);
    *table = (struct bridge_topic_table){0};
}

static bool kafka_topic_byte_is_legal(char byte) {
    return (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') ||
           (byte >= '0' && byte <= '9') || byte == '.' || byte == '_' || byte == '-';
}

int bridge_kafka_topic_for(const char *template, const char *name, char *out) {
    static const char placeholder[] = "{topic}";
    size_t written = 0;
    for (const char *at = template; *at != '\0';) {
        const char *piece = at;
        size_t length = 1;
        if (strncmp(at, placeholder, sizeof(placeholder) - 1) == 0) {
            piece = name;
            length = strlen(name);
            at += sizeof(placeholder) - 1;
        } else {
            at++;
        }
        if (written + length >= BRIDGE_KAFKA_TOPIC_BYTES) return -EINVAL;
        memcpy(out + written, piece, length);
        written += length;
    }
    out[written] = '\0';
    if (written == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0) return -EINVAL;
    for (size_t index = 0; index < written; index++)
        if (!kafka_topic_byte_is_legal(out[index])) return -EINVAL;
    return 0;
}

int bridge_topics_add(struct bridge_topic_table *table, const char *name,
                      struct bridge_topic **out) {
    size_t name_length = strlen(name);
    if (name_length == 0 || name_length >= BRIDGE_TOPIC_NAME_BYTES) return -EINVAL;
    for (uint32_t index = 0; index < table->count; index++)
        if (strcmp(table->topics[index].name, name) == 0) return -EEXIST;
    if (table->count == table->capacity) return -ENOSPC;
    struct bridge_topic *topic = &table->topics[table->count++];
    *topic = (struct bridge_topic){.phase = BRIDGE_TOPIC_WAITING};
    memcpy(topic->name, name, name_length + 1);
    if (bridge_kafka_topic_for(table->kafka_topic_template, name, topic->kafka_topic) != 0) {
        topic->phase = BRIDGE_TOPIC_UNMAPPABLE;
        fprintf(stderr,
                "intake-kafka: topic %s maps to no legal Kafka topic name under \"%s\" "
                "(249 bytes of [A-Za-z0-9._-]); it is not forwarded\n",
                name, table->kafka_topic_template);
    }
    if (out != NULL) *out = topic;
    return 0;
}

/* A look at a log (by topic, or by file name with INTAKE_LOG_INSPECT_FILE_NAME) through the
 * consumer library, which checks the header (magic, version, identity checksum, topic) as a
 * consumer does. The inspector is opened at the first look (the directory may appear late). */
static int log_look(struct bridge_topic_table *table, const char *name, uint32_t flags, char *why,
                    size_t why_bytes) {
    if (table->inspector == NULL) {
        int result = intake_log_inspector_open(table->shm_dir, table->capacity, &table->inspector,
                                               why, why_bytes);
        if (result != 0) return result;
    }
    table->info.struct_bytes = sizeof(table->info);
    return intake_log_inspect(table->inspector, name, flags, &table->info, why, why_bytes);
}

/* The one place that knows the consumer library's open signature. */
static int consumer_open(const char *directory, const char *topic, const char *name,
                         const struct intake_consumer_options *options,
                         struct intake_consumer **out, char *why, size_t why_bytes) {
    return intake_consumer_open(directory, topic, name, options, out, why, why_bytes);
}

/* Opens a WAITING topic: its consumer, then its log's identity. 0, -ENOENT (no log yet), or
 * another negative errno (printed). */
static int topic_open(struct bridge_topic_table *table, struct bridge_topic *topic) {
    INTAKE_ASSERT(topic->phase == BRIDGE_TOPIC_WAITING);
    char why[512] = "";
    int result = 0;
    if (topic->anchor == NULL) {
        /* The anchor first, at the oldest retained record: from then on nothing the main
         * consumer has not committed can be overwritten. It catches up after the first
         * commit. Ephemeral: a slot left by a dead bridge is reclaimed. */
        const struct intake_consumer_options anchor_options = {
            .start = INTAKE_CONSUMER_START_OLDEST, .ephemeral = true};
        char anchor_name[INTAKE_CONSUMER_NAME_BYTES_MAX + 1];
        snprintf(anchor_name, sizeof(anchor_name), "%s%s", table->consumer_name,
                 BRIDGE_ANCHOR_SUFFIX);
        result = consumer_open(table->shm_dir, topic->name, anchor_name, &anchor_options,
                               &topic->anchor, why, sizeof(why));
    }
    if (result == 0) {
        const struct intake_consumer_options options = {
            .start = INTAKE_CONSUMER_START_COMMITTED,
            .ephemeral = false, /* the committed cursor must outlive the process */
        };
        result = consumer_open(table->shm_dir, topic->name, table->consumer_name, &options,
                               &topic->consumer, why, sizeof(why));
    }
    if (result == -ENOENT) return result;
    if (result != 0) {
        fprintf(stderr, "intake-kafka: topic %s: %s\n", topic->name, why);
        return result;
    }
    result = log_look(table, topic->name, 0, why, sizeof(why));
    if (result == 0 && table->info.retention != INTAKE_LOG_RETENTION_BLOCK) {
        fprintf(stderr,
                "intake-kafka: topic %s: the log is in overwrite retention; the bridge needs "
                "intaked --retention block (records could be overwritten before Kafka has them)\n",
                topic->name);
        result = -EPERM;
    }
    if (result != 0) {
        if (result != -EPERM)
            fprintf(stderr, "intake-kafka: topic %s: cannot read its log: %s\n", topic->name, why);
        intake_consumer_close(topic->consumer);
        topic->consumer = NULL;
        intake_consumer_close(topic->anchor);
        topic->anchor = NULL;
        return result;
    }
    topic->log_id = table->info.created_wall_ns;
    topic->phase = BRIDGE_TOPIC_RESUMING;
    return 0;
}

uint32_t bridge_topics_open_waiting(struct bridge_topic_table *table) {
    uint32_t opened = 0;
    for (uint32_t index = 0; index < table->count; index++) {
        struct bridge_topic *topic = &table->topics[index];
        if (topic->phase == BRIDGE_TOPIC_WAITING && topic_open(table, topic) == 0) opened++;
    }
    return opened;
}

int bridge_topics_anchor_advance(struct bridge_topic *topic, uint32_t records_max) {
    INTAKE_ASSERT(topic->consumer != NULL);
    INTAKE_ASSERT(topic->anchor != NULL);
    uint64_t target = intake_consumer_next_offset(topic->consumer);
    if (target == INTAKE_LOG_OFFSET_NONE) return 0; /* the main consumer has read nothing yet */
    for (uint32_t step = 0; step < records_max; step++) {
        uint64_t next = intake_consumer_next_offset(topic->anchor);
        if (next != INTAKE_LOG_OFFSET_NONE && next >= target) return 0;
        struct intake_consumer_record record;
        int polled = intake_consumer_poll(topic->anchor, &record);
        if (polled < 0) {
            fprintf(stderr, "intake-kafka: topic %s: anchor: %s\n", topic->name,
                    intake_consumer_error(topic->anchor));
            return polled;
        }
        if (polled == 0) return 0; /* the anchor is at the writer: nothing more to hold */
    }
    return 1;
}

int bridge_topics_reopen(struct bridge_topic_table *table, struct bridge_topic *topic) {
    INTAKE_ASSERT(topic->in_flight == 0);
    INTAKE_ASSERT(topic->consumer != NULL);
    /* The anchor stays open: it holds the records from the committed cursor on while the main
     * slot is closed and opened again. */
    intake_consumer_close(topic->consumer);
    topic->consumer = NULL;
    topic->phase = BRIDGE_TOPIC_WAITING;
    topic->skip_active = false;
    topic->uncommitted = false;
    topic->draining = false;
    topic->holding = false;
    return topic_open(table, topic);
}

static bool file_is_log(const char *file_name) {
    size_t length = strlen(file_name);
    return length > 4 && strcmp(file_name + length - 4, ".log") == 0 && file_name[0] != '.';
}

int bridge_topics_scan(struct bridge_topic_table *table) {
    DIR *directory = opendir(table->shm_dir);
    if (directory == NULL) return -errno;
    int added = 0;
    uint64_t refused = 0;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    for (struct dirent *entry = readdir(directory); entry != NULL; entry = readdir(directory)) {
        if (!file_is_log(entry->d_name)) continue; /* temporary names are not *.log */
        /* Not (yet) an intake log, or one that does not check out: not a topic to follow. */
        if (log_look(table, entry->d_name, INTAKE_LOG_INSPECT_FILE_NAME, why, sizeof(why)) != 0)
            continue;
        int result = bridge_topics_add(table, table->info.topic, NULL);
        if (result == 0) added++;
        if (result == -ENOSPC) refused++;
    }
    closedir(directory);
    if (refused > 0 && refused != table->refused_full)
        fprintf(stderr, "intake-kafka: %llu topic(s) not forwarded: --topics-max %u reached\n",
                (unsigned long long)refused, table->capacity);
    table->refused_full = refused;
    return added;
}
