#!/usr/bin/env python3
"""Prints a topic's records as JSON lines, from the oldest one, following new ones.

    python3 examples/python/consumer_json.py TOPIC [--shm-dir /dev/shm/intake] [--count N]

key and value are zero-copy memoryviews into intake's shared-memory log: they are decoded
(as UTF-8 when they are text, base64 otherwise) before the next poll, which may reuse them.
"""
import argparse
import base64
import json
import sys

import intake


def text(view):
    data = bytes(view)
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("topic")
    parser.add_argument("--shm-dir", default="/dev/shm/intake")
    parser.add_argument("--count", type=int, default=0, help="stop after N records (0: follow)")
    arguments = parser.parse_args()
    printed = 0
    with intake.Consumer(arguments.topic, shm_dir=arguments.shm_dir, start="earliest") as consumer:
        while arguments.count == 0 or printed < arguments.count:
            for record in consumer.poll(max_records=256, timeout=1.0):
                print(json.dumps({
                    "topic": record.topic, "offset": record.offset,
                    "timestamp_ns": record.timestamp_ns, "key": text(record.key),
                    "value": text(record.value),
                    "headers": [[key, text(value)] for key, value in record.headers],
                }), flush=True)
                printed += 1
                if printed == arguments.count:
                    break
            if not consumer.writer_alive and arguments.count == 0:
                break  # intaked has stopped: nothing more will come
    return 0


if __name__ == "__main__":
    sys.exit(main())
