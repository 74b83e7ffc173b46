#!/bin/sh
# HL7 parser and JSON body throughput: builds bench/parse.c with gcc -O2 against the parser
# and the JSON builder, prints a line of parser MB/s on the test samples and a line of JSON
# MB/s on the samples and on two 1 MiB messages of one wide Z segment (see bench/parse.c).
# Run from anywhere: bench/parse.sh [seconds per mode]
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT="$REPO/build/bench"
mkdir -p "$OUT"
# shellcheck disable=SC2046
gcc -std=c11 -D_GNU_SOURCE -O2 -I"$REPO/src" $(pkg-config --cflags jansson) -o "$OUT/parse" \
	"$REPO/bench/parse.c" "$REPO/src/hl7/hl7.c" "$REPO/src/hl7/hl7json.c" \
	"$REPO/src/core/log.c" "$REPO/src/core/xalloc.c" "$REPO/src/core/utf8.c" "$REPO/src/core/num.c" \
	$(pkg-config --libs jansson) -lpthread
exec "$OUT/parse" "${1:-2}" "$REPO/tests/data"
