#!/usr/bin/env bash
# tls_run.sh SCRIPT: what every TLS test script does: makes fresh credentials with the openssl
# CLI (tls_make_certs.sh) in a temporary directory, runs tests/interop/SCRIPT with
# /usr/bin/python3 against the build's programs, and removes the directory.
set -euo pipefail
: "${INTAKE_BIN_DIR:?set by ctest}"
: "${INTAKE_SOURCE_DIR:?set by ctest}"
command -v openssl >/dev/null || { echo "$1: openssl not found (apt-get install openssl)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$INTAKE_SOURCE_DIR/tests/interop/tls_make_certs.sh" "$work"
/usr/bin/python3 "$INTAKE_SOURCE_DIR/tests/interop/$1" "$INTAKE_BIN_DIR" "$work"
