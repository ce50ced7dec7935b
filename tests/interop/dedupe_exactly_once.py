"""dedupe_exactly_once.py: resent records land in the log once (issue 12), through real intaked
processes and real sockets, with records made by Google's protobuf library (intake_pb2).

Each case resends what a producer that lost its acks would resend, then reads the topic back
with `intake-tail --format raw` and parses every record with Google's library:
  rst:        a connection reset (SO_LINGER 0) before its acks are read; reconnect, resend all;
  sigkill:    intaked killed with SIGKILL mid-stream, three times; restart on the same
              directory, resend everything from the first record each time;
  two:        two producers with distinct ids share a topic and resend: neither suppresses the
              other;
  backwards:  a sequence that goes back within the window is a duplicate (acked OK, counted);
  eviction:   --dedupe-producers 2: a producer that comes back after eviction is appended as new
              and counted unremembered;
  damage:     a scribbled table file is moved aside, rebuilt from the log; the daemon keeps
              deduplicating.
  burst:      --dedupe-producers 4 and 12 producers sending at once, then resending at once:
              every copy the log holds twice is accounted for by a counter (records appended
              unprotected, or producers evicted), where before no counter moved (issue 18).
Expected per topic: every (producer_id, sequence) exactly once, in order, no gap.

Usage: dedupe_exactly_once.py BIN_DIR WORK_DIR   (intake_pb2 on PYTHONPATH)
"""
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import intake_pb2
from interop_util import Checks, Daemon, read_varint, varint

BIN_DIR, WORK = sys.argv[1:3]
WAIT_S = 120  # bound on waits for progress that must come; never a timing assertion
check = Checks("dedupe_exactly_once")


def frame(topic, producer_id, sequence):
    record = intake_pb2.Record(topic=topic, value=f"{producer_id}:{sequence}".encode() * 3,
                               sequence=sequence, producer_id=producer_id.encode())
    body = record.SerializeToString()
    return varint(len(body)) + body


def daemon_start(shm_dir, name, extra=()):
    return Daemon(BIN_DIR, WORK, shm_dir, name, check, WAIT_S, extra)


class Connection:
    """One producer connection: sends frames, a thread reads Acks (cumulative)."""

    def __init__(self, daemon):
        self.socket = socket.create_connection(("127.0.0.1", daemon.port), timeout=WAIT_S)
        self.acked = 0
        self.statuses = []
        self.closed = False
        self.condition = threading.Condition()
        self.reader = threading.Thread(target=self.read_acks, daemon=True)
        self.reader.start()

    def read_acks(self):
        data = b""
        try:
            while True:
                chunk = self.socket.recv(65536)
                if not chunk:
                    break
                data += chunk
                while data:
                    try:
                        length, start = read_varint(data, 0)
                    except IndexError:
                        break
                    if len(data) < start + length:
                        break
                    ack = intake_pb2.Ack.FromString(data[start:start + length])
                    data = data[start + length:]
                    with self.condition:
                        if ack.status != intake_pb2.Ack.OK:
                            self.statuses.append((ack.status, ack.detail))
                        self.acked = max(self.acked, ack.sequence)
                        self.condition.notify_all()
        except OSError:
            pass
        with self.condition:
            self.closed = True
            self.condition.notify_all()

    def send(self, frames):
        try:
            self.socket.sendall(b"".join(frames))
            return True
        except OSError:
            return False

    def send_paced(self, frames, chunk=200, pause_s=0.002):
        """Sends in small chunks with pauses, so a kill lands mid-stream."""
        for start in range(0, len(frames), chunk):
            if not self.send(frames[start:start + chunk]):
                return
            time.sleep(pause_s)

    def wait_acked(self, sequence):
        deadline = time.monotonic() + WAIT_S
        with self.condition:
            while self.acked < sequence and not self.closed and not self.statuses:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.condition.wait(left)
            return self.acked >= sequence

    def reset(self):
        """Drops the connection with RST: unread acks are lost. The reader thread is woken
        first (shutdown of the read side sends nothing): a socket closed while another thread
        blocks in recv on it stays open until that recv returns, and would send no RST."""
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.socket.shutdown(socket.SHUT_RD)
        self.reader.join(WAIT_S)
        check(not self.reader.is_alive(), "reader thread ended before the reset")
        self.socket.close()

    def close(self):
        self.socket.shutdown(socket.SHUT_WR)
        self.reader.join(WAIT_S)
        check(not self.reader.is_alive(), "intaked closed the connection after its last ack")
        self.socket.close()
        check(not self.statuses, f"non-OK acks: {self.statuses[:3]}")


def produce(daemon, topic, producer_id, first, last):
    """Sends first..last on a new connection and waits until all are acked."""
    connection = Connection(daemon)
    connection.send([frame(topic, producer_id, s) for s in range(first, last + 1)])
    check(connection.wait_acked(last), f"{producer_id} on {topic}: acked up to {connection.acked}"
          f", wanted {last}")
    connection.close()


def log_records(shm_dir, topic):
    """(producer_id, sequence) of every record in the topic's log, in order."""
    tail = subprocess.run([os.path.join(BIN_DIR, "intake-tail"), "--shm-dir", shm_dir,
                           "--topic", topic, "--from-start", "--format", "raw"],
                          capture_output=True, timeout=WAIT_S)
    check(tail.returncode == 0, f"intake-tail {topic}: {tail.stderr.decode().strip()}")
    data, position, records = tail.stdout, 0, []
    while position < len(data):
        length, position = read_varint(data, position)
        record = intake_pb2.Record.FromString(data[position:position + length])
        position += length
        check(record.value == f"{record.producer_id.decode()}:{record.sequence}".encode() * 3,
              f"record {record.sequence} of {topic} intact")
        records.append((record.producer_id.decode(), record.sequence))
    return records


def topic_counters(shm_dir, topic):
    stat = subprocess.run([os.path.join(BIN_DIR, "intake-stat"), "--shm-dir", shm_dir],
                          capture_output=True, text=True, timeout=WAIT_S)
    for line in stat.stdout.splitlines():
        if line.startswith(f"topic {topic}: "):
            return {key: int(value) for key, value in
                    (word.split("=") for word in line.split() if "=" in word and
                     word.split("=")[1].isdigit())}
    check(False, f"intake-stat shows topic {topic}: {stat.stdout}{stat.stderr}")
    return {}


def expect_once(shm_dir, topic, producers):
    """producers: {id: last}: each id's 1..last exactly once, in order."""
    records = log_records(shm_dir, topic)
    for producer_id, last in producers.items():
        sequences = [s for p, s in records if p == producer_id]
        check(sequences == list(range(1, last + 1)),
              f"{topic}/{producer_id}: {len(sequences)} records, wanted 1..{last} once in order "
              f"(first differences: {[s for i, s in enumerate(sequences) if s != i + 1][:5]})")
    check(len(records) == sum(producers.values()), f"{topic}: {len(records)} records in all")


def case_rst(daemon):
    total = 2000
    frames = [frame("rst", "producer-rst", s) for s in range(1, total + 1)]
    first = Connection(daemon)
    first.send(frames)
    check(first.wait_acked(total // 2), "first connection acked half")
    first.reset()  # the rest of its acks are never read
    produce(daemon, "rst", "producer-rst", 1, total)
    expect_once(daemon.shm_dir, "rst", {"producer-rst": total})
    counters = topic_counters(daemon.shm_dir, "rst")
    check(counters.get("duplicate", 0) >= total // 2,
          f"rst: duplicates counted ({counters.get('duplicate')})")
    print(f"dedupe_exactly_once: rst: {total} records once after a reset and a resend; "
          f"duplicate={counters.get('duplicate')}")


def case_two(daemon):
    left, right = Connection(daemon), Connection(daemon)
    for start in range(1, 501, 50):
        left.send([frame("shared", "left", s) for s in range(start, start + 50)])
        right.send([frame("shared", "right", s) for s in range(start, start + 50)])
    check(left.wait_acked(500) and right.wait_acked(500), "both producers acked")
    left.close()
    right.close()
    produce(daemon, "shared", "left", 1, 500)  # resend: all duplicates of left's own
    produce(daemon, "shared", "right", 401, 600)  # half resend, half new
    expect_once(daemon.shm_dir, "shared", {"left": 500, "right": 600})
    print("dedupe_exactly_once: two: two producers with the same sequences kept apart")


def case_backwards(daemon):
    produce(daemon, "back", "backwards", 1, 10)
    before = topic_counters(daemon.shm_dir, "back").get("duplicate", 0)
    produce(daemon, "back", "backwards", 4, 4)
    produce(daemon, "back", "backwards", 11, 12)
    expect_once(daemon.shm_dir, "back", {"backwards": 12})
    after = topic_counters(daemon.shm_dir, "back").get("duplicate", 0)
    check(after == before + 1, f"backwards: duplicate counted ({before} -> {after})")
    print("dedupe_exactly_once: backwards: a sequence going back is acked OK, not appended")


def case_eviction():
    daemon = daemon_start(os.path.join("/dev/shm", f"intake-dedupe-evict-{os.getpid()}"), "evict",
                    ["--dedupe-producers", "2"])
    try:
        # One record each: each commits in one batch, so all stay in probation (issue 17's
        # segmented window) and "c" evicts "a", the least recently committed.
        for producer_id in ("a", "b", "c"):
            produce(daemon, "evict", producer_id, 1, 1)
        produce(daemon, "evict", "a", 1, 1)  # past the window: appended again, counted
        produce(daemon, "evict", "c", 1, 1)  # still remembered: a duplicate
        records = log_records(daemon.shm_dir, "evict")
        a = [s for p, s in records if p == "a"]
        check(a == [1, 1], f"evicted producer appended again as documented: {a}")
        check([s for p, s in records if p == "c"] == [1], "c once")
        counters = topic_counters(daemon.shm_dir, "evict")
        check(counters.get("dedupe_unremembered") == 1, f"unremembered counted: {counters}")
        check(counters.get("dedupe_evictions", 0) >= 2, f"evictions counted: {counters}")
        print(f"dedupe_exactly_once: eviction: {counters.get('dedupe_evictions')} evictions, "
              f"{counters.get('dedupe_unremembered')} unremembered")
    finally:
        daemon.stop()
        subprocess.run(["rm", "-rf", daemon.shm_dir])


def burst(daemon, topic, count):
    """One record from each of `count` producers, sent as close together as sockets allow."""
    connections = [Connection(daemon) for _ in range(count)]
    frames = [frame(topic, f"burst-{index}", 1) for index in range(count)]
    for connection, one in zip(connections, frames):
        connection.send([one])
    for connection in connections:
        check(connection.wait_acked(1), "burst: acked")
        connection.close()


def case_burst():
    daemon = daemon_start(os.path.join("/dev/shm", f"intake-dedupe-burst-{os.getpid()}"), "burst",
                    ["--dedupe-producers", "4"])
    try:
        burst(daemon, "burst", 12)
        burst(daemon, "burst", 12)  # every producer resends its record
        records = log_records(daemon.shm_dir, "burst")
        extra = len(records) - 12
        counters = topic_counters(daemon.shm_dir, "burst")
        accounted = counters.get("dedupe_unprotected", 0) + counters.get("dedupe_evictions", 0)
        check(len(set(records)) == 12, f"burst: all 12 records in the log ({len(set(records))})")
        check(extra <= accounted,
              f"burst: {extra} copies twice in the log, {accounted} accounted for: {counters}")
        print(f"dedupe_exactly_once: burst: {extra} records twice in the log; counters "
              f"dedupe_unprotected={counters.get('dedupe_unprotected')} "
              f"dedupe_evictions={counters.get('dedupe_evictions')}")
    finally:
        daemon.stop()
        subprocess.run(["rm", "-rf", daemon.shm_dir])


def case_sigkill():
    daemon = daemon_start(os.path.join("/dev/shm", f"intake-dedupe-kill-{os.getpid()}"), "kill")
    total, kills = 30000, 3
    frames = [frame("killed", "producer-kill", s) for s in range(1, total + 1)]
    try:
        for kill in range(kills):
            connection = Connection(daemon)
            sender = threading.Thread(target=connection.send_paced, args=(frames,), daemon=True)
            sender.start()
            wanted = (kill + 1) * total // (kills + 2)
            check(connection.wait_acked(wanted),
                  f"progress before kill {kill + 1}: acked {connection.acked} of {wanted}, "
                  f"closed {connection.closed}, statuses {connection.statuses[:2]}")
            daemon.kill()  # mid-stream: records in flight, some committed and never acked
            sender.join(WAIT_S)
            connection.reader.join(WAIT_S)
            check(not sender.is_alive() and not connection.reader.is_alive(),
                  "the killed daemon's connection ended")
            connection.socket.close()
            daemon.start()  # same directory: logs and tables as the kill left them
        produce(daemon, "killed", "producer-kill", 1, total)
        expect_once(daemon.shm_dir, "killed", {"producer-kill": total})
        duplicate = topic_counters(daemon.shm_dir, "killed").get("duplicate", 0)
        check(duplicate > 0, "resent records after the last kill were recognised")
        print(f"dedupe_exactly_once: sigkill: {total} records once after {kills} SIGKILLs and "
              f"resends; duplicate={duplicate} after the last restart")
    finally:
        daemon.stop()
        subprocess.run(["rm", "-rf", daemon.shm_dir])


def case_damage(daemon):
    daemon.stop()
    path = os.path.join(daemon.shm_dir, "rst.dedupe")
    check(os.path.exists(path), "rst.dedupe exists")
    with open(path, "r+b") as table:
        table.seek(128)
        table.write(b"\xa5" * 4096)  # every copy of the first entries
    daemon.start()
    produce(daemon, "rst", "producer-rst", 1, 2001)  # all but the last are duplicates
    expect_once(daemon.shm_dir, "rst", {"producer-rst": 2001})
    text = daemon.text()
    check("deduplication table" in text and "failed its checks" in text, "damage said in a line")
    check(any(name.startswith("rst.dedupe.corrupt-") for name in os.listdir(daemon.shm_dir)),
          "damaged table moved aside")
    counters = topic_counters(daemon.shm_dir, "rst")
    check(counters.get("dedupe_rebuilds") == 1, f"rebuild counted: {counters}")
    print("dedupe_exactly_once: damage: quarantined, rebuilt from the log, still deduplicating")


def main():
    shm_dir = os.path.join("/dev/shm", f"intake-dedupe-{os.getpid()}")
    daemon = daemon_start(shm_dir, "main")
    try:
        case_rst(daemon)
        case_two(daemon)
        case_backwards(daemon)
        case_damage(daemon)
    finally:
        daemon.stop()
        subprocess.run(["rm", "-rf", shm_dir])
    case_eviction()
    case_burst()
    case_sigkill()
    print(f"dedupe_exactly_once: {len(check.failures)} failures")
    sys.exit(1 if check.failures else 0)


main()
