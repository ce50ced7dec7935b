/*
 * bench_idle.h: --idle-connections N: opens N connections to the server (NATS ones say
 * CONNECT, so the server keeps them), prints "idle ... opened=N ... ready", holds them for
 * --hold-s, closes them and prints "result target=... mode=idle ...". Main thread.
 */
#ifndef BENCH_IDLE_H
#define BENCH_IDLE_H

#include "bench.h"

/* The process's exit status: 0 when every connection opened, else 1 (said on stderr). */
int run_idle_connections(const struct bench_options *options);

#endif
