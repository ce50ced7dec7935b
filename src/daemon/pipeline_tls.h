/*
 * pipeline_tls.h: the TLS part of the composition root (pipeline_tls.c): what pipeline.c calls
 * to build, hand out, reload and tear down the TLS server context and the handshake threads.
 * Main thread only; nothing else includes it.
 */
#ifndef INTAKE_PIPELINE_TLS_H
#define INTAKE_PIPELINE_TLS_H

#include "pipeline.h"
#include "reactor.h"

/* With --tls-listen: builds the server context (one line in `why` for a bad file), the queues,
 * and starts the handshake threads. Before the reactors are created. */
int pipeline_tls_start(struct pipeline *pipeline, char *why, size_t why_capacity) INTAKE_MUST_CHECK;
/* Fills reactor `reactor`'s listener and handshake links. */
void pipeline_tls_reactor_links(struct pipeline *pipeline, uint32_t reactor,
                                struct reactor_links *links);
/* After every reactor has exited: stops and joins the handshake threads. */
void pipeline_tls_stop(struct pipeline *pipeline);
void pipeline_tls_free(struct pipeline *pipeline);
/* Rebuilds the server context from its files (tls_server_reload); 0 without TLS. */
int pipeline_tls_reload(struct pipeline *pipeline, char *why,
                        size_t why_capacity) INTAKE_MUST_CHECK;

#endif
