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
. benches/wrk/measure.sh
workers=$(pgrep -f "nginx: worker" | tr '\n' ' ')
for c in 1 32; do
  run "upstream directly" http://127.0.0.1:4590/v1/chat/completions benches/wrk/openai_chat.lua "$c" "$sim"
  # shellcheck disable=SC2086
  run "through nginx" http://127.0.0.1:4570/v1/chat/completions benches/wrk/openai_chat.lua "$c" $workers
done
