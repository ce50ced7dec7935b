#!/usr/bin/env bash
# test_tls_reload.sh: certificate rotation under load with no connection dropped
# (tests/interop/tls_reload.py): producers stream over TLS while intaked's certificate and key
# files are replaced and SIGHUP sent; a new handshake sees the new certificate; a reload with a
# key that matches nothing keeps the old configuration and says why in one line.
set -euo pipefail
exec bash "${INTAKE_SOURCE_DIR:?set by ctest}/tests/interop/tls_run.sh" tls_reload.py
