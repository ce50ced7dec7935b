"""identity_cases.py: what identity_attacks.py (anonymous peers, the plaintext listener) and
identity_attacks_mtls.py (client certificates, the TLS listener) share: a Peer (who connects,
and how), frames made by Google's protobuf library, a producer's sends and Hellos, the log read
back per principal, and the attacks one principal makes on its own producer ids, which are
refused the same way whatever the listener:
  far_ahead        a sequence 10^18 ahead of a producer that committed 1..1000: REJECTED, named,
                   counted, not written; the producer's Hello and next 1,000 records intact.
  gap              1, 2, 3, 10 on one connection refused at 10; then 10 alone and 4..9: 4..9
                   appended (counted as gap fills and appended unprotected), none dropped.
  library_forged   intake-produce after a forged record of an id it never wrote (500 acked, all
                   in the log), and against a Hello answered above what it sent (exit 1, nothing
                   reported acked, nothing more in the log).
"""
import os
import subprocess

import intake_pb2
from interop_util import (AckConnection, counter_sum, delimited, log_entries, principal_tag,
                          stat_text, topic_counter)

FAR = 10 ** 18


class Peer:
    """Who connects: `name` is the principal intaked gives the connection. Without `context`
    (an ssl.SSLContext) the peer is anonymous, on the plaintext port; with it, on the TLS port,
    and `produce_flags` are intake-produce's --tls-* flags for the same credentials."""

    def __init__(self, name, context=None, produce_flags=()):
        self.name, self.tag = name, principal_tag(name)
        self.context, self.produce_flags = context, list(produce_flags)

    def port(self, daemon):
        return daemon.port if self.context is None else daemon.tls_port


ANONYMOUS = Peer("anonymous")


class IdentityCases:
    def __init__(self, bin_dir, check, wait_s):
        self.bin_dir, self.check, self.wait_s = bin_dir, check, wait_s

    def connect(self, daemon, peer):
        return AckConnection("127.0.0.1", peer.port(daemon), self.wait_s, tls_context=peer.context)

    def produce(self, daemon, peer, topic, producer_id, first, last):
        """Sends first..last on one connection: True when all are acked OK."""
        connection = self.connect(daemon, peer)
        connection.send(b"".join(record(topic, producer_id, s) for s in range(first, last + 1)))
        acks = connection.acks_until(last)
        ok = bool(acks) and acks[-1].status == intake_pb2.Ack.OK and acks[-1].sequence == last
        connection.close_cleanly()
        return ok

    def hello_answer(self, daemon, peer, producer_id):
        connection = self.connect(daemon, peer)
        connection.send(delimited(intake_pb2.Hello(producer_id=producer_id)))
        ack = connection.read_ack()
        connection.close_cleanly()
        return ack.sequence if ack is not None and ack.status == intake_pb2.Ack.OK else None

    def entries(self, daemon, topic):
        return log_entries(self.bin_dir, daemon.shm_dir, topic, self.check, self.wait_s)

    def sequences(self, daemon, topic, peer, producer_id):
        """The sequences of `producer_id` the topic's log holds under `peer`'s principal."""
        return [s for tag, p, s in self.entries(daemon, topic)
                if tag == peer.tag and p == producer_id]

    def stat(self, daemon):
        return stat_text(self.bin_dir, daemon.shm_dir, self.wait_s)

    def intake_produce(self, daemon, peer, topic, producer_id, count):
        return subprocess.run(
            [os.path.join(self.bin_dir, "intake-produce"), "--connect",
             f"127.0.0.1:{peer.port(daemon)}"] + peer.produce_flags +
            ["--topic", topic, "--producer-id", producer_id, "--count", str(count),
             "--size", "16"], capture_output=True, text=True, timeout=self.wait_s)

    def far_ahead(self, daemon, peer, topic, label, producer_id):
        check, name = self.check, producer_id.decode()
        check(self.produce(daemon, peer, topic, producer_id, 1, 1000),
              f"{label}: {name} commits 1..1000")
        rejections = counter_sum(self.stat(daemon), "sequence_rejections")
        forger = self.connect(daemon, peer)
        forger.send(record(topic, producer_id, FAR, b"forged"))
        final = forger.last_ack()
        check(final is not None and final.status == intake_pb2.Ack.REJECTED,
              f"{label}: the forged 10^18 is REJECTED (got {final})")
        detail = final.detail if final is not None else ""
        check(str(FAR) in detail and "4194304" in detail and f'"{name}"' in detail
              and "1000" in detail,
              f"{label}: the detail names the sequence, the bound, the producer and what was "
              f"seen: {detail}")
        after = counter_sum(self.stat(daemon), "sequence_rejections")
        check(after == rejections + 1,
              f"{label}: intake-stat's sequence_rejections counts it ({rejections} -> {after})")
        check(self.hello_answer(daemon, peer, producer_id) == 1000,
              f"{label}: {name}'s Hello is still 1000")
        check(self.produce(daemon, peer, topic, producer_id, 1001, 2000),
              f"{label}: {name}'s next 1,000 are acked")
        sequences = self.sequences(daemon, topic, peer, producer_id)
        check(sequences == list(range(1, 2001)),
              f"{label}: {name}'s 2,000 acked records are in the log once, under {peer.name}, the "
              f"forged one is not ({len(sequences)} records)")
        return detail

    def gap(self, daemon, peer, topic, label):
        check = self.check
        before = self.stat(daemon)
        connection = self.connect(daemon, peer)
        connection.send(b"".join(record(topic, b"C", s) for s in (1, 2, 3, 10, 4)))
        final = connection.last_ack()
        check(final is not None and final.status == intake_pb2.Ack.REJECTED
              and final.sequence == 3,
              f"{label}: one connection: 10 after 3 is REJECTED, 1..3 acked (got {final})")
        check(final is not None and "sequence 10 is out of order on this connection: expected 4"
              in final.detail, f"{label}: the detail says so: {final and final.detail}")
        # Across connections: 10 starts a connection (admitted, leaving 4..9 a gap), then 4..9.
        check(self.produce(daemon, peer, topic, b"C", 10, 10), f"{label}: 10 on its own connection")
        check(self.produce(daemon, peer, topic, b"C", 4, 9), f"{label}: 4..9 acked")
        sequences = self.sequences(daemon, topic, peer, b"C")
        check(sequences == [1, 2, 3, 10, 4, 5, 6, 7, 8, 9],
              f"{label}: 4..9 are in the log, not dropped: {sequences}")
        after = self.stat(daemon)
        rejected = (counter_sum(after, "sequence_rejections") -
                    counter_sum(before, "sequence_rejections"))
        filled = (counter_sum(after, "sequence_gap_fills") -
                  counter_sum(before, "sequence_gap_fills"))
        check(rejected == 1 and filled == 6,
              f"{label}: intake-stat counts the refusal and the 6 gap fills ({rejected}, {filled})")
        check(topic_counter(after, topic, "dedupe_unprotected") == 6,
              f"{label}: 4..9, below what the topic holds, are counted as appended unprotected")
        return sequences

    def library_forged(self, daemon, peer, topic, label):
        check = self.check
        forger = self.connect(daemon, peer)
        forger.send(record(topic, b"L", FAR, b"forged"))
        acks = forger.acks_until(FAR)
        check(acks and acks[-1].status == intake_pb2.Ack.OK,
              f"{label}: the forged record of an id intaked never saw is admitted (no bound to "
              f"apply)")
        forger.close_cleanly()
        run = self.intake_produce(daemon, peer, topic, "L", 500)
        check(run.returncode == 0 and "acked 500 records" in run.stderr,
              f"{label}: intake-produce acks 500: {run.returncode} {run.stderr[-400:]}")
        sequences = self.sequences(daemon, topic, peer, b"L")
        check(sequences == [FAR] + list(range(1, 501)),
              f"{label}: the 500 acked records are in the log ({len(sequences)} of L's)")
        # L2's id is used by another connection of the same principal, which commits 1..600;
        # intake-produce then starts at 1.
        check(self.produce(daemon, peer, topic, b"L2", 1, 600),
              f"{label}: another connection commits 600 as L2")
        run = self.intake_produce(daemon, peer, topic, "L2", 500)
        check(run.returncode == 1, f"{label}: intake-produce exits 1 (got {run.returncode})")
        check("acked" not in run.stderr, f"{label}: nothing is reported acked: {run.stderr[-400:]}")
        check("answered the Hello with sequence 600, above the highest this producer sent (0)"
              in run.stderr, f"{label}: it says why: {run.stderr[-400:]}")
        sequences = self.sequences(daemon, topic, peer, b"L2")
        check(sequences == list(range(1, 601)),
              f"{label}: the log holds L2's 600 and no more ({len(sequences)})")


def record(topic, producer_id, sequence, value=None):
    return delimited(intake_pb2.Record(
        topic=topic, producer_id=producer_id, sequence=sequence,
        value=value if value is not None else f"{producer_id.decode()}:{sequence}".encode()))
