"""deliver_records.py: Google-made records go through a real intaked and come back byte-identical.

Reads the delimited records make_records.py wrote (fields reordered, repeated topics, unknown
fields of every wire type, several headers), starts intaked, sends them all with
`intake-produce --delimited --acks`, then reads every topic back with `intake-tail --format raw`
and compares each topic's bytes with the frames Google's parse assigns to that topic (the last
topic field wins), in order.

Usage: deliver_records.py BIN_DIR RECORDS_PATH WORK_DIR   (intake_pb2 on PYTHONPATH)
"""
import os
import signal
import subprocess
import sys

import intake_pb2
from daemon_ready import wait_ready
from interop_util import read_varint


def frames_by_topic(data):
    """Splits delimited frames and groups them (prefix included) by Google's view of the topic."""
    topics, order = {}, []
    position = 0
    while position < len(data):
        start = position
        length, position = read_varint(data, position)
        body = data[position:position + length]
        position += length
        topic = intake_pb2.Record.FromString(body).topic
        if topic not in topics:
            topics[topic] = []
            order.append(topic)
        topics[topic].append(data[start:position])
    return topics, order


def start_daemon(bin_dir, shm_dir, log_path):
    """intaked on a port the kernel picks; (process, its "127.0.0.1:PORT") once ready."""
    log = open(log_path, "w")
    daemon = subprocess.Popen([os.path.join(bin_dir, "intaked"), "--listen", "127.0.0.1:0",
                               "--shm-dir", shm_dir, "--backend", "pbuf", "--log-size", "1M",
                               "--max-frame", "256K"],
                              stderr=log)
    ready = wait_ready(bin_dir, shm_dir, daemon)
    if ready is not None:
        return daemon, ready["listen"]
    sys.exit(f"deliver_records: intaked did not start:\n{open(log_path).read()}")


def main():
    bin_dir, records_path, work = sys.argv[1:4]
    data = open(records_path, "rb").read()
    topics, order = frames_by_topic(data)
    shm_dir = os.path.join("/dev/shm", f"intake-interop-{os.getpid()}")
    log_path = os.path.join(work, "intaked.log")
    daemon, address = start_daemon(bin_dir, shm_dir, log_path)
    failures = 0
    try:
        produced = subprocess.run([os.path.join(bin_dir, "intake-produce"), "--connect", address,
                                   "--delimited", "--acks"], input=data, capture_output=True, timeout=60)
        if produced.returncode != 0:
            sys.exit(f"deliver_records: intake-produce failed: {produced.stderr.decode()}")
        for topic in order:
            expected = b"".join(topics[topic])
            tail = subprocess.run([os.path.join(bin_dir, "intake-tail"), "--shm-dir", shm_dir,
                                   "--topic", topic, "--from-start", "--count", str(len(topics[topic])),
                                   "--format", "raw"], capture_output=True, timeout=30)
            if tail.returncode != 0 or tail.stdout != expected:
                failures += 1
                print(f"deliver_records: topic {topic!r}: {len(tail.stdout)} bytes back, "
                      f"{len(expected)} expected; {tail.stderr.decode().strip()}", file=sys.stderr)
    finally:
        daemon.send_signal(signal.SIGTERM)
        status = daemon.wait(timeout=30)
        subprocess.run(["rm", "-rf", shm_dir])
    if status != 0:
        print(f"deliver_records: intaked exited {status}:\n{open(log_path).read()}", file=sys.stderr)
        failures += 1
    records = sum(len(frames) for frames in topics.values())
    print(f"deliver_records: {records} records over {len(order)} topics; "
          f"{len(order) - min(failures, len(order))} topics byte-identical, {failures} failures")
    print(f"{records if failures == 0 else 0} passed, {failures} failed")
    sys.exit(1 if failures else 0)


main()
