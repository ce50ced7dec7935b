#!/usr/bin/env bash
# test_python_binding.sh: the Python package as a user installs it, against a real intaked.
#   1. cmake --install into a prefix; a venv (with Debian's site packages: setuptools, wheel,
#      pytest) gets the package with `pip install --no-build-isolation ./bindings/python`, no
#      package index (PIP_NO_INDEX=1), built with -Werror.
#   2. `python -c "import intake"` works, and the loaded library is the installed one.
#   3. bindings/python/tests (pytest) run against the installed intaked.
# intake-test: no-tsan (an instrumented libintake cannot load into the uninstrumented interpreter; it skips in every sanitizer build)
set -uo pipefail
source "$(dirname "$0")/install_util.sh"
skip_when_sanitized "the Python package"
install_tree
$python -m venv --system-site-packages "$work/venv"
check "python3 -m venv --system-site-packages" $?
# From a copy: pip builds in the tree it is given, and a build left there from another
# library would be reused.
cp -r "$INTAKE_SOURCE_DIR/bindings/python" "$work/package"
rm -rf "$work/package/build" "$work/package"/*.egg-info
CFLAGS=-Werror PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$work/venv/bin/python" -m pip \
  install --no-build-isolation "$work/package" >"$work/pip.log" 2>&1
status=$?
[ $status -eq 0 ] || cat "$work/pip.log" >&2
check "pip install --no-build-isolation ./bindings/python (no index)" $status
(cd "$work" && "$work/venv/bin/python" -c "import intake; print(intake.library_version())") \
  >"$work/import.out" 2>&1
check "python -c 'import intake'" $?
grep -qx "$(sed -n 's/^#define INTAKE_VERSION_STRING "\(.*\)"/\1/p' \
  "$INTAKE_SOURCE_DIR/include/intake/version.h")" "$work/import.out"
check "the package loads libintake $(cat "$work/import.out")" $?
extension=$(find "$work/venv" -name '_intake*.so' | head -1)
ldd "$extension" | grep -q "=> $(realpath "$libdir")/libintake.so.1" ||
  { echo "$extension:"; ldd "$extension"; } >&2
ldd "$extension" | grep -q "=> $(realpath "$libdir")/libintake.so.1"
check "the extension runs against the installed libintake.so.1" $?
(cd "$work" && INTAKE_BIN_DIR=$prefix/bin "$work/venv/bin/python" -m pytest -q -p no:cacheprovider \
  "$INTAKE_SOURCE_DIR/bindings/python/tests")
check "pytest bindings/python/tests against a real intaked" $?
finish
