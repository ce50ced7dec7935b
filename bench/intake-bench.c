/*
 * intake-bench: load generator and end-to-end latency meter for intake, nats-server and the
 * machine's own ceilings (issue 5). Benchmarks report; they are not tests.
 *
 * One process does everything ("all-in-one"), so latency needs no clock agreement between hosts:
 *   - M producer threads, one TCP connection each, write batches of records as fast as the
 *     consumer keeps up (closed loop, with a bounded number of bytes in flight) or at a fixed
 *     total rate paced in 1 ms time slices (open loop, --rate);
 *   - one consumer thread receives every record (a NATS subscriber on bench.>, or the intake
 *     shared-memory logs through consume_intake()) and measures producer write -> consumer read
 *     latency from a stamp at the start of each value into a log-linear histogram;
 *   - the main thread connects everything, bounds the run in time, and prints one line:
 *     result target=... size=... conns=... msgs=... secs=... msgs_per_s=... mb_per_s=... p50_us=...
 *     ... exactly_once=yes|no ... producer_us_per_msg=... consumer_us_per_msg=...
 *     Each side's CPU is its threads' own CPU clocks (issue 10): the producer threads' (less
 *     their closed-loop window waits, the bench's own) and the consumer thread's.
 * Variants (issue 10, 12): --producer library (the product's producer library, bench_library.c,
 * instead of the bench's encoder), --producer-id (Record field 7 per connection, with --acks),
 * --consumer set|handles (bench_intake_consumer.c: one consumer set for every topic, or one
 * handle per topic). Issue 17: --tls-ca (and --tls-cert, --tls-key, --tls-server-name,
 * --tls-ciphersuite) makes the intake producers speak TLS 1.3 (bench_tls.c; the library's own
 * TLS with --producer library), to intaked's --tls-listen port. Files, one job each: see bench.h.
 * Other modes: --memcpy (single-core copy bandwidth), --idle-connections N (open N connections
 * and hold them, for the server's RSS), --self-test (encoders against decoders).
 *
 * Every value begins with a 16-byte stamp: CLOCK_MONOTONIC send time in ns, then a tag
 * (connection index << 48 | per-connection record number), both little endian. Sizes are value
 * (payload) bytes; MB/s counts payload bytes only, the same for every target.
 *
 * Every loop is bounded by a count or a deadline; the process always stops by itself.
 */
#include <signal.h>

#include "bench.h"
#include "bench_idle.h"
#include "bench_load.h"
#include "bench_memcpy.h"
#include "bench_options.h"
#include "bench_self_test.h"

int main(int argc, char **argv) {
    struct bench_options options;
    int exit_now = bench_options_parse(argc, argv, &options);
    if (exit_now >= 0) return exit_now;
    /* OpenSSL writes with write(2): a server gone mid-run is an error we report, not SIGPIPE. */
    if (options.tls.ca_file) signal(SIGPIPE, SIG_IGN);
    if (options.self_test) return run_self_test();
    if (options.memcpy_mode) return run_memcpy(&options);
    if (options.idle_connections) return run_idle_connections(&options);
    return run_load(&options);
}
