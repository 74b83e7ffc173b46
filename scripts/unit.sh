#!/bin/sh
# Runs cmocka unit test binaries, shows what each prints, and counts their test cases.
# Usage: scripts/unit.sh BINARY...
# The last line printed is "N passed, M failed". The exit status is non-zero if any test
# case failed, or any binary crashed, timed out, or exited non-zero after its tests (a
# sanitizer report at exit, say). UNIT_TIMEOUT (seconds, default 300) bounds each binary.
set -u

if [ $# -eq 0 ]; then
	echo "usage: $0 TEST_BINARY..." >&2
	exit 2
fi

limit=${UNIT_TIMEOUT:-300}
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
broken=0

for bin in "$@"; do
	echo "==> $bin"
	if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
		echo "unit: $bin: no such executable"
		echo
		failed=$((failed + 1))
		broken=$((broken + 1))
		continue
	fi
	# cmocka writes progress to stdout and results to stderr; stdout is block-buffered
	# into a file, so the two are kept apart to keep every line whole.
	if command -v timeout >/dev/null 2>&1; then
		timeout -k 10 "$limit" "$bin" </dev/null >"$tmp/out" 2>"$tmp/err"
	else
		"$bin" </dev/null >"$tmp/out" 2>"$tmp/err"
	fi
	rc=$?
	cat "$tmp/out" "$tmp/err"
	# tests planned in all groups, groups started and finished, then passed, skipped and
	# failed as cmocka's summaries count them
	counts=$(awk '
		FILENAME == ARGV[1] && /^\[==========\] Running [0-9]+ test\(s\)\./ {
			run += $3; groups++
		}
		FILENAME == ARGV[1] && /^\[==========\] [0-9]+ test\(s\) run\./ { finished++ }
		FILENAME == ARGV[2] && /^\[  PASSED  \] [0-9]+ test\(s\)\./ { ok += $4 }
		FILENAME == ARGV[2] && /^\[  SKIPPED \] [0-9]+ test\(s\)/ { skip += $4 }
		FILENAME == ARGV[2] && /^\[  FAILED  \] [0-9]+ test\(s\)/ { bad += $4 }
		END { printf "%d %d %d %d %d %d\n", run, groups, finished, ok, skip, bad }
	' "$tmp/out" "$tmp/err")
	read -r run groups finished ok skip bad <<EOF
$counts
EOF
	# Tests that errored (a failed setup) or never finished are neither passed nor skipped.
	missing=$((run - ok - skip))
	[ "$missing" -gt "$bad" ] && bad=$missing
	note=""
	if [ "$rc" -eq 124 ]; then
		note="timed out after ${limit}s"
	elif [ "$rc" -gt 128 ]; then
		note="killed by signal $((rc - 128))"
	elif [ "$finished" -lt "$groups" ]; then
		note="stopped before its tests finished (status $rc)"
	elif [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		note="exited with status $rc"
	elif [ "$run" -eq 0 ]; then
		note="ran no tests"
	fi
	if [ -n "$note" ]; then
		echo "unit: $bin: $note"
		broken=$((broken + 1))
		# whatever did not report cannot count as passed; at least one failure is charged
		[ "$bad" -eq 0 ] && bad=1
	fi
	if [ "$skip" -gt 0 ]; then
		echo "unit: $bin: $skip skipped"
	fi
	passed=$((passed + ok))
	failed=$((failed + bad))
	echo
done

[ "$broken" -gt 0 ] && echo "unit: $broken binary(ies) crashed, timed out or could not run"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$broken" -eq 0 ]
