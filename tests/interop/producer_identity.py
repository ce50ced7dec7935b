"""producer_identity.py: producer identity (Record.producer_id, the Hello frame) against a real
intaked, with frames made by Google's protobuf library (issue 12).

Checks, each on its own connection(s):
  - a Hello on a fresh daemon is answered at once with Ack{OK, sequence 0};
  - records with a producer_id, acked, then a clean close: the next Hello is answered with the
    last acked sequence, before any record Ack of the new connection; a connection that sets
    its identity with its first record (no Hello) folds too;
  - a connection ended by a bad record still folds what it committed;
  - REJECTED, with a clear detail, and the connection ends: a Hello after a record, two Hellos,
    a producer_id that differs, a record without producer_id after a Hello, 65-byte producer_ids
    (Record and Hello), a record with a producer_id and no sequence, a Hello with another field;
  - old producers (no producer_id) are unaffected, and their records are in the log;
  - --producers-max 2: the least recently folded producer is forgotten (its Hello gets 0);
  - intake-stat shows hellos_answered and identity_rejections (malformed Hellos and producer_ids
    of a refused size count as identity rejections).

Usage: producer_identity.py BIN_DIR WORK_DIR   (intake_pb2 on PYTHONPATH)
"""
import os
import signal
import subprocess
import sys

import intake_pb2
from daemon_ready import wait_ready
from interop_util import AckConnection, delimited, varint

failures = 0
passes = 0


def check(condition, description):
    global failures, passes
    if condition:
        passes += 1
    else:
        failures += 1
        print(f"producer_identity: FAILED: {description}", file=sys.stderr)


def hello(producer_id):
    return delimited(intake_pb2.Hello(producer_id=producer_id))


def record(topic, sequence, producer_id=None, value=b"v"):
    message = intake_pb2.Record(topic=topic, sequence=sequence, value=value)
    if producer_id is not None:
        message.producer_id = producer_id
    return delimited(message)


class Connection(AckConnection):
    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        super().__init__(host, port, 10)

    def expect_rejected(self, detail_part, description):
        """Reads to the end: the last Ack must be REJECTED naming `detail_part`, then EOF."""
        last = self.last_ack()
        check(last is not None and last.status == intake_pb2.Ack.REJECTED,
              f"{description}: REJECTED (got {last})")
        check(last is not None and detail_part in last.detail,
              f"{description}: detail names '{detail_part}' (got {last and last.detail!r})")
        return last


def hello_answer(address, producer_id):
    connection = Connection(address)
    connection.send(hello(producer_id))
    ack = connection.read_ack()
    connection.close_cleanly()
    return ack


def start_daemon(bin_dir, shm_dir, log_path, extra=()):
    log = open(log_path, "w")
    daemon = subprocess.Popen([os.path.join(bin_dir, "intaked"), "--listen", "127.0.0.1:0",
                               "--shm-dir", shm_dir, "--backend", "pbuf", "--log-size", "1M",
                               "--max-frame", "256K", *extra],
                              stderr=log)
    ready = wait_ready(bin_dir, shm_dir, daemon)
    if ready is not None:
        return daemon, ready["listen"]
    sys.exit(f"producer_identity: intaked did not start:\n{open(log_path).read()}")


def stop_daemon(daemon, shm_dir, log_path):
    daemon.send_signal(signal.SIGTERM)
    status = daemon.wait(timeout=30)
    check(status == 0, f"intaked exits 0 (got {status}):\n{open(log_path).read()}")


def watermarks(address):
    ack = hello_answer(address, b"producer-a")
    check(ack is not None and ack.status == intake_pb2.Ack.OK and ack.sequence == 0,
          f"fresh daemon: Hello answered OK 0 (got {ack})")

    # Hello and 50 records in one write: the Hello's answer comes first, then record Acks.
    connection = Connection(address)
    connection.send(hello(b"producer-a") +
                    b"".join(record("identity", s, b"producer-a") for s in range(1, 51)))
    first = connection.read_ack()
    check(first is not None and first.status == intake_pb2.Ack.OK and first.sequence == 0,
          f"the Hello's answer comes before record Acks (got {first})")
    acks = connection.acks_until(50)
    check(acks and acks[-1].status == intake_pb2.Ack.OK and acks[-1].sequence == 50,
          f"records 1..50 acked (last {acks[-1] if acks else None})")
    connection.close_cleanly()

    # Reconnect: the Hello learns 50; new records after it, acked cumulatively as usual.
    connection = Connection(address)
    connection.send(hello(b"producer-a"))
    ack = connection.read_ack()
    check(ack is not None and ack.status == intake_pb2.Ack.OK and ack.sequence == 50,
          f"Hello after reconnect answered with 50 (got {ack})")
    connection.send(b"".join(record("identity", s, b"producer-a") for s in range(51, 61)))
    acks = connection.acks_until(60)
    check(acks and acks[-1].sequence == 60, "records 51..60 acked")
    connection.close_cleanly()

    # No Hello: the first record sets the identity, and the connection folds as well.
    connection = Connection(address)
    connection.send(b"".join(record("identity", s, b"producer-a") for s in range(61, 71)))
    acks = connection.acks_until(70)
    check(acks and acks[-1].sequence == 70, "records 61..70 acked without a Hello")
    connection.close_cleanly()
    ack = hello_answer(address, b"producer-a")
    check(ack is not None and ack.sequence == 70, f"Hello answered with 70 (got {ack})")

    # Another producer is independent of producer-a.
    ack = hello_answer(address, b"producer-b")
    check(ack is not None and ack.sequence == 0, f"producer-b unknown: 0 (got {ack})")

    # A connection ended by a bad record still folds what it committed (acked or not).
    connection = Connection(address)
    connection.send(hello(b"producer-c"))
    connection.read_ack()
    connection.send(b"".join(record("identity", s, b"producer-c") for s in range(1, 6)) +
                    record("", 6, b"producer-c"))
    final = connection.expect_rejected("record has no topic", "bad record after 5 good ones")
    check(final is not None and final.sequence == 5, f"final Ack carries 5 (got {final})")
    ack = hello_answer(address, b"producer-c")
    check(ack is not None and ack.sequence == 5, f"producer-c's Hello answered 5 (got {ack})")


def mixed_frame():
    """One frame holding a Hello's field 16 and a Record's topic (fields concatenate)."""
    body = (intake_pb2.Hello(producer_id=b"producer-d").SerializeToString() +
            intake_pb2.Record(topic="t", sequence=1).SerializeToString())
    return varint(len(body)) + body


def rejections(address):
    long_id = b"x" * 65
    cases = [
        ("Hello after a record", record("identity", 1, b"producer-d") + hello(b"producer-d"),
         "a Hello must be the connection's first frame"),
        ("two Hellos", hello(b"producer-d") + hello(b"producer-d"),
         "a Hello must be the connection's first frame"),
        ("producer_id differs", hello(b"producer-d") + record("identity", 1, b"producer-e"),
         "producer_id differs"),
        ("records' producer_ids differ",
         record("identity", 1, b"producer-d") + record("identity", 2, b"producer-e"),
         "producer_id differs"),
        ("record without producer_id after a Hello", hello(b"producer-d") +
         record("identity", 1), "a record without a producer_id on a connection that has one"),
        ("record with producer_id after records without", record("identity", 1) +
         record("identity", 2, b"producer-d"), "a record with a producer_id on a connection"),
        ("65-byte producer_id", record("identity", 1, long_id),
         "producer_id is longer than 64 bytes"),
        ("65-byte Hello", hello(long_id), "producer_id is longer than 64 bytes"),
        ("producer_id with sequence 0", record("identity", 0, b"producer-d"),
         "a record with a producer_id needs a sequence of 1 or more"),
        ("Hello with a topic", mixed_frame(), "a Hello frame (field 16) carries no other field"),
    ]
    for description, data, detail in cases:
        connection = Connection(address)
        connection.send(data)
        connection.expect_rejected(detail, description)
    # 64 bytes is the most, and fine.
    ack = hello_answer(address, b"y" * 64)
    check(ack is not None and ack.status == intake_pb2.Ack.OK, f"64-byte Hello is fine ({ack})")
    return len(cases)


def old_producers(address, bin_dir, shm_dir):
    connection = Connection(address)
    connection.send(b"".join(record("legacy", s, None, b"old-%d" % s) for s in range(1, 21)))
    acks = connection.acks_until(20)
    check(acks and acks[-1].status == intake_pb2.Ack.OK and acks[-1].sequence == 20,
          "old producer: 20 records acked")
    connection.close_cleanly()
    tail = subprocess.run([os.path.join(bin_dir, "intake-tail"), "--shm-dir", shm_dir, "--topic",
                           "legacy", "--from-start", "--count", "20", "--format", "raw"],
                          capture_output=True, timeout=30)
    expected = b"".join(record("legacy", s, None, b"old-%d" % s) for s in range(1, 21))
    check(tail.returncode == 0 and tail.stdout == expected,
          f"old producer's records in the log byte-identical ({len(tail.stdout)} bytes)")


def counters(bin_dir, shm_dir, rejected):
    stat = subprocess.run([os.path.join(bin_dir, "intake-stat"), "--shm-dir", shm_dir],
                          capture_output=True, timeout=30, text=True)
    check(stat.returncode == 0, f"intake-stat runs: {stat.stderr}")
    hellos = [int(word.split("=")[1]) for word in stat.stdout.split()
              if word.startswith("hellos_answered=")]
    identity = [int(word.split("=")[1]) for word in stat.stdout.split()
                if word.startswith("identity_rejections=")]
    # Hellos answered: 7 in watermarks; in rejections 3 first Hellos and the 64-byte one.
    # Identity rejections, 9 of the rejection cases: misplaced Hellos and differing ids (6),
    # producer_ids of 65 bytes in a record and in a Hello (2), a Hello with a topic (1). A
    # producer_id with sequence 0 breaks the sequence rule, not the identity one.
    check(sum(hellos) == 11, f"intake-stat: hellos_answered {hellos}")
    check(sum(identity) == 9, f"intake-stat: identity_rejections {identity}")


def eviction(bin_dir, work):
    shm_dir = os.path.join("/dev/shm", f"intake-identity-evict-{os.getpid()}")
    log_path = os.path.join(work, "intaked-evict.log")
    daemon, address = start_daemon(bin_dir, shm_dir, log_path, ("--producers-max", "2"))
    try:
        for name, last in ((b"first", 3), (b"second", 4), (b"third", 5)):
            connection = Connection(address)
            connection.send(b"".join(record("evict", s, name) for s in range(1, last + 1)))
            acks = connection.acks_until(last)
            check(acks and acks[-1].sequence == last, f"{name}: acked {last}")
            connection.close_cleanly()
        answers = {name: hello_answer(address, name) for name in (b"first", b"second", b"third")}
        check(answers[b"first"].sequence == 0, "--producers-max 2: the least recently folded "
              f"producer is forgotten (got {answers[b'first'].sequence})")
        check(answers[b"second"].sequence == 4 and answers[b"third"].sequence == 5,
              f"the other two are kept ({answers[b'second'].sequence}, "
              f"{answers[b'third'].sequence})")
    finally:
        stop_daemon(daemon, shm_dir, log_path)
        subprocess.run(["rm", "-rf", shm_dir])
    log = open(log_path).read()
    check("producers=2 evictions=1 capacity=2" in log,
          "the shutdown report counts the producer table: "
          f"{[line for line in log.splitlines() if 'producer table' in line]}")


def main():
    bin_dir, work = sys.argv[1:3]
    shm_dir = os.path.join("/dev/shm", f"intake-identity-{os.getpid()}")
    log_path = os.path.join(work, "intaked.log")
    # Two reactors: connections of one producer land on either, and both fold into one table.
    daemon, address = start_daemon(bin_dir, shm_dir, log_path, ("--reactors", "2"))
    try:
        watermarks(address)
        rejected = rejections(address)
        old_producers(address, bin_dir, shm_dir)
        counters(bin_dir, shm_dir, rejected)
    finally:
        stop_daemon(daemon, shm_dir, log_path)
        subprocess.run(["rm", "-rf", shm_dir])
    eviction(bin_dir, work)
    print(f"producer_identity: {passes} passed, {failures} failed")
    sys.exit(1 if failures else 0)


main()
