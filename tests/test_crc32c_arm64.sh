#!/usr/bin/env bash
# test_crc32c_arm64.sh: the arm64 path of src/base/crc32c.c, on an x86-64 machine. Debian's
# cross compiler (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross) builds test_crc32c statically
# for arm64 at the baseline -march=armv8-a (no +crc: the CRC instructions come from the
# module's target attribute, as on a Debian arm64 build), and Debian's qemu-user runs it:
#   - it compiles without a warning (-Werror), and the object uses crc32cx and crc32cb;
#   - under qemu-aarch64 it reports "arm64 crc32" (HWCAP_CRC32 found by getauxval) and agrees
#     with the reference at every length and alignment test_crc32c tries;
#   - clang, when present, compiles the module for arm64 too (its builtins differ from gcc's).
# What qemu cannot tell: speed (it emulates the instruction), and the fall back on an arm64
# CPU without CRC32 (every qemu CPU model has it). On an arm64 machine test_crc32c itself runs
# the path natively and this test skips. Skips (77) when the cross tools are missing.
# intake-test: no-tsan (cross-builds and runs an arm64 program under qemu; test_crc32c is the TSan check of the module)
set -uo pipefail

source_dir=${INTAKE_SOURCE_DIR:?set by ctest}
if [ "$(uname -m)" = aarch64 ]; then
  echo "skipped: an arm64 machine runs test_crc32c natively"
  exit 77
fi
for tool in aarch64-linux-gnu-gcc aarch64-linux-gnu-objdump qemu-aarch64; do
  if ! command -v "$tool" >/dev/null; then
    echo "skipped: $tool missing (scripts/setup test installs gcc-aarch64-linux-gnu, qemu-user)"
    exit 77
  fi
done
work=$(mktemp -d /tmp/intake-crc32c-arm64.XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
check() { # description, status (0 = ok)
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1" >&2; fi
}

flags=(-std=gnu11 -O2 -Wall -Wextra -Werror -march=armv8-a -I"$source_dir/src/base"
  -I"$source_dir/include" -I"$source_dir/tests")
aarch64-linux-gnu-gcc "${flags[@]}" -c "$source_dir/src/base/crc32c.c" -o "$work/crc32c.o"
check "gcc builds crc32c.c for arm64 at -march=armv8-a with -Werror" $?
instructions=$(aarch64-linux-gnu-objdump -d "$work/crc32c.o" 2>/dev/null | grep -oE 'crc32c[xb]' | sort -u | tr '\n' ' ')
[ "$instructions" = "crc32cb crc32cx " ]
check "the arm64 object uses crc32cx and crc32cb (found: ${instructions:-none})" $?

aarch64-linux-gnu-gcc "${flags[@]}" -static "$source_dir/tests/test_crc32c.c" \
  "$source_dir/tests/harness.c" "$work/crc32c.o" "$source_dir/src/base/common.c" -lpthread \
  -o "$work/test_crc32c"
check "test_crc32c links statically for arm64" $?
output=$(qemu-aarch64 "$work/test_crc32c" 2>&1)
status=$?
echo "$output" | sed 's/^/  arm64: /'
check "test_crc32c passes under qemu-aarch64" $status
echo "$output" | grep -qx 'implementation: arm64 crc32'
check "under qemu-aarch64 the fast path is the hardware one" $?

if command -v clang >/dev/null; then
  clang --target=aarch64-linux-gnu "${flags[@]}" -c "$source_dir/src/base/crc32c.c" \
    -o "$work/crc32c-clang.o"
  check "clang builds crc32c.c for arm64 at -march=armv8-a with -Werror" $?
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
