#!/usr/bin/env bash
# test_bench_paths.sh: intake-bench's own checks, so that bench/run's figures rest on a bench
# that works (issue 10). Not a performance test: nothing here asserts a rate or a time.
#   - --self-test: the bench's encoders against its decoders (records with and without
#     sequences and producer_id, NATS PUB/MSG), and its latency histogram;
#   - against a real intaked, each product-path mode delivers every record exactly once
#     (intake-bench's own check: counts equal, no gap, no duplicate or reordering per
#     connection and topic), and reports CPU per record for each side:
#     intake-bench's encoder and a consumer set; the product's producer library; one consumer
#     handle per topic; acks with a producer_id per connection; open loop at a fixed rate.
# Env: INTAKE_BIN_DIR (built programs).
# intake-test: no-tsan (drives intake-bench, whose threads share nothing but counters; a TSan intake-bench would measure nothing useful)
set -uo pipefail

bin=${INTAKE_BIN_DIR:?INTAKE_BIN_DIR not set}
work=$(mktemp -d /tmp/intake-bench-paths.XXXXXX)
shm_dir=/dev/shm/intake-bench-paths-$$
python=/usr/bin/python3
source "$(dirname "$0")/daemon_util.sh"
daemon_pid=
failures=0

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

field() { tr ' ' '\n' <<<"$1" | awk -F= -v key="$2" '$1 == key {print $2; exit}'; }

check "intake-bench --self-test" "$bin/intake-bench" --self-test

log=$work/intaked.log
mkdir -p "$shm_dir"
"$bin/intaked" --listen 127.0.0.1:0 --shm-dir "$shm_dir" --backend pbuf --log-size 4M \
    2>"$log" &
daemon_pid=$!
daemon_wait_ready "$bin/intake-stat" "$shm_dir" "$daemon_pid" "$log" || exit 1

# Each mode: 4 connections, 20,000 records of mixed sizes over 7 topics (bounded by count).
modes=("--consumer set" "--producer library" "--consumer handles" "--acks --producer-id"
       "--acks --producer library" "--rate 40000")
for mode in "${modes[@]}"; do
    # shellcheck disable=SC2086 # mode is a list of words on purpose
    line=$(timeout 60 "$bin/intake-bench" --target intake --port "$port" --shm-dir "$shm_dir" \
        --connections 4 --size 64,300,2000 --batch 32 --topics 7 --count 20000 \
        --duration-s 30 $mode 2>>"$work/bench.err")
    echo "  $mode: $(cut -d' ' -f1-9 <<<"$line")"
    check "$mode: every record delivered exactly once" \
        test "$(field "$line" exactly_once)" = yes -a "$(field "$line" msgs)" = 20000
    check "$mode: producer and consumer CPU reported" \
        awk -v p="$(field "$line" producer_cpu_s)" -v c="$(field "$line" consumer_cpu_s)" \
        'BEGIN { exit !(p > 0 && c > 0) }'
done
said=$(grep -c . "$work/bench.err")
[ "$said" -gt 0 ] && { echo "intake-bench said:"; cat "$work/bench.err"; }

kill -TERM "$daemon_pid"
wait "$daemon_pid"
check "intaked exits 0 on SIGTERM" test $? -eq 0
daemon_pid=
if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
