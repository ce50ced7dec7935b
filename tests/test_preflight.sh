#!/usr/bin/env bash
# test_preflight.sh: intaked explains its environment at startup (src/daemon/preflight.h).
#   - RLIMIT_NOFILE below reactors x --connections-max: --connections-max is lowered to what the
#     limit holds, one line says so, and the daemon runs and stops cleanly;
#   - RLIMIT_NOFILE too low for any connection: a warning naming the limit, and it still runs;
#   - RLIMIT_MEMLOCK below the rings (without CAP_IPC_LOCK): exit 1 with one line;
#   - --shm-dir with less room than --topics-max x --log-size: one line says how many logs fit,
#     and that number is what statvfs says.
# (The seccomp and sysctl explanations are proven in a container by tests/container/run.)
# intake-test: no-tsan (startup checks)
set -uo pipefail
: "${INTAKE_BIN_DIR:?set by ctest}"
intaked="$INTAKE_BIN_DIR/intaked"
work=$(mktemp -d)
shm=/dev/shm/intake-preflight-$$
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work" "$shm"' EXIT
passed=0 failed=0
check() { # description, status (0 = ok)
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1" >&2; fi
}
source "$(dirname "$0")/daemon_util.sh"
small=(--listen 127.0.0.1:0 --shm-dir "$shm" --log-size 1M --max-frame 64K --topics-max 16)

# Starts intaked with the given shell limit and arguments, waits until it is ready or has exited
# ($ready: 0 when it was ready), stops it.
run_and_stop() { # ulimit-args, intaked args...
  local limit=$1; shift
  (ulimit $limit; exec "$intaked" "$@") 2>"$work/log" &
  local daemon=$!
  daemon_wait_ready "$INTAKE_BIN_DIR/intake-stat" "$shm" $daemon "$work/log" 2>/dev/null
  ready=$?
  kill -TERM $daemon
  wait $daemon
}

# 1. Descriptors: 300 cannot hold 16384 connections; 300 - 16 x 2 log files - 64 reserved =
#    204 fit.
run_and_stop "-n 300" "${small[@]}" --connections-max 16384
check "nofile 300: exits 0 after running" $?
check "nofile 300: --connections-max lowered to 204" \
  $(grep -q "RLIMIT_NOFILE 300 .*--connections-max lowered to 204" "$work/log"; echo $?)

# 2. Descriptors too low for any connection once every topic has its logs: a warning, and the
#    daemon still runs (accepting pauses when descriptors run out).
run_and_stop "-n 60" "${small[@]}"
check "nofile 60: exits 0 after running" $?
check "nofile 60: warns, naming RLIMIT_NOFILE" \
  $(grep -q "^intaked: RLIMIT_NOFILE 60 .*leaves no descriptor" "$work/log"; echo $?)
check "nofile 60: was ready" $ready

# 3. Locked memory: without CAP_IPC_LOCK, a limit of 0 holds no ring.
if command -v setpriv >/dev/null; then
  (ulimit -l 0; exec setpriv --inh-caps -ipc_lock --bounding-set -ipc_lock "$intaked" "${small[@]}") \
    >"$work/out" 2>"$work/err"
  check "memlock 0: exit 1" $(( $? != 1 ))
  check "memlock 0: one line" $(( $(wc -l <"$work/err") != 1 ))
  check "memlock 0: names RLIMIT_MEMLOCK and the fix" \
    $(grep -q "^intaked: RLIMIT_MEMLOCK hard limit 0 is below .*CAP_IPC_LOCK" "$work/err"; echo $?)
else
  echo "SKIPPED: memlock check (no setpriv to drop CAP_IPC_LOCK)" >&2
fi

# 4. Shared-memory space: 1024 topics of 1 GiB do not fit in /dev/shm here; the line says how
#    many do, as statvfs counts them.
mkdir -p "$shm"
expected=$(/usr/bin/python3 -c "import os; s=os.statvfs('$shm'); print(s.f_bavail*s.f_frsize//((1<<30)+12288))")
if [ "$expected" -lt 1024 ] && [ "$expected" -gt 0 ]; then
  run_and_stop "-n $(ulimit -Hn)" --listen 127.0.0.1:0 --shm-dir "$shm" --log-size 1G --topics-max 1024
  check "shm: exits 0 after running" $?
  seen=$(sed -n 's/.*room for \([0-9]*\) topic logs of --log-size 1G, fewer than --topics-max 1024.*/\1/p' "$work/log")
  # Free space moves while other tests run: within a few logs of what statvfs said.
  check "shm: room for ${seen:-?} logs, statvfs says $expected" \
    $([ -n "$seen" ] && [ $((seen - expected)) -le 2 ] && [ $((expected - seen)) -le 2 ]; echo $?)
else
  echo "SKIPPED: shm space check ($shm holds $expected logs of 1 GiB)" >&2
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
