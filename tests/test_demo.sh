#!/usr/bin/env bash
# test_demo: the front door. `bash scripts/demo` must show records flowing producer -> intaked ->
# consumer, exit 0 on its own, and leave no process behind (it once hung forever on a consumer
# whose PID it had not recorded).
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
echo "test_demo: PASS (exit 0, 30 messages consumed, no process left)"
