#!/usr/bin/env bash
# test_install.sh: the installed library, as a program outside this repository uses it.
#   1. `cmake --install` lays out libintake.so.1 (SONAME, only intake_* exported), libintake.a
#      (only intake_* global), the headers, intake.pc, the CMake package and the programs.
#   2. Every public header compiles alone as C11 (-pedantic) and as C++ (extern "C").
#   3. examples/c-consumer builds with `pkg-config --cflags --libs intake` and with
#      find_package(intake) (shared and static), and each build reads what the installed
#      intake-produce sent through the installed intaked: every record, in order, headers none.
#   4. A program with its own varint_encode and pb_decode links libintake.a statically.
# intake-test: no-tsan (packaging: it builds programs outside the tree against the installed library, uninstrumented; the release and ASan suites run it)
set -uo pipefail
source "$(dirname "$0")/install_util.sh"
install_tree

for file in include/intake/version.h include/intake/producer.h include/intake/consumer.h \
  include/intake/shm_log_format.h include/intake/counters_format.h lib/pkgconfig/intake.pc \
  lib/cmake/intake/intakeConfig.cmake lib/libintake.a bin/intaked bin/intake-produce \
  bin/intake-tail; do
  [ -e "$prefix/$file" ] || [ -e "$libdir/${file#lib/}" ]
  check "installed $file" $?
done
readelf -d "$libdir/libintake.so.1" | grep -q 'SONAME.*\[libintake.so.1\]'
check "SONAME libintake.so.1" $?
exported=$(nm -D --defined-only "$libdir/libintake.so.1" | awk '{print $3}')
echo "$exported" | grep -qx 'intake_consumer_open' && echo "$exported" | grep -qx 'intake_record_parse'
check "the API is exported" $?
others=$(echo "$exported" | grep -v '^intake_')
[ -z "$others" ]
check "nm -D --defined-only libintake.so.1 lists only intake_* ($(echo "$exported" | wc -l) symbols${others:+; also: $others})" $?
globals=$(nm --defined-only --extern-only "$libdir/libintake.a" | awk 'NF == 3 {print $3}')
others=$(echo "$globals" | grep -v '^intake_')
[ -n "$globals" ] && [ -z "$others" ]
check "libintake.a defines only intake_* globally${others:+ (also: $(echo $others | head -c 300))}" $?

# Each header alone: C11 strict, and C++ (the extern "C" guards, no C-only constructs).
for header in version producer consumer shm_log_format counters_format; do
  printf '#include <intake/%s.h>\nint intake_header_compiles;\n' "$header" >"$work/h.c"
  cc -std=c11 -pedantic -Wall -Wextra -Werror $sanitize_flags -c -I"$prefix/include" "$work/h.c" \
    -o "$work/h.o"
  check "intake/$header.h compiles alone as C11 -pedantic" $?
  cp "$work/h.c" "$work/h.cc"
  c++ -std=c++17 -Wall -Wextra -Werror $sanitize_flags -c -I"$prefix/include" "$work/h.cc" \
    -o "$work/h.o"
  check "intake/$header.h compiles as C++17" $?
done
cat >"$work/linkage.cc" <<'CC'
#include <intake/consumer.h>
#include <intake/producer.h>
#include <cstring>
int main() {
    struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
    static const unsigned char record[] = {0x0a, 0x01, 't', 0x1a, 0x01, 'v'};
    return intake_record_parse(record, sizeof(record), &view) == 0 &&
                   std::strcmp(intake_version(), INTAKE_VERSION_STRING) == 0
               ? 0 : 1;
}
CC
c++ -std=c++17 -Wall -Werror $sanitize_flags "$work/linkage.cc" -o "$work/linkage" \
  $(pkg-config --cflags --libs intake) &&
  LD_LIBRARY_PATH=$libdir "$work/linkage"
check "a C++ program links and calls libintake (extern \"C\")" $?

# The example consumer, three builds.
cp -r "$INTAKE_SOURCE_DIR/examples/c-consumer" "$work/example"
make -C "$work/example" CFLAGS="-O2 -Wall -Wextra -Werror -std=c11 $sanitize_flags" \
  >"$work/make.log" 2>&1
check "examples/c-consumer builds with pkg-config --cflags --libs intake" $?
cmake -S "$work/example" -B "$work/example/build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_FLAGS="$sanitize_flags" \
  >"$work/cmake.log" 2>&1 && cmake --build "$work/example/build" >>"$work/cmake.log" 2>&1
check "examples/c-consumer builds with find_package(intake)" $?
ldd "$work/example/build/consumer-static" | grep -q libintake
[ $? -ne 0 ]
check "consumer-static (intake::intake_static) does not need libintake.so" $?

daemon_start
for n in $(seq 1 50); do echo "line-$n"; done |
  "$prefix/bin/intake-produce" --connect "$address" --topic example --acks >/dev/null 2>&1
check "installed intake-produce sent 50 records with acks" $?
expected=$(for n in $(seq 1 50); do echo "$((n - 1))  line-$n"; done)
for build in example/consumer example/build/consumer example/build/consumer-static; do
  output=$(LD_LIBRARY_PATH=$libdir timeout 20 "$work/$build" example 50 "$shm")
  [ "$output" = "$expected" ]
  check "$build read the 50 records in order" $?
done
daemon_stop

# Our internal names stay inside libintake.a: a program may define the same ones.
cat >"$work/clash.c" <<'C'
#include <stddef.h>
#include <stdint.h>
#include <intake/consumer.h>
/* Names libintake uses inside (its varint code, nanopb's decoder): ours here. */
size_t varint_encode(uint64_t value, uint8_t *out) { (void)value; out[0] = 42; return 1; }
int pb_decode(void) { return 7; }
int main(void) {
    uint8_t byte = 0;
    static const uint8_t record[] = {0x0a, 0x01, 't'};
    struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
    return varint_encode(1, &byte) == 1 && byte == 42 && pb_decode() == 7 &&
                   intake_record_parse(record, sizeof(record), &view) == 0
               ? 0 : 1;
}
C
cc -std=c11 -Wall -Werror $sanitize_flags -I"$prefix/include" "$work/clash.c" "$libdir/libintake.a" \
  -lssl -lcrypto -lpthread \
  -o "$work/clash" && "$work/clash"
check "a program with its own varint_encode and pb_decode links libintake.a" $?
finish
