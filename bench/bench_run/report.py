"""What bench/run writes from its raw results: bench/results/latest.md (or sweep.md for
--sweep), and the closing lines (idempotence, tls, intake_tls_cost, summary) that README and
docs/performance.md quote."""

import datetime
import os
import platform
import statistics
import subprocess

from .results import FLOOR_VALUE_BYTES, Floor, cost, number, ratio


def command_output(command):
    try:
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              check=False).stdout.decode(errors="replace")
    except OSError:
        return ""


def cpuinfo(key):
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    return None


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ---- the closing lines ---------------------------------------------------------------------

def idempotence_line(results):
    """The cost of a producer_id (issue 12): 1 - msgs/s with it / msgs/s without, acks on in both
    arms, 256 B x 16 (0.03: 3% slower; negative: within noise, faster)."""
    plain = results.median("intake", "closed", 256, 16, "msgs_per_s", 1, "acks")
    with_id = results.median("intake", "closed", 256, 16, "msgs_per_s", 1, "idem")
    return (f"idempotence: intake_acks_msgs={number('%.0f', plain)} "
            f"intake_acks_producer_id_msgs={number('%.0f', with_id)} "
            f"intake_idempotence_cost={cost(with_id, plain)}")


def tls_cost(results, size, conns, plain_variant="base", tls_variant="tls"):
    """1 - TLS msgs/s / plaintext msgs/s, or n/a."""
    plain = results.median("intake", "closed", size, conns, "msgs_per_s", 1, plain_variant)
    with_tls = results.median("intake", "closed", size, conns, "msgs_per_s", 1, tls_variant)
    return cost(with_tls, plain)


def tls_lines(results):
    """The TLS lines (issue 17): the figures, then intake_tls_cost on a line of its own."""
    msgs = lambda size, conns, variant="base": number(  # noqa: E731
        "%.0f", results.median("intake", "closed", size, conns, "msgs_per_s", 1, variant))
    return [f"tls: intake_plain_msgs_256={msgs(256, 16)} intake_tls_msgs_256={msgs(256, 16, 'tls')}"
            f" intake_plain_msgs_64k={msgs(65536, 1)} intake_tls_msgs_64k={msgs(65536, 1, 'tls')}"
            f" intake_tls_cost_64k={tls_cost(results, 65536, 1)}",
            f"intake_tls_cost={tls_cost(results, 256, 16)}"]


def summary_line(results):
    median = results.median
    return ("summary: intake_vs_nats_msgs="
            f"{ratio(median('intake', 'closed', 256, 16, 'msgs_per_s'), median('nats', 'closed', 256, 16, 'msgs_per_s'))}"
            " intake_vs_ceiling_bytes="
            f"{ratio(median('intake', 'closed', 65536, 1, 'mb_per_s'), median('iperf3', 'closed', 65536, 1, 'mb_per_s'))}"
            " intake_vs_nats_cpu="
            f"{ratio(median('intake', 'open', 256, 16, 'server_cpu_s_per_m', 1, 'fixed'), median('nats', 'open', 256, 16, 'server_cpu_s_per_m', 1, 'fixed'))}"
            " intake_vs_nats_topics="
            f"{ratio(median('intake', 'closed', 256, 16, 'msgs_per_s', 1000, 'topics'), median('nats', 'closed', 256, 16, 'msgs_per_s', 1000, 'topics'))}"
            f" intake_vs_floor_cycles={Floor(results).ratio()}")


def closing_lines(results):
    return [idempotence_line(results)] + tls_lines(results) + [summary_line(results)]


# ---- latest.md -----------------------------------------------------------------------------

class Report:
    """latest.md for one run. run is bench/run's Run: mode, sizes, connection counts, the
    settings, whether intaked is built and whether TLS was measured."""

    def __init__(self, run):
        self.run = run
        self.settings = run.settings
        self.results = run.results
        self.median = run.results.median

    def _cell(self, fmt, *key, **options):
        return number(fmt, self.median(*key, **options))

    def table_row(self, size, conns, target, label, latency_mode="open"):
        rss = self.median(target, "closed", size, conns, "server_hwm_kb")
        cells = [self._cell("%.0f", target, "closed", size, conns, "msgs_per_s"),
                 self._cell("%.1f", target, "closed", size, conns, "mb_per_s"),
                 self._cell("%.0f", target, latency_mode, size, conns, "rate"),
                 self._cell("%.1f", target, latency_mode, size, conns, "p50_us"),
                 self._cell("%.1f", target, latency_mode, size, conns, "p99_us"),
                 self._cell("%.1f", target, latency_mode, size, conns, "p999_us"),
                 self._cell("%.2f", target, "closed", size, conns, "server_cpu_s_per_m"),
                 self._cell("%.2f", target, "closed", size, conns, "producer_us_per_msg"),
                 self._cell("%.2f", target, "closed", size, conns, "consumer_us_per_msg"),
                 number("%.1f", None if rss is None else rss / 1024)]
        return f"| {size} | {conns} | {label} | " + " | ".join(cells) + " |"

    def matrix(self):
        lines = ["| size B | conns | system | msgs/s | MB/s | latency load msgs/s | p50 us | p99 us "
                 "| p99.9 us | server CPU us/msg | producers CPU us/msg | consumer CPU us/msg "
                 "| peak RSS MiB |",
                 "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for size in self.run.sizes:
            for conns in self.run.connection_counts:
                if self.run.intake_built:
                    lines.append(self.table_row(size, conns, "intake", "intake"))
                else:
                    lines.append(f"| {size} | {conns} | intake: not built yet | | | | | | | | | | |")
                lines.append(self.table_row(size, conns, "nats", "nats-server"))
                lines.append(self.table_row(size, conns, "iperf3", "iperf3 (TCP ceiling)", "none"))
            lines.append(f"| {size} | 1 | memcpy (1 core) "
                         f"| {self._cell('%.0f', 'memcpy', 'closed', size, 1, 'msgs_per_s')} "
                         f"| {self._cell('%.1f', 'memcpy', 'closed', size, 1, 'mb_per_s')} "
                         "| | | | | | | | |")
        return lines

    def product_row(self, label, target, mode, topics, variant, producers):
        runs = self.results.count(target, mode, 256, 16, topics, variant)
        once = self.results.count(target, mode, 256, 16, topics, variant, exactly_once=True)
        key = (target, mode, 256, 16)
        offered = ("max (closed)" if mode == "closed"
                   else self._cell("%.0f", *key, "rate", topics, variant))
        cells = [offered, self._cell("%.0f", *key, "msgs_per_s", topics, variant),
                 self._cell("%.2f", *key, "server_cpu_s_per_m", topics, variant),
                 self._cell("%.2f", *key, "producer_us_per_msg", topics, variant),
                 self._cell("%.2f", *key, "consumer_us_per_msg", topics, variant),
                 self._cell("%.1f", *key, "p99_us", topics, variant)]
        return f"| {label} | {target} | {producers} | " + " | ".join(cells) + f" | {once} of {runs} |"

    def product_table(self):
        rows = [("closed loop", "intake", "closed", 1, "base", "bench"),
                ("closed loop", "nats", "closed", 1, "base", "bench"),
                ("closed loop, producer library", "intake", "closed", 1, "library", "library"),
                ("acks", "intake", "closed", 1, "acks", "bench"),
                ("acks + producer_id", "intake", "closed", 1, "idem", "bench"),
                ("fixed rate (CPU)", "intake", "open", 1, "fixed", "bench"),
                ("fixed rate (CPU)", "nats", "open", 1, "fixed", "bench"),
                ("1,000 topics, one consumer of all", "intake", "closed", 1000, "topics", "bench")]
        if self.run.mode == "full":
            rows.append(("1,000 topics, one handle per topic", "intake", "closed", 1000, "handles",
                         "bench"))
        rows.append(("1,000 topics, one consumer of all", "nats", "closed", 1000, "topics", "bench"))
        return ([
            "## The whole product path at 256 B x 16",
            "",
            "CPU per delivered message, by side: the server (utime + stime of all its threads), the 16",
            "producer threads and the one consumer thread (each thread's own CPU clock; the producers'",
            "closed-loop window waits are left out). Producers \"bench\" are intake-bench's own",
            "encoder (one encoding per batch, stamps patched); \"library\" is include/intake/producer.h.",
            "The fixed-rate rows are open loop at the same offered rate for both systems, after a warm-up.",
            "p99 in closed loop is mostly queueing in the bench's 16 MiB window; latency is the open-loop rows.",
            "",
            "| cell | system | producers | offered msgs/s | msgs/s | server CPU us/msg | producers CPU us/msg | consumer CPU us/msg | p99 us | exactly once |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
            + [self.product_row(*row) for row in rows] + [
            "",
            "intake's consumer of every topic is one consumer set (intake_consumer_set_poll and",
            "_wait); \"one handle per topic\" polls a consumer handle per topic in turn instead. The",
            "1,000 topics exist before the measurement (a warm-up creates them, for both systems).",
            ""])

    def tls_row(self, size, conns, variant, label):
        runs = self.results.count("intake", "closed", size, conns, variant=variant)
        once = self.results.count("intake", "closed", size, conns, variant=variant,
                                  exactly_once=True)
        key = ("intake", "closed", size, conns)
        cells = [self._cell("%.0f", *key, "msgs_per_s", 1, variant),
                 self._cell("%.1f", *key, "mb_per_s", 1, variant),
                 self._cell("%.2f", *key, "server_cpu_s_per_m", 1, variant),
                 self._cell("%.2f", *key, "producer_us_per_msg", 1, variant),
                 self._cell("%.2f", *key, "consumer_us_per_msg", 1, variant)]
        return f"| {size} | {conns} | {label} | " + " | ".join(cells) + f" | {once} of {runs} |"

    def tls_table(self):
        """TLS next to plaintext (issue 17): the same cells with TLS 1.3 producers."""
        lines = ["## TLS 1.3 next to plaintext", ""]
        if not self.run.tls_available:
            return lines + ["Not measured: this intaked has no --tls-listen.", ""]
        results = self.results
        return lines + [
            "The same closed-loop cells with the producers speaking TLS 1.3 to intaked's --tls-listen",
            "(certificates from scripts/tls-dev-certs; intaked decrypts in place). \"bench\" producers are",
            "intake-bench's own encoder over OpenSSL offering only AES-128-GCM; \"library\" is the producer",
            "library's TLS. CPU per delivered message, by side, as everywhere in this report.",
            "",
            "| size B | conns | producers | msgs/s | MB/s | server CPU us/msg | producers CPU us/msg | consumer CPU us/msg | exactly once |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---|",
            self.tls_row(256, 16, "base", "bench, plaintext"),
            self.tls_row(256, 16, "tls", "bench, TLS"),
            self.tls_row(256, 16, "library", "library, plaintext"),
            self.tls_row(256, 16, "library-tls", "library, TLS"),
            self.tls_row(65536, 1, "base", "bench, plaintext"),
            self.tls_row(65536, 1, "tls", "bench, TLS"),
            "",
            f"- TLS costs {tls_cost(results, 256, 16)} of msgs/s at 256 B x 16 (goal: at most 0.15)"
            f" and {tls_cost(results, 65536, 1)} at 64 KiB x 1 (goal: at most 0.25); the library's"
            f" TLS costs {tls_cost(results, 256, 16, 'library', 'library-tls')} at 256 B x 16.",
            ""]

    def side(self, target, variant):
        """server + producers + consumer = total, in cycles per record, closed loop 256 B x 16."""
        mhz = float(cpuinfo("cpu MHz"))
        parts = [self.median(target, "closed", 256, 16, metric, 1, variant) or 0
                 for metric in ("server_cpu_s_per_m", "producer_us_per_msg", "consumer_us_per_msg")]
        return ("server %.0f + producers %.0f + consumer %.0f = %.0f cycles"
                % tuple([part * mhz for part in parts] + [sum(parts) * mhz]))

    def budget(self):
        """The per-record cycle budget at 256 B x 16 from this run's own ceilings (issue 10):
        what 3x NATS's rate leaves per record on these cores, what the kernel's TCP (iperf3) and
        one copy (memcpy) cost per record at the least, and what each system spends now."""
        lines = ["## Per-record budget at 256 B x 16 (this run's ceilings)", ""]
        mhz = cpuinfo("cpu MHz")
        cores = os.cpu_count()
        nats_rate = self.median("nats", "closed", 256, 16, "msgs_per_s")
        tcp_ns = self.median("iperf3", "closed", 256, 16, "tcp_ns_per_byte")
        memcpy_mb = self.median("memcpy", "closed", 256, 1, "mb_per_s")
        floor = Floor(self.results)
        if mhz is None or None in (nats_rate, tcp_ns, memcpy_mb):
            return lines + ["Not computed: a ceiling is missing from this run.", ""]
        mhz = float(mhz)
        wire = floor.wire_bytes
        goal = 3 * nats_rate
        budget = cores * mhz * 1e6 / goal
        tcp_cycles = wire * tcp_ns * mhz / 1e3
        copy_cycles = FLOOR_VALUE_BYTES * mhz / memcpy_mb
        return lines + [
            "- clock %.0f MHz x %d cores (from /proc/cpuinfo; this VM has no cycle counters)"
            % (mhz, cores),
            "- goal: 3 x NATS closed loop = 3 x %.0f = %.0f msgs/s, so %.0f cycles per record for"
            % (nats_rate, goal, budget),
            "  everything: producers, kernel, server and consumer together",
            "- kernel TCP floor: %.3f CPU-ns per byte (iperf3, 16 streams, sender + receiver) x %d wire"
            % (tcp_ns, wire),
            "  bytes per record = %.0f cycles" % tcp_cycles,
            "- one copy: 256 B at %.0f MB/s (memcpy, one core) = %.0f cycles" % (memcpy_mb, copy_cycles),
            "- left for framing, parsing, hand-offs, the log append and the consumer: %.0f cycles"
            % (budget - tcp_cycles - copy_cycles),
            "- spent now (CPU per record in closed loop; the kernel's TCP work is inside each side's figure):",
            f"  - intake: {self.side('intake', 'base')}",
            f"  - intake, producer library: {self.side('intake', 'library')}",
            f"  - NATS: {self.side('nats', 'base')}",
            ""] + self.floor_section(floor, mhz)

    def floor_section(self, floor, mhz):
        """intake_vs_floor_cycles (issue 21): intaked alone against what receiving and storing a
        record cannot cost less than."""
        lines = ["## intaked against the floor (intake_vs_floor_cycles)", ""]
        if floor.floor_us is None or floor.intake_us is None:
            return lines + ["Not computed: a figure is missing from this run.", ""]
        cycles = lambda us: us * mhz  # noqa: E731
        above = floor.intake_us - floor.floor_us
        return lines + [
            "intaked's CPU per record at 256 B x 16 in closed loop (its utime + stime over records"
            " delivered),",
            "over the floor: the kernel's receive side for the record's %d wire bytes plus one memcpy"
            % floor.wire_bytes,
            "of its %d-byte payload, both from this run." % FLOOR_VALUE_BYTES,
            "",
            "- receive side: %.4f CPU-ns per byte (iperf3's receiver, 16 streams) x %d bytes = %.0f cycles"
            % (floor.rx_ns_per_byte, floor.wire_bytes, cycles(floor.receive_us)),
            "- one copy: %d B at %.0f MB/s (memcpy, one core) = %.0f cycles"
            % (FLOOR_VALUE_BYTES, floor.memcpy_mb_per_s, cycles(floor.copy_us)),
            "- floor: %.0f cycles; intaked: %.0f cycles; ratio %s; above the floor: %.0f cycles"
            % (cycles(floor.floor_us), cycles(floor.intake_us), floor.ratio(), cycles(above)),
            "- where the cycles above the floor go: docs/performance.md, \"Where the time goes\""
            " (perf profiles of the same cell)",
            ""]

    def header(self):
        settings = self.settings
        if self.run.intake_built:
            intaked = (f"--backend pbuf --reactors {settings.reactors} --workers {settings.workers}"
                       f" {' '.join(settings.extra_flags)}")
        else:
            intaked = "not built yet"
        nats_words = command_output(["nats-server", "--version"]).split()
        iperf_words = command_output(["iperf3", "--version"]).splitlines()[:1]
        iperf_version = iperf_words[0].split()[1] if iperf_words and len(iperf_words[0].split()) > 1 else ""
        return [
            f"# intake benchmarks ({self.run.mode} run)",
            "",
            f"- date: {utc_now()}",
            f"- kernel: {platform.release()}; cores: {os.cpu_count()}; CPU: {cpuinfo('model name')}",
            f"- {self.run.repetitions} interleaved repetitions of {settings.duration_s} s per cell;"
            " medians shown",
            f"- intaked: {intaked}; nats-server {nats_words[1] if len(nats_words) > 1 else ''};"
            f" iperf3 {iperf_version}",
            "",
            "msgs/s and MB/s: closed loop, end to end (producer write to consumer read), payload bytes.",
            "Latency: open loop at the rate shown (50% of intake's maximum in the same repetition;",
            "of nats's while intaked is not built). CPU: per delivered message, in closed loop, for",
            "the server and for intake-bench's producer threads and consumer thread (see below).",
            "RSS: the server's peak (VmHWM; for intaked it includes the pages of the topic logs it",
            "wrote, which are shared memory). iperf3 is raw TCP (no framing, no delivery); its msgs/s",
            "is MB/s divided by the size.",
            ""]

    def tail(self):
        results = self.results
        lines = ["## Scale checks", "", "```"] + results.lines("scale ") + ["```", "",
                 "## Copy accounting", "",
                 "intaked user-space bytes copied / bytes received (its shutdown line), median per cell:",
                 ""]
        for size in self.run.sizes:
            for conns in self.run.connection_counts:
                lines.append(f"- {size} B x {conns}: "
                             f"{self._cell('%.4f', 'intake', 'closed', size, conns, 'copy_ratio')}")
        return lines + [
            "",
            "## Delivery check",
            "",
            "intake runs where every produced record was consumed exactly once (count equal, no gap,"
            " no duplicate or reordering per connection and topic):"
            f" {results.count('intake', exactly_once=True)} of {results.count('intake')}",
            "",
            "nats runs with the same check passing (core NATS promises at most once; informational):"
            f" {results.count('nats', exactly_once=True)} of {results.count('nats')}",
            "",
            "## Summary",
            "",
            "```"] + closing_lines(results) + ["```"]

    def write(self, path):
        lines = (self.header() + self.matrix() + [""] + self.product_table() + self.tls_table() +
                 self.budget() + self.tail())
        with open(path, "w") as report:
            report.write("\n".join(lines) + "\n")


def write_sweep(path, results, settings, layouts, repetitions):
    """sweep.md: per reactor/worker layout, medians of 256 B x 16 msgs/s, 64 KiB x 1 MB/s and
    the server's CPU per record at 256 B x 16."""
    cells = {}
    for result in results.results():
        if result.get("target") != "intake":
            continue
        layout = result.get("layout")
        for size, metric in (("256", "msgs_per_s"), ("65536", "mb_per_s"),
                             ("256", "server_cpu_s_per_m")):
            value = result.get(metric, "n/a")
            if result.get("size") == size and value != "n/a":
                cells.setdefault((layout, metric), []).append(float(value))
    median = lambda layout, metric: (  # noqa: E731
        statistics.median(cells[(layout, metric)]) if (layout, metric) in cells else None)
    lines = [f"# intaked thread layouts (sweep, {utc_now()}, {os.cpu_count()} cores)", "",
             f"{repetitions} repetitions of {settings.duration_s} s, medians; closed loop, end to"
             f" end; extra flags: {' '.join(settings.extra_flags) or 'none'}", "",
             "| layout | 256 B x 16 msgs/s | 64 KiB x 1 MB/s | CPU s/M msgs (256 B x 16) |",
             "|---|---:|---:|---:|"]
    for reactors, workers in layouts:
        layout = f"{reactors}r{workers}w"
        lines.append(f"| {layout} | {number('%.0f', median(layout, 'msgs_per_s'))} "
                     f"| {number('%.1f', median(layout, 'mb_per_s'))} "
                     f"| {number('%.2f', median(layout, 'server_cpu_s_per_m'))} |")
    with open(path, "w") as report:
        report.write("\n".join(lines) + "\n")
    return "\n".join(lines)
