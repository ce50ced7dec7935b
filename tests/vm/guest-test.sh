#!/bin/sh
# tests/vm/guest-test.sh: what runs inside the VM of tests/vm/run (busybox sh, as root, with
# proc/sys/dev mounted and lo up). Programs are in /intake/bin. Prints its verdict as the line
#   vm-guest: PASS kernel=<version> backend=zcrx bytes=<n> records=<n>
#   vm-guest: FAIL <reason>
# which tests/vm/run turns into its own last line. Stages:
#   1. stage_backend: the zcrx backend alone (test_zcrx_probe over a loopback TCP pair);
#   2. stage_daemon: intaked --backend zcrx --zcrx-nodev, several concurrent producers, several
#      topics, at least 256 MiB, read back with intake-tail --format raw and compared byte for
#      byte with what intake_vm_gen regenerates; then SIGTERM, exit 0, every receive unit
#      returned and the zcrx counters non-zero. bytes= and records= of the verdict come from here.
#   3. stage_tls: the same over TLS 1.3 with client certificates (intaked --listen none
#      --tls-listen, intake_vm_gen as an OpenSSL client sending 16 KiB TLS records): records
#      decrypted in place in the zcrx area, byte-exact; every handshake done, no authentication
#      failure, the zcrx counters moving. tls_bytes= and tls_records= of the verdict.
bin=/intake/bin
kernel=$(uname -r)

fail() {
    # In the daemon stage, show what the daemon said (and its counters) before the verdict.
    if [ -n "${daemon_pid:-}" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -USR1 "$daemon_pid"
        sleep 1
    fi
    [ -n "${daemon_log:-}" ] && [ -f "$daemon_log" ] && sed 's/^/daemon-log: /' "$daemon_log"
    echo "vm-guest: FAIL $*"
    exit 1
}

# Stage 1: the zcrx backend alone over a loopback TCP pair (test_zcrx_probe end to end).
stage_backend() {
    out=/tmp/zcrx-probe.out
    ZCRX_TEST_BYTES=${ZCRX_TEST_BYTES:-67108864} "$bin/test_zcrx_probe" >"$out" 2>&1
    status=$?
    cat "$out"
    [ "$status" -ne 77 ] || fail "device-less zcrx refused: $(sed -n 's/.*skipped: //p' "$out")"
    [ "$status" -eq 0 ] || fail "test_zcrx_probe exited $status"
    line=$(grep '^zcrx-e2e: PASS ' "$out") || fail "test_zcrx_probe printed no PASS line"
    backend_bytes=$(echo "$line" | sed -n 's/.* bytes=\([0-9]*\).*/\1/p')
    backend_records=$(echo "$line" | sed -n 's/.* records=\([0-9]*\).*/\1/p')
    [ -n "$backend_bytes" ] && [ "$backend_bytes" -gt 0 ] || fail "no bytes counted"
}

# --- Stage 2: the daemon end to end ------------------------------------------------------------
daemon_port=7411
daemon_dir=/dev/shm/intake
daemon_log_path=/tmp/intaked.log
# 4 producers, each interleaving 2 topics: 8 topics of at least 32 MiB each = 256 MiB or more.
producer_count=4
topic_min_bytes=${INTAKE_VM_TOPIC_BYTES:-33554432}

# /dev/shm is not there in an initramfs; the topic logs live on it (sparse files, 128M each).
mount_shm() {
    mkdir -p /dev/shm
    grep -q ' /dev/shm ' /proc/mounts && return 0
    mount -t tmpfs -o size=1536m shm /dev/shm || fail "cannot mount a tmpfs on /dev/shm"
}

# Producer p's topics: "t<2p>,t<2p+1>". The generator's seed is p.
producer_topics() {
    echo "t$(($1 * 2)),t$(($1 * 2 + 1))"
}

# generate P [flags]: producer P's stream (or, with --only/--summary, a part or its size).
generate() {
    seed=$1
    shift
    "$bin/intake_vm_gen" --topics "$(producer_topics "$seed")" --seed "$seed" \
        --min-bytes "$topic_min_bytes" "$@"
}

# daemon_start LOG DIR FLAGS...: starts intaked --backend zcrx --zcrx-nodev in the background
# (pid in $daemon_pid, log in $daemon_log); returns once its counters region says ready
# (intake-stat --wait-ready) with backend zcrx.
daemon_start() {
    daemon_log=$1
    shm=$2
    shift 2
    "$bin/intaked" --backend zcrx --zcrx-nodev --reactors 2 --workers 2 --shm-dir "$shm" \
        --log-size 64M "$@" >"$daemon_log" 2>&1 &
    daemon_pid=$!
    local ready=no
    "$bin/intake-stat" --shm-dir "$shm" --wait-ready=30 --pid "$daemon_pid" >/dev/null && ready=yes
    cat "$daemon_log"
    [ "$ready" = yes ] && "$bin/intake-stat" --shm-dir "$shm" | head -n 1 | grep -q ' backend zcrx ' &&
        return 0
    kill -0 "$daemon_pid" 2>/dev/null && kill -KILL "$daemon_pid"
    fail "intaked --backend zcrx --zcrx-nodev $* did not come up: $(grep '^intaked:' "$daemon_log" | tail -n 1)"
}

# wait_producers GENERATE LOG_PREFIX PIDS...: each producer (in order) exits 0 having had every
# record of its stream acknowledged ("acked N records" in its log).
wait_producers() {
    gen=$1
    prefix=$2
    shift 2
    producer=0
    for pid in "$@"; do
        wait "$pid" || fail "producer $producer ($prefix): $(tail -n 3 "$prefix-$producer.log")"
        expected=$($gen "$producer" --summary | sed -n 's/^records=\([0-9]*\) .*/\1/p')
        grep -q "^acked $expected records" "$prefix-$producer.log" ||
            fail "producer $producer ($prefix): expected $expected records acked, got: $(cat "$prefix-$producer.log")"
        producer=$((producer + 1))
    done
}

# Runs every producer concurrently; each must have every record of its stream acknowledged.
produce_all() {
    pids=""
    for producer in $(seq 0 $((producer_count - 1))); do
        (generate "$producer" | "$bin/intake-produce" --connect "127.0.0.1:$daemon_port" \
            --delimited --acks --timeout-ms 120000) >"/tmp/produce-$producer.log" 2>&1 &
        pids="$pids $!"
    done
    # shellcheck disable=SC2086 # the pids are meant to split
    wait_producers generate /tmp/produce $pids
}

# verify_topics GENERATE TOPICS COUNT DIR LABEL: reads every topic of producers 0..COUNT-1 back
# from its log in DIR and compares it with the regenerated stream; sets verified_bytes and
# verified_records.
verify_topics() {
    gen=$1
    topics_of=$2
    count=$3
    dir=$4
    label=$5
    verified_bytes=0
    verified_records=0
    for producer in $(seq 0 $((count - 1))); do
        for topic in $($topics_of "$producer" | tr ',' ' '); do
            summary=$($gen "$producer" --only "$topic" --summary)
            records=$(echo "$summary" | sed -n 's/^records=\([0-9]*\) .*/\1/p')
            bytes=$(echo "$summary" | sed -n 's/.* bytes=\([0-9]*\)$/\1/p')
            expected=$($gen "$producer" --only "$topic" | sha256sum | cut -d' ' -f1)
            actual=$("$bin/intake-tail" --shm-dir "$dir" --topic "$topic" --from-start \
                     --count "$records" --format raw 2>/tmp/tail.err | sha256sum | cut -d' ' -f1)
            [ "$actual" = "$expected" ] ||
                fail "topic $topic: intake-tail raw output differs from the $records records sent ($(head -n 1 /tmp/tail.err))"
            echo "$label: topic $topic records=$records bytes=$bytes byte-exact"
            verified_bytes=$((verified_bytes + bytes))
            verified_records=$((verified_records + records))
        done
    done
}

# Reads every topic back from its log and compares it with the regenerated stream.
verify_all() {
    verify_topics generate producer_topics "$producer_count" "$daemon_dir" daemon
    total_bytes=$verified_bytes
    total_records=$verified_records
    [ "$total_bytes" -ge 268435456 ] || fail "only $total_bytes bytes sent (want >= 256 MiB)"
}

# Sums one counter over the daemon's "reactor N backend zcrx:" lines.
zcrx_counter() {
    awk -v name="$1" '/^intaked: reactor [0-9]+ backend zcrx:/ {
        for (i = 1; i <= NF; i++) if (index($i, name "=") == 1) sum += substr($i, length(name) + 2)
    } END { print sum + 0 }' "$daemon_log"
}

# SIGTERM; the daemon must exit 0 with every receive unit back and the zcrx counters moving.
daemon_stop() {
    kill -TERM "$daemon_pid"
    wait "$daemon_pid"
    status=$?
    grep -E '^intaked: (reactor [0-9]+ (backend|tls)|stopped|worker)' "$daemon_log"
    [ "$status" -eq 0 ] || fail "intaked exited $status after SIGTERM"
    grep -q '^intaked: stopped; receive units all returned: yes$' "$daemon_log" ||
        fail "intaked: receive units not all returned"
    for counter in bytes_received completions units_recycled refill_flushes; do
        value=$(zcrx_counter "$counter")
        [ "$value" -gt 0 ] || fail "zcrx counter $counter is $value"
    done
}

stage_daemon() {
    started=$(date +%s)
    mount_shm
    daemon_start "$daemon_log_path" "$daemon_dir" --listen "127.0.0.1:$daemon_port"
    produce_all
    echo "daemon: produced in $(($(date +%s) - started)) s"
    verify_all
    daemon_stop
    received=$(zcrx_counter bytes_received)
    [ "$received" -eq "$total_bytes" ] ||
        fail "zcrx bytes_received=$received but producers sent $total_bytes"
    echo "daemon: PASS bytes=$total_bytes records=$total_records seconds=$(($(date +%s) - started))"
}

# --- Stage 3: TLS over zcrx ----------------------------------------------------------------------
tls_port=7412
tls_dir=/dev/shm/intake-tls
tls_producers=2
tls_topic_bytes=${INTAKE_VM_TLS_TOPIC_BYTES:-8388608}
# The TLS frame limit with 4 KiB zcrx fragments is 128 KiB (intaked says so at startup).
tls_large_bytes=65536
credentials=/intake/tls

tls_topics() {
    echo "s$(($1 * 2)),s$(($1 * 2 + 1))"
}

tls_generate() {
    seed=$1
    shift
    "$bin/intake_vm_gen" --topics "$(tls_topics "$seed")" --seed "$((seed + 100))" \
        --min-bytes "$tls_topic_bytes" --large-bytes "$tls_large_bytes" "$@"
}

stage_tls() {
    started=$(date +%s)
    daemon_start /tmp/intaked-tls.log "$tls_dir" --listen none \
        --tls-listen "127.0.0.1:$tls_port" --tls-cert "$credentials/server.pem" \
        --tls-key "$credentials/server.key" --tls-client-ca "$credentials/ca.pem"
    pids=""
    for producer in $(seq 0 $((tls_producers - 1))); do
        tls_generate "$producer" --tls-connect "127.0.0.1:$tls_port" --tls-ca "$credentials/ca.pem" \
            --tls-cert "$credentials/client-uri.pem" --tls-key "$credentials/client-uri.key" \
            >"/tmp/tls-produce-$producer.log" 2>&1 &
        pids="$pids $!"
    done
    # shellcheck disable=SC2086 # the pids are meant to split
    wait_producers tls_generate /tmp/tls-produce $pids
    verify_topics tls_generate tls_topics "$tls_producers" "$tls_dir" tls-e2e
    tls_bytes=$verified_bytes
    tls_records=$verified_records
    daemon_stop
    handshakes=$(tls_counter ok)
    [ "$handshakes" -eq "$tls_producers" ] || fail "TLS handshakes ok=$handshakes, want $tls_producers"
    decrypted=$(tls_counter records_decrypted)
    [ "$decrypted" -ge $((tls_bytes / 16384)) ] || fail "only $decrypted TLS records decrypted"
    for counter in auth_failures record_errors failed_other; do
        [ "$(tls_counter "$counter")" -eq 0 ] || fail "TLS counter $counter is $(tls_counter "$counter")"
    done
    echo "tls-e2e: PASS bytes=$tls_bytes records=$tls_records decrypted=$decrypted seconds=$(($(date +%s) - started))"
}

# Sums one counter over the daemon's "reactor N tls:" lines.
tls_counter() {
    awk -v name="$1" '/^intaked: reactor [0-9]+ tls: handshakes/ {
        for (i = 1; i <= NF; i++) if (index($i, name "=") == 1) sum += substr($i, length(name) + 2)
    } END { print sum + 0 }' "$daemon_log"
}

main() {
    echo "vm-guest: start kernel=$kernel"
    stage_backend
    stage_daemon
    stage_tls
    echo "vm-guest: PASS kernel=$kernel backend=zcrx bytes=$total_bytes records=$total_records tls_bytes=$tls_bytes tls_records=$tls_records"
}

main "$@"
