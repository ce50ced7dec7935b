# daemon_util.sh: waiting for a real intaked in the script tests (sourced), as tests/daemon_util.h
# does for the C ones: through its counters region (intake-stat --wait-ready), never its log.
#
# Start intaked in the background with --listen 127.0.0.1:0 (the kernel picks a free port, so
# tests run in parallel never race for one), then:
#   daemon_wait_ready INTAKE_STAT SHM_DIR PID LOG [SECONDS]
# It returns 0 once intaked PID is ready, with $address set to the bound --listen address
# ("127.0.0.1:PORT"), $port to its port and $tls_address to the bound --tls-listen address (empty
# without one). Otherwise (not ready in time, or intaked exited first) it prints intake-stat's
# one-line reason and the daemon's log LOG to stderr and returns 1. SHM_DIR is intaked's
# --shm-dir (the region is SHM_DIR/intake.counters).

daemon_wait_ready() { # intake-stat, shm dir, pid, log, [seconds]
    local stat=$1 shm=$2 pid=$3 log=$4 seconds=${5:-30} ready
    address= port= tls_address=
    if ! ready=$("$stat" --shm-dir "$shm" --wait-ready="$seconds" --pid "$pid"); then
        echo "intaked (pid $pid) did not come up; its log:" >&2
        cat "$log" >&2
        return 1
    fi
    address=$(sed -n 's/^listen=//p' <<<"$ready")
    tls_address=$(sed -n 's/^tls_listen=//p' <<<"$ready")
    port=${address##*:}
    [ -n "$address" ] || [ -n "$tls_address" ]
}
