#!/usr/bin/env bash
# test_program_flags.sh: every program a user or a script runs keeps the command-line contract
# of src/base/cli.h. For each line "path flag value" of $INTAKE_BIN_DIR/intake-programs.txt
# (written by CMake from the programs' INTAKE_BAD_VALUE; a program without one fails the
# configure):
#   --help            exit 0, the usage on stdout ("usage:"), nothing on stderr;
#   --version         exit 0, exactly "NAME (intake) X.Y.Z" on stdout, the version that
#                     include/intake/version.h says;
#   flag value        (a bad value, such as --count 10x) exit 2, nothing on stdout, exactly one
#                     line on stderr: "NAME: flag: 'value' is not ...";
#   --no-such-flag    exit 2, one line "NAME: unknown option '--no-such-flag' (see --help)";
#   flag (last, without its value)  exit 2, one line "NAME: flag needs a value (see --help)".
# intake-test: no-tsan (argument parsing only: no thread is started)
set -uo pipefail
: "${INTAKE_BIN_DIR:?set by ctest}" "${INTAKE_SOURCE_DIR:?set by ctest}"
list="$INTAKE_BIN_DIR/intake-programs.txt"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
check() { # description, command status (0 = ok)
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1" >&2; fi
}
version=$(sed -n 's/^#define INTAKE_VERSION_STRING "\(.*\)"$/\1/p' "$INTAKE_SOURCE_DIR/include/intake/version.h")
check "version.h names a version ($version)" $([ -n "$version" ]; echo $?)

run() { # program args...: exit status in $status, output in $work/out and $work/err
  # Bounded: a bad value wrongly accepted would start a daemon or a run that does not end.
  timeout 20 "$@" </dev/null >"$work/out" 2>"$work/err"
  status=$?
}

expect_one_line() { # description, expected line (a grep -x pattern, fixed prefix allowed)
  check "$1: exit 2 (got $status)" $((status != 2))
  check "$1: nothing on stdout" $([ ! -s "$work/out" ]; echo $?)
  check "$1: one line on stderr ($(wc -l <"$work/err"): $(head -c 300 "$work/err"))" \
    $(($(wc -l <"$work/err") != 1))
  check "$1: the line is '$2...' (got: $(head -c 300 "$work/err"))" \
    $(head -n 1 "$work/err" | grep -qF -- "$2"; echo $?)
  check "$1: the line begins with it" \
    $([ "$(head -c ${#2} "$work/err")" = "$2" ]; echo $?)
}

programs=0
while read -r path flag value; do
  [ -n "$path" ] || continue
  [ "$value" = "''" ] && value=""
  name=$(basename "$path")
  programs=$((programs + 1))
  check "$name is built" $([ -x "$path" ]; echo $?)

  run "$path" --help
  check "$name --help: exit 0 (got $status)" $status
  check "$name --help: usage on stdout" $(grep -q 'usage:' "$work/out"; echo $?)
  check "$name --help: nothing on stderr" $([ ! -s "$work/err" ]; echo $?)

  run "$path" --version
  check "$name --version: exit 0 (got $status)" $status
  check "$name --version: '$name (intake) $version' (got: $(head -c 200 "$work/out"))" \
    $([ "$(cat "$work/out")" = "$name (intake) $version" ]; echo $?)
  check "$name --version: nothing on stderr" $([ ! -s "$work/err" ]; echo $?)

  run "$path" "$flag" "$value"
  expect_one_line "$name $flag '$value'" "$name: $flag: '$value' is not"

  run "$path" --no-such-flag
  expect_one_line "$name --no-such-flag" "$name: unknown option '--no-such-flag' (see --help)"

  run "$path" "$flag"
  expect_one_line "$name $flag without its value" "$name: $flag needs a value (see --help)"
done <"$list"
# Every program CMake builds in src/bin and bench, at the least, is in the list.
check "the list names the programs ($programs)" $((programs < 12))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
