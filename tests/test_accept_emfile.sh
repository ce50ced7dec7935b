#!/usr/bin/env bash
# test_accept_emfile.sh: intaked with few file descriptors (RLIMIT_NOFILE lowered with ulimit -n,
# soft and hard) while more connections wait than it may accept.
#   - startup compares the limit with --reactors x --connections-max + --topics-max + a reserve,
#     cannot raise it (the hard limit is as low), so it lowers --connections-max and says so in
#     one line: descriptors then never run out on accept (an EMFILE there is only a backstop,
#     answered by pausing accept for 100 ms, counted as accept_pauses/accept_errors);
#   - the connections beyond the lowered maximum are refused and counted, and the daemon does
#     not spin: over two seconds it uses well under a second of CPU. (A refused connection is
#     accepted, then closed: a burst of them can still meet EMFILE for a moment, which pauses
#     accept for 100 ms and is counted, never retried hot);
#   - once the extra connections go away, a producer is served again (acked), and SIGTERM
#     still exits 0.
# Env: INTAKE_BIN_DIR (built programs).
# intake-test: no-tsan (descriptor limits on accept; one reactor)
set -uo pipefail

bin=${INTAKE_BIN_DIR:?INTAKE_BIN_DIR not set}
work=$(mktemp -d /tmp/intake-accept-emfile.XXXXXX)
shm_dir=/dev/shm/intake-accept-emfile-$$
python=/usr/bin/python3
source "$(dirname "$0")/daemon_util.sh"
daemon_pid=
holder_pid=
failures=0
fd_limit=100
held_connections=120

cleanup() {
    [ -n "$holder_pid" ] && kill -KILL "$holder_pid" 2>/dev/null
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

log=$work/intaked.log
# Only the daemon runs with the low limit (a subshell), not this script or its clients.
(ulimit -n "$fd_limit" && exec "$bin/intaked" --listen 127.0.0.1:0 --shm-dir "$shm_dir" \
    --backend pbuf --topics-max 4 --connections-max 1000) 2>"$log" &
daemon_pid=$!
daemon_wait_ready "$bin/intake-stat" "$shm_dir" "$daemon_pid" "$log" || exit 1
lowered=$(sed -n 's/.*--connections-max lowered to \([0-9]*\).*/\1/p' "$log")
echo "  startup lowered --connections-max to ${lowered:-nothing}"
check "startup lowered --connections-max to fit RLIMIT_NOFILE $fd_limit" \
    test "${lowered:-0}" -gt 0 -a "${lowered:-0}" -lt "$fd_limit"

# More connections than descriptors: they complete the handshake in the kernel and wait in the
# listen backlog, where accept fails with EMFILE.
$python - "$port" "$held_connections" "$work/holder.ready" <<'EOF' &
import socket, sys, time
port, count, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
held = []
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    held.append(s)
open(ready, "w").close()
time.sleep(3600)
EOF
holder_pid=$!
for _ in $(seq 1 200); do
    [ -e "$work/holder.ready" ] && break
    sleep 0.05
done
check "the clients connected" test -e "$work/holder.ready"

cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$daemon_pid/stat"
}
sleep 0.5
ticks_before=$(cpu_ticks)
sleep 2
ticks_after=$(cpu_ticks)
hz=$(getconf CLK_TCK)
used=$((ticks_after - ticks_before))
echo "  CPU used during 2 s with $held_connections connections waiting: $used ticks of $hz per second"
check "no hot loop (under half a second of CPU in two)" test "$used" -lt $((hz / 2))

kill -USR1 "$daemon_pid"
sleep 0.3
counter() {
    sed -n "s/.* $1=\([0-9]*\).*/\1/p" "$log" | tail -n 1
}
refused=$(counter refused)
errors=$(counter accept_errors)
pauses=$(counter accept_pauses)
echo "  refused=$refused accept_errors=$errors accept_pauses=$pauses"
check "the connections beyond the maximum were refused and counted" \
    test "${refused:-0}" -ge $((held_connections - lowered))
check "accept errors, if any, were few and each one paused accepting" \
    test "${errors:-1000}" -lt 20 -a "${pauses:-0}" -ge "${errors:-1000}"

# The extra connections go away; a producer is served again.
kill -KILL "$holder_pid"
wait "$holder_pid" 2>/dev/null
holder_pid=
sleep 0.5
produce() {
    printf 'after-emfile\n' |
        timeout 20 "$bin/intake-produce" --connect "127.0.0.1:$port" --topic emfile --acks \
            2>"$work/produce" || { cat "$work/produce"; return 1; }
    grep -q '^acked 1 records' "$work/produce" || { cat "$work/produce"; return 1; }
}
check "a producer is served once descriptors are free" produce

kill -TERM "$daemon_pid"
wait "$daemon_pid"
status=$?
daemon_pid=
check "SIGTERM exits 0" test "$status" -eq 0
[ "$failures" -eq 0 ] || { echo "daemon log:"; cat "$log"; }
echo "test_accept_emfile: $failures failure(s)"
exit $((failures > 0))
