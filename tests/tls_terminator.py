#!/usr/bin/python3
"""tests/tls_terminator.py: a TLS 1.3 terminator in front of a plaintext intaked, for tests.

A test fixture, written with Python's ssl module (not our code): it accepts TLS 1.3 on
127.0.0.1, takes the plaintext out and forwards it byte for byte to a real intaked's plaintext
listener, and sends intaked's answers back over TLS. So a TLS producer's records and acks go
through a TLS stack we did not write and land in a real daemon's logs, where the test checks
them, before (and besides) intaked's own TLS listener.

  tls_terminator.py --upstream 127.0.0.1:PORT --cert server.pem --key server.key
                    [--client-ca ca.pem] [--log FILE]

Prints "listening PORT" once it accepts. With --client-ca a client certificate signed by that CA
is required. Per connection it appends one line to --log: "handshake ok cipher=... principal=..."
(principal: the client certificate's first URI SAN, else its CN, else "anonymous"), or
"handshake failed: <reason>". SIGUSR2 stops reading from producers (logs "paused"); SIGUSR1
breaks every open connection, both sides with an RST, to make producers reconnect, and reads
again (logs "reset"); SIGTERM ends it.
"""
import argparse
import select
import signal
import socket
import ssl
import struct
import sys
import threading

# SIGUSR1 bumps this; every relay breaks its connection when it sees a new value.
reset_generation = 0
# SIGUSR2 sets this: relays stop reading from producers (until SIGUSR1).
paused = False
log_lock = threading.Lock()
log_path = None
BUFFER_LIMIT = 1 << 20  # bytes held per direction before reading that side stops


def log_line(path, line):
    if not path:
        return
    with log_lock, open(path, "a") as log:
        log.write(line + "\n")


def principal(certificate):
    if not certificate:
        return "anonymous"
    for kind, value in certificate.get("subjectAltName", ()):
        if kind == "URI":
            return value
    for rdn in certificate.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return "anonymous"


def reset(sock):
    """Breaks the connection at once, with an RST (SO_LINGER 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def relay(tls, upstream):
    """Both directions in one thread: an SSL object must not be used by two threads at once
    (a KeyUpdate read changes what the next write does)."""
    generation = reset_generation
    tls.setblocking(False)
    upstream.setblocking(False)
    to_upstream = b""
    to_client = b""
    client_done = upstream_done = upstream_shut = False
    while not (upstream_done and not to_client):
        if reset_generation != generation:
            reset(tls)
            reset(upstream)
            return
        readers = []
        if not client_done and len(to_upstream) < BUFFER_LIMIT:
            readers.append(tls)
        if not upstream_done and len(to_client) < BUFFER_LIMIT:
            readers.append(upstream)
        writers = [upstream] if to_upstream else []
        if to_client:
            writers.append(tls)
        # Decrypted bytes OpenSSL already holds do not make the socket readable.
        timeout = 0 if tls in readers and tls.pending() else 0.05
        readable, writable, _ = select.select(readers, writers, [], timeout)
        if tls in readers and tls.pending() and tls not in readable:
            readable.append(tls)
        try:
            if tls in readable and not paused:
                try:
                    data = tls.recv(65536)
                    if data:
                        to_upstream += data
                    else:
                        client_done = True
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
            if upstream in readable:
                try:
                    data = upstream.recv(65536)
                    if data:
                        to_client += data
                    else:
                        upstream_done = True
                except BlockingIOError:
                    pass
            if to_upstream:
                try:
                    to_upstream = to_upstream[upstream.send(to_upstream):]
                except BlockingIOError:
                    pass
            if to_client:
                try:
                    to_client = to_client[tls.send(to_client):]
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
        except (OSError, ssl.SSLError):
            break
        # The producer closed: intaked finishes and answers, then closes its side.
        if client_done and not to_upstream and not upstream_shut:
            upstream_shut = True
            try:
                upstream.shutdown(socket.SHUT_WR)
            except OSError:
                pass
    # intaked closed (after its final Ack), or a side failed: the producer sees the end.
    tls.close()
    upstream.close()


def serve(client, args, context):
    tls = context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
    try:
        tls.do_handshake()
    except (OSError, ssl.SSLError) as error:
        log_line(args.log, "handshake failed: %s" % error)
        # The alert is sent; read what the producer already sent until it closes, so that the
        # close is a FIN after the alert, not an RST (unread data) that could destroy it.
        try:
            tls.shutdown(socket.SHUT_WR)
            tls.settimeout(5)
            while tls.recv(65536):
                pass
        except OSError:
            pass
        tls.close()
        return
    log_line(args.log, "handshake ok cipher=%s version=%s principal=%s"
             % (tls.cipher()[0], tls.version(), principal(tls.getpeercert())))
    host, port = args.upstream.rsplit(":", 1)
    try:
        upstream = socket.create_connection((host, int(port)))
    except OSError as error:
        log_line(args.log, "upstream failed: %s" % error)
        reset(tls)
        return
    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    relay(tls, upstream)


def reset_all(signum, frame):
    global reset_generation, paused
    reset_generation += 1
    paused = False
    log_line(log_path, "reset")


def pause_all(signum, frame):
    global paused
    paused = True
    log_line(log_path, "paused")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-ca")
    parser.add_argument("--log")
    args = parser.parse_args()
    global log_path
    log_path = args.log
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(args.client_ca)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    signal.signal(signal.SIGUSR1, reset_all)
    signal.signal(signal.SIGUSR2, pause_all)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    # Python runs signal handlers in the main thread only, between bytecodes: accept must
    # return now and then for a SIGUSR1 delivered to another thread to take effect.
    listener.settimeout(0.05)
    print("listening %d" % listener.getsockname()[1], flush=True)
    while True:
        try:
            client, _ = listener.accept()
        except (InterruptedError, socket.timeout):
            continue
        client.settimeout(None)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(client, args, context), daemon=True).start()


if __name__ == "__main__":
    main()
