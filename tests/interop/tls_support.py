"""tls_support.py: what the TLS interop tests share (tls_interop.py, tls_reload.py).

- records: intake.v1.Record frames encoded by hand (topic 1, value 3, sequence 5), delimited;
- acks: intake.v1.Ack frames parsed (sequence 1, status 2, detail 3);
- MemoryTls: Python's ssl module (OpenSSL underneath, a TLS stack intake did not write) driven
  through ssl.SSLObject and MemoryBIO over a plain socket, so a test sees every ciphertext record
  before it goes out and may alter, cut or split it;
- Daemon: a real intaked (started with the flags given, stopped with SIGTERM), its counters read
  with intake-stat, its topics read back with intake-tail --format raw.
Only /usr/bin/python3's standard library is used.
"""
import os
import select
import signal
import socket
import ssl
import subprocess
import time

from daemon_ready import port_of, wait_ready

ACK_STATUS = {0: "OK", 1: "REJECTED", 2: "RESOURCE_EXHAUSTED", 3: "SHUTTING_DOWN", 4: "INTERNAL"}


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data, position):
    value, shift = 0, 0
    while True:
        if position >= len(data):
            return None, position
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def record(topic, value, sequence):
    """One delimited intake.v1.Record: topic, value, sequence (> 0 asks for an Ack)."""
    topic = topic.encode() if isinstance(topic, str) else topic
    body = (b"\x0a" + varint(len(topic)) + topic + b"\x1a" + varint(len(value)) + value +
            b"\x28" + varint(sequence))
    return varint(len(body)) + body


def records(topic, count, first_sequence=1, value_bytes=None, seed=1):
    """`count` delimited records with sequences first_sequence.., values of varied sizes."""
    out = []
    state = seed
    for index in range(count):
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        size = value_bytes if value_bytes is not None else 1 + (state >> 33) % 300
        value = bytes(((state >> 8) + offset) & 0xFF for offset in range(size))
        out.append(record(topic, value, first_sequence + index))
    return out


class AckReader:
    """Parses Ack frames from a byte stream fed in pieces."""

    def __init__(self):
        self.buffer = b""
        self.acks = []  # (sequence, status name, detail)

    def feed(self, data):
        self.buffer += data
        while True:
            length, position = read_varint(self.buffer, 0)
            if length is None or len(self.buffer) < position + length:
                return
            body = self.buffer[position:position + length]
            self.buffer = self.buffer[position + length:]
            sequence, status, detail, cursor = 0, 0, b"", 0
            while cursor < len(body):
                tag, cursor = read_varint(body, cursor)
                if tag == 0x08:
                    sequence, cursor = read_varint(body, cursor)
                elif tag == 0x10:
                    status, cursor = read_varint(body, cursor)
                elif tag == 0x1A:
                    size, cursor = read_varint(body, cursor)
                    detail = body[cursor:cursor + size]
                    cursor += size
                else:
                    raise ValueError(f"unexpected Ack field tag {tag}")
            self.acks.append((sequence, ACK_STATUS.get(status, str(status)), detail.decode()))

    def last_ok(self):
        ok = [sequence for sequence, status, _ in self.acks if status == "OK"]
        return ok[-1] if ok else 0


def client_context(ca, certificate=None, key=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(ca)
    if certificate is not None:
        context.load_cert_chain(certificate, key)
    return context


class MemoryTls:
    """A TLS client whose records pass through the test's hands (SSLObject over MemoryBIOs)."""

    def __init__(self, port, context, timeout=20.0):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.acks = AckReader()
        self.closed = False  # the daemon closed (close_notify or EOF)
        self.error = None  # an SSLError from reading (the daemon's alert)
        self.timeout = timeout

    def handshake(self):
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send_pending()
                data = self.socket.recv(65536)
                if not data:
                    raise ConnectionError("intaked closed during the handshake")
                self.incoming.write(data)
        self._send_pending()
        return self

    def _send_pending(self):
        data = self.outgoing.read()
        if data:
            self.socket.sendall(data)

    def seal(self, plaintext, record_bytes=16384):
        """The ciphertext records for `plaintext`, `record_bytes` of it per record (at most 16K),
        not sent: the caller decides what goes out."""
        for start in range(0, len(plaintext), record_bytes):
            self.tls.write(plaintext[start:start + record_bytes])
        return self.outgoing.read()

    def send(self, plaintext, record_bytes=16384):
        self.socket.sendall(self.seal(plaintext, record_bytes))

    def send_raw(self, data):
        self.socket.sendall(data)

    def pump(self, timeout):
        """Reads what arrives within `timeout` seconds into the Ack reader. False at EOF."""
        ready, _, _ = select.select([self.socket], [], [], timeout)
        if not ready:
            return True
        try:
            data = self.socket.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.incoming.write(data)
        while True:
            try:
                plaintext = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.closed = True
                break
            except ssl.SSLError as error:
                self.error = error
                self.closed = True
                return False
            if not plaintext:
                break
            self.acks.feed(plaintext)
        self._send_pending()  # our KeyUpdate answer, if the daemon asked for one
        return True

    def wait_for(self, condition, timeout=None):
        deadline = time.time() + (timeout or self.timeout)
        while not condition():
            if time.time() > deadline:
                return False
            if not self.pump(0.2) and not condition():
                return condition()
        return True

    def wait_acked(self, sequence, timeout=None):
        return self.wait_for(lambda: self.acks.last_ok() >= sequence, timeout)

    def wait_closed(self, timeout=None):
        return self.wait_for(lambda: self.closed, timeout)

    def close(self):
        try:
            self.tls.unwrap()
        except (ssl.SSLError, ssl.SSLWantReadError, ValueError):
            pass
        try:
            self._send_pending()
        except OSError:
            pass
        self.socket.close()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Daemon:
    """A real intaked with a plaintext and a TLS listener, on ports the kernel picks (its counters
    region names them), and /metrics on a port that was free a moment ago (nothing reports a
    picked one for it)."""

    def __init__(self, bin_dir, work, name, flags):
        self.bin_dir = bin_dir
        self.shm = f"/dev/shm/intake-{name}-{os.getpid()}"
        subprocess.run(["rm", "-rf", self.shm], check=True)
        self.metrics_port = free_port()
        self.log_path = os.path.join(work, f"{name}.log")
        self.log = open(self.log_path, "w")
        command = [os.path.join(bin_dir, "intaked"), "--listen", "127.0.0.1:0",
                   "--tls-listen", "127.0.0.1:0", "--shm-dir", self.shm,
                   "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
                   "--log-size", "8M", "--max-frame", "256K"] + flags
        self.process = subprocess.Popen(command, stderr=self.log)
        ready = wait_ready(bin_dir, self.shm, self.process)
        if ready is None:
            raise RuntimeError(f"intaked did not start:\n{self.text()}")
        self.port, self.tls_port = port_of(ready["listen"]), port_of(ready["tls_listen"])

    def text(self):
        with open(self.log_path) as log:
            return log.read()

    def wait_log(self, needle, timeout, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.text().count(needle) >= count:
                return True
            if self.process.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    def counters(self):
        """Counters summed over reactors, from intake-stat: the connection line's as they are
        named, the TLS line's as "tls NAME", the records line's as "records NAME"."""
        output = subprocess.run([os.path.join(self.bin_dir, "intake-stat"), "--shm-dir", self.shm],
                                capture_output=True, text=True, check=True).stdout
        totals = {}
        for line in output.splitlines():
            line = line.strip()
            prefix = ("tls " if line.startswith("tls handshakes ") else
                      "records " if line.startswith("records admitted=") else "")
            if not prefix and not line.startswith("reactor "):
                continue
            for word in line.split():
                if "=" in word:
                    name, value = word.split("=", 1)
                    if value.isdigit():
                        totals[prefix + name] = totals.get(prefix + name, 0) + int(value)
        return totals

    def metrics(self):
        """The intake_tls_* series of /metrics, summed over reactors, by name and label set."""
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as response:
            text = response.read().decode()
        totals = {}
        for line in text.splitlines():
            if not line.startswith("intake_tls_"):
                continue
            series, value = line.rsplit(" ", 1)
            name, _, labels = series.partition("{")
            labels = ",".join(label for label in labels.rstrip("}").split(",")
                              if label and not label.startswith("reactor="))
            key = f"{name}{{{labels}}}" if labels else name
            totals[key] = totals.get(key, 0) + int(value)
        return totals

    def wait_counter(self, name, at_least, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.counters().get(name, 0) >= at_least:
                return True
            time.sleep(0.05)
        return False

    def topic_bytes(self, topic):
        result = subprocess.run([os.path.join(self.bin_dir, "intake-tail"), "--shm-dir", self.shm,
                                 "--topic", topic, "--from-start", "--format", "raw"],
                                capture_output=True)
        return result.stdout if result.returncode == 0 else b""

    def signal(self, number):
        self.process.send_signal(number)

    def stop(self, keep_shm=False):
        """SIGTERM; the exit status. With keep_shm the --shm-dir stays (its counters region
        holds the final values) until remove()."""
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=60)
        self.log.close()
        if not keep_shm:
            self.remove()
        return status

    def remove(self):
        subprocess.run(["rm", "-rf", self.shm], check=False)
