/*
 * bridge_kafka_conf.c: librdkafka configuration shared by the bridge's handles (see
 * bridge_kafka_conf.h).
 */
#include "bridge_kafka_conf.h"

#include <stdio.h>

int bridge_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *why,
                          size_t why_bytes) {
    char reason[512];
    if (rd_kafka_conf_set(conf, name, value, reason, sizeof(reason)) != RD_KAFKA_CONF_OK) {
        snprintf(why, why_bytes, "librdkafka setting %s=%s: %s", name, value, reason);
        return -1;
    }
    return 0;
}

int bridge_kafka_conf_apply(rd_kafka_conf_t *conf, const struct bridge_kafka_settings *settings,
                            char *why, size_t why_bytes) {
    if (bridge_kafka_conf_set(conf, "bootstrap.servers", settings->brokers, why, why_bytes) != 0)
        return -1;
    for (uint32_t index = 0; index < settings->property_count; index++) {
        const struct bridge_kafka_property *property = &settings->properties[index];
        if (bridge_kafka_conf_set(conf, property->name, property->value, why, why_bytes) != 0)
            return -1;
    }
    return 0;
}
