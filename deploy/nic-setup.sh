#!/usr/bin/env bash
# deploy/nic-setup.sh: prepares a NIC for intaked's zcrx backend in NIC mode. Run once at boot,
# before intaked starts (an init step; as root or with CAP_NET_ADMIN). Idempotent: settings
# already in place are left alone, and an ntuple rule for the port that already points at an
# RSS context spanning the queues is reused.
#
#   deploy/nic-setup.sh --if IFNAME --port PORT --queues FIRST-LAST [--channels N] [--dry-run]
#
# What it sets, in order (Documentation/networking/iou-zcrx.rst, "NIC HW Requirements"):
#   1. channels: ethtool -L IF combined N (N defaults to LAST + 1; never lowered);
#   2. header/data split: ethtool -G IF tcp-data-split on (payload lands in the zcrx area,
#      headers in kernel memory);
#   3. an RSS context over the zcrx queues: ethtool -X IF context new start FIRST equal K;
#   4. an ntuple rule steering TCP to PORT into that context:
#      ethtool -N IF flow-type tcp4 dst-port PORT context CTX.
# It does not shrink the default RSS context away from the zcrx queues (other traffic may still
# land there): do that with `ethtool -X IF equal FIRST` when FIRST is the lowest zcrx queue.
# Then start intaked with --backend zcrx --zcrx-if IFNAME --zcrx-queues FIRST,...,LAST and
# --reactors K: reactor i owns queue FIRST+i.
# --dry-run prints the commands that would change something (and reads nothing it cannot).
# Exit status: 0 done (or nothing to do), 1 a step failed (one line says which), 2 bad usage.
set -uo pipefail

interface=
port=
queues=
channels=
dry_run=0

usage() {
    echo "usage: $0 --if IFNAME --port PORT --queues FIRST-LAST [--channels N] [--dry-run]" >&2
    exit 2
}

die() {
    echo "nic-setup: $*" >&2
    exit 1
}

# Runs a command that changes the NIC, or prints it under --dry-run.
change() {
    if [ "$dry_run" -eq 1 ]; then
        echo "$*" >&3
        return 0
    fi
    echo "nic-setup: $*" >&2
    "$@"
}

parse_arguments() {
    while [ $# -gt 0 ]; do
        case "$1" in
        --if) interface=${2:-}; shift 2 ;;
        --port) port=${2:-}; shift 2 ;;
        --queues) queues=${2:-}; shift 2 ;;
        --channels) channels=${2:-}; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) usage ;;
        *) echo "nic-setup: unknown argument $1" >&2; usage ;;
        esac
    done
    [ -n "$interface" ] && [ -n "$port" ] && [ -n "$queues" ] || usage
    [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] ||
        { echo "nic-setup: --port must be 1..65535" >&2; usage; }
    [[ "$queues" =~ ^([0-9]+)-([0-9]+)$ ]] ||
        { echo "nic-setup: --queues wants FIRST-LAST, e.g. 4-7" >&2; usage; }
    first_queue=${BASH_REMATCH[1]}
    last_queue=${BASH_REMATCH[2]}
    [ "$last_queue" -ge "$first_queue" ] || { echo "nic-setup: --queues: LAST < FIRST" >&2; usage; }
    queue_count=$((last_queue - first_queue + 1))
    [ -n "$channels" ] || channels=$((last_queue + 1))
    [[ "$channels" =~ ^[0-9]+$ ]] && [ "$channels" -gt "$last_queue" ] ||
        { echo "nic-setup: --channels must be more than the last zcrx queue ($last_queue)" >&2; usage; }
}

preflight() {
    command -v ethtool >/dev/null || die "ethtool not found (apt-get install ethtool)"
    [ -e "/sys/class/net/$interface" ] || die "no interface named $interface"
    if [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
        die "needs root (CAP_NET_ADMIN) to change $interface; try --dry-run to see the commands"
    fi
}

# 1. Enough combined channels for the zcrx queues; never lowers what is configured.
setup_channels() {
    local current
    current=$(ethtool -l "$interface" 2>/dev/null |
              awk '/^Current hardware settings/ { current = 1 } current && /^Combined:/ { print $2; exit }')
    [ -n "$current" ] || die "$interface: ethtool -l reports no combined channels (driver without channel control)"
    [ "$current" -ge "$channels" ] && return 0
    change ethtool -L "$interface" combined "$channels" ||
        die "$interface: cannot set $channels combined channels"
}

# 2. Header/data split.
setup_header_split() {
    local state
    state=$(ethtool -g "$interface" 2>/dev/null | awk -F: '/^TCP data split/ { gsub(/[ \t]/, "", $2); print $2; exit }')
    [ "$state" = on ] && return 0
    [ -n "$state" ] || [ "$dry_run" -eq 1 ] ||
        die "$interface: the driver reports no TCP data split setting: it cannot do zcrx"
    change ethtool -G "$interface" tcp-data-split on ||
        die "$interface: cannot enable tcp-data-split (header split); zcrx needs it"
}

# The RSS context id whose indirection table uses exactly the zcrx queues, if one exists.
existing_context() {
    ethtool -x "$interface" context all 2>/dev/null | awk -v first="$first_queue" -v last="$last_queue" '
        function finish() {
            if (context != "" && seen && ok) { print context; found = 1; exit }
        }
        /^RSS context/ || /context [0-9]+:?$/ {
            finish(); context = ""; seen = 0; ok = 1
            for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+:?$/) { context = $i; sub(":", "", context) }
            next
        }
        /^ *[0-9]+: / {
            for (i = 2; i <= NF; i++) {
                seen = 1
                if ($i + 0 < first || $i + 0 > last) ok = 0
            }
        }
        END { if (!found) finish() }'
}

# 3. The RSS context over the zcrx queues; prints its id.
setup_rss_context() {
    local context
    context=$(existing_context)
    if [ -n "$context" ] && [ "$context" != 0 ]; then
        echo "$context"
        return 0
    fi
    if [ "$dry_run" -eq 1 ]; then
        echo "ethtool -X $interface context new start $first_queue equal $queue_count" >&3
        echo CTX
        return 0
    fi
    local output
    output=$(ethtool -X "$interface" context new start "$first_queue" equal "$queue_count" 2>&1) ||
        die "$interface: cannot create an RSS context over queues $queues: $output"
    context=$(echo "$output" | sed -n 's/.*[Nn]ew RSS context is \([0-9]*\).*/\1/p')
    [ -n "$context" ] || die "$interface: created an RSS context but could not read its id from: $output"
    echo "$context"
}

# 4. The ntuple rule for the port; an existing rule for the port is kept when it already points
# at this context, and refused otherwise (someone else steers it: resolve by hand).
setup_ntuple_rule() {
    local context=$1
    local rules
    rules=$(ethtool -n "$interface" 2>/dev/null)
    if echo "$rules" | grep -Eq "Dest port: $port( |$)"; then
        echo "$rules" | awk -v port="$port" '
            /^Filter:/ { rule = $2 } /Dest port:/ && $3 == port { hit = rule }
            /RSS Context/ && hit != "" { print; exit }' | grep -Eq "(ID|context):? *$context\$" && return 0
        [ "$dry_run" -eq 1 ] && return 0
        die "$interface: an ntuple rule for port $port exists but does not target RSS context $context (ethtool -n $interface)"
    fi
    if [ "$dry_run" -eq 1 ]; then
        echo "ethtool -N $interface flow-type tcp4 dst-port $port context $context" >&3
        return 0
    fi
    ethtool -K "$interface" ntuple on >/dev/null 2>&1
    change ethtool -N "$interface" flow-type tcp4 dst-port "$port" context "$context" ||
        die "$interface: cannot add the ntuple rule for port $port (ntuple filters unsupported or full?)"
}

main() {
    # --dry-run prints commands on fd 3 (stdout), also from functions whose stdout is captured.
    exec 3>&1
    parse_arguments "$@"
    preflight
    setup_channels
    setup_header_split
    local context
    context=$(setup_rss_context) || exit 1
    setup_ntuple_rule "$context"
    [ "$dry_run" -eq 1 ] && return 0
    echo "nic-setup: $interface ready: queues $queues in RSS context $context, tcp4 port $port steered" \
         "there; start intaked --backend zcrx --zcrx-if $interface --zcrx-queues" \
         "$(seq -s, "$first_queue" "$last_queue") --reactors $queue_count" >&2
}

main "$@"
