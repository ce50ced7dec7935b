"""A real intaked for the tests: the one in $INTAKE_BIN_DIR (the build or an installed prefix's
bin), on a loopback port the kernel picks, its logs in a fresh directory under /dev/shm; up once
intake-stat --wait-ready (beside it) says its counters region is ready, which also names the
port."""
import os
import shutil
import socket
import subprocess

import pytest


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Daemon:
    def __init__(self, tmp_path, *flags, log_size="8M", max_frame="64K"):
        self.shm_dir = "/dev/shm/intake-pytest-%d-%d" % (os.getpid(), _free_port())
        program = os.path.join(os.environ.get("INTAKE_BIN_DIR", ""), "intaked")
        if not os.path.exists(program):
            program = shutil.which("intaked")
        self.log = open(tmp_path / "intaked.log", "w+")
        self.process = subprocess.Popen(
            [program, "--listen", "127.0.0.1:0", "--shm-dir", self.shm_dir, "--log-size", log_size,
             "--max-frame", max_frame, "--backend", "pbuf", *flags],
            stderr=self.log)
        ready = subprocess.run(
            [os.path.join(os.path.dirname(program), "intake-stat"), "--shm-dir", self.shm_dir,
             "--wait-ready=30", "--pid", str(self.process.pid)], capture_output=True, text=True)
        self.log.seek(0)
        assert ready.returncode == 0, "intaked did not start: %s%s" % (ready.stderr,
                                                                        self.log.read())
        self.address = dict(line.split("=", 1) for line in ready.stdout.split())["listen"]

    def stop(self):
        self.process.terminate()
        code = self.process.wait(timeout=30)
        shutil.rmtree(self.shm_dir, ignore_errors=True)
        return code


@pytest.fixture
def daemon(tmp_path):
    running = Daemon(tmp_path)
    yield running
    assert running.stop() == 0


@pytest.fixture
def overwrite_daemon(tmp_path):
    running = Daemon(tmp_path, "--retention", "overwrite", log_size="64K", max_frame="4K")
    yield running
    assert running.stop() == 0
