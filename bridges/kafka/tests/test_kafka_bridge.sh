#!/usr/bin/env bash
# test_kafka_bridge.sh: intake-kafka end to end, read back with an independent Kafka client.
#
# A real intaked (from the build) takes records from intake-produce --acks; intake-kafka
# forwards them into librdkafka's mock Kafka cluster (3 brokers on loopback, run by
# kafka_mock_cluster); kcat, never the bridge's own code, reads Kafka back, and
# kafka_records.py checks every record exactly once, in order per intake topic, with key, value
# and headers intact. Scenarios:
#   A. named topics (one created after the bridge started), --all-topics with a prefix and
#      --value record (a topic created later is picked up), a record too large for
#      message.max.bytes going to the dead-letter topic;
#   B. (run last) the bridge SIGKILLed mid-stream while records are in Kafka but their delivery
#      reports are held back by the brokers (so the bridge could not commit them), and
#      restarted: the restart finds what Kafka has and skips it: no duplicate, no loss;
#   C. every broker down while producers keep sending: the bridge's bounded queue fills, it
#      stops reading, drops what was in flight (connections failed) to read Kafka back later,
#      intaked's log fills and pushes back on the producer; then injected Produce errors and the
#      brokers back: nothing lost, nothing twice.
# Skips (exit 77, shown as skipped by ctest) only when kcat or the bridge is not installed/built.
# Env: INTAKE_BIN_DIR (built programs), INTAKE_SOURCE_DIR.
set -uo pipefail

bin=${INTAKE_BIN_DIR:?INTAKE_BIN_DIR not set}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
records=$here/kafka_records.py
python=/usr/bin/python3
if ! command -v kcat >/dev/null; then
    echo "skipped: kcat is not installed (apt-get install kcat; scripts/setup does)"
    exit 77
fi
if [ ! -x "$bin/intake-kafka" ] || [ ! -x "$bin/kafka_mock_cluster" ]; then
    echo "skipped: intake-kafka was not built (librdkafka-dev missing when configured)"
    exit 77
fi

work=$(mktemp -d /tmp/intake-kafka-test.XXXXXX)
shm_root=/dev/shm/intake-kafka-test-$$
pids=()
failures=0

cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    exec 7>&- 2>/dev/null
    wait 2>/dev/null
    rm -rf "$work" "$shm_root"
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

fatal() {
    echo "FAILED: $*"
    for log in "$work"/*.log; do echo "--- $log"; tail -n 15 "$log"; done
    exit 1
}

# --- the mock cluster, controlled through a FIFO on fd 7 ------------------------------------
mkfifo "$work/mock.ctl"
"$bin/kafka_mock_cluster" --brokers 3 --topic orders:1 --topic events:1 --topic stream:1 \
    --topic outage:1 --topic intake-dead-letter:1 <"$work/mock.ctl" >"$work/mock.out" \
    2>"$work/mock.log" &
pids+=($!)
exec 7>"$work/mock.ctl"
for _ in $(seq 1 100); do grep -q '^bootstrap ' "$work/mock.out" && break; sleep 0.05; done
brokers=$(sed -n 's/^bootstrap //p' "$work/mock.out")
[ -n "$brokers" ] || fatal "the mock cluster did not start"
echo "mock cluster: $brokers"

# mock COMMAND: sends a control command and waits for its answer.
mock() {
    local before
    before=$(grep -c "^ok \|^error " "$work/mock.out")
    echo "$*" >&7
    for _ in $(seq 1 100); do
        [ "$(grep -c "^ok \|^error " "$work/mock.out")" -gt "$before" ] && break
        sleep 0.05
    done
    grep -q "^ok $*\$" "$work/mock.out" || fatal "mock command '$*' failed"
}

# --- intaked ----------------------------------------------------------------------------------
# intaked_start NAME LOG_SIZE: a daemon with its own log directory, on a port the kernel picks;
# sets port (from its counters region, through intake-stat --wait-ready) and shm_dir, which
# produce and bridge use. A and B run with 4 MiB logs: a restarted bridge must find the records
# it had not committed still in the log (a dead consumer does not hold intaked back; see
# docs/kafka-bridge.md). C runs with 1 MiB logs, so an outage fills them quickly.
intaked_start() {
    shm_dir=$shm_root/$1
    "$bin/intaked" --listen 127.0.0.1:0 --shm-dir "$shm_dir" --log-size "$2" \
        --max-frame 256K 2>"$work/intaked-$1.log" &
    local pid=$! address
    pids+=("$pid")
    address=$("$bin/intake-stat" --shm-dir "$shm_dir" --wait-ready --pid "$pid" |
        sed -n 's/^listen=//p')
    port=${address##*:}
    [ -n "$address" ] && return 0
    cat "$work/intaked-$1.log" >&2
    fatal "intaked $1 did not start"
}
intaked_start main 4M

# produce FILE: sends delimited records with acks (foreground).
produce() {
    "$bin/intake-produce" --connect "127.0.0.1:$port" --delimited --acks --timeout-ms 60000 \
        <"$1" 2>>"$work/produce.log" || fatal "intake-produce failed on $1"
}

make_records() { # TOPIC FIRST COUNT [VALUE_BYTES] > file
    "$python" "$records" make "$@"
}

# bridge NAME FLAGS...: starts intake-kafka; its pid goes to bridge_pid_NAME.
bridge() {
    local name=$1
    shift
    "$bin/intake-kafka" --brokers "$brokers" --shm-dir "$shm_dir" --resume-settle-ms 200 \
        --scan-interval-ms 200 "$@" 2>>"$work/bridge-$name.log" &
    local pid=$!
    pids+=("$pid")
    printf -v "bridge_pid_$name" '%s' "$pid"
}

# stop_bridge NAME: SIGTERM; returns its exit status.
stop_bridge() {
    local variable=bridge_pid_$1
    kill -TERM "${!variable}" 2>/dev/null
    wait "${!variable}"
}

# kafka_read TOPIC FILE: every message of partition 0, in kafka_records.py's format.
kafka_read() {
    kcat -b "$brokers" -C -t "$1" -p 0 -o beginning -e -q -f 'S=%S K=%K %k%s H=%h\n' >"$2" \
        2>>"$work/kcat.log"
}

# kafka_count TOPIC: messages ever written to partition 0 (the last offset + 1; the mock
# cluster keeps only about 5 MB per partition, so reading from the beginning would not do).
kafka_count() {
    local last
    last=$(kcat -b "$brokers" -C -t "$1" -p 0 -o -1 -c 1 -e -q -f '%o\n' 2>>"$work/kcat.log")
    echo $((${last:--1} + 1))
}

# wait_count TOPIC N SECONDS: until partition 0 holds at least N messages.
wait_count() {
    local count=0
    for _ in $(seq 1 "$(($3 * 4))"); do
        count=$(kafka_count "$1")
        [ "$count" -ge "$2" ] && return 0
        sleep 0.25
    done
    echo "  $1 holds $count messages after $3 s, expected $2"
    return 1
}

# --- A: named topics, all topics, a late topic, --value record, dead letter -------------------
make_records orders 0 1000 >"$work/orders-a.bin"
make_records orders 1000 1 150000 >"$work/orders-big.bin" # over message.max.bytes below
make_records orders 1001 999 >"$work/orders-b.bin"
make_records events 0 500 >"$work/events.bin"
make_records late 0 300 >"$work/late.bin"

produce "$work/orders-a.bin"
bridge named --topic orders --topic events --consumer-name named -X message.max.bytes=100000
bridge all --all-topics --consumer-name all --kafka-topic-prefix raw. --value record \
    --dead-letter-topic raw.dead-letter
produce "$work/orders-big.bin"
produce "$work/orders-b.bin"
produce "$work/events.bin" # the log of events is created after the bridges started
sleep 0.5
produce "$work/late.bin"   # a topic --all-topics has not seen yet

check "A: orders reaches Kafka" wait_count orders 1999 60
check "A: events reaches Kafka (its log appeared after the bridge started)" wait_count events 500 60
check "A: raw.orders reaches Kafka (--all-topics)" wait_count raw.orders 2000 60
check "A: raw.late reaches Kafka (a topic created later)" wait_count raw.late 300 60
check "A: raw.events reaches Kafka" wait_count raw.events 500 60
sleep 1 # anything extra (a duplicate) would arrive now
kafka_read orders "$work/k-orders.txt"
kafka_read events "$work/k-events.txt"
kafka_read intake-dead-letter "$work/k-dead.txt"
kafka_read raw.orders "$work/k-raw-orders.txt"
kafka_read raw.events "$work/k-raw-events.txt"
kafka_read raw.late "$work/k-raw-late.txt"
check "A: orders exactly once, in order, intact; the large record left out" \
    "$python" "$records" check orders 0 2000 "$work/k-orders.txt" --skip 1000
check "A: the large record is in the dead-letter topic" \
    "$python" "$records" dead orders 1000 "$work/k-dead.txt"
check "A: events exactly once" "$python" "$records" check events 0 500 "$work/k-events.txt"
check "A: raw.orders holds whole records (--value record)" \
    "$python" "$records" check orders 0 2000 "$work/k-raw-orders.txt" --record
check "A: raw.events holds whole records" \
    "$python" "$records" check events 0 500 "$work/k-raw-events.txt" --record
check "A: raw.late holds whole records" \
    "$python" "$records" check late 0 300 "$work/k-raw-late.txt" --record
check "A: the dead letter was logged" grep -q 'orders offset 1000 sent to the dead-letter' \
    "$work/bridge-named.log"
check "A: the named bridge stops cleanly (exit 0)" stop_bridge named
check "A: its counters: 2499 delivered, 1 too large, nothing missed" grep -q \
    'stopped: .* delivered=2499 dead_lettered=1 too_large=1 .* missed=0 ' "$work/bridge-named.log"
check "A: the all-topics bridge stops cleanly (exit 0)" stop_bridge all

# --- C: brokers down, backpressure, Produce errors, brokers up ------------------------------
main_port=$port main_shm_dir=$shm_dir
intaked_start small 1M
make_records outage 0 1000 >"$work/outage-a.bin"
outage_more=12000
make_records outage 1000 "$outage_more" 100 >"$work/outage-b.bin"
# Commits only when idle, so what stops the bridge during the outage is librdkafka's bounded
# queue (500 messages), not the commit pacing.
bridge outage --topic outage --consumer-name outage -X queue.buffering.max.messages=500 \
    --commit-interval-ms 3600000 --in-flight-max 10000000
produce "$work/outage-a.bin"
check "C: the first records reach Kafka" wait_count outage 1000 60
mock down-all
"$bin/intake-produce" --connect "127.0.0.1:$port" --delimited --acks --timeout-ms 120000 \
    <"$work/outage-b.bin" 2>>"$work/produce.log" &
outage_producer=$!
pids+=("$outage_producer")
sleep 4
# 12,000 records of ~200 bytes in the log are over twice what its 1 MiB holds: with the bridge
# not reading (its queue full or waiting for reports), the producer must be held back.
check "C: with every broker down the producer is held back (block retention)" \
    kill -0 "$outage_producer"
kill -USR1 "$bridge_pid_outage"
# The counters come when the loop next turns (a read-back attempt blocks up to 2 s).
for _ in $(seq 1 100); do grep -q 'counters: ' "$work/bridge-outage.log" && break; sleep 0.1; done
# The bridge filled its 500-message queue, stopped reading, then (connections failing with
# records in flight) dropped those and now waits to read back what Kafka has.
check "C: the bridge stopped reading: queue full, in-flight records dropped, waiting to read back" \
    grep -Eq 'counters: .* forwarding=0 delivered=1000 .* queue_full=[1-9][0-9]* .* '\
'purged=[1-9][0-9]* resyncs=[1-9]' "$work/bridge-outage.log"
mock produce-errors 3 7 # REQUEST_TIMED_OUT on the next Produce requests
mock produce-errors 2 6 # NOT_LEADER_FOR_PARTITION
mock up-all
check "C: the producer gets every ack once brokers are back" wait "$outage_producer"
check "C: everything reaches Kafka" wait_count outage $((1000 + outage_more)) 120
sleep 1
kafka_read outage "$work/k-outage.txt"
check "C: outage exactly once, in order, intact" \
    "$python" "$records" check outage 0 $((1000 + outage_more)) "$work/k-outage.txt"
check "C: after the outage the bridge read back where Kafka was" grep -q \
    'topic outage -> outage \[0\]: Kafka has it up to offset 999,' "$work/bridge-outage.log"
check "C: the bridge stops cleanly" stop_bridge outage
check "C: nothing missed in the log" grep -q 'stopped: .* missed=0 ' "$work/bridge-outage.log"
port=$main_port shm_dir=$main_shm_dir

# --- B (last: its delayed answers must not reach other scenarios): SIGKILL, restart ----
# The stream arrives in 30 chunks 0.1 s apart (about 3 s), so the kill lands in the middle.
# Sizes stay under the mock cluster's ~5 MB per partition (it drops older messages beyond).
stream_chunks=30
stream_chunk=500
stream_total=$((stream_chunks * stream_chunk))
for chunk in $(seq 0 $((stream_chunks - 1))); do
    make_records stream $((chunk * stream_chunk)) "$stream_chunk" 100 >"$work/stream-$chunk.bin"
done
bridge stream --topic stream --consumer-name stream
for chunk in $(seq 0 $((stream_chunks - 1))); do
    cat "$work/stream-$chunk.bin"
    sleep 0.1
done | "$bin/intake-produce" --connect "127.0.0.1:$port" --delimited --acks \
    --timeout-ms 120000 2>>"$work/produce.log" &
stream_producer=$!
pids+=("$stream_producer")
wait_count stream 2000 60 || fatal "the stream did not start"
# The brokers now append the next Produce requests at once but answer them 5 s late: records
# reach Kafka, their delivery reports do not reach the bridge, so it cannot commit them. The
# kill lands in that window (the crash between delivery and commit).
before_delay=$(kafka_count stream)
mock produce-delay 3 5000
sleep 1.5
check "B: records reached Kafka while their reports were held back" \
    test "$(kafka_count stream)" -gt "$before_delay"
kill -KILL "$bridge_pid_stream"
wait "$bridge_pid_stream" 2>/dev/null
at_kill=$(kafka_count stream)
echo "  SIGKILLed the bridge with $at_kill of $stream_total records in Kafka"
check "B: the kill came mid-stream" test "$at_kill" -lt "$stream_total"
bridge stream --topic stream --consumer-name stream
check "B: the producer got every ack" wait "$stream_producer"
check "B: the stream completes after the restart" wait_count stream "$stream_total" 120
sleep 1
kafka_read stream "$work/k-stream.txt"
check "B: stream exactly once, in order, intact across the SIGKILL" \
    "$python" "$records" check stream 0 "$stream_total" "$work/k-stream.txt"
check "B: the restart read back where Kafka was" grep -q \
    'topic stream -> stream \[0\]: Kafka has it up to offset' "$work/bridge-stream.log"
check "B: the restarted bridge stops cleanly" stop_bridge stream
skipped=$(sed -n 's/.*stopped: .* skipped=\([0-9]*\) .*/\1/p' "$work/bridge-stream.log" | tail -n 1)
echo "  the restarted bridge skipped ${skipped:-?} records already in Kafka"
check "B: records in Kafka but not committed before the kill were skipped, not resent" \
    test "${skipped:-0}" -gt 0

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    for log in "$work"/bridge-*.log "$work"/intaked-*.log "$work/produce.log"; do
        echo "--- $log"
        grep -v '^%' "$log" | tail -n 20
    done
    exit 1
fi
echo "all checks passed"
