#!/usr/bin/env bash
# Measures the provider simulator with wrk: requests per second, and the
# server's own CPU time per request (from /proc), which does not depend on what
# else the machine is doing. Usage: benches/wrk/run.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
bin=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)/release/examples/sim_server
cargo build --release --example sim_server >/dev/null
"$bin" --listen 127.0.0.1:4490 >/dev/null &
pid=$!
trap 'kill $pid' EXIT
sleep 1
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
for s in openai_chat:/v1/chat/completions openai_stream:/v1/chat/completions anthropic_messages:/v1/messages \
  "azure_chat:/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"; do
  name=${s%%:*}
  path=${s#*:}
  before=$(cpu)
  out=$(wrk -t1 -c32 -d"${secs}s" -s "benches/wrk/$name.lua" "http://127.0.0.1:4490$path")
  after=$(cpu)
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '/Latency/ {print $2}')
  errs=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  us=$(awk -v t="$((after - before))" -v k="$tick" -v n="$reqs" 'BEGIN {printf "%.1f", t / k * 1e6 / n}')
  per_core=$(awk -v u="$us" 'BEGIN {printf "%.0f", 1e6 / u}')
  printf '%-20s %9s req/s  avg latency %-8s  server CPU %6s µs/req (= %s req/s per core)  non-2xx: %s  load: %s\n' \
    "$name" "$rps" "$p50" "$us" "$per_core" "${errs:-0}" "$(cut -d' ' -f1 /proc/loadavg)"
done
