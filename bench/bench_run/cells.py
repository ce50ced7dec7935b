"""One measurement each, against a freshly started server: intake-bench load runs (closed and
open loop, every variant), iperf3 (the TCP ceiling and the kernel's CPU per byte), memcpy (the
copy ceiling) and the idle-connection scale check. Each appends its line to the raw results.

intake-bench's options per variant of a cell (the variant is in every result line):
  base         intake-bench's own encoder, no acks (every system)
  library      intake's producers are the product's producer library (include/intake/producer.h)
  acks         acks on (sequences, cumulative acks read back)
  idem         acks on and a producer_id (field 7) per connection: the only difference from acks
  fixed        open loop at the fixed CPU-comparison rate, after a warm-up
  topics       (with 1,000 topics) closed loop after a warm-up that creates every topic
  handles      as topics, with intake's consumer polling one handle per topic (no consumer set)
  tls          intake-bench's own encoder over TLS 1.3 (OpenSSL, AES-128-GCM) to --tls-listen
  library-tls  the producer library over its TLS"""

import os
import re
import subprocess
import time

from .processes import (CLOCK_TICKS_PER_S, cpu_ticks, current_rss_kb, file_tail, log,
                        peak_rss_kb)
from .results import fields

VARIANT_ARGS = {
    "library": ["--producer", "library"],
    "library-tls": ["--producer", "library"],
    "acks": ["--acks"],
    "idem": ["--acks", "--producer-id"],
    "handles": ["--consumer", "handles"],
}
TLS_VARIANTS = ("tls", "library-tls")
WARMED_VARIANTS = ("fixed", "topics", "handles")
WARM_UP_RECORDS = 50000
WARM_UP_TIMEOUT_S = 60
IDLE_POLL_S = 0.3
IDLE_POLLS_MAX = 100      # 30 s
IDLE_TICKS_MAX = 1        # "idle": at most one tick of CPU in IDLE_POLL_S
LOAD_TIMEOUT_SLACK_S = 60
IPERF3_TIMEOUT_SLACK_S = 30
OPEN_LOOP_WARMUP_S = "0.5"
IDLE_READY_POLLS = 1200   # 0.1 s each
IDLE_SETTLE_S = 1.0
CPU_RATE_MAX = 200000
CPU_RATE_MIN = 1000


def batch_for_size(size):
    """Records per write: about 16 KiB per write for small records, one per write from 64 KiB."""
    return max(1, min(256, 65536 // size))


def copy_ratio_from_log(log_path):
    """intaked's shutdown line "copy account at shutdown: copied_bytes=N received_bytes=N ..."
    (user-space bytes copied between receive buffers and logs, over bytes received), as
    copied / received, or n/a when the line is missing."""
    try:
        with open(log_path, errors="replace") as log_file:
            text = log_file.read()
    except OSError:
        return "n/a"
    copied = re.findall(r"copied_bytes=([0-9]+)", text)
    received = re.findall(r"received_bytes=([0-9]+)", text)
    if not copied or not received or int(received[-1]) == 0:
        return "n/a"
    return "%.3f" % (int(copied[-1]) / int(received[-1]))


class Cells:
    """The measurements of one bench/run. settings is bench/run's Settings (paths, durations,
    the intaked layout); log_size and line_suffix change between cells."""

    def __init__(self, settings, servers, results):
        self.settings = settings
        self.servers = servers
        self.results = results
        self.bench = os.path.join(settings.build_dir, "intake-bench")
        self.bench_errors = os.path.join(settings.work_dir, "bench.err")
        self.logs_dir = os.path.join(settings.shm_dir, "logs")
        self.line_suffix = ""

    def _run_bench(self, args, timeout_s, stdout=subprocess.PIPE):
        """intake-bench with its stderr appended to bench.err: (exit status, stdout text)."""
        with open(self.bench_errors, "ab") as errors:
            try:
                done = subprocess.run([self.bench] + args, stdout=stdout, stderr=errors,
                                      timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return 124, ""
        output = done.stdout.decode(errors="replace") if done.stdout else ""
        return done.returncode, output.strip()

    def record_result(self, line, rep, ticks, hwm_kb, copy):
        """Appends the server's cost to a result line: its CPU seconds per million messages is
        its CPU-microseconds per message (utime + stime of every thread, /proc/PID/stat)."""
        msgs = float(fields(line).get("msgs", "0") or 0)
        cpu_s = "%.3f" % (ticks / CLOCK_TICKS_PER_S)
        per_million = "%.3f" % (float(cpu_s) / (msgs / 1e6)) if msgs > 0 else "n/a"
        self.results.append(f"{line} rep={rep} server_cpu_s={cpu_s} server_cpu_s_per_m={per_million}"
                            f" server_hwm_kb={hwm_kb} copy_ratio={copy}{self.line_suffix}")
        return per_million

    def warm_up(self, server, target, size, conns, topics):
        """A short load before the measurement (variants fixed, topics, handles): the topics'
        logs are created and prefaulted, and a fresh server's memory faulted in, before its CPU
        and rate are counted; then wait (bounded) until the server is idle, so intaked's log
        opener has finished prefaulting. The same for both systems."""
        self._run_bench(["--target", target, "--port", str(server.port), "--connections",
                         str(conns), "--size", str(size), "--batch", str(batch_for_size(size)),
                         "--topics", str(topics), "--count", str(WARM_UP_RECORDS),
                         "--duration-s", "10", "--shm-dir", self.logs_dir],
                        WARM_UP_TIMEOUT_S, stdout=subprocess.DEVNULL)
        for poll in range(1, IDLE_POLLS_MAX + 1):
            before = cpu_ticks(server.pid)
            time.sleep(IDLE_POLL_S)
            if cpu_ticks(server.pid) - before <= IDLE_TICKS_MAX:
                log(f"{target} idle {poll * IDLE_POLL_S:g} s after its warm-up")
                return
        log(f"{target} did not become idle within {IDLE_POLLS_MAX * IDLE_POLL_S:g} s of its warm-up")

    def run_load(self, target, size, conns, rate, rep, topics=1, variant="base"):
        """One intake-bench run against a fresh server; rate 0 is closed loop. Returns its
        msgs/s (the result line's text), or None when it failed."""
        settings = self.settings
        seconds = settings.fixed_duration_s if variant == "fixed" else settings.duration_s
        tls = variant in TLS_VARIANTS
        server = self.servers.start(target, tls=tls)
        if server is None:
            return None
        port_args = ["--port", str(server.port)]
        if tls:
            port_args = ["--port", str(server.tls_port),
                         "--tls-ca", os.path.join(settings.tls_dir, "ca.pem")]
        if variant in WARMED_VARIANTS:
            self.warm_up(server, target, size, conns, topics)
        ticks_before = cpu_ticks(server.pid)
        args = (["--target", target] + port_args +
                ["--connections", str(conns), "--size", str(size),
                 "--batch", str(batch_for_size(size)), "--topics", str(topics),
                 "--duration-s", str(seconds), "--shm-dir", self.logs_dir] +
                VARIANT_ARGS.get(variant, []))
        # Open loop measures latency; its first half second (a freshly started server faulting
        # in its memory, either system) is left out of the figures, not out of the delivery check.
        if int(rate) > 0:
            args += ["--rate", str(rate), "--warmup-s", OPEN_LOOP_WARMUP_S]
        status, line = self._run_bench(args, float(seconds) + LOAD_TIMEOUT_SLACK_S)
        ticks = cpu_ticks(server.pid) - ticks_before
        hwm_kb = peak_rss_kb(server.pid)
        self.servers.stop(server)
        copy = copy_ratio_from_log(server.log_path) if target == "intake" else "n/a"
        what = f"{target} size={size} conns={conns} topics={topics} {variant}"
        if status != 0 or not line.startswith("result"):
            log(f"{what} rate={rate} failed: {file_tail(self.bench_errors, 2)}")
            return None
        result = fields(line)
        if result.get("exactly_once") == "no":
            log(f"{what}: NOT exactly once: {line}")
        server_us = self.record_result(f"{line} variant={variant}", rep, ticks, hwm_kb, copy)
        log(f"{what} rate={rate}: {result.get('msgs_per_s')} msgs/s, p99 {result.get('p99_us')} us,"
            f" CPU us/msg: server {server_us} producers {result.get('producer_us_per_msg')}"
            f" consumer {result.get('consumer_us_per_msg')}")
        return result.get("msgs_per_s")

    def run_iperf3(self, size, conns, rep):
        """The raw-TCP ceiling: iperf3 with as many streams as connections, for as long. Also the
        kernel's TCP cost per byte, from iperf3's own CPU report (-V: getrusage of the sender and
        of the receiver, percent of one core, which includes the loopback softirq work done in
        their context) over the bytes moved: both sides (tcp_ns_per_byte, the budget's TCP
        floor) and the receiver alone (tcp_rx_ns_per_byte, the floor's receive side)."""
        duration_s = self.settings.duration_s
        server = self.servers.start("iperf3")
        if server is None:
            return
        ticks_before = cpu_ticks(server.pid)
        command = ["iperf3", "-c", "127.0.0.1", "-p", str(server.port), "-P", str(conns),
                   "-t", str(duration_s), "-f", "m", "-V"]
        try:
            output = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    timeout=duration_s + IPERF3_TIMEOUT_SLACK_S).stdout
            output = output.decode(errors="replace")
        except subprocess.TimeoutExpired:
            output = "iperf3 timed out"
        ticks = cpu_ticks(server.pid) - ticks_before
        hwm_kb = peak_rss_kb(server.pid)
        self.servers.stop(server)
        # The last "receiver" line is the total ([SUM] with several streams).
        mbits = None
        for line in output.splitlines():
            if re.search(r"Mbits/sec.*receiver", line):
                words = line.split()
                mbits = next((words[i - 1] for i in range(1, len(words))
                              if words[i] == "Mbits/sec"), mbits)
        if mbits is None:
            log(f"iperf3 conns={conns} failed: {' '.join(output.splitlines()[-2:])}")
            return
        sender_cores = receiver_cores = 0.0
        cpu_line = next((line for line in output.splitlines() if "CPU Utilization" in line), "")
        utilization = re.search(r"sender ([0-9.]*)%.*receiver ([0-9.]*)%", cpu_line)
        if utilization:
            sender_cores = float(utilization.group(1) or 0) / 100
            receiver_cores = float(utilization.group(2) or 0) / 100
        cores = float("%.3f" % (sender_cores + receiver_cores))
        rx_cores = float("%.3f" % receiver_cores)
        mb = float(mbits) / 8
        rate = mb * 1e6 / size
        line = (f"result target=iperf3 mode=closed size={size} conns={conns} topics=1 "
                f"msgs={rate * duration_s:.0f} secs={duration_s} msgs_per_s={rate:.0f} "
                f"mb_per_s={mb:.1f} tcp_cores={cores:.3f}")
        if cores > 0 and mb > 0:
            line += f" tcp_ns_per_byte={cores * 1e3 / mb:.4f}"
        if rx_cores > 0 and mb > 0:
            line += f" tcp_rx_cores={rx_cores:.3f} tcp_rx_ns_per_byte={rx_cores * 1e3 / mb:.4f}"
        self.record_result(line, rep, ticks, hwm_kb, "n/a")
        log(f"iperf3 conns={conns}: {mb:.1f} MB/s")

    def run_memcpy(self, size, rep):
        status, line = self._run_bench(["--memcpy", "--size", str(size), "--duration-s", "1"],
                                       None)
        if status == 0 and line.startswith("result"):
            self.results.append(f"{line} topics=1 rep={rep}")

    def run_idle_check(self, target, connections, hold_s):
        """Scale check: the server's resident memory while it holds many idle connections."""
        server = self.servers.start(target)
        if server is None:
            return
        rss_before = current_rss_kb(server.pid)
        idle_output = os.path.join(self.settings.work_dir, "idle.out")
        with open(idle_output, "wb") as output, open(self.bench_errors, "ab") as errors:
            idle = subprocess.Popen([self.bench, "--target", target, "--port", str(server.port),
                                     "--idle-connections", str(connections),
                                     "--hold-s", str(hold_s)], stdout=output, stderr=errors)
        ready_line = ""
        for _ in range(IDLE_READY_POLLS):
            with open(idle_output, errors="replace") as output:
                ready_line = next((line for line in output if line.rstrip().endswith(" ready")), "")
            if ready_line or idle.poll() is not None:
                break
            time.sleep(0.1)
        time.sleep(IDLE_SETTLE_S)  # let the server finish accepting and settle
        rss = current_rss_kb(server.pid)
        hwm_kb = peak_rss_kb(server.pid)
        idle.wait()
        self.servers.stop(server)
        with open(idle_output, errors="replace") as output:
            ready_line = next((line for line in output if line.rstrip().endswith(" ready")), "")
        opened = fields(ready_line).get("opened", "")
        self.results.append(f"scale target={target} idle_connections={connections} opened={opened}"
                            f" rss_before_kb={rss_before} rss_idle_kb={rss} hwm_kb={hwm_kb}")
        log(f"idle {target}: {opened} connections, RSS {rss_before} -> {rss} kB")
