#!/usr/bin/env bash
# The response cache under load (issue 26), with wrk: the latency and CPU of a
# cache hit against a miss, at 1 and 32 connections, and the cache's memory
# under a load of distinct requests (its byte bound, the process's RSS).
#
#   benches/wrk/cache.sh [seconds] [cache memory MiB]
#
# A hit: the same deterministic request again and again (cache_hit.lua). A
# miss: deterministic requests that all differ (cache_miss.lua): each is
# looked up, sent to the simulator, and its answer kept — in memory (bounded
# by --cache-memory-mb, 4 MiB by default here so that a short run passes the
# bound) and in the database. Routing, quota accounting, the rate limiter and
# the usage ledger are on for both. `SWITCHBOARD_BIN=/path/to/switchboard`
# measures that binary instead of building this checkout's `dist` build.
#
# Needs wrk, dbus and gnome-keyring (the platform key goes into a private
# keyring, as in scripts/test). The supplier has a wedding today, so neither
# its quota nor its rate limit refuses the traffic.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
cache_mb=${2:-4}
if [ -z "${SWITCHBOARD_BENCH_INNER:-}" ]; then
  [ -n "${SWITCHBOARD_BIN:-}" ] || cargo build --profile dist --bin switchboard >/dev/null
  tmp=$(mktemp -d); mkdir -p "$tmp/data" "$tmp/run"; chmod 700 "$tmp/run"
  export XDG_DATA_HOME="$tmp/data" XDG_RUNTIME_DIR="$tmp/run" SWITCHBOARD_BENCH_INNER="$tmp"
  exec dbus-run-session -- bash -c 'echo -n bench | gnome-keyring-daemon --unlock --components=secrets --daemonize >/dev/null; exec "$0" "$@"' "$0" "$secs" "$cache_mb"
fi
tmp=$SWITCHBOARD_BENCH_INNER
target=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
bin=${SWITCHBOARD_BIN:-$target/dist/switchboard}
db=$tmp/bench.db
"$bin" simulate --listen 127.0.0.1:4591 >/dev/null 2>&1 &
sim=$!
trap 'kill $sim ${gw:-} 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
sleep 1
"$bin" --db "$db" supplier add --name "Bench Studio" --vendor-type photographer --tier enterprise --wedding "$(date -u +%F)" >/dev/null
printf 'sk-sim-openai-platform-000000000001' | "$bin" --db "$db" key add --owner platform --provider openai --base-url http://127.0.0.1:4591 >/dev/null
export GATEWAY_TOKEN=$("$bin" --db "$db" token issue --supplier 1 2>/dev/null)
"$bin" --db "$db" serve --listen 127.0.0.1:4581 --cache-memory-mb "$cache_mb" >/dev/null 2>&1 &
gw=$!
sleep 2
url=http://127.0.0.1:4581/v1/chat/completions
metric() { curl -s http://127.0.0.1:4581/metrics | awk -v m="$1" '$1 == m {print $2}'; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$gw/status"; }
# The hit's answer is in the cache before the first run (and says so).
hit_body=$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" benches/wrk/cache_hit.lua)
for want in miss hit; do
  got=$(curl -s -o /dev/null -D - -H "Authorization: Bearer $GATEWAY_TOKEN" -H 'Content-Type: application/json' -d "$hit_body" "$url" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "x-switchboard-cache" {print $2}')
  [ "$got" = "$want" ] || { echo "expected x-switchboard-cache: $want, got '$got'" >&2; exit 1; }
done
. benches/wrk/measure.sh
rss0=$(rss_kib)
for c in 1 32; do
  run "cache hit" "$url" benches/wrk/cache_hit.lua "$c" "$gw"
  run "cache miss (distinct)" "$url" benches/wrk/cache_miss.lua "$c" "$gw"
done
hits=$(metric switchboard_cache_hits_total)
misses=$(metric switchboard_cache_misses_total)
mem=$(metric switchboard_cache_memory_bytes)
limit=$(metric switchboard_cache_memory_limit_bytes)
entries=$(metric switchboard_cache_memory_entries)
sleep 1 # the database writes of the last answers
disk=$(metric switchboard_cache_persistent_bytes)
printf 'cache: %s hits, %s misses; memory %s of %s bytes (%s answers, %s); database %s bytes; RSS %s → %s KiB\n' \
  "$hits" "$misses" "$mem" "$limit" "$entries" "$([ "$mem" -le "$limit" ] && echo 'within the bound' || echo 'OVER THE BOUND')" \
  "$disk" "$rss0" "$(rss_kib)"
[ "$mem" -le "$limit" ]
