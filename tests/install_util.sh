# install_util.sh: what the tests of the installed library share (sourced, not run):
# a work directory, check/finish with the closing "N passed, N failed" line, the tree installed
# by `cmake --install` into a prefix of its own, and an intaked started from that prefix.
: "${INTAKE_BIN_DIR:?set by ctest}"
: "${INTAKE_SOURCE_DIR:?set by ctest}"
python=/usr/bin/python3
work=$(mktemp -d)
prefix=$work/prefix
shm=/dev/shm/intake-install-test-$$
daemon_pid=
source "$INTAKE_SOURCE_DIR/tests/daemon_util.sh"
trap 'install_util_cleanup' EXIT
passed=0 failed=0

install_util_cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null
  kill $(jobs -p) 2>/dev/null
  rm -rf "$work" "$shm"
}

check() { # description, status (0 = ok)
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1" >&2; fi
}

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
  exit $?
}

# In a sanitizer build the library is instrumented: programs built against it are too.
sanitize_flags=
case "${INTAKE_SANITIZE:-}" in "" | OFF | 0 | FALSE) ;; *) sanitize_flags="-fsanitize=$INTAKE_SANITIZE" ;; esac

# Skips (ctest's 77) in sanitizer builds: an instrumented libintake cannot be loaded by an
# uninstrumented interpreter or Go binary (the sanitizer runtime must come first).
skip_when_sanitized() { # what
  case "${INTAKE_SANITIZE:-}" in "" | OFF | 0 | FALSE) return ;; esac
  echo "skipped: $1 needs an uninstrumented libintake (this build: -fsanitize=$INTAKE_SANITIZE)"
  exit 77
}

# cmake --install of this build into $prefix; the libraries are in $prefix/lib.
install_tree() {
  cmake --install "$INTAKE_BIN_DIR" --prefix "$prefix" >"$work/install.log" 2>&1
  check "cmake --install --prefix" $?
  libdir=$(dirname "$(find "$prefix" -name libintake.so.1 | head -1)")
  export PKG_CONFIG_PATH=$libdir/pkgconfig
}

# Starts the installed intaked on a port the kernel picks, its logs in $shm; sets $address.
daemon_start() { # extra intaked flags...
  "$prefix/bin/intaked" --listen 127.0.0.1:0 --shm-dir "$shm" --log-size 4M --topics-max 64 \
    --backend pbuf "$@" 2>"$work/daemon.log" &
  daemon_pid=$!
  # The installed intake-stat reads its counters region (tests/daemon_util.sh sets $address).
  daemon_wait_ready "$prefix/bin/intake-stat" "$shm" "$daemon_pid" "$work/daemon.log"
  check "intaked (installed) started" $?
}

daemon_stop() {
  kill -TERM "$daemon_pid"
  wait "$daemon_pid"
  check "intaked exited 0" $?
  daemon_pid=
}
