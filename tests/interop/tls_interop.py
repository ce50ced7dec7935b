"""tls_interop.py: intaked's TLS 1.3 against TLS stacks it did not write.

Python's ssl module (through SSLObject and MemoryBIO, so this test sees and alters ciphertext)
and `openssl s_client` talk to a real intaked whose provided buffers are 4 KiB, so 16 KiB TLS
records span buffers. Every delivery is checked byte for byte with intake-tail --format raw, and
every refusal in the daemon's counters (intake-stat).

Usage: tls_interop.py BIN_DIR WORK_DIR   (WORK_DIR holds tls_make_certs.sh's files)
"""
import os
import select
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tls_support import Daemon, MemoryTls, client_context, records  # noqa: E402

checks = {"passed": 0, "failed": 0}


def check(condition, what):
    if condition:
        checks["passed"] += 1
    else:
        checks["failed"] += 1
        print(f"FAILED: {what}", file=sys.stderr)
    return condition


def delivered(daemon, topic, frames):
    data = daemon.topic_bytes(topic)
    expected = b"".join(frames)
    return check(data == expected,
                 f"topic {topic}: intake-tail raw gave {len(data)} bytes, sent {len(expected)}")


def one_record_per_byte(daemon, context):
    """Each byte its own TLS record. Records stay within the 64 slices a record may span: each
    TLS record cuts one more (the headers and tags of its neighbours lie between), so a record
    of more than 64 bytes sent this way is refused, with its own reason."""
    frames = records("per-byte", 100, value_bytes=30)
    stream = b"".join(frames)
    client = MemoryTls(daemon.tls_port, context).handshake()
    client.send(stream, record_bytes=1)
    check(client.wait_acked(100), f"one record per byte: acked {client.acks.last_ok()} of 100")
    too_cut = records("per-byte", 1, first_sequence=101, value_bytes=80)
    client.send(too_cut[0], record_bytes=1)
    check(client.wait_closed(), "a 95-byte record in 95 TLS records: the connection ends")
    final = client.acks.acks[-1] if client.acks.acks else None
    check(final is not None and final[1] == "RESOURCE_EXHAUSTED" and "64 fragments" in final[2],
          f"a record in more than 64 TLS records: RESOURCE_EXHAUSTED ({final})")
    client.socket.close()
    delivered(daemon, "per-byte", frames)
    print(f"tls_interop: {len(stream)} bytes sent as {len(stream)} TLS records of one byte")


def records_spanning_buffers(daemon, context):
    before = daemon.counters()
    frames = records("span", 300, value_bytes=3000)
    stream = b"".join(frames)
    client = MemoryTls(daemon.tls_port, context).handshake()
    # In rounds, each acked before the next: the client's OpenSSL answers intaked's request for
    # a key update with its next write.
    for round_start in range(0, 300, 30):
        client.send(b"".join(frames[round_start:round_start + 30]), record_bytes=16384)
        check(client.wait_acked(round_start + 30), f"16 KiB records: round at {round_start}")
    check(client.wait_acked(300), f"16 KiB records: acked {client.acks.last_ok()} of 300")
    client.close()
    delivered(daemon, "span", frames)
    after = daemon.counters()
    decrypted = after["tls records_decrypted"] - before["tls records_decrypted"]
    check(decrypted >= len(stream) // 16384, f"16 KiB records: {decrypted} decrypted")
    # --tls-key-update-records 16: we updated our key and asked the client to update its own.
    check(after["tls key_updates_sent"] > before["tls key_updates_sent"], "our key updates")
    check(after["tls key_updates_received"] > before["tls key_updates_received"],
          "the client's key updates (asked for by intaked)")
    print(f"tls_interop: {len(stream)} bytes in 16 KiB records over 4 KiB buffers, byte-exact; "
          f"key updates sent {after['tls key_updates_sent']} received "
          f"{after['tls key_updates_received']}")


def corrupted_tag(daemon, context):
    before = daemon.counters()
    good = records("tag", 20)
    bad = records("tag", 5, first_sequence=21)
    client = MemoryTls(daemon.tls_port, context).handshake()
    client.send_raw(client.seal(b"".join(good), record_bytes=300))
    corrupted = bytearray(client.seal(b"".join(bad)))
    corrupted[-1] ^= 0x01  # the last byte of the tag
    client.send_raw(bytes(corrupted))
    client.send_raw(client.seal(b"".join(records("tag", 5, first_sequence=26))))
    check(client.wait_closed(), "corrupted tag: the daemon closed the connection")
    final = client.acks.acks[-1] if client.acks.acks else None
    check(client.acks.last_ok() == 20, f"corrupted tag: records before it acked ({final})")
    check(final is not None and final[1] == "REJECTED" and "bad_record_mac" in final[2],
          f"corrupted tag: final Ack REJECTED naming bad_record_mac ({final})")
    check(client.error is not None and "BAD_RECORD_MAC" in str(client.error).upper(),
          f"corrupted tag: the client got the alert ({client.error})")
    client.socket.close()
    delivered(daemon, "tag", good)
    after = daemon.counters()
    check(after["tls auth_failures"] == before["tls auth_failures"] + 1, "one auth failure")


def truncated_then_eof(daemon, context):
    good = records("cut", 10)
    client = MemoryTls(daemon.tls_port, context).handshake()
    client.send_raw(client.seal(b"".join(good)))
    partial = client.seal(b"".join(records("cut", 5, first_sequence=11)))
    client.send_raw(partial[:len(partial) // 2])
    client.socket.shutdown(socket.SHUT_WR)
    check(client.wait_closed(), "truncated record: the daemon ended the connection after EOF")
    check(client.acks.last_ok() == 10, f"truncated record: acked {client.acks.last_ok()} of 10")
    check(client.error is None, f"truncated record: ended in order ({client.error})")
    client.socket.close()
    delivered(daemon, "cut", good)


def plaintext_on_tls_port(daemon):
    before = daemon.counters()
    with socket.create_connection(("127.0.0.1", daemon.tls_port), timeout=10) as plain:
        plain.sendall(b"".join(records("plain", 3)))
        closed = False
        deadline = time.time() + 10
        while time.time() < deadline and not closed:
            ready, _, _ = select.select([plain], [], [], 0.5)
            if ready:
                try:
                    closed = plain.recv(4096) == b""
                except ConnectionResetError:
                    closed = True
        check(closed, "plaintext on the TLS port: closed")
    after = daemon.counters()
    check(after["tls failed_not_tls"] == before["tls failed_not_tls"] + 1, "counted as not_tls")
    check(daemon.topic_bytes("plain") == b"", "plaintext on the TLS port: nothing delivered")


def s_client_key_updates(daemon, ca):
    """openssl s_client: "K" sends KeyUpdate(update_requested), "k" without; our next Ack must
    follow our own KeyUpdate, and s_client must go on decrypting our Acks."""
    before = daemon.counters()
    process = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{daemon.tls_port}",
                                "-tls1_3", "-CAfile", ca, "-servername", "localhost"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    output = {process.stdout.fileno(): b"", process.stderr.fileno(): b""}

    def wait_output(needle, stream, timeout=20):
        deadline = time.time() + timeout
        while needle not in output[stream.fileno()] and time.time() < deadline:
            ready, _, _ = select.select(list(output), [], [], 0.2)
            for fd in ready:
                output[fd] += os.read(fd, 65536)
        return needle in output[stream.fileno()]

    frames = []
    check(wait_output(b"Verify return code: 0 (ok)", process.stdout), "s_client: verified")
    for batch, command in enumerate([b"K\n", b"k\n", None]):
        # Fixed sizes: a chunk s_client reads must not start with one of its command letters.
        chunk = records("s-client", 5, first_sequence=1 + 5 * batch, value_bytes=20)
        frames += chunk
        process.stdin.write(b"".join(chunk))
        process.stdin.flush()
        # The cumulative Ack for the batch's last record (sequences stay below 128).
        check(wait_output(bytes([2, 8, 5 * (batch + 1)]), process.stdout),
              f"s_client: Ack of batch {batch}")
        if command is not None:
            # s_client takes a command only at the start of what one read returns, and drops
            # the rest of it: the next batch waits until it says it sent the KeyUpdate.
            process.stdin.write(command)
            process.stdin.flush()
            check(wait_output(b"KEYUPDATE\n" * (batch + 1), process.stderr),
                  f"s_client: KeyUpdate {command!r} sent")
    process.stdin.close()
    process.wait(timeout=20)
    delivered(daemon, "s-client", frames)
    after = daemon.counters()
    received = after["tls key_updates_received"] - before["tls key_updates_received"]
    sent = after["tls key_updates_sent"] - before["tls key_updates_sent"]
    check(received == 2, f"s_client: intaked took 2 key updates ({received})")
    check(sent == 1, f"s_client: intaked sent 1 key update, for the requested one ({sent})")
    print(f"tls_interop: s_client KeyUpdate: {received} received, {sent} sent, acks followed")


def backpressure(bin_dir, work, context):
    """Pauses with TLS records open: a topic queue of 2, an ack window of 4, a record pool of 16
    and 16 buffers of 4 KiB make both connections pause again and again, mid-plaintext, while
    the rest of their ciphertext waits on the backlog (and the receive is cancelled when the
    backlog presses on the buffers). Every record still arrives once, in order, byte-exact."""
    daemon = Daemon(bin_dir, work, "pressure",
                    ["--backend", "pbuf", "--buffer-size", "4096", "--buffers", "16",
                     "--topic-queue", "2", "--ack-window", "4", "--records-per-reactor", "16",
                     "--tls-cert", f"{work}/server.pem", "--tls-key", f"{work}/server.key"])
    try:
        clients, streams = [], []
        for index in range(2):
            frames = records(f"pressure-{index}", 1500, seed=index + 40)
            streams.append(frames)
            clients.append(MemoryTls(daemon.tls_port, context).handshake())
        for client, frames in zip(clients, streams):
            client.send_raw(client.seal(b"".join(frames)))
        for client, frames in zip(clients, streams):
            check(client.wait_acked(len(frames), timeout=120),
                  f"backpressure: acked {client.acks.last_ok()} of {len(frames)}")
            client.close()
        for index, frames in enumerate(streams):
            delivered(daemon, f"pressure-{index}", frames)
        counters = daemon.counters()
        pauses = sum(counters.get(f"records {cause}", 0)
                     for cause in ["topic_queue", "record_pool", "ack_window"])
        check(pauses > 0, f"backpressure: connections paused ({counters})")
        check(counters.get("failed", -1) == 0, "backpressure: no connection failed")
        print(f"tls_interop: backpressure: {pauses} pauses with TLS records open, byte-exact")
    finally:
        check(daemon.stop() == 0, "backpressure daemon exits 0")


def mutual_tls(bin_dir, work):
    daemon = Daemon(bin_dir, work, "mtls", ["--backend", "pbuf", "--tls-cert",
                                            f"{work}/server.pem", "--tls-key", f"{work}/server.key",
                                            "--tls-client-ca", f"{work}/ca.pem"])
    ca = f"{work}/ca.pem"
    try:
        for name, certificate, reason in [
                ("no client certificate", None, "failed_no_client_certificate"),
                ("another CA's certificate", "client-other", "failed_bad_certificate"),
                ("a certificate naming no principal", "client-noname", "failed_principal")]:
            before = daemon.counters()
            context = client_context(ca, *((f"{work}/{certificate}.pem", f"{work}/{certificate}.key")
                                           if certificate else ()))
            client = MemoryTls(daemon.tls_port, context)
            refused = False
            try:
                client.handshake()
                client.send(b"".join(records("mtls-refused", 2)))
                refused = client.wait_closed() and client.error is not None
            except (ssl.SSLError, ConnectionError) as error:
                refused = True
                client.error = error
            check(refused, f"mTLS, {name}: refused ({client.error})")
            client.socket.close()
            check(daemon.wait_counter(f"tls {reason}", before.get(f"tls {reason}", 0) + 1),
                  f"mTLS, {name}: counted as {reason}")
        check(daemon.topic_bytes("mtls-refused") == b"", "mTLS: nothing of a refused client")
        for certificate in ["client-uri", "client-cn"]:
            context = client_context(ca, f"{work}/{certificate}.pem", f"{work}/{certificate}.key")
            frames = records(certificate, 50)
            client = MemoryTls(daemon.tls_port, context).handshake()
            client.send(b"".join(frames))
            check(client.wait_acked(50), f"mTLS {certificate}: acked")
            client.close()
            delivered(daemon, certificate, frames)
        check(daemon.counters()["tls ok"] == 2, "mTLS: two handshakes completed")
    finally:
        check(daemon.stop() == 0, "mTLS daemon exits 0")
    print("tls_interop: mTLS: missing, foreign and nameless certificates refused; URI SAN and "
          "CN certificates delivered")


FAILURE_REASONS = ["timeout", "no_client_certificate", "bad_certificate", "not_tls", "protocol",
                   "principal", "other"]


def metrics_agree(daemon):
    """/metrics and intake-stat tell the same TLS story (read while idle, so nothing moves)."""
    stat = daemon.counters()
    metrics = daemon.metrics()
    pairs = [("intake_tls_handshakes_total", "tls ok"),
             ("intake_tls_records_decrypted_total", "tls records_decrypted"),
             ("intake_tls_auth_failures_total", "tls auth_failures"),
             ("intake_tls_record_errors_total", "tls record_errors"),
             ("intake_tls_handshakes_refused_total", "tls refused"),
             ("intake_tls_alerts_received_total", "tls alerts_received"),
             ('intake_tls_key_updates_total{direction="received"}', "tls key_updates_received"),
             ('intake_tls_key_updates_total{direction="sent"}', "tls key_updates_sent")]
    pairs += [(f'intake_tls_handshake_failures_total{{reason="{reason}"}}', f"tls failed_{reason}")
              for reason in FAILURE_REASONS]
    for series, name in pairs:
        check(metrics.get(series) == stat.get(name),
              f"/metrics {series}={metrics.get(series)} and intake-stat {name}={stat.get(name)}")
    return stat


def main():
    bin_dir, work = sys.argv[1:3]
    ca = f"{work}/ca.pem"
    daemon = Daemon(bin_dir, work, "tls", ["--backend", "pbuf", "--buffer-size", "4096",
                                           "--buffers", "256", "--tls-cert", f"{work}/server.pem",
                                           "--tls-key", f"{work}/server.key",
                                           "--tls-key-update-records", "16"])
    context = client_context(ca)
    try:
        one_record_per_byte(daemon, context)
        records_spanning_buffers(daemon, context)
        corrupted_tag(daemon, context)
        truncated_then_eof(daemon, context)
        plaintext_on_tls_port(daemon)
        s_client_key_updates(daemon, ca)
        running = metrics_agree(daemon)
    finally:
        status = daemon.stop(keep_shm=True)
    check(status == 0, f"intaked exits 0 ({status})")
    log = daemon.text()
    check("receive units all returned: yes" in log, "every receive buffer returned")
    # The final values, from the counters region intaked leaves behind (state stopped).
    final = {name: value for name, value in daemon.counters().items() if name.startswith("tls ")}
    check(len(final) > 0, "the stopped daemon's region holds its TLS counters")
    for name in sorted(final):
        check(final[name] == running.get(name),
              f"shutdown {name}={final[name]}, intake-stat said {running.get(name)}")
    check(final.get("tls ok") == 5 and final.get("tls failed_not_tls") == 1,
          f"the shutdown counters saw this test's handshakes ({final})")
    daemon.remove()
    backpressure(bin_dir, work, context)
    mutual_tls(bin_dir, work)
    print(f"tls_interop: {checks['passed']} passed, {checks['failed']} failed")
    sys.exit(1 if checks["failed"] or not checks["passed"] else 0)


if __name__ == "__main__":
    main()
