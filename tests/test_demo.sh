#!/usr/bin/env bash
# test_demo: the front door. `bash scripts/demo` must show records flowing producer -> intaked ->
# consumer, exit 0 on its own, and leave no process behind (it once hung forever on a consumer
# whose PID it had not recorded).
# intake-test: no-tsan (the front door script; test_end_to_end covers the daemon under TSan)
set -uo pipefail
source_dir=${INTAKE_SOURCE_DIR:?}
bin_dir=${INTAKE_BIN_DIR:?}
shm_dir=/dev/shm/intake-demo-test-$$
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
output=$(mktemp)
trap 'rm -rf "$output" "$shm_dir"' EXIT
fail() { echo "test_demo: FAIL: $*"; sed 's/^/  | /' "$output" | tail -40; exit 1; }

INTAKE_DEMO_PORT=$port INTAKE_DEMO_BUILD_DIR=$bin_dir INTAKE_DEMO_SHM_DIR=$shm_dir \
  timeout --kill-after=5 180 bash "$source_dir/scripts/demo" >"$output" 2>&1 </dev/null
code=$?
[ "$code" -ne 124 ] && [ "$code" -ne 137 ] || fail "the demo did not exit within 180 s"
[ "$code" -eq 0 ] || fail "the demo exited $code"
grep -q "demo: done" "$output" || fail "no 'demo: done' line"
consumed=$(grep -c '\[consumer\] .*message [0-9]* from' "$output")
[ "$consumed" -eq 30 ] || fail "the consumer printed $consumed of 30 messages"
grep -q "the log's writer (intaked) has exited" "$output" || fail "the consumer never said the writer left"
sleep 0.2
left=$(pgrep -f -- "$shm_dir" || true)
[ -z "$left" ] || fail "processes left behind: $(ps -o pid,args -p "${left//$'\n'/,}")"

# A daemon that cannot start (its port taken) stops the demo with the daemon's own line and a
# non-zero status, before any producer runs.
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); time.sleep(60)' \
  "$port" &
holder=$!
for _ in $(seq 50); do ss -ltn "sport = :$port" 2>/dev/null | grep -q LISTEN && break; sleep 0.1; done
INTAKE_DEMO_PORT=$port INTAKE_DEMO_BUILD_DIR=$bin_dir INTAKE_DEMO_SHM_DIR=$shm_dir \
  timeout --kill-after=5 120 bash "$source_dir/scripts/demo" >"$output" 2>&1 </dev/null
code=$?
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
[ "$code" -eq 1 ] || fail "with its port taken, the demo exited $code, not 1"
grep -q '\[daemon\] intaked: .*in use' "$output" || fail "the daemon's own error is not shown"
grep -q "intaked exited (status 1) before it was ready" "$output" || fail "no stopping line"
! grep -q '\[producer\]' "$output" || fail "a producer ran against a daemon that never came up"
left=$(pgrep -f -- "$shm_dir" || true)
[ -z "$left" ] || fail "processes left behind after the failed start"
echo "test_demo: PASS (exit 0, 30 messages consumed, no process left; a daemon that cannot start stops the demo with its own error)"
