"""identity_attacks_mtls.py: the attacks on producer identity of issue 17 under mutual TLS, against
real intaked processes started with --tls-listen and --tls-client-ca, with frames made by Google's
protobuf library (intake_pb2) sent through Python's ssl module and the product's own
intake-produce --tls-*. Two client certificates of the test CA (tls_make_certs.sh) name two
principals: A = spiffe://intake/test/producer-1 (a URI SAN) and B = cn-client (a subject CN).
B knows A's producer_ids; each case checks what the log holds (intake-tail, with the principal of
every entry) and what the counters say (intake-stat), never the daemon's log text.

Across principals (issue 17 item 4: state is keyed by (principal, producer_id)):
  x1  A commits "A" 1..1000. B's Hello for "A" is answered 0 (B's own state, as an anonymous
      peer's is), not A's 1000. B sends "A" at 10^18: admitted as B's own (a new producer of
      B's), written under B's principal. A's Hello is still 1000, B's still 0; A's next 1,000
      records are acked and in the log under A's principal, none counted a duplicate.
  x2  B sends A's next sequences first ("A2" 101..200 while A has committed 1..100), then A
      sends them: every one of A's is written under A's principal, none dropped as B's copy.
  x3  B commits an id 1..600: B's Hello for it is answered 600, A's 0. intake-produce as A for
      that id then acks 500 and all 500 are in the log under A's principal (B's 600 did not
      advance the answer A's library checks against what it sent).
  x4  A commits "R" in two batches, then B opens 1,100 one-record connections with made-up ids
      (and A's "R"), then a routine restart: A's resend of 1..100 lands once, counted as 100
      duplicates; the made-up ids filled the topic's dedupe window (evictions counted) and
      evicted only each other, not A.
The same principal over TLS, refused exactly as on plaintext (identity_cases.py's far_ahead, gap
and library_forged, which identity_attacks.py runs for an anonymous peer):
  s1  A commits "S" 1..1000; A's other connection sends "S" at 10^18: REJECTED, naming the
      sequence, the bound and the producer, not written, counted in sequence_rejections; A's
      Hello stays 1000 and A's next 1,000 are acked and in the log.
  s2  1, 2, 3, 10 on one connection: REJECTED at 10; then 10 alone and 4..9: 4..9 appended (in
      the log, counted as gap fills and as appended unprotected), never acked and dropped.
  s3  intake-produce --tls-* as A after A forged "L" at 10^18 before L ever wrote: its 500 acked
      records are all in the log. After A committed "L2" 1..600, intake-produce as A for L2
      (restarting at 1) is answered above what it sent: it says so, never prints "acked", and
      exits 1; the log holds L2's 600 and nothing more.

Usage: identity_attacks_mtls.py BIN_DIR WORK_DIR   (intake_pb2 on PYTHONPATH; WORK_DIR holds
the credentials of tls_make_certs.sh)
"""
import os
import sys
import threading
import time

import intake_pb2
from identity_cases import FAR, IdentityCases, Peer, record
from daemon_ready import port_of
from interop_util import Checks, Daemon, counter_sum, topic_counter
from tls_support import client_context

BIN_DIR, WORK = sys.argv[1:3]
WAIT_S = 60  # bound on waits for progress that must come; never a timing assertion
check = Checks("identity_attacks_mtls")
cases = IdentityCases(BIN_DIR, check, WAIT_S)


def credential(name):
    return os.path.join(WORK, name)


def principal(name, certificate):
    """A peer holding a client certificate of the test CA: it proves the principal `name`."""
    files = [credential(f"{certificate}.pem"), credential(f"{certificate}.key")]
    return Peer(name, client_context(credential("ca.pem"), *files),
                ["--tls-ca", credential("ca.pem"), "--tls-cert", files[0], "--tls-key", files[1]])


A = principal("spiffe://intake/test/producer-1", "client-uri")
B = principal("cn-client", "client-cn")
ANONYMOUS = Peer("anonymous")


class TlsDaemon(Daemon):
    """A real intaked with its TLS listener requiring client certificates of the test CA (and
    its plaintext listener, on loopback, for an anonymous peer). Both ports are the kernel's
    pick at the first start (the counters region names them) and kept across restarts."""

    def __init__(self, name, extra=()):
        self.tls_port = 0
        self.tls_extra = list(extra)
        shm_dir = os.path.join("/dev/shm", f"intake-attacks-mtls-{name}-{os.getpid()}")
        super().__init__(BIN_DIR, WORK, shm_dir, f"mtls-{name}", check, WAIT_S)

    def start(self):
        self.extra = ["--tls-listen", f"127.0.0.1:{self.tls_port}",
                      "--tls-cert", credential("server.pem"),
                      "--tls-key", credential("server.key"),
                      "--tls-client-ca", credential("ca.pem")] + self.tls_extra
        super().start()
        self.tls_port = port_of(self.ready["tls_listen"])


produce, hello_answer, sequences = cases.produce, cases.hello_answer, cases.sequences


def case_x1(daemon):
    check(produce(daemon, A, "mtls-x1", b"A", 1, 1000), "x1: A commits 1..1000")
    check(hello_answer(daemon, A, b"A") == 1000, "x1: A's Hello is answered 1000")
    b_first = hello_answer(daemon, B, b"A")
    check(b_first == 0, f"x1: B's Hello for A's id is answered 0, B's own state (got {b_first})")
    anonymous_hello = hello_answer(daemon, ANONYMOUS, b"A")
    check(anonymous_hello == 0, f"x1: an anonymous Hello for A's id is 0 (got {anonymous_hello})")
    forger = cases.connect(daemon, B)
    forger.send(record("mtls-x1", b"A", FAR, b"forged by B"))
    final = forger.last_ack()
    check(final is not None and final.status == intake_pb2.Ack.OK and final.sequence == FAR,
          f"x1: B's 10^18 under A's id is B's own first record, admitted (got {final})")
    check(hello_answer(daemon, A, b"A") == 1000, "x1: B's forged record did not advance A's Hello")
    b_hello = hello_answer(daemon, B, b"A")
    check(b_hello == 0, f"x1: B's Hello for the id is still B's own 0 (its 10^18 left 1..10^18-1 "
          f"a gap), not A's (got {b_hello})")
    check(produce(daemon, A, "mtls-x1", b"A", 1001, 2000), "x1: A's next 1,000 are acked")
    check(hello_answer(daemon, A, b"A") == 2000, "x1: A's Hello is answered 2000")
    mine = sequences(daemon, "mtls-x1", A, b"A")
    check(mine == list(range(1, 2001)),
          f"x1: A's 2,000 acked records are in the log under A's principal ({len(mine)})")
    theirs = sequences(daemon, "mtls-x1", B, b"A")
    check(theirs == [FAR], f"x1: B's one record is under B's principal ({theirs})")
    entries = cases.entries(daemon, "mtls-x1")
    check(len(entries) == 2001, f"x1: the log holds 2,001 entries, no other ({len(entries)})")
    text = cases.stat(daemon)
    check(topic_counter(text, "mtls-x1", "duplicate") == 0,
          "x1: intake-stat counts no duplicate on the topic (nothing of A's was dropped)")
    print(f"identity_attacks_mtls: x1: B's Hello for A's id {b_first}, then {b_hello} (its "
          f"own); A's Hello 1000 then 2000; A's 2,000 records in the log under {A.tag}")


def case_x2(daemon):
    check(produce(daemon, A, "mtls-x2", b"A2", 1, 100), "x2: A commits A2 1..100")
    check(produce(daemon, B, "mtls-x2", b"A2", 101, 200),
          "x2: B sends A2 101..200 first (B's own producer)")
    check(produce(daemon, A, "mtls-x2", b"A2", 101, 200), "x2: A's 101..200 are acked")
    mine = sequences(daemon, "mtls-x2", A, b"A2")
    check(mine == list(range(1, 201)), f"x2: A's 200 records are under A's principal ({len(mine)})")
    theirs = sequences(daemon, "mtls-x2", B, b"A2")
    check(theirs == list(range(101, 201)), f"x2: B's 100 are under B's ({len(theirs)})")
    check(topic_counter(cases.stat(daemon), "mtls-x2", "duplicate") == 0,
          "x2: none of A's records was counted a duplicate of B's")
    print("identity_attacks_mtls: x2: B's copies of A's next sequences suppressed none of A's")


def case_x3(daemon):
    check(produce(daemon, B, "mtls-x3", b"L3", 1, 600), "x3: B commits L3 1..600")
    answers = hello_answer(daemon, B, b"L3"), hello_answer(daemon, A, b"L3")
    check(answers == (600, 0), f"x3: the Hello for L3 answers B 600 and A 0 (got {answers})")
    run = cases.intake_produce(daemon, A, "mtls-x3", "L3", 500)
    check(run.returncode == 0 and "acked 500 records" in run.stderr,
          f"x3: intake-produce as A acks 500 (B's 600 is not A's Hello answer): "
          f"{run.returncode} {run.stderr[-400:]}")
    mine = sequences(daemon, "mtls-x3", A, b"L3")
    check(mine == list(range(1, 501)), f"x3: A's 500 are in the log under A's ({len(mine)})")
    theirs = sequences(daemon, "mtls-x3", B, b"L3")
    check(theirs == list(range(1, 601)), f"x3: B's 600 are under B's ({len(theirs)})")
    print("identity_attacks_mtls: x3: intake-produce as A after B committed 600 under the id: "
          "500 acked, 500 written under A")


def case_x4():
    daemon = TlsDaemon("flood")
    try:
        check(produce(daemon, A, "mtls-x4", b"R", 1, 50), "x4: A's first batch")
        check(produce(daemon, A, "mtls-x4", b"R", 51, 100), "x4: A's second batch")
        ids = [f"made-up-{index}".encode() for index in range(1100)] + [b"R"]
        failures = []

        def flood(start):
            for index in range(start, len(ids), 10):
                connection = cases.connect(daemon, B)
                connection.send(record("mtls-x4", ids[index], 1))
                final = connection.last_ack()
                if final is None or final.status != intake_pb2.Ack.OK:
                    failures.append((ids[index], final))
        started = time.monotonic()
        threads = [threading.Thread(target=flood, args=(start,)) for start in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_S * 5)
        elapsed = time.monotonic() - started
        check(not failures, f"x4: every record of B's flood is acked ({failures[:3]})")
        evictions = topic_counter(cases.stat(daemon), "mtls-x4", "dedupe_evictions")
        check(evictions is not None and evictions > 0,
              f"x4: the flood filled the topic's dedupe window ({evictions} evictions)")
        daemon.stop()  # a routine restart
        daemon.start()
        check(produce(daemon, A, "mtls-x4", b"R", 1, 100), "x4: A resends 1..100 after the restart")
        mine = sequences(daemon, "mtls-x4", A, b"R")
        check(mine == list(range(1, 101)), f"x4: A's records are in the log once ({len(mine)})")
        entries = cases.entries(daemon, "mtls-x4")
        flooded = [p for tag, p, s in entries if tag == B.tag]
        check(sorted(flooded) == sorted(ids),
              f"x4: the flood's 1,101 records are written under B's principal ({len(flooded)})")
        check(len(entries) == 1201, f"x4: the log holds 1,201 entries ({len(entries)})")
        duplicates = topic_counter(cases.stat(daemon), "mtls-x4", "duplicate")
        check(duplicates == 100, f"x4: A's resend is counted as 100 duplicates ({duplicates})")
        print(f"identity_attacks_mtls: x4: B's 1,101 one-record TLS connections in {elapsed:.2f} s "
              f"({evictions} evictions); A's resend after a restart landed once")
    finally:
        daemon.stop()
        daemon.remove()


def case_s1(daemon):
    detail = cases.far_ahead(daemon, A, "mtls-s1", "s1", b"S")
    print(f"identity_attacks_mtls: s1: 10^18 refused over TLS ({detail})")


def case_s2(daemon):
    written = cases.gap(daemon, A, "mtls-s2", "s2")
    print(f"identity_attacks_mtls: s2: jump refused on one TLS connection; across connections "
          f"4..9 written ({written})")


def case_s3(daemon):
    cases.library_forged(daemon, A, "mtls-s3", "s3")
    print("identity_attacks_mtls: s3: intake-produce over TLS after a forged record: 500 acked, "
          "500 written; a Hello above what it sent: exit 1, nothing acked")


def main():
    daemon = TlsDaemon("main")
    try:
        for case in (case_x1, case_x2, case_x3, case_s1, case_s2, case_s3):
            case(daemon)  # on one daemon: each uses its own topic and producer ids
        text = cases.stat(daemon)
        handshakes = sum(counter_sum(line, "ok") for line in text.splitlines()
                         if line.strip().startswith("tls handshakes "))
        check(handshakes > 0, f"intake-stat counts the TLS handshakes ({handshakes})")
    finally:
        daemon.stop()
        daemon.remove()
    case_x4()
    print(f"identity_attacks_mtls: {len(check.failures)} failures")
    sys.exit(1 if check.failures else 0)


main()
