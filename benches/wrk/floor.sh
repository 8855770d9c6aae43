#!/usr/bin/env bash
# The floor under the gateway's load target: nginx as a plain reverse proxy
# (keep-alive upstream connections, no logging) in front of the same upstream
# (the built-in simulator) that benches/wrk/gateway.sh uses, measured the same
# way. It shows what forwarding alone costs on this machine: no routing, no
# JSON, no ledger.
#
#   benches/wrk/floor.sh [seconds]
#
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
command -v nginx >/dev/null || { echo "floor.sh needs nginx: apt-get install nginx-light" >&2; exit 1; }
cargo build --release --bin switchboard >/dev/null
target=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
bin=$target/release/switchboard
tmp=$(mktemp -d)
cat >"$tmp/nginx.conf" <<CONF
worker_processes auto;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp;
  proxy_temp_path $tmp;
  upstream sim { server 127.0.0.1:4590; keepalive 128; }
  server {
    listen 127.0.0.1:4570;
    location / { proxy_pass http://sim; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
"$bin" simulate --listen 127.0.0.1:4590 >/dev/null 2>&1 &
sim=$!
nginx -c "$tmp/nginx.conf" -e "$tmp/error.log"
trap 'kill $sim 2>/dev/null; nginx -c "$tmp/nginx.conf" -e "$tmp/error.log" -s stop 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
sleep 1
tick=$(getconf CLK_TCK)
cpu() { local s=0 p; for p in "$@"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $s; }
run() { # name port connections pids...
  local name=$1 port=$2 c=$3 before after out reqs
  shift 3
  before=$(cpu "$@")
  out=$(wrk -t1 -c"$c" -d"${secs}s" --latency -s benches/wrk/openai_chat.lua "http://127.0.0.1:$port/v1/chat/completions")
  after=$(cpu "$@")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  printf '%-22s c=%-3s %9s req/s  p50 %-9s p99 %-9s  server CPU %6s µs/req  non-2xx: %s\n' "$name" "$c" \
    "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(echo "$out" | awk '$1 == "50%" {print $2}')" "$(echo "$out" | awk '$1 == "99%" {print $2}')" \
    "$(awk -v t="$((after - before))" -v k="$tick" -v n="$reqs" 'BEGIN {printf "%.1f", t / k * 1e6 / n}')" \
    "$(echo "$out" | awk '/Non-2xx/ {print $NF}')"
}
workers=$(pgrep -f "nginx: worker" | tr '\n' ' ')
for c in 1 32; do
  run "upstream directly" 4590 "$c" "$sim"
  # shellcheck disable=SC2086
  run "through nginx" 4570 "$c" $workers
done
