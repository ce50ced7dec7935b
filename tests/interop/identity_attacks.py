"""identity_attacks.py: the attacks on producer identity listed in issue 17, each refused, against
real intaked processes, with frames made by Google's protobuf library (intake_pb2) and the
product's own intake-produce. Every peer here is anonymous (the plaintext listener): the
producer_id is then a bearer secret, and each case checks that a peer that uses (or guesses)
one still cannot make intaked acknowledge a record it did not write.

  a  Producer A commits 1..1000. Another connection sends A's id with sequence 10^18: REJECTED,
     naming the sequence, the bound and the producer; nothing of it is written; A's Hello is
     still answered 1000 and A's next 1,000 records are acked and in the log. A jump within
     the bound is admitted, and A's records inside the gap it leaves are appended, not dropped.
  b  intake-produce after a forged record: (1) L's id forged at 10^18 before L ever wrote: L's
     500 records are acked and all 500 are in the log; (2) intaked answers L2's Hello with a
     sequence above what this intake-produce sent: it prints why, reports the records failed,
     never prints "acked", and exits 1.
  c  Sequences 1, 2, 3, 10 then 4..9: on one connection 10 is REJECTED (out of order, named);
     across three connections 4..9 are appended and acked, none dropped.
  d  A producer that committed in two batches, then 1,100 one-record connections with made-up
     ids sent at once, then a routine restart: the producer's resend lands once (the dedupe
     window keeps it), and nothing was appended unprotected.
  f  A Hello of a made-up id is answered 0 and evicts nothing: 1,000 of them with
     --producers-max 4 leave a real producer's answer intact.
  (e, colliding ids, is a benchmark: bench/id-flood, README "Performance".)
Each case says what it saw. a, b and c are identity_cases.py's far_ahead, library_forged and
gap (the log's entries checked under the principal `anonymous`), which identity_attacks_mtls.py
runs over mutual TLS too, beside the attacks across two principals that hold one producer_id.

Usage: identity_attacks.py BIN_DIR WORK_DIR   (intake_pb2 on PYTHONPATH)
"""
import os
import sys
import threading
import time

from identity_cases import ANONYMOUS, FAR, IdentityCases, record
from interop_util import Checks, Daemon, topic_counter

BIN_DIR, WORK = sys.argv[1:3]
WAIT_S = 60  # bound on waits for progress that must come; never a timing assertion
check = Checks("identity_attacks")
cases = IdentityCases(BIN_DIR, check, WAIT_S)


def daemon_start(name, extra=()):
    shm_dir = os.path.join("/dev/shm", f"intake-attacks-{name}-{os.getpid()}")
    return Daemon(BIN_DIR, WORK, shm_dir, name, check, WAIT_S, extra)


def produce(daemon, topic, producer_id, first, last):
    return cases.produce(daemon, ANONYMOUS, topic, producer_id, first, last)


def hello_answer(daemon, producer_id):
    return cases.hello_answer(daemon, ANONYMOUS, producer_id)


def log_records(daemon, topic):
    """(producer_id, sequence) of every record in the topic's log, in order."""
    return [(producer_id, sequence) for _, producer_id, sequence in cases.entries(daemon, topic)]


def case_a(daemon):
    detail = cases.far_ahead(daemon, ANONYMOUS, "attack-a", "a", b"A")
    # A jump within the bound: admitted, and the gap below it stays a gap.
    check(produce(daemon, "attack-a", b"A", 2100, 2100), "a: a jump of 100 is admitted")
    check(hello_answer(daemon, b"A") == 2000, "a: A's Hello stays below the gap")
    check(produce(daemon, "attack-a", b"A", 2001, 2099), "a: A's records inside the gap acked")
    records = log_records(daemon, "attack-a")
    sequences = [s for p, s in records if p == b"A"]
    check(sequences == list(range(1, 2001)) + [2100] + list(range(2001, 2100)),
          f"a: every acked record of A is in the log once, the forged one is not "
          f"({len(sequences)} records)")
    check(FAR not in sequences, "a: 10^18 was not written")
    print(f"identity_attacks: a: 10^18 refused ({detail}); 2,100 records of A once in the log")


def case_b(daemon):
    cases.library_forged(daemon, ANONYMOUS, "attack-b", "b")
    print("identity_attacks: b: after a forged record 500 acked and 500 written; a Hello above "
          "what was sent makes intake-produce fail, exit 1")


def case_c(daemon):
    sequences = cases.gap(daemon, ANONYMOUS, "attack-c", "c")
    print(f"identity_attacks: c: jump refused on one connection; across connections 4..9 "
          f"written ({sequences})")


def case_d():
    daemon = daemon_start("flood")
    try:
        # R commits in two batches (two connections, each acked before the next).
        check(produce(daemon, "attack-d", b"R", 1, 50), "d: R's first batch")
        check(produce(daemon, "attack-d", b"R", 51, 100), "d: R's second batch")
        # 1,100 one-record connections with made-up ids, all at once (a few threads).
        def flood(start):
            for index in range(start, 1100, 10):
                connection = cases.connect(daemon, ANONYMOUS)
                connection.send(record("attack-d", f"made-up-{index}".encode(), 1))
                connection.close_cleanly()
        started = time.monotonic()
        threads = [threading.Thread(target=flood, args=(start,)) for start in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_S)
        elapsed = time.monotonic() - started
        text = cases.stat(daemon)
        evictions = topic_counter(text, "attack-d", "dedupe_evictions")
        daemon.stop()  # a routine restart
        daemon.start()
        check(produce(daemon, "attack-d", b"R", 1, 100), "d: R resends 1..100 after the restart")
        sequences = [s for p, s in log_records(daemon, "attack-d") if p == b"R"]
        check(sequences == list(range(1, 101)), f"d: R's records once ({len(sequences)})")
        made_up = [p for p, s in log_records(daemon, "attack-d") if p.startswith(b"made-up-")]
        check(len(made_up) == 1100, f"d: the flood's records are written ({len(made_up)})")
        text = cases.stat(daemon)
        check(topic_counter(text, "attack-d", "duplicate") == 100, "d: R's resend: 100 duplicates")
        print(f"identity_attacks: d: 1,100 made-up ids in {elapsed:.2f} s ({evictions} evictions "
              f"of made-up ids); R's resend after a restart landed once")
    finally:
        daemon.stop()
        daemon.remove()


def case_f():
    daemon = daemon_start("hellos", ["--producers-max", "4"])
    try:
        for round_ in range(2):  # two committing connections: established
            check(produce(daemon, "attack-f", b"F", 50 * round_ + 1, 50 * round_ + 50),
                  "f: F commits")
        for index in range(1000):
            check(hello_answer(daemon, f"guess-{index}".encode()) == 0,
                  "f: an unknown id's Hello is answered 0")
        check(hello_answer(daemon, b"F") == 100, "f: F's Hello answer survives 1,000 made-up Hellos")
        daemon.stop()
        log = daemon.text()
        line = [l for l in log.splitlines() if "producer table at shutdown" in l]
        check(line and "producers=1 " in line[-1] and "evictions=0" in line[-1],
              f"f: made-up Hellos made no entry: {line}")
        print("identity_attacks: f: 1,000 Hellos of made-up ids answered 0, no entry made")
    finally:
        daemon.stop()
        daemon.remove()


def main():
    daemon = daemon_start("main")
    try:
        case_a(daemon)
        case_b(daemon)
        case_c(daemon)
    finally:
        daemon.stop()
        daemon.remove()
    case_d()
    case_f()
    print(f"identity_attacks: {len(check.failures)} failures")
    sys.exit(1 if check.failures else 0)


main()
