"""The raw result lines of one run (bench/results/raw/<stamp>.txt), their medians, and the
figures the summary derives from them: ratios, costs and the per-record floor.

A result line is "result key=value ...", written by intake-bench, by cells.py for iperf3, or for
memcpy; cells.py appends the server's side (server_cpu_s_per_m, server_hwm_kb, copy_ratio) and
the variant. A cell is (target, mode, size, conns, topics, variant); topics defaults to 1 and
variant to base. A median is taken over a cell's repetitions, per metric, ignoring n/a."""

import statistics

METRICS = ("msgs_per_s", "mb_per_s", "p50_us", "p99_us", "p999_us", "server_cpu_s_per_m",
           "server_hwm_kb", "copy_ratio", "rate", "producer_us_per_msg", "consumer_us_per_msg",
           "tcp_ns_per_byte", "tcp_rx_ns_per_byte")

# The record the floor is for: 256 B values to topic "bench-0" (intake-bench's encoder, no
# sequence, no producer_id), 16 connections, closed loop.
FLOOR_VALUE_BYTES = 256
FLOOR_TOPIC = "bench-0"


def fields(line):
    """key=value words of a line as a dict (words without "=" are skipped)."""
    return dict(word.split("=", 1) for word in line.split() if "=" in word)


def varint_bytes(value):
    length = 1
    while value >= 0x80:
        value >>= 7
        length += 1
    return length


def intake_wire_bytes(value_bytes, topic):
    """Bytes one record takes on the wire as intake-bench encodes it (encode_intake_record in
    bench/bench_encoder.c, no sequence, no producer_id): the length prefix, then field 1 (topic)
    and field 3 (value), each a tag byte, a varint length and the bytes."""
    topic_bytes = len(topic.encode())
    body = 1 + varint_bytes(topic_bytes) + topic_bytes + 1 + varint_bytes(value_bytes) + value_bytes
    return varint_bytes(body) + body


class RawResults:
    """The run's raw file: appended as the run goes, read back for the report."""

    def __init__(self, path):
        self.path = path
        with open(path, "w"):
            pass
        self.medians = {}

    def append(self, line):
        with open(self.path, "a") as raw:
            raw.write(line + "\n")

    def lines(self, prefix):
        with open(self.path) as raw:
            return [line.rstrip("\n") for line in raw if line.startswith(prefix)]

    def results(self):
        return [fields(line) for line in self.lines("result ")]

    def compute_medians(self):
        groups = {}
        for result in self.results():
            cell = (result.get("target"), result.get("mode"), result.get("size"),
                    result.get("conns"), result.get("topics") or "1",
                    result.get("variant") or "base")
            for metric in METRICS:
                value = result.get(metric, "")
                if value in ("", "n/a"):
                    continue
                groups.setdefault((cell, metric), []).append(float(value))
        self.medians = {key: statistics.median(values) for key, values in groups.items()}

    def median(self, target, mode, size, conns, metric, topics=1, variant="base"):
        """The cell's median of metric, or None."""
        cell = (target, mode, str(size), str(conns), str(topics), variant)
        return self.medians.get((cell, metric))

    def count(self, target, mode=None, size=None, conns=None, topics=None, variant=None,
              exactly_once=False):
        """Result lines of the target matching every given field (mode None: closed or open)."""
        total = 0
        for result in self.results():
            if result.get("target") != target:
                continue
            if mode is None and result.get("mode") not in ("closed", "open"):
                continue
            wanted = {"mode": mode, "size": size, "conns": conns, "topics": topics,
                      "variant": variant}
            if any(value is not None and result.get(key) != str(value)
                   for key, value in wanted.items()):
                continue
            if exactly_once and result.get("exactly_once") != "yes":
                continue
            total += 1
        return total


def number(fmt, value):
    return "n/a" if value is None else fmt % value


def ratio(numerator, denominator):
    if numerator is None or denominator is None or denominator <= 0:
        return "n/a"
    return "%.2f" % (numerator / denominator)


def cost(with_it, without_it):
    """1 - with/without: the share of msgs/s a feature costs (negative: noise, or faster)."""
    if with_it is None or without_it is None or without_it <= 0:
        return "n/a"
    return "%.2f" % (1 - with_it / without_it)


class Floor:
    """intaked's CPU per record at 256 B x 16 closed loop against the floor: the kernel's receive
    side for the record's wire bytes (iperf3's receiver CPU per byte, 16 streams, this run) plus
    one memcpy of the payload (intake-bench --memcpy at 256 B, this run). In microseconds per
    record, so the ratio is the same in cycles at any clock; None where a figure is missing."""

    def __init__(self, results):
        self.wire_bytes = intake_wire_bytes(FLOOR_VALUE_BYTES, FLOOR_TOPIC)
        self.intake_us = results.median("intake", "closed", 256, 16, "server_cpu_s_per_m")
        self.rx_ns_per_byte = results.median("iperf3", "closed", 256, 16, "tcp_rx_ns_per_byte")
        self.memcpy_mb_per_s = results.median("memcpy", "closed", 256, 1, "mb_per_s")
        self.receive_us = None
        self.copy_us = None
        if self.rx_ns_per_byte is not None:
            self.receive_us = self.wire_bytes * self.rx_ns_per_byte / 1e3
        if self.memcpy_mb_per_s:
            self.copy_us = FLOOR_VALUE_BYTES / self.memcpy_mb_per_s

    @property
    def floor_us(self):
        if self.receive_us is None or self.copy_us is None:
            return None
        return self.receive_us + self.copy_us

    def ratio(self):
        return ratio(self.intake_us, self.floor_us)
