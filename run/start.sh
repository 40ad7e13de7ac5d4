#!/bin/sh
# make run: the server in the foreground on the ready configuration in this
# folder, with a test smart host beside it so that mail is seen arriving.
#
#   1. The first time, a self-signed certificate is made with `bridgehead
#      cert selfsign`, so STARTTLS is offered from the start.
#   2. `bridgehead sink` starts in the background on $BRIDGEHEAD_SINK_LISTEN
#      (default 127.0.0.1:2526) with its folder in sink-state/: it writes
#      every message it receives to sink-state/mail/ID.eml and prints one
#      line per message here; its log goes to sink-state/sink.log.  It
#      makes its own self-signed certificate the first time, which the
#      connector in connectors.d/local-sink.conf trusts (tls = verify).
#   3. Once the sink is ready, the server runs in the foreground; when it
#      stops (Ctrl-C), the sink is stopped too.
#
# Usage: start.sh [BINARY]  (default build/bridgehead).  A sink address
# other than the default must match smart_hosts in local-sink.conf.
set -e
bin=${1:-build/bridgehead}
here=$(cd "$(dirname "$0")" && pwd)
conf="$here/bridgehead.conf"
sink_listen=${BRIDGEHEAD_SINK_LISTEN:-127.0.0.1:2526}
sink_dir="$here/sink-state"
sink_pid=

stop_sink() {
	if [ -n "$sink_pid" ]; then
		kill -TERM "$sink_pid" 2>/dev/null || :
		wait "$sink_pid" 2>/dev/null || :
		sink_pid=
	fi
}
trap stop_sink EXIT
# Ctrl-C reaches the server itself, which stops cleanly; the shell lives on
# to stop the sink.  TERM to this shell alone ends it (and the sink).
trap : INT
trap 'exit 143' TERM

if ! "$bin" cert show -c "$conf" >/dev/null 2>&1; then
	echo "make run: no certificate yet; making a self-signed one"
	"$bin" cert selfsign -c "$conf"
fi

mkdir -p "$sink_dir"
"$bin" sink --listen "$sink_listen" --dir "$sink_dir" 2>"$sink_dir/sink.log" &
sink_pid=$!
# Ready once it logged so: it has its certificate and listens.
tries=0
until grep -q "sink ready" "$sink_dir/sink.log" 2>/dev/null; do
	if ! kill -0 "$sink_pid" 2>/dev/null; then
		wait "$sink_pid" 2>/dev/null || :
		sink_pid=
		echo "make run: the sink did not start:" >&2
		cat "$sink_dir/sink.log" >&2
		exit 1
	fi
	tries=$((tries + 1))
	if [ "$tries" -gt 100 ]; then
		echo "make run: the sink is not ready after 10 s; see" \
			"$sink_dir/sink.log" >&2
		exit 1
	fi
	sleep 0.1
done

listen=$(sed -n 's/^address[ 	]*=[ 	]*\([^ 	#]*\).*/\1/p' "$conf" | head -n 1)
cat <<MSG

bridgehead listens on $listen (configuration: $conf).
Its connector local-sink (connectors.d/local-sink.conf) sends all mail over
verified TLS to a test smart host, bridgehead sink on $sink_listen.

Send a message over STARTTLS from another terminal:

  swaks --server $listen --tls --from you@example.org --to user@example.test

The sink prints one line here for each message it receives and writes it to

  $sink_dir/mail/ID.eml

What the relay did with it (received, delivered, deferred, with the TLS
version, cipher and certificate check) is in the tracking log:

  $here/state/log/tracking.jsonl

and anything still waiting is in the queue:

  $bin queue list -c $conf

Stop both with Ctrl-C.

MSG
status=0
"$bin" serve -c "$conf" --foreground || status=$?
exit "$status"
