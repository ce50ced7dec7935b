#!/usr/bin/env bash
# test_metrics.sh: intake-stat and /metrics tell the same story as intaked's own shutdown
# counters. A daemon with 2 reactors and 2 workers takes records for 3 topics (and one oversized
# record, rejected); then:
#   1. while it runs: intake-stat (another process, reading the counters region) and GET /metrics
#      agree with each other and with what was sent; /healthz and /readyz answer 200;
#   2. after SIGTERM: intake-stat reads the final values, and every counter it shares with the
#      shutdown lines is equal to them, reactor by reactor and worker by worker;
#   3. the counters that cannot move without traffic (records, bytes, connections, acks) were
#      already equal to the shutdown values while the daemon ran;
#   4. a named consumer that committed 50 records of a topic lags by the rest, in records.
set -uo pipefail
: "${INTAKE_BIN_DIR:?set by ctest}"
bin=$INTAKE_BIN_DIR
python=/usr/bin/python3
work=$(mktemp -d)
shm=/dev/shm/intake-metrics-$$
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work" "$shm"' EXIT
passed=0 failed=0
check() { # description, status (0 = ok)
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1" >&2; fi
}
source "$(dirname "$0")/daemon_util.sh"
# intaked binds --listen's port itself (0); nothing reports a picked --metrics-listen port.
free_port() { $python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metrics_port=$(free_port)

"$bin/intaked" --listen 127.0.0.1:0 --metrics-listen "127.0.0.1:$metrics_port" \
  --shm-dir "$shm" --reactors 2 --workers 2 --log-size 4M --max-frame 64K --topics-max 8 \
  --backend pbuf 2>"$work/daemon.log" &
daemon=$!
# Ready (the metrics endpoint included) when its counters region says so; $port is the bound one.
daemon_wait_ready "$bin/intake-stat" "$shm" $daemon "$work/daemon.log"
check "daemon started" $?

# 3 topics x 2 connections each; then one record above --max-frame (the connection is rejected).
sent=0
for topic in alpha beta gamma; do
  for connection in 1 2; do
    count=$((100 * connection + ${#topic}))
    "$bin/intake-produce" --connect "127.0.0.1:$port" --topic "$topic" --acks --count "$count" \
      --size 200 >"$work/produce" 2>&1
    check "produce $count to $topic" $(grep -q "acked $count records" "$work/produce"; echo $?)
    sent=$((sent + count))
  done
done
"$bin/intake-produce" --connect "127.0.0.1:$port" --topic alpha --acks --count 1 --size 100000 \
  >"$work/rejected" 2>&1
check "oversized record rejected" $(grep -qi "rejected" "$work/rejected"; echo $?)

# A named consumer reads and commits the first 50 records of alpha: its lag is the rest.
"$bin/intake-tail" --shm-dir "$shm" --topic alpha --from-start --count 50 --name lagcheck \
  >/dev/null 2>&1
check "intake-tail read 50 records" $?

"$bin/intake-stat" --shm-dir "$shm" >"$work/stat-running" 2>&1
check "intake-stat while running" $?
curl -fs "http://127.0.0.1:$metrics_port/metrics" >"$work/metrics"
check "GET /metrics" $?
check "GET /healthz" $(curl -fs -o /dev/null "http://127.0.0.1:$metrics_port/healthz"; echo $?)
check "GET /readyz" $(curl -fs -o /dev/null "http://127.0.0.1:$metrics_port/readyz"; echo $?)
"$bin/intake-stat" --shm-dir "$shm" --check ready >/dev/null
check "intake-stat --check ready" $?
if command -v promtool >/dev/null; then
  promtool check metrics <"$work/metrics" >"$work/promtool" 2>&1
  check "promtool check metrics: $(head -n 2 "$work/promtool")" $?
fi

kill -TERM $daemon
wait $daemon
check "daemon exits 0" $?
"$bin/intake-stat" --shm-dir "$shm" >"$work/stat-stopped" 2>&1
check "intake-stat after exit" $?
"$bin/intake-stat" --shm-dir "$shm" --check live >/dev/null
check "--check live fails once stopped" $(( $? == 0 ))

# The comparisons: one parser for the three sources (shutdown lines, intake-stat, /metrics).
$python - "$work" "$sent" <<'EOF'
import re, sys
work, sent = sys.argv[1], int(sys.argv[2])
AMBIGUOUS = {"failed", "out_of_units"}   # the same name in two groups: keep the group

def parse_lines(path, prefix):
    """{("reactor", 0): {key: value}, ("worker", 1): {...}, ("copy", 0): {...}} from lines of
    `key=value` words; a bare word before them names the group (connections, records, ...)."""
    threads = {}
    current = None
    for line in open(path):
        line = line.rstrip("\n")
        match = re.match(prefix + r"(reactor|worker) (\d+)\b", line)
        if match:
            current = (match.group(1), int(match.group(2)))
        elif "copy account" in line:
            current = ("copy", 0)
        elif not line.startswith("  "):
            current = None
        if current is None:
            continue
        group = ""
        values = threads.setdefault(current, {})
        for word in line.split():
            if "=" not in word:
                group = word.rstrip(":")
                continue
            key, _, value = word.partition("=")
            if key in AMBIGUOUS:
                key = group + "." + key
            try:
                values[key] = float(value) if "." in value else int(value)
            except ValueError:
                pass
    return threads

shutdown = parse_lines(f"{work}/daemon.log", r"intaked: ")
stopped = parse_lines(f"{work}/stat-stopped", r"")
running = parse_lines(f"{work}/stat-running", r"")
failures = []
def expect(condition, what):
    if not condition:
        failures.append(what)

expect(set(shutdown) == {("reactor", 0), ("reactor", 1), ("worker", 0), ("worker", 1), ("copy", 0)},
       f"shutdown lines cover 2 reactors, 2 workers, the copy account: {sorted(shutdown)}")
compared = 0
for thread, values in shutdown.items():
    for key, value in values.items():
        if key in ("units_in_use",):
            continue
        expect(key in stopped.get(thread, {}), f"intake-stat lacks {thread} {key}")
        if key in stopped.get(thread, {}):
            compared += 1
            expect(stopped[thread][key] == value,
                   f"after exit {thread} {key}: intake-stat {stopped[thread][key]} != shutdown {value}")
expect(compared >= 40, f"only {compared} counters compared")
# Counters only traffic moves: equal while running already.
STEADY = {"accepted", "closed", "connections.failed", "admitted", "returned", "records.failed",
          "acks", "bytes_received", "completions", "committed", "rejected", "bytes_copied",
          "publishes", "copied_bytes", "received_bytes"}
for thread, values in shutdown.items():
    for key in STEADY & set(values):
        expect(running.get(thread, {}).get(key) == values[key],
               f"while running {thread} {key}: intake-stat {running.get(thread, {}).get(key)} != shutdown {values[key]}")

# /metrics against intake-stat (while running) and against what was sent.
samples = {}
for line in open(f"{work}/metrics"):
    if line.startswith("#") or not line.strip():
        continue
    name, _, value = line.rpartition(" ")
    samples[name] = float(value)
def metric(name):
    return samples.get(name)
for reactor in (0, 1):
    r = running[("reactor", reactor)]
    for name, key in (("intake_reactor_records_admitted_total", "admitted"),
                      ("intake_connections_accepted_total", "accepted"),
                      ("intake_acks_sent_total", "acks"),
                      ("intake_backend_bytes_received_total", "bytes_received")):
        series = f'{name}{{reactor="{reactor}"}}'
        expect(metric(series) == r[key], f"/metrics {series} = {metric(series)}, intake-stat {r[key]}")
for worker in (0, 1):
    w = running[("worker", worker)]
    expect(metric(f'intake_worker_records_committed_total{{worker="{worker}"}}') == w["committed"],
           f"/metrics committed worker {worker}")
    expect(metric(f'intake_worker_bytes_copied_total{{worker="{worker}"}}') == w["bytes_copied"],
           f"/metrics bytes_copied worker {worker}")
topics_committed = sum(v for k, v in samples.items() if k.startswith("intake_records_committed_total{"))
topics_received = sum(v for k, v in samples.items() if k.startswith("intake_records_received_total{"))
workers_committed = sum(shutdown[("worker", w)]["committed"] for w in (0, 1))
expect(topics_committed == sent, f"/metrics per-topic committed {topics_committed} != sent {sent}")
expect(topics_received == sent, f"/metrics per-topic received {topics_received} != sent {sent}")
expect(workers_committed == sent, f"shutdown committed {workers_committed} != sent {sent}")
rejected = sum(v for k, v in samples.items() if k.startswith('intake_connections_ended_total{') and 'status="rejected"' in k)
expect(rejected == 1, f"/metrics connections ended rejected = {rejected}, not 1")
for topic in ("alpha", "beta", "gamma"):
    expect(metric(f'intake_log_next_offset{{topic="{topic}"}}') ==
           metric(f'intake_records_committed_total{{topic="{topic}"}}'),
           f"/metrics {topic}: log next offset != committed records")
alpha = metric('intake_records_committed_total{topic="alpha"}')
lag = metric('intake_consumer_lag_records{topic="alpha",consumer="lagcheck",state="detached"}')
expect(alpha is not None and lag == alpha - 50,
       f"/metrics lag of consumer lagcheck = {lag}, not alpha's {alpha} - 50")
for failure in failures:
    print("FAILED:", failure, file=sys.stderr)
print(f"compared {compared} counters after exit; {len(failures)} mismatches", file=sys.stderr)
sys.exit(1 if failures else 0)
EOF
check "stat, /metrics and shutdown counters agree" $?
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
