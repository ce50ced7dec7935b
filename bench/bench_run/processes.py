"""Servers bench/run starts (intaked, nats-server, iperf3 -s), what it reads about them from /proc,
and the set-up before a run (tools from Debian, the Release build). Every server started here is
remembered and stopped by stop_all(), which bench/run calls on every way out."""

import os
import random
import shutil
import subprocess
import sys
import time

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
LISTEN_STATE = "0A"  # TCP_LISTEN in /proc/net/tcp's st column
LISTEN_WAIT_S = 10.0
LISTEN_POLL_S = 0.05
STOP_GRACE_S = 5.0
FREE_PORT_TRIES = 100
PORT_LOW = 10000


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def listening_ports():
    """Local TCP ports in the LISTEN state, IPv4 and IPv6 (what `ss -ltn` lists)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    columns = line.split()
                    if columns[3] == LISTEN_STATE:
                        ports.add(int(columns[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def free_port():
    """A TCP port nobody listens on, below the kernel's ephemeral range: the bench's own clients
    (10,000 idle connections, TIME-WAIT sockets) hold ports in that range, and a listener there
    can fail with "address already in use". None after FREE_PORT_TRIES tries."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as range_file:
            ephemeral_low = int(range_file.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    if ephemeral_low <= PORT_LOW + 1000:
        ephemeral_low = 32768
    for _ in range(FREE_PORT_TRIES):
        port = random.randrange(PORT_LOW, ephemeral_low)
        if port not in listening_ports():
            return port
    return None


def file_tail(path, lines):
    """The file's last lines joined by spaces (for one-line error reports); "" if unreadable."""
    try:
        with open(path, errors="replace") as text:
            return " ".join(text.read().splitlines()[-lines:])
    except OSError:
        return ""


def alive(process):
    return process.poll() is None


def wait_listening(port, process):
    """Up to LISTEN_WAIT_S for something to listen on the port; False if the process died."""
    deadline = time.monotonic() + LISTEN_WAIT_S
    while time.monotonic() < deadline:
        if port in listening_ports():
            return True
        if not alive(process):
            return False
        time.sleep(LISTEN_POLL_S)
    return False


def cpu_ticks(pid):
    """utime + stime of every thread of the process, in clock ticks (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # Fields 14 and 15 of proc(5); fields[0] is field 3 (state).
    return int(fields[11]) + int(fields[12])


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_kb(pid):
    return status_kb(pid, "VmHWM")


def current_rss_kb(pid):
    return status_kb(pid, "VmRSS")


class Server:
    """One running server: kind, process, port (and tls_port for intaked with TLS), log path."""

    def __init__(self, kind, process, port, log_path, tls_port=None):
        self.kind = kind
        self.process = process
        self.port = port
        self.log_path = log_path
        self.tls_port = tls_port

    @property
    def pid(self):
        return self.process.pid

    def log_tail(self, lines=3):
        return file_tail(self.log_path, lines)


class Servers:
    """Starts servers on free 127.0.0.1 ports and stops them. intaked's flags come from the
    settings (build directory, thread layout, extra flags, log size, TLS certificates)."""

    def __init__(self, settings):
        self.settings = settings
        self.running = []

    def _command(self, kind, port, tls_port):
        settings = self.settings
        if kind == "nats":
            return ["nats-server", "-a", "127.0.0.1", "-p", str(port)]
        if kind == "iperf3":
            # Not one-off (-1): the server must still be there when its CPU time and RSS are read.
            return ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)]
        logs = os.path.join(settings.shm_dir, "logs")
        shutil.rmtree(logs, ignore_errors=True)
        os.makedirs(logs)
        command = [os.path.join(settings.build_dir, "intaked"),
                   "--listen", f"127.0.0.1:{port}", "--shm-dir", logs, "--backend", "pbuf",
                   "--reactors", str(settings.reactors), "--workers", str(settings.workers),
                   "--max-frame", "1048576", "--log-size", settings.log_size]
        if tls_port is not None:
            command += ["--tls-listen", f"127.0.0.1:{tls_port}",
                        "--tls-cert", os.path.join(settings.tls_dir, "server.pem"),
                        "--tls-key", os.path.join(settings.tls_dir, "server.key")]
        return command + settings.extra_flags

    def start(self, kind, tls=False):
        """A fresh server of kind nats|intake|iperf3, or None when it does not come up. With
        tls, intaked also listens for TLS (certificates from scripts/tls-dev-certs)."""
        port = free_port()
        tls_port = free_port() if tls else None
        if port is None or (tls and tls_port is None):
            log(f"{kind}: no free port")
            return None
        log_path = os.path.join(self.settings.work_dir, f"{kind}-{port}.log")
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(self._command(kind, port, tls_port), stdout=log_file,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = Server(kind, process, port, log_path, tls_port)
        self.running.append(server)
        if not wait_listening(port, process) or (tls and not wait_listening(tls_port, process)):
            log(f"{kind} did not start: {server.log_tail()}")
            self.stop(server)
            return None
        return server

    def stop(self, server):
        """SIGTERM, then (after STOP_GRACE_S) SIGKILL; forgets the server."""
        process = server.process
        if alive(process):
            process.terminate()
            try:
                process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if server in self.running:
            self.running.remove(server)

    def stop_all(self):
        for server in list(self.running):
            self.stop(server)


def install_tools():
    """nats-server, iperf3, perf and the build tools from Debian when missing."""
    wanted = {"nats-server": "nats-server", "iperf3": "iperf3", "perf": "linux-perf",
              "cmake": "cmake", "cc": "gcc"}
    missing = [package for command, package in wanted.items() if shutil.which(command) is None]
    if not missing:
        return
    log(f"installing {' '.join(missing)}")
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq"] + missing
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": environment}
    if subprocess.run(install, **quiet).returncode == 0:
        return
    if (subprocess.run(["apt-get", "update", "-qq"], **quiet).returncode == 0 and
            subprocess.run(install, **quiet).returncode == 0):
        return
    log(f"could not install {' '.join(missing)} (run as root?)")
    sys.exit(1)


def build_project(source_dir, build_dir, work_dir):
    """Release build in build_dir; a project that does not build is an error, never measured from
    an older binary."""
    cmake_log = os.path.join(work_dir, "cmake.log")
    steps = [["cmake", "-S", source_dir, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release"],
             ["cmake", "--build", build_dir, "-j", str(os.cpu_count() or 1)]]
    with open(cmake_log, "wb") as output:
        for step in steps:
            if subprocess.run(step, stdout=output, stderr=subprocess.STDOUT).returncode != 0:
                break
        else:
            return
    with open(cmake_log, errors="replace") as output:
        first_error = next((line.strip() for line in output if "error" in line.lower()), "")
    log(f"the project does not build: {first_error}")
    sys.exit(1)
