"""daemon_ready.py: waiting for a real intaked from the Python tests, as tests/daemon_util.h and
tests/daemon_util.sh do: through its counters region (intake-stat --wait-ready), never its log.

Start intaked with --listen 127.0.0.1:0 (and --tls-listen 127.0.0.1:0): the kernel picks free
ports, so tests run in parallel never race for one, and the region names them. A restart that
must keep its port passes the one it got.
"""
import os
import subprocess
import sys


def wait_ready(bin_dir, shm_dir, process, timeout_s=30):
    """Waits until intaked `process` (a subprocess.Popen) is ready. Returns its bound addresses,
    {"listen": "127.0.0.1:PORT"} plus "tls_listen" with a TLS listener, or None when it exited
    first or was not ready in time (intake-stat's one-line reason is then on stderr)."""
    result = subprocess.run(
        [os.path.join(bin_dir, "intake-stat"), "--shm-dir", shm_dir,
         f"--wait-ready={timeout_s}", "--pid", str(process.pid)],
        capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stderr, end="", file=sys.stderr)
        return None
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def port_of(address):
    """The port of "ADDR:PORT"."""
    return int(address.rsplit(":", 1)[1])
