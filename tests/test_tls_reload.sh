#!/usr/bin/env bash
# test_tls_reload.sh: certificate rotation under load with no connection dropped
# (tests/interop/tls_reload.py): producers stream over TLS while intaked's certificate and key
# files are replaced and SIGHUP sent; a new handshake sees the new certificate; a reload with a
# key that matches nothing keeps the old configuration and says why in one line.
set -euo pipefail
: "${INTAKE_BIN_DIR:?set by ctest}"
: "${INTAKE_SOURCE_DIR:?set by ctest}"
command -v openssl >/dev/null || { echo "test_tls_reload: openssl not found (apt-get install openssl)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$INTAKE_SOURCE_DIR/tests/interop/tls_make_certs.sh" "$work"
/usr/bin/python3 "$INTAKE_SOURCE_DIR/tests/interop/tls_reload.py" "$INTAKE_BIN_DIR" "$work"
