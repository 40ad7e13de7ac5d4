#!/bin/sh
# Rejected configurations: every NN-name.conf (or NN-name/ folder holding
# bridgehead.conf and connectors.d/) must make `BIN config check -c FILE`
# exit 2 with nothing on stdout and one line on stderr that contains the
# text of NN-name.expect, in which @FILE@ stands for the file given with -c
# and @DIR@ for its folder.  Every good-*.conf must pass with exit 0.
#
# usage: tests/bad-configs/run.sh BIN
# Prints ok/FAIL per case; exits 1 if any case failed, 2 on usage errors.

if [ $# -ne 1 ]; then
	echo "usage: $0 BIN" >&2
	exit 2
fi
bin=$1
case $bin in
/*) ;;
*) bin=$(pwd)/$bin ;;
esac
if [ ! -x "$bin" ]; then
	echo "$0: $bin is not an executable" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bad-configs.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' HUP INT TERM
unset BRIDGEHEAD_CONFIG

failed=0
total=0

# The expected text with @FILE@ and @DIR@ replaced (no sed: paths may
# hold any character sed would read as special).
expected() {
	awk -v file="$2" -v dir="$3" '
		function subst(s, key, val,    i, out) {
			out = ""
			while ((i = index(s, key)) > 0) {
				out = out substr(s, 1, i - 1) val
				s = substr(s, i + length(key))
			}
			return out s
		}
		NF > 0 { print subst(subst($0, "@FILE@", file), "@DIR@", dir); exit }
	' "$1"
}

fail() {
	echo "FAIL $name: $*"
	failed=$((failed + 1))
}

for expect in "$here"/[0-9]*.expect; do
	[ -e "$expect" ] || continue
	total=$((total + 1))
	case_path=${expect%.expect}
	name=${case_path##*/}
	if [ -d "$case_path" ]; then
		dir=$case_path
		file=$case_path/bridgehead.conf
	else
		dir=$here
		file=$case_path.conf
	fi
	if [ ! -f "$file" ]; then
		fail "no $file"
		continue
	fi
	want=$(expected "$expect" "$file" "$dir")
	"$bin" config check -c "$file" >"$tmp/out" 2>"$tmp/err"
	status=$?
	lines=$(wc -l <"$tmp/err")
	if [ "$status" -ne 2 ]; then
		fail "exit status $status, want 2"
	elif [ -s "$tmp/out" ]; then
		fail "stdout is not empty"
	elif [ "$lines" -ne 1 ]; then
		fail "want one line on stderr, got $lines: $(cat "$tmp/err")"
	elif ! grep -F -q -e "$want" "$tmp/err"; then
		fail "got \"$(cat "$tmp/err")\", want \"$want\""
	else
		echo "ok   $name"
	fi
done

for file in "$here"/good-*.conf; do
	[ -e "$file" ] || continue
	total=$((total + 1))
	name=${file##*/}
	"$bin" config check -c "$file" >"$tmp/out" 2>"$tmp/err"
	status=$?
	if [ "$status" -ne 0 ]; then
		fail "exit status $status, want 0: $(cat "$tmp/err")"
	elif [ -s "$tmp/err" ]; then
		fail "stderr is not empty: $(cat "$tmp/err")"
	elif ! grep -q '^\[listener ' "$tmp/out"; then
		fail "the effective configuration has no listener"
	else
		# The printout is a configuration too: it must load again.
		cp "$tmp/out" "$tmp/printed.conf"
		if ! "$bin" config check -c "$tmp/printed.conf" >"$tmp/out2" \
			2>"$tmp/err"; then
			fail "its printout does not load: $(cat "$tmp/err")"
		else
			echo "ok   $name"
		fi
	fi
done

if [ "$total" -eq 0 ]; then
	echo "FAIL: no cases found in $here"
	exit 1
fi
echo "bad-configs: $((total - failed))/$total ok"
[ "$failed" -eq 0 ]
