#!/bin/bash
# scripts/fuzz.sh [SECONDS]: builds every libFuzzer target in tests/fuzz/ with clang into
# build/fuzz/, runs the saved crash inputs in tests/fuzz/regress/<target>/ through their
# target once (regression tests), then fuzzes each target for SECONDS (default 20), two at a
# time, from a copy of its seed corpus tests/fuzz/corpus/<target>/ (the checked-in corpus is
# never written). Logs, the grown corpora and any crash inputs go to build/fuzz/logs/<run>/.
# Exits 0 when nothing was found; otherwise 1, with a line naming the target and the input.
#
# Environment: FUZZ_TARGETS="fuzz_hl7 fuzz_mllp" limits the run to those targets;
# FUZZ_JOBS (default 2) is how many run at once; FUZZ_KEEP (default 5) how many run
# directories are kept under build/fuzz/logs/.
set -u

cd "$(dirname "$0")/.." || exit 2
secs=${1:-20}
case $secs in '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;; esac
[ "$secs" -ge 1 ] || { echo "fuzz.sh: SECONDS must be at least 1" >&2; exit 2; }
jobs=${FUZZ_JOBS:-2}
keep=${FUZZ_KEEP:-5}

die() {
	echo "fuzz.sh: $*" >&2
	exit 2
}

command -v clang >/dev/null 2>&1 ||
	die "clang not found: the fuzz targets need clang with libFuzzer (apt-get install clang)"
command -v pkg-config >/dev/null 2>&1 || die "pkg-config not found (run make deps)"

# The libraries and sources as the Makefile has them, so that the two never drift apart.
PKGS="libevent libevent_openssl libnghttp2 inih openssl sqlite3 libpq libcurl jansson"
LIB_SRC=$(ls src/core/*.c src/wall/*.c src/hl7/*.c src/intake/*.c src/chat/*.c)
LDLIBS=
if mk=$(printf 'fuzz-vars:\n\t@echo "$(PKGS)"\n\t@echo "$(LIB_SRC)"\n\t@echo "$(LDLIBS)"\n' |
	make --no-print-directory -s -f Makefile -f - fuzz-vars 2>/dev/null); then
	PKGS=$(printf '%s\n' "$mk" | sed -n 1p)
	LIB_SRC=$(printf '%s\n' "$mk" | sed -n 2p)
	LDLIBS=$(printf '%s\n' "$mk" | sed -n 3p)
fi
# shellcheck disable=SC2086
PKG_CFLAGS=$(pkg-config --cflags $PKGS) || die "pkg-config: missing libraries (run make deps)"
# shellcheck disable=SC2086
[ -n "$LDLIBS" ] || LDLIBS="$(pkg-config --libs $PKGS) -lpthread -lm" ||
	die "pkg-config: missing libraries (run make deps)"

# The Makefile's fuzz rule: -g -O1 with ASan, UBSan and libFuzzer. The library objects get
# the coverage instrumentation without libFuzzer's main (fuzzer-no-link).
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fno-sanitize-recover=all $PKG_CFLAGS"
SAN=address,undefined
LIBS="$LDLIBS -ldl"
B=build/fuzz
O=$B/obj

# max_len per target: a little over the largest input the parser keeps.
max_len() {
	case $1 in
	fuzz_proxy) echo 600 ;;     # PROXY_V2_MAX is 536
	fuzz_irc) echo 9000 ;;      # 8191 bytes of tags and a 512-byte line
	fuzz_mllp) echo 4096 ;;
	fuzz_hl7) echo 8192 ;;
	fuzz_hl7json) echo 8194 ;;  # two control bytes and a message; the target widens it
	fuzz_conf) echo 4096 ;;
	fuzz_passwd) echo 2048 ;;
	fuzz_sni) echo 17000 ;;     # SNI_HELLO_CAP is 16389
	*) echo 4096 ;;
	esac
}

# -timeout per target: seconds one input may take before libFuzzer calls it a finding.
# fuzz_hl7json widens its input to fields of up to 256 KiB of separators, which a linear
# walk takes in milliseconds and a walk that rescans the field per part in minutes: its
# short limit makes a quadratic path a finding.
time_limit() {
	case $1 in
	fuzz_hl7json) echo 2 ;;
	*) echo 10 ;;
	esac
}

# ---- build ----
mkdir -p "$O" || die "cannot create $O"
flags="$CFLAGS -fsanitize=fuzzer-no-link,$SAN"
if [ "$(cat "$O/flags" 2>/dev/null)" != "$flags" ]; then
	rm -rf "$O" && mkdir -p "$O" && printf '%s\n' "$flags" >"$O/flags"
fi
newest_h=$(ls -t src/*/*.h | head -n 1)
stale=
for c in $LIB_SRC; do
	o=$O/$(echo "$c" | tr / _ | sed 's/\.c$/.o/')
	if [ ! -f "$o" ] || [ "$c" -nt "$o" ] || [ "$newest_h" -nt "$o" ]; then
		stale="$stale $c"
	fi
done
if [ -n "$stale" ]; then
	echo "fuzz.sh: compiling $(echo $stale | wc -w) library sources with clang"
	export O flags
	# shellcheck disable=SC2086
	printf '%s\n' $stale | xargs -P "$jobs" -n 1 sh -c '
		o=$O/$(echo "$1" | tr / _ | sed "s/\.c\$/.o/")
		clang $flags -c "$1" -o "$o.tmp" && mv "$o.tmp" "$o" || { echo "fuzz.sh: compile failed: $1" >&2; exit 255; }' sh ||
		die "building the library objects failed (see above)"
fi
# can this clang link libFuzzer targets at all?
probe=$B/probe
if [ ! -x "$probe" ]; then
	printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' >"$probe.c"
	clang -fsanitize=fuzzer,$SAN -o "$probe" "$probe.c" >/dev/null 2>&1 ||
		die "clang cannot link libFuzzer targets (Debian: apt-get install clang, which brings libclang-rt-dev)"
fi
# only the objects of today's sources: one of a removed source would still be linked
objs=
for c in $LIB_SRC; do objs="$objs $O/$(echo "$c" | tr / _ | sed 's/\.c$/.o/')"; done
targets=
for src in tests/fuzz/fuzz_*.c; do
	t=$(basename "$src" .c)
	if [ -n "${FUZZ_TARGETS:-}" ]; then
		case " $FUZZ_TARGETS " in *" $t "*) ;; *) continue ;; esac
	fi
	targets="$targets $t"
	bin=$B/$t
	relink=no
	[ -f "$bin" ] || relink=yes
	for dep in "$src" tests/fuzz/common.h $objs; do
		[ "$relink" = yes ] && break
		[ "$dep" -nt "$bin" ] && relink=yes
	done
	if [ "$relink" = yes ]; then
		echo "fuzz.sh: linking $bin"
		# shellcheck disable=SC2086
		clang $CFLAGS -fsanitize=fuzzer,$SAN -o "$bin" "$src" $objs $LIBS ||
			die "building $t failed (see above)"
	fi
done
[ -n "$targets" ] || die "no fuzz targets (tests/fuzz/fuzz_*.c; FUZZ_TARGETS=${FUZZ_TARGETS:-})"

# ---- run ----
run=$B/logs/$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$run" || die "cannot create $run"
# keep the last $keep runs
ls -d "$B"/logs/*/ 2>/dev/null | sort | head -n "-$keep" | while read -r old; do
	[ "$old" = "$run/" ] || rm -rf "$old"
done
opts="-rss_limit_mb=2048"
# the targets that read files make their temporary directory under TMPDIR: keep it in the
# run's directory, so that what a crashed target could not remove goes with the logs
mkdir -p "$run/tmp" && export TMPDIR="$PWD/$run/tmp"

# Prints one line about a failed libFuzzer log: what happened and the input it saved.
failure() { # target log what
	kind=$(grep -m 1 -o -E 'check failed: .*|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [A-Za-z-]+( on address| of)?|runtime error: .*|ALARM: working on the last Unit for [0-9]+ seconds|out-of-memory \(used: [0-9]+Mb' "$2" | cut -c 1-120)
	[ -n "$kind" ] || kind="exited with status $(cat "${2%.log}.rc" 2>/dev/null)"
	input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$2" | tail -n 1)
	[ -n "$input" ] || input=$(sed -n 's/^Running: \(.*\)$/\1/p' "$2" | tail -n 1)
	echo "fuzz.sh: FAIL $1 ($3): $kind; input: ${input:-none}; log: $2"
}

fails=0
# (a) regression inputs: each file once, in a process of its own so that each is reported
for t in $targets; do
	dir=tests/fuzz/regress/$t
	[ -d "$dir" ] || continue
	n=0
	bad=0
	for f in $(find "$dir" -type f ! -name '*.md' | sort); do
		n=$((n + 1))
		log=$run/$t.regress-$(basename "$f").log
		# shellcheck disable=SC2086
		if ! "$B/$t" $opts -timeout="$(time_limit "$t")" -runs=1 "$f" >"$log" 2>&1; then
			echo $? >"${log%.log}.rc"
			failure "$t" "$log" regression
			bad=$((bad + 1))
		fi
	done
	[ "$n" -eq 0 ] || echo "fuzz.sh: $t: $((n - bad)) of $n regression inputs pass"
	fails=$((fails + bad))
done

# (b) fuzzing: $jobs lanes, each running its share of the targets one after another
fuzz_one() { # target
	t=$1
	corpus=$run/corpus/$t
	mkdir -p "$corpus"
	[ -d "tests/fuzz/corpus/$t" ] && cp -R "tests/fuzz/corpus/$t/." "$corpus/"
	dict=
	[ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
	# shellcheck disable=SC2086
	"$B/$t" $opts -timeout="$(time_limit "$t")" -max_len="$(max_len "$t")" \
		-max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$run/$t-" $dict "$corpus" >"$run/$t.log" 2>&1 &
	echo $! >"$run/$t.pid"
	wait $!
	echo $? >"$run/$t.rc"
	rm -f "$run/$t.pid"
}
stop() {
	for f in "$run"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
	kill $lanes 2>/dev/null
	echo "fuzz.sh: interrupted; logs in $run" >&2
	exit 130
}
echo "fuzz.sh: fuzzing$targets for ${secs}s each, $jobs at a time; logs in $run"
lane=0
lanes=
trap stop INT TERM
while [ "$lane" -lt "$jobs" ]; do
	(
		trap - INT TERM
		i=0
		for t in $targets; do
			[ $((i % jobs)) -eq "$lane" ] && fuzz_one "$t"
			i=$((i + 1))
		done
	) &
	lanes="$lanes $!"
	lane=$((lane + 1))
done
wait

for t in $targets; do
	log=$run/$t.log
	rc=$(cat "$run/$t.rc" 2>/dev/null || echo '?')
	fstat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
	cov=$(grep -o -E 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n 1)
	seeds=$(find "tests/fuzz/corpus/$t" -type f 2>/dev/null | wc -l)
	printf 'fuzz.sh: %-12s %s: %s runs, %s/s, %s, %s seeds, %s new units, peak %s MB\n' \
		"$t" "$([ "$rc" = 0 ] && echo ok || echo FAIL)" "$(fstat number_of_executed_units)" \
		"$(fstat average_exec_per_sec)" "${cov:-no coverage line}" "$seeds" \
		"$(fstat new_units_added)" "$(fstat peak_rss_mb)"
done
for t in $targets; do
	rc=$(cat "$run/$t.rc" 2>/dev/null || echo '?')
	if [ "$rc" != 0 ]; then
		failure "$t" "$run/$t.log" fuzzing
		fails=$((fails + 1))
	fi
done
if [ "$fails" -ne 0 ]; then
	echo "fuzz.sh: $fails failure(s); save each input under tests/fuzz/regress/<target>/ once understood"
	exit 1
fi
echo "fuzz.sh: all $(echo $targets | wc -w) targets ok (${secs}s each); logs in $run"
