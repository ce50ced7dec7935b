#!/usr/bin/env bash
# test_backend_auto.sh: how intaked chooses its receive backend on the kernel it runs on.
#   - --backend auto (nothing configured for zcrx): one line says zcrx is unavailable and why,
#     pbuf serves a produce -> tail round trip;
#   - --backend auto --zcrx-nodev: where device-less zcrx is refused (Linux 6.x, this host),
#     one line says so and why, and pbuf serves the round trip; where it works (7.x, the VM of
#     tests/vm), zcrx is chosen, no fallback line, and zcrx serves the round trip;
#   - --backend zcrx --zcrx-nodev: refused kernels exit non-zero with one line saying why;
#   - --backend zcrx with neither --zcrx-if nor --zcrx-nodev: usage error, exit 2, one line.
# Which kernel this is comes from test_zcrx_probe ("skipped: ..." means device-less zcrx is
# refused), so each case checks the one outcome that kernel must give.
# Env: INTAKE_BIN_DIR (built programs), INTAKE_SOURCE_DIR.
# intake-test: no-tsan (backend choice at startup)
set -uo pipefail

bin=${INTAKE_BIN_DIR:?INTAKE_BIN_DIR not set}
work=$(mktemp -d /tmp/intake-backend-auto.XXXXXX)
shm_dir=/dev/shm/intake-backend-auto-$$
daemon_pid=
failures=0
source "$(dirname "$0")/daemon_util.sh"

cleanup() {
    [ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null
    rm -rf "$work" "$shm_dir"
}
trap cleanup EXIT

check() {
    local what=$1
    shift
    if "$@"; then
        echo "ok: $what"
    else
        echo "FAILED: $what"
        failures=$((failures + 1))
    fi
}

# daemon_start LOG FLAGS...: starts intaked on a port the kernel picks ($port, from its counters
# region); waits (bounded) until it is ready or exits. Returns 0 when it is ready.
daemon_start() {
    local log=$1
    shift
    rm -rf "$shm_dir"
    "$bin/intaked" --listen 127.0.0.1:0 --shm-dir "$shm_dir" --reactors 2 "$@" 2>"$log" &
    daemon_pid=$!
    daemon_wait_ready "$bin/intake-stat" "$shm_dir" "$daemon_pid" "$log" && return 0
    kill -KILL "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null
    daemon_pid=
    return 1
}

# SIGTERM; returns the daemon's exit status.
daemon_stop() {
    kill -TERM "$daemon_pid"
    wait "$daemon_pid"
    local status=$?
    daemon_pid=
    return $status
}

# Two records in, the same two values out of the topic's log.
round_trip() {
    local topic=roundtrip
    printf 'alpha\nbeta\n' |
        "$bin/intake-produce" --connect "127.0.0.1:$port" --topic "$topic" --acks 2>"$work/produce" ||
        { cat "$work/produce"; return 1; }
    grep -q '^acked 2 records' "$work/produce" || { cat "$work/produce"; return 1; }
    local out
    out=$("$bin/intake-tail" --shm-dir "$shm_dir" --topic "$topic" --from-start --count 2 \
          --format text) || return 1
    [ "$(echo "$out" | sed -n 's/.* value=//p' | tr '\n' ' ')" = "alpha beta " ] ||
        { echo "tail printed: $out"; return 1; }
}

# The fallback line: exactly one, with a non-empty reason that contains $2 (a regex).
one_fallback_line() {
    local log=$1 reason=$2
    local lines
    lines=$(grep -c 'zcrx unavailable' "$log")
    [ "$lines" -eq 1 ] || { echo "expected one fallback line, got $lines:"; cat "$log"; return 1; }
    grep -Eq "^intaked: backend auto: zcrx unavailable \(zcrx: .*($reason).*\); using pbuf$" "$log" ||
        { echo "fallback line lacks a reason matching /$reason/:"; cat "$log"; return 1; }
}

no_fallback_line() {
    ! grep -q 'zcrx unavailable' "$1" || { cat "$1"; return 1; }
}

# The backend the running daemon serves with, as its counters region names it.
serves_with() {
    local log=$1 backend=$2 stat
    stat=$("$bin/intake-stat" --shm-dir "$shm_dir" | head -n 1)
    grep -q " backend $backend listen " <<<"$stat" || { echo "$stat"; cat "$log"; return 1; }
}

exited_with_one_line() {
    local expected=$1 log=$2
    shift 2
    "$bin/intaked" --listen 127.0.0.1:0 --shm-dir "$shm_dir" "$@" 2>"$log" &
    local pid=$!
    # A daemon that unexpectedly starts is stopped after a bounded wait and counted as a failure.
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && { kill -TERM "$pid"; wait "$pid"; echo "it started:"; cat "$log"; return 1; }
    wait "$pid"
    local status=$?
    local lines
    lines=$(wc -l <"$log")
    [ "$status" -eq "$expected" ] && [ "$lines" -eq 1 ] ||
        { echo "exit $status (want $expected), $lines line(s):"; cat "$log"; return 1; }
    echo "  $(cat "$log")"
}

# --- what this kernel can do ---------------------------------------------------------------
probe_out=$("$bin/test_zcrx_probe" 2>&1)
probe_status=$?
if [ "$probe_status" -eq 77 ]; then
    nodev_works=no
    nodev_reason=$(echo "$probe_out" | sed -n 's/.*skipped: //p' | head -n 1)
else
    nodev_works=yes
fi
echo "kernel $(uname -r): device-less zcrx works: $nodev_works ${nodev_reason:+($nodev_reason)}"

# --- auto with nothing configured for zcrx: always pbuf, and says why ------------------------
if daemon_start "$work/auto.log" --backend auto; then
    check "auto, zcrx not configured: one line says why" one_fallback_line "$work/auto.log" "not configured"
    check "auto, zcrx not configured: serves with pbuf" serves_with "$work/auto.log" pbuf
    check "auto, zcrx not configured: produce -> tail round trip" round_trip
    check "auto, zcrx not configured: exits 0 on SIGTERM" daemon_stop
else
    check "auto, zcrx not configured: starts" false
fi

# --- auto with device-less zcrx: the kernel decides ------------------------------------------
if daemon_start "$work/auto-nodev.log" --backend auto --zcrx-nodev; then
    if [ "$nodev_works" = no ]; then
        check "auto --zcrx-nodev: falls back with one line saying the kernel refuses device-less mode" \
            one_fallback_line "$work/auto-nodev.log" "device-less"
        check "auto --zcrx-nodev: serves with pbuf" serves_with "$work/auto-nodev.log" pbuf
    else
        check "auto --zcrx-nodev: no fallback line on a kernel with device-less zcrx" \
            no_fallback_line "$work/auto-nodev.log"
        check "auto --zcrx-nodev: serves with zcrx" serves_with "$work/auto-nodev.log" zcrx
    fi
    check "auto --zcrx-nodev: produce -> tail round trip" round_trip
    check "auto --zcrx-nodev: exits 0 on SIGTERM" daemon_stop
else
    check "auto --zcrx-nodev: starts" false
fi

# --- zcrx forced -----------------------------------------------------------------------------
if [ "$nodev_works" = no ]; then
    check "zcrx --zcrx-nodev on this kernel: exit 1 with one line" \
        exited_with_one_line 1 "$work/zcrx-nodev.log" --backend zcrx --zcrx-nodev
    check "zcrx --zcrx-nodev: the line says device-less mode is refused" \
        grep -q 'device-less' "$work/zcrx-nodev.log"
else
    if daemon_start "$work/zcrx-nodev.log" --backend zcrx --zcrx-nodev; then
        check "zcrx --zcrx-nodev: serves with zcrx" serves_with "$work/zcrx-nodev.log" zcrx
        check "zcrx --zcrx-nodev: exits 0 on SIGTERM" daemon_stop
    else
        check "zcrx --zcrx-nodev: starts on a kernel with device-less zcrx" false
    fi
fi
check "zcrx without --zcrx-if or --zcrx-nodev: exit 2 with one line" \
    exited_with_one_line 2 "$work/zcrx-usage.log" --backend zcrx
check "zcrx without --zcrx-if or --zcrx-nodev: the line names both flags" \
    grep -q -- '--zcrx-if IFNAME or --zcrx-nodev' "$work/zcrx-usage.log"

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
