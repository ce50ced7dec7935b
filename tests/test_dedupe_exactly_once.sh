#!/usr/bin/env bash
# test_dedupe_exactly_once.sh: resent records land in a topic's log exactly once (issue 12), with
# records made by Google's protobuf library, through real intaked processes: a connection reset
# before its acks are read, SIGKILL mid-stream and restarts, two producers sharing a topic, a
# sequence going backwards, eviction past the window, a damaged table file
# (tests/interop/dedupe_exactly_once.py says what each case checks).
# Needs /usr/bin/python3 with python3-protobuf and protoc (protobuf-compiler): see README.
set -euo pipefail

: "${INTAKE_BIN_DIR:?set by ctest}"
: "${INTAKE_SOURCE_DIR:?set by ctest}"
python=/usr/bin/python3
if ! command -v protoc >/dev/null; then
    echo "test_dedupe_exactly_once: protoc not found (apt-get install protobuf-compiler)" >&2
    exit 1
fi
if ! "$python" -c 'import google.protobuf' 2>/dev/null; then
    echo "test_dedupe_exactly_once: $python lacks google.protobuf (apt-get install python3-protobuf)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
protoc -I "$INTAKE_SOURCE_DIR/proto" --python_out="$work" intake.proto
PYTHONPATH="$work" "$python" "$INTAKE_SOURCE_DIR/tests/interop/dedupe_exactly_once.py" \
    "$INTAKE_BIN_DIR" "$work"
