#!/usr/bin/env bash
# test_python_interop.sh: records produced by Google's protobuf library (python3-protobuf) are
# framed, scanned and decoded by intake's framer, record_scan and record_decode, and then
# delivered by a real intaked byte-identical (tests/interop/deliver_records.py).
#
# Python writes delimited records (fields in reverse and shuffled order, repeated topics, unknown
# fields of every wire type, several headers) and prints, from Google's own parse of each record,
# the line framer-lines (tests/interop/framer_lines.c) prints for it; the two outputs must be
# identical.
# Needs /usr/bin/python3 with python3-protobuf and protoc (protobuf-compiler): see README.
# intake-test: no-tsan (one connection through the daemon; test_end_to_end covers the daemon under TSan)
set -euo pipefail

: "${INTAKE_BIN_DIR:?set by ctest}"
: "${INTAKE_SOURCE_DIR:?set by ctest}"
python=/usr/bin/python3
if ! command -v protoc >/dev/null; then
    echo "test_python_interop: protoc not found (apt-get install protobuf-compiler)" >&2
    exit 1
fi
if ! "$python" -c 'import google.protobuf' 2>/dev/null; then
    echo "test_python_interop: $python lacks google.protobuf (apt-get install python3-protobuf)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

protoc -I "$INTAKE_SOURCE_DIR/proto" --python_out="$work" intake.proto
protoc -I "$INTAKE_SOURCE_DIR/tests/interop" --python_out="$work" intake_extra.proto

PYTHONPATH="$work" "$python" "$INTAKE_SOURCE_DIR/tests/interop/make_records.py" \
    "$work/records.bin" >"$work/expected.txt"
"$INTAKE_BIN_DIR/framer-lines" "$work/records.bin" >"$work/actual.txt" || {
    echo "test_python_interop: framer-lines failed" >&2
    tail -5 "$work/actual.txt" >&2
    exit 1
}
if ! diff -u "$work/expected.txt" "$work/actual.txt" >&2; then
    echo "test_python_interop: framer output differs from Google's parse (diff above)" >&2
    exit 1
fi
echo "test_python_interop: $(tail -1 "$work/actual.txt") identical to Google's parse"

# The same records through a real intaked: produced with intake-produce --delimited, read back
# with intake-tail --format raw, byte-identical per topic.
PYTHONPATH="$work" "$python" "$INTAKE_SOURCE_DIR/tests/interop/deliver_records.py" \
    "$INTAKE_BIN_DIR" "$work/records.bin" "$work"
