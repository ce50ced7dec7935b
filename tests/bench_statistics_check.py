"""bench_statistics_check.py: bench/run's statistics (bench/bench_run/results.py and report.py)
over a raw file whose answers are known by hand: medians of odd and even counts, n/a skipped,
variants and topics kept apart, the delivery counts, the ratios and costs, and
intake_vs_floor_cycles with its terms. Run by test_bench_statistics.sh: exit 0 when every check
holds, 1 after a line per failed check."""

import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ["INTAKE_SOURCE_DIR"], "bench"))

from bench_run import report  # noqa: E402
from bench_run.results import Floor, RawResults, intake_wire_bytes  # noqa: E402

failures = []


def check(what, actual, expected):
    if actual != expected:
        failures.append(f"{what}: got {actual!r}, expected {expected!r}")


def result(target, mode, size, conns, variant="base", topics=1, **metrics):
    words = [f"result target={target} mode={mode} size={size} conns={conns} topics={topics}"]
    words += [f"{key}={value}" for key, value in metrics.items()]
    return " ".join(words) + f" variant={variant}"


LINES = [
    # intake 256 x 16 closed: msgs/s 100, 300, 200 -> median 200; CPU 2.0, n/a, 3.08 -> 2.54
    result("intake", "closed", 256, 16, msgs_per_s=100, server_cpu_s_per_m="2.000",
           exactly_once="yes"),
    result("intake", "closed", 256, 16, msgs_per_s=300, server_cpu_s_per_m="n/a",
           exactly_once="no"),
    result("intake", "closed", 256, 16, msgs_per_s=200, server_cpu_s_per_m="3.080",
           exactly_once="yes"),
    # nats: 40 and 60 -> 50 (an even count: the mean of the middle two)
    result("nats", "closed", 256, 16, msgs_per_s=40, exactly_once="yes"),
    result("nats", "closed", 256, 16, msgs_per_s=60, exactly_once="no"),
    # the same cell with another variant or topic count must not mix in
    result("intake", "closed", 256, 16, "tls", msgs_per_s=150, exactly_once="yes"),
    result("intake", "closed", 256, 16, "topics", 1000, msgs_per_s=80, exactly_once="yes"),
    result("nats", "closed", 256, 16, "topics", 1000, msgs_per_s=20, exactly_once="yes"),
    result("intake", "closed", 256, 16, "acks", msgs_per_s=120),
    result("intake", "closed", 256, 16, "idem", msgs_per_s=90),
    result("intake", "open", 256, 16, "fixed", rate=1000, server_cpu_s_per_m="1.5"),
    result("nats", "open", 256, 16, "fixed", rate=1000, server_cpu_s_per_m="3.0"),
    result("intake", "closed", 65536, 1, msgs_per_s=10, mb_per_s="600.0"),
    result("iperf3", "closed", 65536, 1, mb_per_s="2000.0"),
    # the floor's terms: 1.0 ns per byte received, 256 MB/s memcpy (1 us per 256 B)
    result("iperf3", "closed", 256, 16, mb_per_s="100.0", tcp_ns_per_byte="3.0",
           tcp_rx_ns_per_byte="1.0"),
    "result target=memcpy mode=closed size=256 conns=1 msgs=1 secs=1 msgs_per_s=1000000 "
    "mb_per_s=256.0 topics=1 rep=1",
    "scale target=intake idle_connections=10 opened=10 rss_before_kb=1 rss_idle_kb=2 hwm_kb=3",
]


def main():
    with tempfile.TemporaryDirectory() as directory:
        results = RawResults(os.path.join(directory, "raw.txt"))
        for line in LINES:
            results.append(line)
        results.compute_medians()
        median = results.median
        check("odd count", median("intake", "closed", 256, 16, "msgs_per_s"), 200)
        check("even count", median("nats", "closed", 256, 16, "msgs_per_s"), 50)
        check("n/a skipped", median("intake", "closed", 256, 16, "server_cpu_s_per_m"), 2.54)
        check("variant apart", median("intake", "closed", 256, 16, "msgs_per_s", 1, "tls"), 150)
        check("topics apart",
              median("intake", "closed", 256, 16, "msgs_per_s", 1000, "topics"), 80)
        check("missing cell", median("intake", "closed", 64, 1, "msgs_per_s"), None)
        check("intake runs", results.count("intake"), 9)
        check("intake exactly once", results.count("intake", exactly_once=True), 4)
        check("product row runs", results.count("intake", "closed", 256, 16, 1, "base"), 3)
        check("scale lines", len(results.lines("scale ")), 1)
        check("wire bytes of 256 B to bench-0", intake_wire_bytes(256, "bench-0"), 270)
        check("wire bytes of 64 B to bench-0", intake_wire_bytes(64, "bench-0"), 76)
        floor = Floor(results)
        check("receive side us", round(floor.receive_us, 6), 0.27)
        check("copy us", round(floor.copy_us, 6), 1.0)
        check("floor ratio", floor.ratio(), "2.00")
        lines = report.closing_lines(results)
        check("idempotence line", lines[0], "idempotence: intake_acks_msgs=120 "
              "intake_acks_producer_id_msgs=90 intake_idempotence_cost=0.25")
        check("tls cost line", lines[2], "intake_tls_cost=0.25")
        check("summary line", lines[3], "summary: intake_vs_nats_msgs=4.00 "
              "intake_vs_ceiling_bytes=0.30 intake_vs_nats_cpu=0.50 intake_vs_nats_topics=4.00 "
              "intake_vs_floor_cycles=2.00")
        # A run without the floor's figures says n/a, never a number.
        empty = RawResults(os.path.join(directory, "empty.txt"))
        empty.compute_medians()
        check("empty summary", report.summary_line(empty), "summary: intake_vs_nats_msgs=n/a "
              "intake_vs_ceiling_bytes=n/a intake_vs_nats_cpu=n/a intake_vs_nats_topics=n/a "
              "intake_vs_floor_cycles=n/a")
    for failure in failures:
        print(f"FAILED: {failure}")
    print(f"bench statistics: {len(failures)} failed checks")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
