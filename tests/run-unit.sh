#!/bin/sh
# Runs every cmocka unit test binary given as an argument; fails if any fails.
status=0
for t in "$@"; do
	if ! "$t" >"$t.log" 2>&1; then
		echo "FAIL $t"; cat "$t.log"; status=1
	else
		echo "ok   $t"
	fi
done
exit $status
