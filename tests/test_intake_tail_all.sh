#!/usr/bin/env bash
# test_intake_tail_all.sh: intake-tail over several topics, through the consumer set.
#   1. `--all --follow --exit-when-idle --format text`, started before any topic exists, prints
#      every record of 5 topics (4 created after it started, produced in turns) exactly once,
#      in order per topic, each line led by its topic; it says the daemon left and exits 0.
#   2. `--all --format json` without --follow prints each record once with a leading "topic".
#   3. `--topic a --topic c` prints those two topics only; a listed topic without a log is an
#      error (exit 1) without --follow.
# intake-test: no-tsan (test_consumer_set covers consumer sets under TSan)
set -uo pipefail
: "${INTAKE_BIN_DIR:?set by ctest}"
bin=$INTAKE_BIN_DIR
python=/usr/bin/python3
work=$(mktemp -d)
shm=/dev/shm/intake-tail-all-$$
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work" "$shm"' EXIT
passed=0 failed=0
check() { # description, status (0 = ok)
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1" >&2; fi
}
source "$(dirname "$0")/daemon_util.sh"

"$bin/intaked" --listen 127.0.0.1:0 --shm-dir "$shm" --log-size 1M --max-frame 64K \
  --topics-max 16 --backend pbuf --topic first 2>"$work/daemon.log" &
daemon=$!
daemon_wait_ready "$bin/intake-stat" "$shm" "$daemon" "$work/daemon.log"
check "daemon started" $?

"$bin/intake-tail" --shm-dir "$shm" --all --follow --exit-when-idle --format text \
  >"$work/follow.out" 2>"$work/follow.err" &
tail_pid=$!
sleep 0.3

# Three rounds over the topics, so records of different topics interleave in time.
for round in 1 2 3; do
  for topic in first a b c d; do
    for n in $(seq 1 40); do echo "$topic-$round-$n"; done |
      "$bin/intake-produce" --connect "127.0.0.1:$port" --topic "$topic" --acks >/dev/null 2>&1
    check "produce $topic round $round" $?
  done
done
sleep 0.5
kill -TERM $daemon
wait $daemon
check "daemon exited 0" $?
timeout 20 tail --pid=$tail_pid -f /dev/null
wait $tail_pid
check "intake-tail --all --follow --exit-when-idle exited 0" $?
grep -q "writer (intaked) has exited" "$work/follow.err"
check "intake-tail said the daemon left" $?

# Every line is "TOPIC OFFSET SEQUENCE key=... value=TOPIC-ROUND-N"; per topic, the values in
# order are exactly the 120 sent, and offsets run 0..119.
$python - "$work/follow.out" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
per_topic = {}
for line in lines:
    words = line.split(" ")
    topic, offset, value = words[0], int(words[1]), words[-1]
    per_topic.setdefault(topic, []).append((offset, value))
ok = sorted(per_topic) == sorted(["first", "a", "b", "c", "d"])
for topic, records in per_topic.items():
    expected = [f"value={topic}-{r}-{n}" for r in (1, 2, 3) for n in range(1, 41)]
    ok = ok and [v for _, v in records] == expected
    ok = ok and [o for o, _ in records] == list(range(120))
print("per-topic records:", {t: len(r) for t, r in per_topic.items()})
sys.exit(0 if ok and len(lines) == 600 else 1)
PY
check "--all --follow: 600 records, each once, in order per topic, with its topic" $?

# The logs stay after the daemon exits: read them again without following.
"$bin/intake-tail" --shm-dir "$shm" --all --format json >"$work/all.json" 2>"$work/all.err"
check "--all without --follow exits 0" $?
$python - "$work/all.json" <<'PY'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
topics = {}
for record in records:
    topics.setdefault(record["topic"], []).append(record["value"])
ok = len(records) == 600 and all(len(v) == 120 for v in topics.values()) and len(topics) == 5
ok = ok and all(list(open(sys.argv[1]))[i].startswith('{"topic":') for i in range(600))
sys.exit(0 if ok else 1)
PY
check "--all --format json: 600 records, each led by its topic" $?

"$bin/intake-tail" --shm-dir "$shm" --topic a --topic c --format text >"$work/two.out" 2>&1
check "two --topic flags exit 0" $?
[ "$(grep -c '^a ' "$work/two.out")" -eq 120 ] && [ "$(grep -c '^c ' "$work/two.out")" -eq 120 ] &&
  [ "$(wc -l <"$work/two.out")" -eq 240 ]
check "two --topic flags: 120 records of each, nothing else" $?

"$bin/intake-tail" --shm-dir "$shm" --topic a --topic nosuch >/dev/null 2>"$work/missing.err"
[ $? -eq 1 ] && grep -q "have no log" "$work/missing.err"
check "a listed topic without a log is an error without --follow" $?

"$bin/intake-tail" --shm-dir "$shm" --all --topic a >/dev/null 2>&1
[ $? -eq 2 ]
check "--all with --topic is a usage error" $?

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
