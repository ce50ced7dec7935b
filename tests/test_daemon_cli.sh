#!/usr/bin/env bash
# test_daemon_cli.sh: intaked's startup contract. Bad flags print one line and exit 2; a port in
# use prints one line naming it and exits 1; --help exits 0; SIGINT and SIGTERM stop it with 0.
set -uo pipefail
: "${INTAKE_BIN_DIR:?set by ctest}"
intaked="$INTAKE_BIN_DIR/intaked"
work=$(mktemp -d)
trap 'rm -rf "$work" /dev/shm/intake-cli-$$; kill $(jobs -p) 2>/dev/null' EXIT
passed=0 failed=0
check() { # description, command status (0 = ok)
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1" >&2; fi
}

expect_exit() { # expected-status, description, args...
  local expected=$1 description=$2; shift 2
  "$intaked" "$@" >"$work/out" 2>"$work/err"
  local status=$?
  check "$description: exit $status, expected $expected" $((status != expected))
  if [ "$expected" -ne 0 ]; then
    check "$description: one line on stderr ($(wc -l <"$work/err"))" $(($(wc -l <"$work/err") != 1))
    check "$description: line starts with intaked:" $(grep -qc '^intaked: ' "$work/err"; echo $?)
  fi
}

expect_exit 0 "--help" --help
check "--help lists --max-frame" $(grep -q -- '--max-frame' "$work/out"; echo $?)
expect_exit 2 "unknown flag" --no-such-flag
expect_exit 2 "bad number" --reactors many
expect_exit 2 "non power of two" --buffers 100
expect_exit 2 "max frame above log" --max-frame 64M --log-size 64M
expect_exit 2 "bad listen" --listen nowhere
expect_exit 2 "zcrx without a device" --backend zcrx

# A port already taken: one line that names the address.
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$port)); s.listen(); time.sleep(30)" &
blocker=$!
sleep 0.3
expect_exit 1 "port in use" --listen "127.0.0.1:$port" --shm-dir /dev/shm/intake-cli-$$ --backend pbuf
check "port in use names the address" $(grep -q "cannot listen on 127.0.0.1:$port: Address already in use" "$work/err"; echo $?)
kill $blocker; wait $blocker 2>/dev/null

# SIGINT and SIGTERM: a clean stop, exit 0, every buffer back.
for signal in INT TERM; do
  "$intaked" --listen "127.0.0.1:$port" --shm-dir /dev/shm/intake-cli-$$ --backend pbuf 2>"$work/log" &
  daemon=$!
  for _ in $(seq 200); do grep -q "listening on" "$work/log" && break; sleep 0.02; done
  kill -$signal $daemon
  wait $daemon
  status=$?
  check "SIG$signal exits 0 (got $status)" $status
  check "SIG$signal: units returned" $(grep -q "receive units all returned: yes" "$work/log"; echo $?)
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
