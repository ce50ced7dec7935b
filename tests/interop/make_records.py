"""make_records.py: writes delimited intake.v1.Record frames made with Google's protobuf library
and prints, from Google's own parse of each, the line `framer-lines` (tests/interop/framer_lines.c) prints for it.

Run by test_python_interop.sh with intake_pb2 and intake_extra_pb2 on PYTHONPATH.
Usage: make_records.py OUTPUT_PATH > expected.txt
"""
import random
import sys

import intake_extra_pb2
import intake_pb2
from interop_util import varint

FNV_OFFSET_BASIS = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def fnv1a(data):
    value = FNV_OFFSET_BASIS
    for byte in data:
        value = ((value ^ byte) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return value


def random_topic(rng):
    pieces = ["orders", "é", "€", "😀", "-", ".", "x", "数据"]
    topic = ""
    while len(topic.encode()) < rng.randint(1, 200):
        topic += rng.choice(pieces)
    return topic or "t"


def plain_record(rng, sequence):
    """A Record serialized normally (Google's field order)."""
    record = intake_pb2.Record(topic=random_topic(rng), sequence=sequence,
                               timestamp_ns=rng.getrandbits(64))
    record.key = rng.randbytes(rng.randint(0, 40))
    record.value = rng.randbytes(rng.choice([0, 1, 100, 5000, 12000]))
    for _ in range(rng.randint(0, 3)):
        record.headers.add(key=random_topic(rng)[:20], value=rng.randbytes(rng.randint(0, 30)))
    return record.SerializeToString()


def reversed_record(rng, sequence):
    """Single-field Records serialized separately and concatenated in reverse field order;
    the topic appears twice, so the last (second) one must win."""
    parts = [
        intake_pb2.Record(topic="first-" + random_topic(rng)),
        intake_pb2.Record(key=rng.randbytes(8)),
        intake_pb2.Record(value=rng.randbytes(rng.randint(0, 3000))),
        intake_pb2.Record(timestamp_ns=rng.getrandbits(63)),
        intake_pb2.Record(sequence=sequence),
        intake_pb2.Record(headers=[intake_pb2.Header(key="a", value=b"1")]),
        intake_pb2.Record(headers=[intake_pb2.Header(key="", value=b"")]),
        intake_pb2.Record(topic=random_topic(rng)),
    ]
    serialized = [part.SerializeToString() for part in parts]
    # Reverse everything but keep the two topics in order, the later one last.
    middle = serialized[1:-1]
    return serialized[0] + b"".join(reversed(middle)) + serialized[-1]


def record_with_unknown_fields(rng, sequence):
    """A RecordPlus: a Record with unknown fields of every wire type, fields shuffled."""
    plus = intake_extra_pb2.RecordPlus(
        topic=random_topic(rng), key=b"k", value=rng.randbytes(rng.randint(1, 4000)),
        timestamp_ns=rng.getrandbits(64), sequence=sequence,
        extra_varint=-rng.getrandbits(40), extra_fixed64=rng.getrandbits(64),
        extra_fixed32=rng.getrandbits(32), extra_bytes=rng.randbytes(50),
        extra_message=intake_extra_pb2.Nested(label="nested", numbers=[1, 300, 70000]),
        extra_doubles=[1.5, -2.25], extra_float=3.5)
    plus.headers.add(key="h", value=b"v", extra_number=-7, extra_note="note")
    plus.headers.add(key="é", value=b"")
    fields = []
    for descriptor, value in plus.ListFields():
        single = intake_extra_pb2.RecordPlus()
        if descriptor.label == descriptor.LABEL_REPEATED:
            getattr(single, descriptor.name).extend(value)
        elif descriptor.message_type is not None:
            getattr(single, descriptor.name).CopyFrom(value)
        else:
            setattr(single, descriptor.name, value)
        fields.append(single.SerializeToString())
    rng.shuffle(fields)
    return b"".join(fields)


def expected_line(body):
    record = intake_pb2.Record.FromString(body)
    topic = record.topic.encode()
    key = record.key[:64]
    return ("topic=%s sequence=%d timestamp_ns=%d headers=%d key=%s value_bytes=%d "
            "value_fnv=%016x body_bytes=%d body_fnv=%016x" % (
                topic.hex() or "-", record.sequence, record.timestamp_ns, len(record.headers),
                key.hex() or "-", len(record.value), fnv1a(record.value), len(body),
                fnv1a(body)))


def main():
    rng = random.Random(20240611)
    makers = [plain_record, reversed_record, record_with_unknown_fields]
    bodies = [makers[index % 3](rng, index + 1) for index in range(300)]
    with open(sys.argv[1], "wb") as output:
        for body in bodies:
            output.write(varint(len(body)) + body)
    for body in bodies:
        print(expected_line(body))
    print("records=%d" % len(bodies))


if __name__ == "__main__":
    main()
