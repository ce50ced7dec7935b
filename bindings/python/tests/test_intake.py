"""The intake Python package against a real intaked (tests/conftest.py starts one)."""
import errno
import os
import subprocess
import threading
import time

import pytest

import intake


def produce(daemon, topic, count, **send):
    with intake.Producer(daemon.address) as producer:
        for number in range(count):
            producer.send(topic, b"value-%d" % number, key=b"key-%d" % number, **send)
    # leaving the block flushed: every record is acknowledged, so it is in the log


def test_produce_and_consume_zero_copy(daemon):
    with intake.Producer(daemon.address) as producer:
        for number in range(1000):
            sequence = producer.send("orders", b"value-%d" % number, key="key-%d" % number,
                                     headers=[("n", str(number)), ("empty", b"")],
                                     timestamp_ns=1000 + number)
            assert sequence == number + 1
        producer.flush(timeout=10)
        assert producer.acked == 1000
    with intake.Consumer("orders", shm_dir=daemon.shm_dir, start="earliest") as consumer:
        records = []
        while len(records) < 1000:
            batch = consumer.poll(max_records=300, timeout=5)
            assert batch, "records stopped before 1000"
            for record in batch:
                records.append((record.offset, bytes(record.key), bytes(record.value),
                                [(key, bytes(value)) for key, value in record.headers],
                                record.timestamp_ns, record.sequence, record.topic))
                assert isinstance(record.value, memoryview) and record.value.readonly
                assert type(record.value.obj).__name__ == "_Log"  # a view of the log, no copy
                assert record.valid()
                assert record.producer_id is None and record.problem is None
                # Written on the plaintext listener: the anonymous principal's tag.
                assert record.principal == 0xf33a49644e3a182f
        assert consumer.poll() == []
        assert consumer.missed == 0
    for number, (offset, key, value, headers, timestamp, sequence, topic) in enumerate(records):
        assert offset == number and topic == "orders"
        assert key == b"key-%d" % number and value == b"value-%d" % number
        assert headers == [("n", b"%d" % number), ("empty", b"")]
        assert timestamp == 1000 + number and sequence == number + 1


def test_iteration_waits_and_poll_timeout(daemon):
    produce(daemon, "iterated", 1)
    consumer = intake.Consumer("iterated", shm_dir=daemon.shm_dir, start="earliest")
    started = time.monotonic()
    assert consumer.poll(timeout=0.3) != []
    assert consumer.poll(timeout=0.3) == []
    assert time.monotonic() - started >= 0.3
    sender = threading.Thread(target=produce, args=(daemon, "iterated", 20))
    sender.start()
    seen = []
    for record in consumer:  # blocks between records; each step is one record
        seen.append(bytes(record.value))
        if len(seen) == 20:
            break
    sender.join()
    assert seen == [b"value-%d" % number for number in range(20)]
    consumer.close()
    assert consumer.closed


def test_waits_release_the_gil(daemon):
    """While the main thread waits inside libintake, another thread runs Python: it ticks, then
    produces the record that ends the wait. Were the GIL held through the wait, the other thread
    could not run, and the poll would end at its 60 s timeout with nothing. No wall-clock bound:
    the outcome, not a rate, is checked."""
    produce(daemon, "gil", 1)
    consumer = intake.Consumer("gil", shm_dir=daemon.shm_dir, start="latest")
    waiting = threading.Event()
    ticks = []

    def tick_then_produce():
        waiting.wait()
        for _ in range(20):  # Python bytecode, each step needing the GIL, while the poll waits
            ticks.append(1)
            time.sleep(0.001)
        produce(daemon, "gil", 1)

    other = threading.Thread(target=tick_then_produce)
    other.start()
    waiting.set()
    records = consumer.poll(timeout=60)
    other.join()
    assert len(ticks) == 20
    assert [bytes(record.value) for record in records] == [b"value-0"]
    consumer.close()


def test_consumer_set_follows_new_topics(daemon):
    produce(daemon, "set-a", 3)
    with intake.ConsumerSet(None, shm_dir=daemon.shm_dir, start="earliest") as topics:
        first = topics.poll(max_records=100, timeout=5)
        produce(daemon, "set-b", 4)  # created after the set opened
        got = {(record.topic, bytes(record.value)) for record in first}
        deadline = time.monotonic() + 10
        while len(got) < 7 and time.monotonic() < deadline:
            got |= {(record.topic, bytes(record.value)) for record in topics.poll(timeout=1)}
    assert got == {("set-a", b"value-%d" % n) for n in range(3)} | \
        {("set-b", b"value-%d" % n) for n in range(4)}
    with intake.ConsumerSet(["set-b"], shm_dir=daemon.shm_dir, start="earliest") as listed:
        records = listed.poll(max_records=100, timeout=5)
        assert [record.topic for record in records] == ["set-b"] * 4


def test_commit_and_resume(daemon):
    produce(daemon, "resume", 10)
    with intake.Consumer("resume", shm_dir=daemon.shm_dir, name="py-resumer") as consumer:
        assert [r.offset for r in consumer.poll(max_records=4, timeout=5)] == [0, 1, 2, 3]
        consumer.commit()
    with intake.Consumer("resume", shm_dir=daemon.shm_dir, name="py-resumer") as consumer:
        assert consumer.poll(max_records=1, timeout=5)[0].offset == 4
    offset = intake.Consumer("resume", shm_dir=daemon.shm_dir, start=7).poll(timeout=5)
    assert [r.offset for r in offset] == [7, 8, 9]
    latest = intake.Consumer("resume", shm_dir=daemon.shm_dir, start="latest")
    assert latest.poll() == []


def test_records_outlive_close(daemon):
    produce(daemon, "lifetime", 3)
    consumer = intake.Consumer("lifetime", shm_dir=daemon.shm_dir, name="py-keeper",
                               start="earliest")
    records = consumer.poll(timeout=5)
    value = records[0].value
    consumer.close()
    with pytest.raises(intake.Error):
        consumer.poll()
    # The mapping lives while a record or view does: reading it is safe after close.
    assert bytes(value) == b"value-0" and bytes(records[2].value) == b"value-2"
    with pytest.raises(intake.BusyError):  # the handle (and its name) is still held
        intake.Consumer("lifetime", shm_dir=daemon.shm_dir, name="py-keeper")
    del records, value
    intake.Consumer("lifetime", shm_dir=daemon.shm_dir, name="py-keeper").close()


def test_errors_carry_the_reason(daemon):
    with pytest.raises(intake.NotFoundError) as missing:
        intake.Consumer("no-such-topic", shm_dir=daemon.shm_dir)
    assert missing.value.errno == errno.ENOENT
    assert "no-such-topic" in str(missing.value)
    produce(daemon, "named", 1)
    holder = intake.Consumer("named", shm_dir=daemon.shm_dir, name="py-holder")
    with pytest.raises(intake.BusyError) as busy:
        intake.Consumer("named", shm_dir=daemon.shm_dir, name="py-holder")
    assert "in use" in str(busy.value)
    holder.close()
    with pytest.raises(ValueError):
        intake.Consumer("named", shm_dir=daemon.shm_dir, start="sometime")
    with pytest.raises(intake.Error):
        intake.Producer(daemon.address).send("", b"empty topic")


def test_tls_options_reach_libintake(daemon, tmp_path):
    # Certificates made now (scripts/tls-dev-certs); the daemon's port speaks plaintext, so a
    # TLS producer is refused by the handshake: TLS was attempted, never plaintext.
    source = os.environ.get("INTAKE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../../.."))
    subprocess.run([os.path.join(source, "scripts/tls-dev-certs"), str(tmp_path)], check=True)
    with pytest.raises(intake.Error) as refused:
        intake.Producer(daemon.address, tls_ca=str(tmp_path / "ca.pem"))
    assert refused.value.errno == errno.ECONNABORTED
    assert "TLS handshake" in str(refused.value) and "plaintext listener" in str(refused.value)
    with pytest.raises(intake.NotFoundError) as missing:
        intake.Producer(daemon.address, tls_ca=str(tmp_path / "missing.pem"))
    assert "tls_ca_file" in str(missing.value)
    with pytest.raises(intake.Error) as alone:
        intake.Producer(daemon.address, tls_ca=str(tmp_path / "ca.pem"),
                        tls_cert=str(tmp_path / "client.pem"))
    assert "tls_cert_file and tls_key_file go together" in str(alone.value)


def test_flush_names_failed_records(daemon):
    # A record over --max-frame (64K) is REJECTED by intaked.
    big = b"x" * (100 * 1024)
    producer = intake.Producer(daemon.address)
    producer.send("failing", b"ok-1")
    producer.send("failing", b"ok-2")
    producer.send("failing", big)
    with pytest.raises(intake.DeliveryError) as failed:
        producer.flush(timeout=10)
    assert [failure[0] for failure in failed.value.failures] == [3]
    assert failed.value.failures[0][2] == "REJECTED"
    producer.close()

    # Idempotent: the refused record is reported by its sequence and topic; the others land.
    with pytest.raises(intake.DeliveryError) as failed:
        with intake.Producer(daemon.address, producer_id="py-idempotent-1") as idempotent:
            for number in range(1, 11):
                idempotent.send("idem", big if number == 6 else b"rec-%d" % number)
    assert failed.value.failures == [(6, "idem", "REJECTED", failed.value.failures[0][3])]
    assert "exceeds" in failed.value.failures[0][3]
    values = [bytes(r.value) for r in
              intake.Consumer("idem", shm_dir=daemon.shm_dir, start="earliest").poll(timeout=5)]
    assert values == [b"rec-%d" % n for n in range(1, 11) if n != 6]


def test_overwrite_retention_and_valid(overwrite_daemon):
    daemon = overwrite_daemon
    produce(daemon, "lapped", 1)
    consumer = intake.Consumer("lapped", shm_dir=daemon.shm_dir, start="earliest",
                               name="py-lapped")
    kept = consumer.poll(timeout=5)
    assert len(kept) == 1 and kept[0].valid()
    # The 64K ring is lapped many times over: the bytes under the kept record are reused.
    with intake.Producer(daemon.address) as producer:
        for number in range(5000):
            producer.send("lapped", b"%04d" % number + b"." * 100)
    assert not kept[0].valid()
    records = consumer.poll(max_records=10000, timeout=5)
    assert consumer.missed > 0 and records[0].missed > 0
    assert bytes(records[-1].value).startswith(b"4999")
