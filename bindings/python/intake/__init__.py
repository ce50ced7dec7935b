"""intake for Python: produce to intaked over TCP, consume its shared-memory logs in place.

    import intake
    with intake.Producer("127.0.0.1:7411") as producer:
        producer.send("events", b"hello", key=b"k", headers=[("trace", b"1")])
    # leaving the block flushes: every record acknowledged, or intake.DeliveryError

    with intake.Consumer("events", start="earliest") as consumer:
        for record in consumer.poll(max_records=1000, timeout=1.0):
            print(record.offset, bytes(record.value))

Zero copy: Record.key, .value and .raw are read-only memoryviews into the log's shared
memory. In block retention (intaked's default) a record's bytes stay as they were until the
consumer's next poll (for iteration: its next step) or close; after that, and at any time in
overwrite retention (intaked --retention overwrite), the writer may reuse them. Use a record
before polling again, or keep a copy: bytes(record.value). Record.valid() says whether its bytes
are still intact. A view never outlives the memory it shows: the log stays mapped while any
record or view of it exists, so a Consumer closes its handle (and frees its name) once the last
one is gone.

Errors are intake.Error subclasses; str(error) is the library's one-line reason and
error.errno its errno. Waits release the GIL. The Python package wraps libintake.so.1 (see
bindings/python/README.md); intake.library_version() is the version loaded.
"""
import errno as _errno

from ._intake import (  # noqa: F401 (the public names)
    BusyError,
    Consumer,
    ConsumerSet,
    Error,
    LogError,
    NotFoundError,
    ProtocolError,
    Record,
    TimeoutError,
    UnsupportedError,
    _Producer,
    library_version,
)

__all__ = [
    "BusyError", "Consumer", "ConsumerSet", "DeliveryError", "Error", "LogError",
    "NotFoundError", "Producer", "ProtocolError", "Record", "TimeoutError", "UnsupportedError",
    "library_version",
]

_STATUS_NAMES = {1: "REJECTED", 2: "RESOURCE_EXHAUSTED", 3: "SHUTTING_DOWN", 4: "INTERNAL",
                 100: "TIMED_OUT"}


class DeliveryError(Error):
    """Records that were not delivered. .failures is a list of (sequence, topic, status,
    detail), one per failed record (topic is None where the producer cannot know it), in
    sequence order; .not_kept counts failures beyond what was kept (65,536)."""

    def __init__(self, message, failures, not_kept=0):
        super().__init__(message)
        self.errno = _errno.EPROTO
        self.failures = failures
        self.not_kept = not_kept


class Producer(_Producer):
    """Producer(address="127.0.0.1:7411", producer_id=None, acks=True, tls_ca=None,
    tls_cert=None, tls_key=None, tls_server_name=None)

    Sends records to intaked. With a producer_id (str or bytes, 1..64 bytes) the producer is
    idempotent: exactly once into the logs across reconnects and daemon restarts, resending by
    itself. acks=False sends without waiting for anything (flush only writes). tls_ca (a PEM
    path) makes it speak TLS 1.3 to intaked's --tls-listen port, verifying intaked's
    certificate for tls_server_name (default: the address's host); tls_cert and tls_key add a
    client certificate (mutual TLS). A failed handshake raises intake.Error (errno
    ECONNABORTED) with what failed; see "TLS" in include/intake/producer.h.
    """

    def __init__(self, address="127.0.0.1:7411", producer_id=None, acks=True, tls_ca=None,
                 tls_cert=None, tls_key=None, tls_server_name=None, idempotent=False):
        if isinstance(producer_id, str):
            producer_id = producer_id.encode()
        super().__init__(address, producer_id, bool(acks), tls_ca, tls_cert, tls_key,
                         tls_server_name, bool(idempotent))
        self._acks = bool(acks) or producer_id is not None or bool(idempotent)
        self._idempotent = producer_id is not None or bool(idempotent)

    def flush(self, timeout=None):
        """Writes what is batched and returns once every record sent is acknowledged
        (timeout: seconds, None: no limit). Raises DeliveryError naming the records that
        failed, TimeoutError when the acks did not come in time."""
        timeout_ms = -1 if timeout is None else max(0, int(timeout * 1000))
        if not self._acks:
            timeout_ms = 0
        code, reason, acked, last = self._wait(timeout_ms if self._acks else -1)
        failures, not_kept = self._take_failures()
        failures = [(sequence, topic or None, _STATUS_NAMES.get(status, str(status)), detail)
                    for sequence, status, topic, detail in failures]
        if code == _errno.EPROTO and not self._idempotent and not failures:
            # A plain connection ends at its first refused record: it and every record after
            # it were not committed ("nothing is committed past a final Ack").
            status = reason.split(":", 1)[0] if ":" in reason else "REJECTED"
            failures = [(sequence, None, status, reason) for sequence in range(acked + 1, last + 1)]
        if failures or not_kept:
            raise DeliveryError(
                "%d record(s) failed, first: sequence %d (%s: %s)"
                % (len(failures) + not_kept, failures[0][0], failures[0][2], failures[0][3])
                if failures else "%d record(s) failed" % not_kept, failures, not_kept)
        if code == 0:
            return
        if code == _errno.ETIMEDOUT:
            error = TimeoutError(reason)
        else:
            error = Error(reason)
        error.errno = code
        raise error

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        try:
            if kind is None and not self.closed:
                self.flush()
        finally:
            self.close()
        return False
