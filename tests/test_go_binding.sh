#!/usr/bin/env bash
# test_go_binding.sh: the Go module (bindings/go, intake.dev/intake) with Debian's Go, cgo over
# the installed libintake, no module downloads (GOPROXY=off), cgo's pointer checks at their
# strictest (GODEBUG=cgocheck=2): go vet, then go test against a real intaked, and
# examples/go-producer built and run against it too.
# intake-test: no-tsan (an instrumented libintake cannot load into an uninstrumented Go binary; it skips in every sanitizer build)
set -uo pipefail
source "$(dirname "$0")/install_util.sh"
skip_when_sanitized "the Go module"
command -v go >/dev/null || { echo "FAILED: go is not installed (scripts/setup: golang-go)"; exit 1; }
install_tree
export GOPROXY=off GOFLAGS=-mod=readonly GOPATH=$work/gopath GOCACHE=$INTAKE_BIN_DIR/go-cache
export CGO_LDFLAGS="-Wl,-rpath,$libdir"
cd "$INTAKE_SOURCE_DIR/bindings/go"
go vet ./... >"$work/vet.log" 2>&1
status=$?
[ $status -eq 0 ] || cat "$work/vet.log" >&2
check "go vet ./..." $status
INTAKE_BIN_DIR=$prefix/bin GODEBUG=cgocheck=2 go test -count=1 -v ./... 2>&1 | tee "$work/go-test.log"
check "go test ./... against a real intaked" "${PIPESTATUS[0]}"

cd "$INTAKE_SOURCE_DIR/examples/go-producer"
go build -o "$work/go-producer" . >"$work/build.log" 2>&1
status=$?
[ $status -eq 0 ] || cat "$work/build.log" >&2
check "examples/go-producer builds" $status
daemon_start
"$work/go-producer" -address "$address" -topic go-example -count 20 >"$work/producer.out" 2>&1
check "examples/go-producer sent 20 records, all acknowledged" $?
output=$(LD_LIBRARY_PATH=$libdir "$prefix/bin/intake-tail" --shm-dir "$shm" --topic go-example \
  --from-start --format text | sed 's/.* value=//' | tr '\n' ' ')
expected=$(for n in $(seq 0 19); do printf 'hello %d ' "$n"; done)
[ "$output" = "$expected" ]
check "intake-tail reads the Go producer's 20 records in order" $?
daemon_stop
finish
