# tests/lib/debian_mirror.sh: sourced by tests/vm/run and tests/container/run (and anything
# else that fetches from Debian's archive the way the machine itself does).
# Prints the Debian mirror URI the machine itself uses (deb822 sources or one-line lists),
# skipping the security archive.
machine_mirror() {
    local uri=""
    if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
        uri=$(awk '
            /^[[:space:]]*$/ { if (u != "" && s !~ /security/) { print u; exit } u = ""; s = ""; next }
            /^URIs:/ { u = $2 }
            /^Suites:/ { s = $0 }
            END { if (u != "" && s !~ /security/) print u }' /etc/apt/sources.list.d/*.sources |
            head -n 1)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ {
                   for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
              /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || return 1
    echo "${uri%/}"
}
