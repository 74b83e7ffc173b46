#!/usr/bin/env bash
# Integration tests: the pytest suite against the release build, then against the
# AddressSanitizer/UndefinedBehaviorSanitizer build (any sanitizer report fails a test).
set -uo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
rc=0
echo "== integration tests: release build"
NETWALL_BIN=$PWD/build/netwall /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration || rc=1
echo "== integration tests: sanitizer build"
NETWALL_BIN=$PWD/build/asan/netwall NETWALL_SANITIZED=1 \
ASAN_OPTIONS=abort_on_error=0:detect_leaks=1:exitcode=99 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration || rc=1
exit $rc
