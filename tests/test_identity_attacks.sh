#!/usr/bin/env bash
# test_identity_attacks.sh: the attacks on producer identity listed in issue 17 (a forged
# sequence far ahead, the producer library after a forged record, a jump and its gap, a flood of
# made-up ids before a restart, Hellos of made-up ids), each refused, against real intaked
# daemons, with frames made by Google's protobuf library (python3-protobuf) and intake-produce.
# See tests/interop/identity_attacks.py. Needs /usr/bin/python3 with python3-protobuf and protoc.
set -euo pipefail

: "${INTAKE_BIN_DIR:?set by ctest}"
: "${INTAKE_SOURCE_DIR:?set by ctest}"
python=/usr/bin/python3
if ! command -v protoc >/dev/null; then
    echo "test_identity_attacks: protoc not found (apt-get install protobuf-compiler)" >&2
    exit 1
fi
if ! "$python" -c 'import google.protobuf' 2>/dev/null; then
    echo "test_identity_attacks: $python lacks google.protobuf (apt-get install python3-protobuf)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
protoc -I "$INTAKE_SOURCE_DIR/proto" --python_out="$work" intake.proto
PYTHONPATH="$work" "$python" "$INTAKE_SOURCE_DIR/tests/interop/identity_attacks.py" \
    "$INTAKE_BIN_DIR" "$work"
