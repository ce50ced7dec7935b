"""tls_reload.py: certificate rotation under load, with no connection dropped.

A real intaked (2 reactors) serves TLS with the certificate and key from files this test
replaces. Four producers (Python's ssl module) stream records, each over one TLS connection for
the whole test, waiting for the Ack of each batch before sending the next. Meanwhile:
  1. the files are replaced with another certificate and key of the same CA and SIGHUP sent:
     intaked says it reloaded; a new handshake sees the new certificate;
  2. the key file is replaced with a key that matches nothing and SIGHUP sent again: intaked says
     in one line that the reload failed and why; new handshakes still get the rotated
     certificate.
The producers' connections all finish with every record acknowledged and the close in order;
no connection of the daemon ended with a non-OK status; every topic is byte-exact in its log.

Usage: tls_reload.py BIN_DIR WORK_DIR   (WORK_DIR holds tls_make_certs.sh's files)
"""
import os
import shutil
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tls_support import Daemon, MemoryTls, client_context, records  # noqa: E402

PRODUCERS = 4
BATCHES = 60
BATCH_RECORDS = 50

failures = []
passed = [0]


def check(condition, what):
    if condition:
        passed[0] += 1
    else:
        failures.append(what)
        print(f"FAILED: {what}", file=sys.stderr)
    return condition


def replace(source, target):
    """Puts `source`'s bytes at `target` in one rename, so no reload reads half a file."""
    shutil.copyfile(source, target + ".tmp")
    os.replace(target + ".tmp", target)


class Producer(threading.Thread):
    def __init__(self, index, port, context):
        super().__init__()
        self.topic = f"rotation-{index}"
        self.frames = records(self.topic, BATCHES * BATCH_RECORDS, seed=index + 1)
        self.client = MemoryTls(port, context, timeout=60).handshake()
        self.batches_acked = 0
        self.problem = None
        self.progress = threading.Condition()

    def run(self):
        try:
            for batch in range(BATCHES):
                chunk = self.frames[batch * BATCH_RECORDS:(batch + 1) * BATCH_RECORDS]
                self.client.send(b"".join(chunk))
                if not self.client.wait_acked((batch + 1) * BATCH_RECORDS):
                    self.problem = f"batch {batch} not acked ({self.client.acks.acks[-1:]}, " \
                                   f"closed {self.client.closed}, {self.client.error})"
                    return
                with self.progress:
                    self.batches_acked = batch + 1
                    self.progress.notify_all()
            self.client.close()
        except Exception as error:  # reported by the main thread
            self.problem = repr(error)
        finally:
            with self.progress:
                self.progress.notify_all()

    def wait_batches(self, count, timeout=60):
        with self.progress:
            return self.progress.wait_for(
                lambda: self.batches_acked >= count or self.problem or not self.is_alive(),
                timeout) and self.batches_acked >= count


def peer_organization(port, context):
    client = MemoryTls(port, context).handshake()
    subject = dict(entry[0] for entry in client.tls.getpeercert()["subject"])
    client.close()
    return subject.get("organizationName", "")


def main():
    bin_dir, work = sys.argv[1:3]
    live_certificate, live_key = f"{work}/live.pem", f"{work}/live.key"
    replace(f"{work}/server.pem", live_certificate)
    replace(f"{work}/server.key", live_key)
    daemon = Daemon(bin_dir, work, "reload", ["--backend", "pbuf", "--reactors", "2",
                                              "--workers", "2", "--tls-cert", live_certificate,
                                              "--tls-key", live_key])
    context = client_context(f"{work}/ca.pem")
    try:
        check(peer_organization(daemon.tls_port, context) == "", "the first certificate")
        producers = [Producer(index, daemon.tls_port, context) for index in range(PRODUCERS)]
        for producer in producers:
            producer.start()
        for producer in producers:
            check(producer.wait_batches(BATCHES // 3), f"{producer.topic}: streaming")
        # 1. Rotation: a new certificate and key, then SIGHUP.
        replace(f"{work}/rotated.pem", live_certificate)
        replace(f"{work}/rotated.key", live_key)
        daemon.signal(signal.SIGHUP)
        check(daemon.wait_log("intaked: SIGHUP: TLS certificate", 20), "reload reported")
        check(peer_organization(daemon.tls_port, context) == "rotated",
              "a new handshake sees the rotated certificate")
        for producer in producers:
            check(producer.wait_batches(2 * BATCHES // 3), f"{producer.topic}: still streaming")
        # 2. A broken reload: a key that matches nothing. The old configuration stays.
        replace(f"{work}/stranger.key", live_key)
        daemon.signal(signal.SIGHUP)
        check(daemon.wait_log("reload failed, keeping the old configuration", 20),
              "failed reload reported")
        line = [text for text in daemon.text().splitlines() if "reload failed" in text]
        check(len(line) == 1 and "does not match the certificate" in line[0],
              f"failed reload says why in one line: {line}")
        check(peer_organization(daemon.tls_port, context) == "rotated",
              "after a failed reload, handshakes keep the rotated certificate")
        for producer in producers:
            producer.join(timeout=120)
            check(producer.problem is None and producer.batches_acked == BATCHES,
                  f"{producer.topic}: every batch acked on one connection ({producer.problem})")
        counters = daemon.counters()
        check(counters.get("failed", -1) == 0, f"no connection ended badly ({counters})")
        check(counters.get("tls ok", 0) == PRODUCERS + 3, f"handshakes ({counters.get('tls ok')})")
        for producer in producers:
            data = daemon.topic_bytes(producer.topic)
            check(data == b"".join(producer.frames), f"{producer.topic}: byte-exact")
    finally:
        status = daemon.stop()
    check(status == 0, f"intaked exits 0 ({status})")
    check("receive units all returned: yes" in daemon.text(), "every receive buffer returned")
    print(f"tls_reload: {PRODUCERS} producers x {BATCHES * BATCH_RECORDS} records through a "
          f"rotation and a failed reload: {passed[0]} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
