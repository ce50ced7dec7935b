"""bench/python_consumer.py: the Python side of bench/python-consumer. Reads --count records of
one topic's log from its oldest record on one core and prints one line per way of reading:

  python-poll      intake.Consumer.poll(max_records=1024), len() of each record's zero-copy
                   value: the package's path (the issue's figure)
  python-iterate   for record in consumer: one record per step (what commit semantics need)
  cffi-poll        the same poll loop through cffi over libintake.so.1 (ABI mode), for the
                   choice between a C extension and cffi (skipped when python3-cffi is absent)

Each line: way records=N seconds=S cpu_seconds=C records_per_second=R
"""
import argparse
import os
import time

import intake


def run_poll(shm_dir, topic, count):
    consumer = intake.Consumer(topic, shm_dir=shm_dir, start="earliest")
    seen = value_bytes = 0
    while seen < count:
        records = consumer.poll(max_records=1024)
        if not records:
            break
        for record in records:
            value_bytes += len(record.value)
        seen += len(records)
    consumer.close()
    return seen, value_bytes


def run_iterate(shm_dir, topic, count):
    consumer = intake.Consumer(topic, shm_dir=shm_dir, start="earliest")
    seen = value_bytes = 0
    for record in consumer:
        value_bytes += len(record.value)
        seen += 1
        if seen == count:
            break
    consumer.close()
    return seen, value_bytes


CDEF = """
struct intake_consumer;
struct intake_consumer_options { uint32_t struct_bytes; int start; uint64_t start_offset;
                                 bool ephemeral; };
struct intake_consumer_record { const uint8_t *bytes; uint32_t length; uint64_t offset;
    uint64_t sequence; uint64_t receive_time_ns; uint64_t missed; uint64_t opaque_position;
    uint64_t reserved[3]; };
struct intake_bytes { const uint8_t *bytes; size_t length; };
struct intake_record_view { uint32_t struct_bytes; uint32_t header_count;
    struct intake_bytes topic, key, value, producer_id; uint64_t timestamp_ns;
    uint64_t sequence; const char *problem; const uint8_t *record_bytes;
    size_t record_length; };
int intake_consumer_open(const char *, const char *, const char *,
    const struct intake_consumer_options *, struct intake_consumer **, char *, size_t);
int intake_consumer_poll_batch(struct intake_consumer *, struct intake_consumer_record *,
                               uint32_t);
void intake_consumer_close(struct intake_consumer *);
int intake_record_parse(const void *, size_t, struct intake_record_view *);
"""


def run_cffi(shm_dir, topic, count, library):
    import cffi  # python3-cffi

    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    lib = ffi.dlopen(library)
    options = ffi.new("struct intake_consumer_options *")
    options.struct_bytes = ffi.sizeof("struct intake_consumer_options")
    options.start = 1  # INTAKE_CONSUMER_START_OLDEST
    options.ephemeral = True
    handle = ffi.new("struct intake_consumer **")
    why = ffi.new("char[512]")
    if lib.intake_consumer_open(shm_dir.encode(), topic.encode(), b"cffi-bench", options,
                                handle, why, 512) != 0:
        raise SystemExit(ffi.string(why).decode())
    records = ffi.new("struct intake_consumer_record[1024]")
    view = ffi.new("struct intake_record_view *")
    view_bytes = ffi.sizeof("struct intake_record_view")
    seen = value_bytes = 0
    while seen < count:
        got = lib.intake_consumer_poll_batch(handle[0], records, 1024)
        if got <= 0:
            break
        for index in range(got):
            record = records[index]
            view.struct_bytes = view_bytes
            if lib.intake_record_parse(record.bytes, record.length, view) != 0:
                continue
            # the same zero-copy memoryview the package hands out
            value_bytes += len(memoryview(ffi.buffer(view.value.bytes, view.value.length)))
        seen += got
    lib.intake_consumer_close(handle[0])
    return seen, value_bytes


def measure(name, body, *arguments):
    started, cpu_started = time.monotonic(), time.process_time()
    seen, _ = body(*arguments)
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu_started
    print("%s records=%d seconds=%.4f cpu_seconds=%.4f records_per_second=%.0f"
          % (name, seen, seconds, cpu, seen / seconds if seconds else 0), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shm-dir", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--library", required=True, help="path of libintake.so.1 (for cffi)")
    parser.add_argument("--way", choices=["poll", "iterate", "cffi"], required=True)
    arguments = parser.parse_args()
    if arguments.way == "poll":
        measure("python-poll", run_poll, arguments.shm_dir, arguments.topic, arguments.count)
    elif arguments.way == "iterate":
        measure("python-iterate", run_iterate, arguments.shm_dir, arguments.topic,
                arguments.count)
    else:
        try:
            import cffi  # noqa: F401
        except ImportError:
            print("cffi-poll skipped: python3-cffi is not installed")
            return
        measure("cffi-poll", run_cffi, arguments.shm_dir, arguments.topic, arguments.count,
                arguments.library)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
