/*
 * bridge_kafka_conf.h: the librdkafka settings the bridge's handles share: the brokers and the
 * user's -X key=value pairs, applied to the producer (bridge_forward.c) and to the consumer that
 * reads partition tails (bridge_resume.c), like kcat does.
 *
 * Thread: main thread (used only at startup).
 */
#ifndef BRIDGE_KAFKA_CONF_H
#define BRIDGE_KAFKA_CONF_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* -X pairs accepted on the command line. */
#define BRIDGE_KAFKA_PROPERTIES_MAX 64

struct bridge_kafka_property {
    const char *name;
    const char *value;
};

struct bridge_kafka_settings {
    const char *brokers; /* bootstrap.servers */
    uint32_t property_count;
    struct bridge_kafka_property properties[BRIDGE_KAFKA_PROPERTIES_MAX];
};

/* Sets `name` to `value` on `conf`; on failure writes librdkafka's reason to `why`. */
int bridge_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *why,
                          size_t why_bytes) __attribute__((warn_unused_result));
/* Applies bootstrap.servers and then every -X pair. Callers set their defaults before (so -X
 * overrides them) and what correctness needs after (so -X cannot weaken it). */
int bridge_kafka_conf_apply(rd_kafka_conf_t *conf, const struct bridge_kafka_settings *settings,
                            char *why, size_t why_bytes) __attribute__((warn_unused_result));

#endif
