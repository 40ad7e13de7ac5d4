#!/bin/sh
# make run: the server in the foreground on the ready configuration in this
# folder.  The first time, a self-signed certificate is made with
# `bridgehead cert selfsign`, so STARTTLS is offered from the start.
set -e
bin=${1:-build/bridgehead}
here=$(cd "$(dirname "$0")" && pwd)
conf="$here/bridgehead.conf"

if ! "$bin" cert show -c "$conf" >/dev/null 2>&1; then
	echo "make run: no certificate yet; making a self-signed one"
	"$bin" cert selfsign -c "$conf"
fi

cat <<MSG

bridgehead listens on 127.0.0.1:2525 (configuration: $conf).
Send it a message over STARTTLS from another terminal:

  swaks --server 127.0.0.1:2525 --tls --from you@example.org --to user@example.test

then look at the queue:

  $bin queue list -c $conf
  $bin queue show -c $conf ID

Stop the server with Ctrl-C.

MSG
exec "$bin" serve -c "$conf" --foreground
