#!/usr/bin/env bash
# test_daemon_cli.sh: intaked's startup contract. Bad flags print one line and exit 2 (numbers
# parse strictly: no wrap-around, no sign, no garbage; ports 0..65535, where --listen ADDR:0 binds
# a port the kernel picks and the counters region names it); a port in use prints one
# line naming it and exits 1; a second daemon on the same --shm-dir prints one line and exits 1;
# --help exits 0; SIGINT and SIGTERM stop it gracefully with 0; SIGHUP does not stop it (it
# reloads: without TLS or --acl there is nothing to reload, and it says so). The TLS flags:
# missing companions exit 2; a missing file, a key that does not match, an expired certificate
# and a CA file without a certificate exit 1 with one line. A missing or malformed --acl file
# exits 2 with its line number and reason.
# intake-test: no-tsan (flags and startup refusals)
set -uo pipefail
: "${INTAKE_BIN_DIR:?set by ctest}"
intaked="$INTAKE_BIN_DIR/intaked"
stat="$INTAKE_BIN_DIR/intake-stat"
source "$(dirname "$0")/daemon_util.sh"
work=$(mktemp -d)
trap 'rm -rf "$work" /dev/shm/intake-cli-$$; kill $(jobs -p) 2>/dev/null' EXIT
passed=0 failed=0
check() { # description, command status (0 = ok)
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1" >&2; fi
}

expect_exit() { # expected-status, description, args...
  local expected=$1 description=$2; shift 2
  # Bounded: a value wrongly accepted would start a daemon that never exits on its own.
  timeout 10 "$intaked" "$@" >"$work/out" 2>"$work/err"
  local status=$?
  check "$description: exit $status, expected $expected" $((status != expected))
  if [ "$expected" -ne 0 ]; then
    check "$description: one line on stderr ($(wc -l <"$work/err"))" $(($(wc -l <"$work/err") != 1))
    check "$description: line starts with intaked:" $(grep -qc '^intaked: ' "$work/err"; echo $?)
  fi
}

expect_exit 0 "--help" --help
check "--help lists --max-frame" $(grep -q -- '--max-frame' "$work/out"; echo $?)
check "--help lists --dedupe-producers" $(grep -q -- '--dedupe-producers' "$work/out"; echo $?)
check "--help lists --acl" $(grep -q -- '--acl FILE' "$work/out"; echo $?)
check "--help: SIGHUP reloads" $(grep -q 'SIGHUP: reload' "$work/out"; echo $?)
expect_exit 2 "unknown flag" --no-such-flag
expect_exit 2 "bad number" --reactors many
expect_exit 2 "non power of two" --buffers 100
expect_exit 2 "max frame above log" --max-frame 64M --log-size 64M
expect_exit 2 "bad listen" --listen nowhere
expect_exit 2 "--listen none alone" --listen none
expect_exit 2 "--tls-cert without --tls-listen" --tls-cert x.pem
expect_exit 2 "--tls-listen without a certificate" --tls-listen 127.0.0.1:1
expect_exit 2 "bad --tls-listen" --tls-listen nowhere --tls-cert x --tls-key y
expect_exit 2 "--handshake-threads above --reactors" --tls-listen 127.0.0.1:1 --tls-cert x \
  --tls-key y --handshake-threads 2
bash "$INTAKE_SOURCE_DIR/tests/interop/tls_make_certs.sh" "$work/tls" >/dev/null
openssl x509 -req -in <(openssl req -new -key "$work/tls/server.key" -subj /CN=old 2>/dev/null) \
  -signkey "$work/tls/server.key" -days -1 -out "$work/tls/expired.pem" 2>/dev/null
tls_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tls_flags=(--listen none --shm-dir /dev/shm/intake-cli-$$ --tls-listen "127.0.0.1:$tls_port")
expect_exit 1 "missing --tls-cert file" "${tls_flags[@]}" --tls-cert "$work/none.pem" \
  --tls-key "$work/tls/server.key"
check "missing file named" $(grep -q "cannot read --tls-cert $work/none.pem" "$work/err"; echo $?)
expect_exit 1 "key of another certificate" "${tls_flags[@]}" --tls-cert "$work/tls/server.pem" \
  --tls-key "$work/tls/rotated.key"
check "mismatch said" $(grep -q "does not match the certificate" "$work/err"; echo $?)
expect_exit 1 "expired certificate" "${tls_flags[@]}" --tls-cert "$work/tls/expired.pem" \
  --tls-key "$work/tls/server.key"
check "expiry said" $(grep -q "expired on" "$work/err"; echo $?)
expect_exit 1 "CA file without a certificate" "${tls_flags[@]}" \
  --tls-cert "$work/tls/server.pem" --tls-key "$work/tls/server.key" \
  --tls-client-ca "$work/tls/empty-ca.pem"
check "empty CA said" $(grep -q "holds no certificate" "$work/err"; echo $?)
expect_exit 2 "missing --acl file" --acl "$work/no-such-acl"
check "missing --acl file: named" $(grep -q "no-such-acl: No such file" "$work/err"; echo $?)
printf 'allow anonymous produce t\nallow anonymous\n' >"$work/bad.acl"
expect_exit 2 "malformed --acl file" --acl "$work/bad.acl"
check "malformed --acl file: line and reason" $(grep -q "bad.acl line 2: allow takes" "$work/err"; echo $?)
expect_exit 2 "zcrx without a device" --backend zcrx

# Ports: 0..65535, digits only (82537 used to bind 82537 mod 65536); --metrics-listen 1..65535
# (nothing would report a port the kernel picked for it).
# Each case names a private --shm-dir, so a regression that starts a daemon touches nothing shared.
isolated="--shm-dir /dev/shm/intake-cli-$$"
expect_exit 2 "port above 65535" --listen 127.0.0.1:82537 $isolated
check "port above 65535 says why" $(grep -q "port must be a number 0..65535" "$work/err"; echo $?)
expect_exit 2 "--metrics-listen port 0" --metrics-listen 127.0.0.1:0 $isolated
check "--metrics-listen port 0 says why" $(grep -q "port must be a number 1..65535" "$work/err"; echo $?)
expect_exit 2 "port with garbage" --listen 127.0.0.1:74x1 $isolated
expect_exit 2 "negative port" --listen 127.0.0.1:-5 $isolated

# Every numeric flag parses strictly (src/base/number_parse.h): values that would wrap
# (4294967297 used to become 1), negatives, signs, spaces, garbage and empty values are refused
# with one line naming the flag. 32-bit flags wrap above 4294967295; the two 64-bit byte sizes
# stop at 1T. The -ms flags are durations: a fraction ("1.5", 1.5 ms) is a value there, so
# their list of bad values has "1.5x" instead.
flags_32="--reactors --workers --max-frame --topics-max --topics-per-connection --topic-queue
  --connections-max --records-per-reactor --ack-window --cq-entries --buffers --buffer-size
  --zcrx-rx-buf --producers-max --dedupe-producers"
flags_ms="--consumer-stale-ms --shutdown-timeout-ms --frame-timeout-ms --idle-timeout-ms
  --handshake-timeout-ms"
flags_64="--zcrx-area --log-size"
for flag in $flags_32 $flags_ms $flags_64; do
  too_large=4294967297 fraction=1.5
  case " $flags_64 " in *" $flag "*) too_large=1025G ;; esac
  case " $(echo $flags_ms) " in *" $flag "*) fraction=1.5x ;; esac
  for value in $too_large 18446744073709551617 -1 +4 " 4" "4 " 4x 0x10 $fraction "" 4KK 99999999999G; do
    expect_exit 2 "$flag \"$value\"" "$flag" "$value" $isolated --listen 127.0.0.1:1
    check "$flag \"$value\" names the flag" $(grep -q -- "^intaked: $flag: '" "$work/err"; echo $?)
  done
done
expect_exit 2 "empty --shm-dir" --shm-dir "" --listen 127.0.0.1:1
expect_exit 2 "--dedupe-producers above 65536" --dedupe-producers 65537 $isolated --listen 127.0.0.1:1
check "--dedupe-producers above 65536 says why" \
  $(grep -q -- "--dedupe-producers: '65537' is out of range: 0..65536" "$work/err"; echo $?)
expect_exit 2 "--topics-per-connection 0" --topics-per-connection 0 $isolated --listen 127.0.0.1:1
expect_exit 2 "--producers-max 0" --producers-max 0 $isolated --listen 127.0.0.1:1
check "--producers-max 0 says the range" $(grep -q -- "--producers-max: '0' is out of range: 1..16777216" "$work/err"; echo $?)
expect_exit 2 "--producers-max above 16M" --producers-max 16777217 $isolated --listen 127.0.0.1:1
"$intaked" --help >"$work/help"
check "--help lists --producers-max" $(grep -q -- '--producers-max' "$work/help"; echo $?)
expect_exit 2 "workers that wrap to 1" --workers 4294967297 $isolated --listen 127.0.0.1:1
check "wrapping --workers says what is wanted" \
  $(grep -q -- "--workers: '4294967297' is out of range: 1..64" "$work/err"; echo $?)
expect_exit 2 "--workers 10x" --workers 10x $isolated --listen 127.0.0.1:1
check "--workers 10x: not a whole number" \
  $(grep -q -- "^intaked: --workers: '10x' is not a whole number" "$work/err"; echo $?)

# A port already taken: one line that names the address.
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$port)); s.listen(); time.sleep(30)" &
blocker=$!
sleep 0.3
expect_exit 1 "port in use" --listen "127.0.0.1:$port" --shm-dir /dev/shm/intake-cli-$$ --backend pbuf
check "port in use names the address" $(grep -q "cannot listen on 127.0.0.1:$port: Address already in use" "$work/err"; echo $?)
kill $blocker; wait $blocker 2>/dev/null

# A second daemon on the same --shm-dir: one line, exit 1, and the first one is unharmed.
# The first listens on port 0: the kernel picks one, and the counters region names it.
"$intaked" --listen 127.0.0.1:0 --shm-dir /dev/shm/intake-cli-$$ --backend pbuf 2>"$work/first" &
first=$!
daemon_wait_ready "$stat" /dev/shm/intake-cli-$$ $first "$work/first"
check "--listen 127.0.0.1:0: ready" $?
check "--listen 127.0.0.1:0: a port was bound ($address)" $((port == 0))
/usr/bin/python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 5)" \
  "$port"
check "--listen 127.0.0.1:0: the port named in the counters region accepts" $?
other_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
expect_exit 1 "second daemon on one --shm-dir" --listen "127.0.0.1:$other_port" \
  --shm-dir /dev/shm/intake-cli-$$ --backend pbuf
check "second daemon says the directory is in use" \
  $(grep -q "is in use by another intaked" "$work/err"; echo $?)
kill -TERM $first
wait $first
check "first daemon still stops cleanly (got $?)" $?
# Once the first is gone, the directory is free again (the lock dies with its process).
"$intaked" --listen 127.0.0.1:0 --shm-dir /dev/shm/intake-cli-$$ --backend pbuf 2>"$work/first" &
first=$!
daemon_wait_ready "$stat" /dev/shm/intake-cli-$$ $first "$work/first"
check "directory free after the first daemon exits" $?
kill -9 $first; wait $first 2>/dev/null
# The killed daemon's region is still there, saying RUNNING: --pid waits for the new one's.
"$intaked" --listen 127.0.0.1:0 --shm-dir /dev/shm/intake-cli-$$ --backend pbuf 2>"$work/first" &
first=$!
daemon_wait_ready "$stat" /dev/shm/intake-cli-$$ $first "$work/first"
check "directory free after a daemon was killed" $?
kill -TERM $first; wait $first 2>/dev/null

# intake-topic --remove: refused while a running daemon holds the topic's log, done once it
# has stopped (the file and its memory go), refused for a topic without a log.
topic_tool="$INTAKE_BIN_DIR/intake-topic"
logs=/dev/shm/intake-cli-$$
"$intaked" --listen 127.0.0.1:0 --shm-dir $logs --backend pbuf --log-size 64K \
  --max-frame 16K --topic keep --topic gone 2>"$work/first" &
first=$!
for _ in $(seq 200); do [ -f $logs/gone.dedupe ] && [ -f $logs/keep.dedupe ] && break; sleep 0.02; done
"$topic_tool" --shm-dir $logs --remove gone 2>"$work/err"
check "remove while the daemon holds the log: exit 1 (got $?)" $(($? != 1))
check "remove while held says so" $(grep -q '^intake-topic: topic "gone".s log is held by a running intaked (pid [0-9]' "$work/err"; echo $?)
check "remove while held: one line" $(($(wc -l <"$work/err") != 1))
check "log still there while held" $([ -f $logs/gone.log ]; echo $?)
check "its deduplication table is beside it, mode 0600" \
  $([ "$(stat -c %a $logs/gone.dedupe 2>/dev/null)" = 600 ]; echo $?)
kill -TERM $first; wait $first 2>/dev/null
"$topic_tool" --shm-dir $logs --remove gone 2>"$work/err"
check "remove after the daemon stopped: exit 0 (got $?)" $?
check "removed log is gone" $([ ! -e $logs/gone.log ]; echo $?)
check "its consumer region is gone" $([ ! -e $logs/gone.consumers ]; echo $?)
check "its deduplication table is gone" $([ ! -e $logs/gone.dedupe ]; echo $?)
check "remove after stop: says removed" $(grep -q '^intake-topic: removed topic "gone"' "$work/err"; echo $?)
check "other topic's log kept" $([ -f $logs/keep.log ] && [ -f $logs/keep.consumers ] &&
  [ -f $logs/keep.dedupe ]; echo $?)
# A daemon started afterwards makes the topic's files afresh.
"$intaked" --listen 127.0.0.1:0 --shm-dir $logs --backend pbuf --log-size 64K \
  --max-frame 16K --topic gone 2>"$work/first" &
first=$!
for _ in $(seq 200); do [ -f $logs/gone.log ] && [ -f $logs/gone.consumers ] && break; sleep 0.02; done
check "removed topic recreated by the next daemon" $([ -f $logs/gone.log ] && [ -f $logs/gone.consumers ]; echo $?)
kill -TERM $first; wait $first
check "that daemon stops cleanly (got $?)" $?
"$topic_tool" --shm-dir $logs --remove gone 2>"$work/err"
check "remove it again once stopped (got $?)" $?
"$topic_tool" --shm-dir $logs --remove gone 2>"$work/err"
check "remove a topic without a log: exit 1 (got $?)" $(($? != 1))
check "no log says so" $(grep -q 'no log for topic "gone"' "$work/err"; echo $?)
"$topic_tool" --shm-dir $logs 2>"$work/err"
check "intake-topic without --remove: exit 2 (got $?)" $(($? != 2))
"$topic_tool" --help >"$work/out"
check "intake-topic --help: exit 0 (got $?)" $?

# SIGINT and SIGTERM: a clean stop, exit 0, every buffer back. SIGHUP first (it reloads, and
# without TLS or --acl says there is nothing to), then SIGTERM.
for signal in INT TERM HUP; do
  "$intaked" --listen 127.0.0.1:0 --shm-dir /dev/shm/intake-cli-$$ --backend pbuf 2>"$work/log" &
  daemon=$!
  daemon_wait_ready "$stat" /dev/shm/intake-cli-$$ $daemon "$work/log"
  check "SIG$signal: ready" $?
  if [ $signal = HUP ]; then
    kill -HUP $daemon
    for _ in $(seq 500); do grep -q "SIGHUP: nothing to reload" "$work/log" && break; sleep 0.02; done
    check "SIGHUP: nothing to reload, said once" $(($(grep -c "SIGHUP: nothing to reload" "$work/log") != 1))
    check "SIGHUP: still running" $(kill -0 $daemon; echo $?)
    signal=TERM
  fi
  kill -$signal $daemon
  wait $daemon
  status=$?
  check "SIG$signal exits 0 (got $status)" $status
  check "SIG$signal: units returned" $(grep -q "receive units all returned: yes" "$work/log"; echo $?)
  check "SIG$signal: counters printed" $(grep -q "copy account at shutdown" "$work/log"; echo $?)
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
