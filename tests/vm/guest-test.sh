#!/bin/sh
# tests/vm/guest-test.sh: what runs inside the VM of tests/vm/run (busybox sh, as root, with
# proc/sys/dev mounted and lo up). Programs are in /intake/bin. Prints its verdict as the line
#   vm-guest: PASS kernel=<version> backend=zcrx bytes=<n> records=<n>
#   vm-guest: FAIL <reason>
# which tests/vm/run turns into its own last line. Add further stages (intaked --backend zcrx
# --zcrx-nodev with producers and intake-tail) as functions below and call them from main.
bin=/intake/bin
kernel=$(uname -r)

fail() {
    echo "vm-guest: FAIL $*"
    exit 1
}

# Stage 1: the zcrx backend alone over a loopback TCP pair (test_zcrx_probe end to end).
stage_backend() {
    out=/tmp/zcrx-probe.out
    ZCRX_TEST_BYTES=${ZCRX_TEST_BYTES:-67108864} "$bin/test_zcrx_probe" >"$out" 2>&1
    status=$?
    cat "$out"
    grep -q '^skipped:' "$out" && fail "device-less zcrx refused: $(sed -n 's/^skipped: //p' "$out")"
    [ "$status" -eq 0 ] || fail "test_zcrx_probe exited $status"
    line=$(grep '^zcrx-e2e: PASS ' "$out") || fail "test_zcrx_probe printed no PASS line"
    backend_bytes=$(echo "$line" | sed -n 's/.* bytes=\([0-9]*\).*/\1/p')
    backend_records=$(echo "$line" | sed -n 's/.* records=\([0-9]*\).*/\1/p')
    [ -n "$backend_bytes" ] && [ "$backend_bytes" -gt 0 ] || fail "no bytes counted"
}

main() {
    echo "vm-guest: start kernel=$kernel"
    stage_backend
    echo "vm-guest: PASS kernel=$kernel backend=zcrx bytes=$backend_bytes records=$backend_records"
}

main "$@"
