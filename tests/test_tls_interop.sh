#!/usr/bin/env bash
# test_tls_interop.sh: intaked's TLS 1.3 listener against TLS stacks intake did not write
# (Python's ssl module and openssl s_client), with credentials made now by the openssl CLI
# (tests/interop/tls_make_certs.sh). The scenarios are in tests/interop/tls_interop.py: one TLS
# record per byte; 16 KiB records spanning 4 KiB buffers; key updates both ways (intaked's own
# after --tls-key-update-records, and s_client's "K" and "k"); a corrupted tag; a truncated
# record then EOF; a plaintext client on the TLS port; mTLS without a certificate, with another
# CA's, with one naming no principal, and with URI-SAN and CN-only certificates; pauses (a tiny
# topic queue, ack window, pool and buffer ring) while TLS records are open. Each delivery is
# compared byte for byte with intake-tail --format raw; /metrics, intake-stat and the shutdown
# lines agree on every TLS counter.
set -euo pipefail
exec bash "${INTAKE_SOURCE_DIR:?set by ctest}/tests/interop/tls_run.sh" tls_interop.py
