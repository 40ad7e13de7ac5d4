#!/bin/sh
# Builds the libFuzzer harnesses of the SMTP parsers (tests/fuzz/fuzz_*.c)
# with clang, AddressSanitizer and UBSan, against src/smtp and src/util,
# into build-fuzz/ (or $OUT).  With "run [SECONDS]" it then runs each one
# for SECONDS (default 60) on its seed corpus tests/fuzz/corpus/NAME/;
# new inputs go to OUT/corpus/NAME/, crashes to OUT/crash-NAME-*.
#
#   tests/fuzz/build.sh              build only
#   tests/fuzz/build.sh run 60       build, then fuzz each harness 60 s
#   tests/fuzz/build.sh run 60 fuzz_datadec    just one harness
set -eu

cd "$(dirname "$0")/../.."
CC=${CC:-clang-14}
OUT=${OUT:-build-fuzz}
CFLAGS="-std=c17 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror \
 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 -D_GNU_SOURCE -Isrc"
HARNESSES="fuzz_line fuzz_address fuzz_command fuzz_datadec fuzz_msghdr \
 fuzz_reply"

srcs=""
for f in src/smtp/*.c src/util/log.c; do
	case "$f" in *_test.c) continue ;; esac
	srcs="$srcs $f"
done

mkdir -p "$OUT"
for h in $HARNESSES; do
	echo "CC $OUT/$h"
	# shellcheck disable=SC2086
	$CC $CFLAGS -o "$OUT/$h" "tests/fuzz/$h.c" $srcs
done

[ "${1:-}" = run ] || exit 0
secs=${2:-60}
[ $# -ge 3 ] && HARNESSES=$3
status=0
for h in $HARNESSES; do
	mkdir -p "$OUT/corpus/$h"
	echo "fuzzing $h for ${secs}s"
	if ! "$OUT/$h" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$OUT/crash-$h-" \
		"$OUT/corpus/$h" "tests/fuzz/corpus/$h" >"$OUT/$h.log" 2>&1; then
		echo "FAIL $h (see $OUT/$h.log)"; status=1
	else
		grep -E '^stat::(number_of_executed_units|new_units_added)' \
			"$OUT/$h.log" | sed "s/^/  /"
	fi
done
exit $status
