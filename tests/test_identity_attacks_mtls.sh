#!/usr/bin/env bash
# test_identity_attacks_mtls.sh: the attacks on producer identity of issue 17 under mutual TLS
# (intaked with --tls-client-ca, two client certificates naming two principals): a second
# principal holding the same producer_id cannot suppress, advance or read the first's state nor
# evict it from a dedupe window; the same principal's forged sequences are refused over TLS as on
# plaintext, including against intake-produce --tls-*. See tests/interop/identity_attacks_mtls.py.
# Needs /usr/bin/python3 with python3-protobuf, protoc and the openssl CLI.
set -euo pipefail

: "${INTAKE_BIN_DIR:?set by ctest}"
: "${INTAKE_SOURCE_DIR:?set by ctest}"
python=/usr/bin/python3
for program in protoc openssl; do
    if ! command -v "$program" >/dev/null; then
        echo "test_identity_attacks_mtls: $program not found (see scripts/setup)" >&2
        exit 1
    fi
done
if ! "$python" -c 'import google.protobuf' 2>/dev/null; then
    echo "test_identity_attacks_mtls: $python lacks google.protobuf (apt-get install python3-protobuf)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$INTAKE_SOURCE_DIR/tests/interop/tls_make_certs.sh" "$work"
protoc -I "$INTAKE_SOURCE_DIR/proto" --python_out="$work" intake.proto
PYTHONPATH="$work" "$python" "$INTAKE_SOURCE_DIR/tests/interop/identity_attacks_mtls.py" \
    "$INTAKE_BIN_DIR" "$work"
