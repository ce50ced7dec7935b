/*
 * pipeline_tls.c: the TLS part of the composition (see pipeline.h): the server context, the
 * handshake threads and the queues between them and the reactors. Main thread only.
 *
 * Order: the context is built before any thread starts (a bad certificate or key stops the
 * startup with one line); the handshake threads start before the reactors (a reactor may post a
 * job from its first accept); at shutdown they stop after every reactor has exited (a reactor
 * drains its handshakes, and an abandoned one still needs its thread to free its SSL object).
 */
#include "pipeline_tls.h"

#include <errno.h>
#include <string.h>

/* Reactors served by handshake thread `thread`: r with r % threads == thread. */
static uint32_t pipeline_tls_reactors_served(const struct pipeline_config *config,
                                             uint32_t thread) {
    INTAKE_ASSERT(thread < config->handshake_threads);
    return (config->reactor_count - thread + config->handshake_threads - 1) /
           config->handshake_threads;
}

int pipeline_tls_start(struct pipeline *pipeline, char *why, size_t why_capacity) {
    const struct pipeline_config *config = &pipeline->config;
    if (!config->tls_listen_set) return 0;
    INTAKE_ASSERT(config->handshake_threads > 0 && config->handshakes_max > 0);
    struct tls_server_files files = {
        .certificate_path = config->tls_certificate_path,
        .key_path = config->tls_key_path,
        .client_ca_path = config->tls_client_ca_path,
    };
    int result =
        tls_server_init(&pipeline->tls_server, &files, handshake_callbacks(), why, why_capacity);
    if (result < 0) return result;
    pipeline->tls_enabled = true;
    pipeline->handshake_requests =
        calloc(config->handshake_threads, sizeof(*pipeline->handshake_requests));
    pipeline->handshake_answers =
        calloc(config->reactor_count, sizeof(*pipeline->handshake_answers));
    pipeline->handshake_threads =
        calloc(config->handshake_threads, sizeof(*pipeline->handshake_threads));
    if (!pipeline->handshake_requests || !pipeline->handshake_answers ||
        !pipeline->handshake_threads)
        goto out_of_memory;
    /* Never full: a handshake slot is on at most one queue at a time. */
    for (uint32_t thread = 0; thread < config->handshake_threads; thread++)
        if (handshake_queue_init(&pipeline->handshake_requests[thread],
                                 pipeline_tls_reactors_served(config, thread) *
                                     config->handshakes_max) < 0)
            goto out_of_memory;
    for (uint32_t reactor = 0; reactor < config->reactor_count; reactor++)
        if (handshake_queue_init(&pipeline->handshake_answers[reactor], config->handshakes_max) < 0)
            goto out_of_memory;
    for (uint32_t thread = 0; thread < config->handshake_threads; thread++) {
        struct handshake_links links = {
            .index = thread,
            .server = &pipeline->tls_server,
            .requests = &pipeline->handshake_requests[thread],
            .answers = pipeline->handshake_answers,
            .reactor_doorbells = pipeline->reactor_doorbells,
            .reactor_count = config->reactor_count,
            .records_per_key_max = config->tls_key_update_records,
            .stopping = &pipeline->handshakes_stopping,
        };
        result =
            handshake_thread_start(&links, &pipeline->handshake_threads[thread], why, why_capacity);
        if (result < 0) return result;
    }
    return 0;
out_of_memory:
    intake_error_line(why, why_capacity,
                      "out of memory sizing TLS handshakes (--handshakes-max %u)",
                      config->handshakes_max);
    return -ENOMEM;
}

void pipeline_tls_reactor_links(struct pipeline *pipeline, uint32_t reactor,
                                struct reactor_links *links) {
    const struct pipeline_config *config = &pipeline->config;
    links->listen_address = config->listen_none ? NULL : &pipeline->config.listen_address;
    if (!pipeline->tls_enabled) return;
    links->tls_listen_address = &pipeline->config.tls_listen_address;
    links->tls_listen_address_length = config->tls_listen_address_length;
    links->tls_listen_text = pipeline->config.tls_listen_text;
    links->handshakes_max = config->handshakes_max;
    links->handshake_timeout_ns = config->handshake_timeout_ns;
    links->handshake_requests = &pipeline->handshake_requests[reactor % config->handshake_threads];
    links->handshake_answers = &pipeline->handshake_answers[reactor];
}

void pipeline_tls_stop(struct pipeline *pipeline) {
    if (pipeline->handshake_threads == NULL) return;
    atomic_store(&pipeline->handshakes_stopping, true);
    for (uint32_t thread = 0; thread < pipeline->config.handshake_threads; thread++)
        handshake_thread_join(pipeline->handshake_threads[thread]);
}

void pipeline_tls_free(struct pipeline *pipeline) {
    const struct pipeline_config *config = &pipeline->config;
    if (pipeline->handshake_threads != NULL)
        for (uint32_t thread = 0; thread < config->handshake_threads; thread++)
            handshake_thread_destroy(pipeline->handshake_threads[thread]);
    if (pipeline->handshake_requests != NULL)
        for (uint32_t thread = 0; thread < config->handshake_threads; thread++)
            handshake_queue_destroy(&pipeline->handshake_requests[thread]);
    if (pipeline->handshake_answers != NULL)
        for (uint32_t reactor = 0; reactor < config->reactor_count; reactor++)
            handshake_queue_destroy(&pipeline->handshake_answers[reactor]);
    free(pipeline->handshake_threads);
    free(pipeline->handshake_requests);
    free(pipeline->handshake_answers);
    pipeline->handshake_threads = NULL;
    pipeline->handshake_requests = NULL;
    pipeline->handshake_answers = NULL;
    if (pipeline->tls_enabled) tls_server_destroy(&pipeline->tls_server);
    pipeline->tls_enabled = false;
}

int pipeline_tls_reload(struct pipeline *pipeline, char *why, size_t why_capacity) {
    if (!pipeline->tls_enabled) return 0;
    return tls_server_reload(&pipeline->tls_server, why, why_capacity);
}
