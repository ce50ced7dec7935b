#!/usr/bin/env bash
# test_producer_identity.sh: Record.producer_id and the Hello frame (issue 12) against real
# intaked daemons, with frames made by Google's protobuf library (python3-protobuf): Hello
# answers (0 on a fresh daemon, then the last acknowledged sequence after a clean close), every
# identity rule's REJECTED answer, old producers unaffected, --producers-max eviction, counters.
# See tests/interop/producer_identity.py. Needs /usr/bin/python3 with python3-protobuf and protoc.
set -euo pipefail

: "${INTAKE_BIN_DIR:?set by ctest}"
: "${INTAKE_SOURCE_DIR:?set by ctest}"
python=/usr/bin/python3
if ! command -v protoc >/dev/null; then
    echo "test_producer_identity: protoc not found (apt-get install protobuf-compiler)" >&2
    exit 1
fi
if ! "$python" -c 'import google.protobuf' 2>/dev/null; then
    echo "test_producer_identity: $python lacks google.protobuf (apt-get install python3-protobuf)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
protoc -I "$INTAKE_SOURCE_DIR/proto" --python_out="$work" intake.proto
PYTHONPATH="$work" "$python" "$INTAKE_SOURCE_DIR/tests/interop/producer_identity.py" \
    "$INTAKE_BIN_DIR" "$work"
