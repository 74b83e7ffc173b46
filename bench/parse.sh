#!/bin/sh
# HL7 parser throughput on the test samples: builds bench/parse.c with gcc -O2 against the
# parser and prints one line of MB/s. Run from anywhere: bench/parse.sh [seconds per mode]
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT="$REPO/build/bench"
mkdir -p "$OUT"
gcc -std=c11 -D_GNU_SOURCE -O2 -I"$REPO/src" -o "$OUT/parse" \
	"$REPO/bench/parse.c" "$REPO/src/hl7/hl7.c" "$REPO/src/core/log.c"
exec "$OUT/parse" "${1:-2}" "$REPO/tests/data"
