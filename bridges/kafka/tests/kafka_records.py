#!/usr/bin/python3
"""kafka_records.py: records for test_kafka_bridge.sh, and the check of what kcat read back.

  kafka_records.py make TOPIC FIRST COUNT [VALUE_BYTES] > records.bin
      COUNT delimited intake.v1.Records for `intake-produce --delimited --acks`: record i
      (FIRST <= i < FIRST+COUNT) has key k-TOPIC-i, value v-TOPIC-i padded with '.' to
      VALUE_BYTES (default: no padding), headers h1=x<i> and trace=t<i>, sequence i + 1.
  kafka_records.py check TOPIC FIRST COUNT kcat.txt [--skip i,j,...] [--record]
      kcat.txt was written by kcat -f 'S=%S K=%K %k%s H=%h\\n' (read by sizes, so values may
      hold any byte). Checks that the Kafka topic holds exactly the records FIRST..FIRST+COUNT-1
      (minus --skip), once each, in order, with key, value and headers intact and the origin
      headers intake-topic and intake-offset (= i) after them. --record: the Kafka value is the
      whole encoded record.
  kafka_records.py dead TOPIC OFFSET kcat.txt
      The dead-letter topic holds exactly one message for (TOPIC, OFFSET), with the record's key,
      its headers, an intake-error header and no value.

Encoding is written out by hand (protobuf's wire format is small), so this needs no library.
"""
import sys


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


def field_bytes(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_varint(number, value):
    return varint(number << 3) + varint(value)


def expected(topic, index, value_bytes=0):
    value = b"v-%s-%d" % (topic.encode(), index)
    if value_bytes > len(value):
        value += b"." * (value_bytes - len(value))
    return {
        "key": b"k-%s-%d" % (topic.encode(), index),
        "value": value,
        "headers": [(b"h1", b"x%d" % index), (b"trace", b"t%d" % index)],
    }


def encode(topic, index, sequence, value_bytes):
    record = expected(topic, index, value_bytes)
    body = field_bytes(1, topic.encode()) + field_bytes(2, record["key"])
    body += field_bytes(3, record["value"]) + field_varint(5, sequence)
    for key, value in record["headers"]:
        body += field_bytes(6, field_bytes(1, key) + field_bytes(2, value))
    return body


def read_kcat(path):
    """Messages written by kcat -f 'S=%S K=%K %k%s H=%h\\n', read by their sizes."""
    data = open(path, "rb").read()
    messages, at = [], 0
    while at < len(data):
        if not data.startswith(b"S=", at):
            raise SystemExit("kcat output: expected S= at byte %d" % at)
        space = data.index(b" ", at)
        value_size = int(data[at + 2:space])
        at = space + 1
        if not data.startswith(b"K=", at):
            raise SystemExit("kcat output: expected K= at byte %d" % at)
        space = data.index(b" ", at)
        key_size = int(data[at + 2:space])
        at = space + 1
        key = data[at:at + max(key_size, 0)]
        at += max(key_size, 0)
        value = data[at:at + max(value_size, 0)]
        at += max(value_size, 0)
        if not data.startswith(b" H=", at):
            raise SystemExit("kcat output: expected H= at byte %d" % at)
        end = data.index(b"\n", at)
        header_text = data[at + 3:end]
        at = end + 1
        headers = []
        if header_text:
            for pair in header_text.split(b","):
                name, _, text = pair.partition(b"=")
                headers.append((name, text))
        messages.append({"key": key, "value": value, "value_size": value_size,
                         "headers": headers})
    return messages


def decode_record_value(data):
    """The value field (3) of an encoded intake.v1.Record."""
    at, value = 0, None
    while at < len(data):
        tag, at = read_varint(data, at)
        if tag & 7 == 2:
            length, at = read_varint(data, at)
            if tag >> 3 == 3:
                value = data[at:at + length]
            at += length
        elif tag & 7 == 0:
            _, at = read_varint(data, at)
        else:
            raise SystemExit("unexpected wire type in a forwarded record")
    return value


def read_varint(data, at):
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def origin(headers):
    return {name: value for name, value in headers if name.startswith(b"intake-")}


def check(topic, first, count, path, skip, whole_record):
    messages = read_kcat(path)
    wanted = [index for index in range(first, first + count) if index not in skip]
    problems = []
    if len(messages) != len(wanted):
        problems.append("%d messages in Kafka, %d expected" % (len(messages), len(wanted)))
    seen = {}
    for message in messages:
        offset = origin(message["headers"]).get(b"intake-offset", b"?")
        seen[offset] = seen.get(offset, 0) + 1
    duplicates = sorted(int(o) for o, n in seen.items() if n > 1 and o.isdigit())
    if duplicates:
        problems.append("%d intake offsets twice or more, first %s" % (len(duplicates),
                                                                        duplicates[:5]))
    missing = [index for index in wanted if str(index).encode() not in seen]
    if missing:
        problems.append("%d records missing, first %s" % (len(missing), missing[:5]))
    for position, (message, index) in enumerate(zip(messages, wanted)):
        record = expected(topic, index)
        value = message["value"]
        if whole_record:
            value = decode_record_value(value)
        want_value = record["value"]
        # Padded records: compare the text before the padding, and the length separately.
        if value is None or not value.startswith(want_value) or value.strip(b".") != want_value:
            problems.append("message %d: value %r, expected %r" % (position, value[:40] if value
                                                                   else value, want_value))
        if message["key"] != record["key"]:
            problems.append("message %d: key %r, expected %r" % (position, message["key"],
                                                                  record["key"]))
        own = [(n, v) for n, v in message["headers"] if not n.startswith(b"intake-")]
        if own != record["headers"]:
            problems.append("message %d: headers %r" % (position, own))
        got = origin(message["headers"])
        if got.get(b"intake-topic") != topic.encode() or got.get(b"intake-offset") != (
                str(index).encode()):
            problems.append("message %d: origin %r, expected %s offset %d (order)" % (
                position, got, topic, index))
        if not got.get(b"intake-instance") or not got.get(b"intake-log", b"").isdigit():
            problems.append("message %d: no intake-instance / intake-log header" % position)
        if len(problems) > 10:
            break
    if problems:
        print("FAILED %s: %s" % (topic, "; ".join(problems[:10])))
        return 1
    print("ok %s: %d records, each exactly once, in order, key, value and headers intact" % (
        topic, len(wanted)))
    return 0


def dead(topic, offset, path):
    matches = []
    for message in read_kcat(path):
        got = origin(message["headers"])
        if got.get(b"intake-topic") == topic.encode() and got.get(b"intake-offset") == (
                str(offset).encode()):
            matches.append(message)
    if len(matches) != 1:
        print("FAILED dead letter %s/%d: %d messages" % (topic, offset, len(matches)))
        return 1
    message = matches[0]
    record = expected(topic, offset)
    error = origin(message["headers"]).get(b"intake-error", b"")
    own = [(n, v) for n, v in message["headers"] if not n.startswith(b"intake-")]
    if message["key"] != record["key"] or own != record["headers"] or not error or (
            message["value_size"] > 0):
        print("FAILED dead letter %s/%d: %r" % (topic, offset, message))
        return 1
    print("ok dead letter %s/%d: key and headers kept, no value, intake-error=%s" % (
        topic, offset, error.decode()))
    return 0


def main(argv):
    if len(argv) >= 5 and argv[1] == "make":
        topic, first, count = argv[2], int(argv[3]), int(argv[4])
        value_bytes = int(argv[5]) if len(argv) > 5 else 0
        out = bytearray()
        for index in range(first, first + count):
            # Sequence index + 1: files made for consecutive ranges can share one connection.
            record = encode(topic, index, index + 1, value_bytes)
            out += varint(len(record)) + record
        sys.stdout.buffer.write(out)
        return 0
    if len(argv) >= 6 and argv[1] == "check":
        skip, whole = set(), False
        rest = argv[6:]
        while rest:
            if rest[0] == "--skip":
                skip = {int(x) for x in rest[1].split(",")}
                rest = rest[2:]
            elif rest[0] == "--record":
                whole, rest = True, rest[1:]
            else:
                raise SystemExit("unknown argument %s" % rest[0])
        return check(argv[2], int(argv[3]), int(argv[4]), argv[5], skip, whole)
    if len(argv) == 5 and argv[1] == "dead":
        return dead(argv[2], int(argv[3]), argv[4])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
