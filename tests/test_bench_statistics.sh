#!/usr/bin/env bash
# test_bench_statistics.sh: bench/run's statistics (medians, counts, ratios, the closing lines
# and intake_vs_floor_cycles) over a raw file whose answers are known by hand
# (tests/bench_statistics_check.py). Not a performance test: nothing here is measured.
# intake-test: no-tsan (pure Python over a fixed file, no threads of ours)
set -euo pipefail
: "${INTAKE_SOURCE_DIR:?set by ctest}"
exec /usr/bin/python3 "$INTAKE_SOURCE_DIR/tests/bench_statistics_check.py"
