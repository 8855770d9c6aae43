#!/usr/bin/env bash
# Load benchmark of the routing gateway with wrk: requests per second, CPU per
# request, and the latency the gateway adds over calling the upstream (the
# built-in simulator) directly, at 1 and 32 connections. Routing, quota
# accounting, the rate limiter and the durable SQLite ledger are all on.
#
#   benches/wrk/gateway.sh [seconds] [process|power]
#
# The second argument is the ledger's durability (`serve --ledger-durability`,
# default process). `SWITCHBOARD_BIN=/path/to/switchboard` measures that binary
# instead of building this checkout's `dist` build (for A/B runs of two builds, alternated by
# benches/wrk/ab.sh).
#
# Needs wrk, dbus and gnome-keyring (the platform key goes into a private
# keyring, as in scripts/test). The supplier has a wedding today, so neither its
# quota nor its rate limit refuses the benchmark's traffic; both are still
# accounted on every request.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
durability=${2:-process}
if [ -z "${SWITCHBOARD_BENCH_INNER:-}" ]; then
  [ -n "${SWITCHBOARD_BIN:-}" ] || cargo build --profile dist --bin switchboard >/dev/null
  tmp=$(mktemp -d); mkdir -p "$tmp/data" "$tmp/run"; chmod 700 "$tmp/run"
  export XDG_DATA_HOME="$tmp/data" XDG_RUNTIME_DIR="$tmp/run" SWITCHBOARD_BENCH_INNER="$tmp"
  exec dbus-run-session -- bash -c 'echo -n bench | gnome-keyring-daemon --unlock --components=secrets --daemonize >/dev/null; exec "$0" "$@"' "$0" "$secs" "$durability"
fi
tmp=$SWITCHBOARD_BENCH_INNER
target=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
bin=${SWITCHBOARD_BIN:-$target/dist/switchboard}
db=$tmp/bench.db
"$bin" simulate --listen 127.0.0.1:4590 >/dev/null 2>&1 &
sim=$!
# The database, its WAL (tens of MB) and the private keyring go with the run.
trap 'kill $sim ${gw:-} 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
sleep 1
"$bin" --db "$db" supplier add --name "Bench Studio" --vendor-type photographer --tier enterprise --wedding "$(date -u +%F)" >/dev/null
printf 'sk-sim-openai-platform-000000000001' | "$bin" --db "$db" key add --owner platform --provider openai --base-url http://127.0.0.1:4590 >/dev/null
export GATEWAY_TOKEN=$("$bin" --db "$db" token issue --supplier 1 2>/dev/null)
"$bin" --db "$db" serve --listen 127.0.0.1:4580 --ledger-durability "$durability" >/dev/null 2>&1 &
gw=$!
sleep 2
. benches/wrk/measure.sh
for c in 1 32; do
  run "upstream directly" http://127.0.0.1:4590/v1/chat/completions benches/wrk/openai_chat.lua "$c" "$sim"
  run "through the gateway" http://127.0.0.1:4580/v1/chat/completions benches/wrk/gateway.lua "$c" "$gw"
done
