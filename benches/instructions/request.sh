#!/usr/bin/env bash
# Instructions a lone request costs the gateway, counted by callgrind: a
# repeatable figure (the same binary and load give the same count within a
# fraction of a percent, whatever else the machine does), for changes of a
# microsecond or two that `floor.sh`'s wall-clock rounds cannot resolve.
#
#   benches/instructions/request.sh [requests] NAME=BINARY [SERVE_ARGS...]...
#   benches/instructions/request.sh 2000 "before=/tmp/sb-before" "after=target/dist/switchboard"
#   benches/instructions/request.sh 2000 "on=target/dist/switchboard" "off=target/dist/switchboard --busy-poll-us 0"
#
# Each variant is `switchboard serve --lanes 1` under `valgrind
# --tool=callgrind --separate-threads=yes`, in front of a canned nginx
# upstream (as in benches/wrk/floor.sh: one enterprise supplier with a wedding
# today, a platform OpenAI key in a private keyring, routing, quotas, the rate
# limiter and the journal all on). 300 requests warm it up, the counters are
# zeroed, then `requests` plain chat completions go one after another over
# one keep-alive connection (`SWITCHBOARD_BENCH_KEYED=1`: each with a fresh
# `Idempotency-Key`). The output is Markdown: per variant the instructions per
# request on the lane (the request's own path), on the fold thread (the
# journal into SQLite, off the path) and on every other thread, each variant
# against the first, and the lane's costliest functions (exclusive) with
# their callers, so a change shows where it saved. A variant whose name
# starts with `bare` is the hyper floor (examples/bare_proxy.rs with
# `--collect`; BINARY is target/dist/examples/bare_proxy), for how much of a
# request is the HTTP stack's. Busy polling (on by default since 2026-12-05)
# counts its polling on the lane too (~4 % more there, 2026-12-05): add
# `--busy-poll-us 0` to a variant to count the request's path alone. `SWITCHBOARD_BENCH_KEEP=DIR`
# keeps the callgrind files (one per thread; `callgrind_annotate` reads them),
# `SWITCHBOARD_BENCH_TOP=N` lists N functions (20).
#
# Needs valgrind, nginx (`apt-get install valgrind nginx-light`), dbus,
# gnome-keyring and python3. Port 4581 (upstream) and 4582 on loopback.
# Valgrind reports the processor without SHA extensions, so SHA-256 counts
# its software rounds (~3,600 instructions a digest) where the real run uses
# the CPU's instructions; read those lines accordingly.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${SWITCHBOARD_BENCH_INNER:-}" ]; then
  for c in valgrind callgrind_control nginx; do
    command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || { echo "request.sh needs $c: apt-get install valgrind nginx-light" >&2; exit 1; }
  done
  tmp=$(mktemp -d); mkdir -p "$tmp/data" "$tmp/run"; chmod 700 "$tmp/run"
  export XDG_DATA_HOME="$tmp/data" XDG_RUNTIME_DIR="$tmp/run" SWITCHBOARD_BENCH_INNER="$tmp"
  exec dbus-run-session -- bash -c 'echo -n bench | gnome-keyring-daemon --unlock --components=secrets --daemonize >/dev/null; exec "$0" "$@"' "$0" "$@"
fi
tmp=$SWITCHBOARD_BENCH_INNER
requests=${1:-2000}
shift
[ $# -gt 0 ] || { echo "usage: $0 [requests] NAME=BINARY..." >&2; exit 2; }
nginx=$(command -v nginx || echo /usr/sbin/nginx)
up=127.0.0.1:4581 port=4582
answer='{"id":"chatcmpl-bench","object":"chat.completion","created":1764720000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Book the venue early, plan for April showers and pick seasonal flowers.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":14,"completion_tokens":16,"total_tokens":30},"system_fingerprint":"fp_bench"}'
mkdir -p "$tmp/up"
cat >"$tmp/up/nginx.conf" <<CONF
worker_processes 1;
user $(id -un) $(id -gn);
pid $tmp/up/nginx.pid;
error_log $tmp/up/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/up;
  server { listen $up; keepalive_requests 1000000; location / { default_type application/json; return 200 '$answer'; } }
}
CONF
"$nginx" -c "$tmp/up/nginx.conf" -e "$tmp/up/error.log"
vg=
cleanup() {
  [ -n "$vg" ] && kill "$vg" 2>/dev/null && wait "$vg" 2>/dev/null
  "$nginx" -c "$tmp/up/nginx.conf" -e "$tmp/up/error.log" -s stop 2>/dev/null || true
  [ -n "${SWITCHBOARD_BENCH_KEEP:-}" ] && mkdir -p "$SWITCHBOARD_BENCH_KEEP" && cp "$tmp"/out/* "$SWITCHBOARD_BENCH_KEEP"/
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/out"
for spec in "$@"; do
  name=${spec%%=*}
  read -r -a cmd <<<"${spec#*=}"
  bin=${cmd[0]}
  if [ "${name#bare}" != "$name" ]; then
    # The hyper floor (examples/bare_proxy.rs, from `cargo build --profile
    # dist --example bare_proxy`): no database, no token.
    token=none
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$tmp/out/$name.%p" \
      "$bin" --listen "127.0.0.1:$port" --upstream "http://$up" --lanes 1 --collect "${cmd[@]:1}" >"$tmp/$name.log" 2>&1 &
  else
    db=$tmp/$name.db
    "$bin" --db "$db" supplier add --name "Bench Studio" --vendor-type photographer --tier enterprise --wedding "$(date -u +%F)" >/dev/null
    printf 'sk-bench-openai-platform-000000000001' | "$bin" --db "$db" key add --owner platform --provider openai --base-url "http://$up" >/dev/null
    token=$("$bin" --db "$db" token issue --supplier 1 2>/dev/null)
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$tmp/out/$name.%p" \
      "$bin" --db "$db" serve --listen "127.0.0.1:$port" --lanes 1 "${cmd[@]:1}" >"$tmp/$name.log" 2>&1 &
  fi
  vg=$!
  python3 - "$token" "$requests" "$port" "$vg" <<'PY'
import http.client, subprocess, sys, time, uuid, os
token, n, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Plan a spring wedding in Kent"}],"max_tokens":64}'
keyed = os.environ.get("SWITCHBOARD_BENCH_KEYED")
deadline = time.time() + 300
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.connect()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("the gateway under valgrind did not answer in 300 s")
        time.sleep(0.5)
def run(k):
    for _ in range(k):
        h = {"Content-Type": "application/json", "Authorization": "Bearer " + token}
        if keyed:
            h["Idempotency-Key"] = str(uuid.uuid4())
        c.request("POST", "/v1/chat/completions", body, h)
        r = c.getresponse()
        d = r.read()
        if r.status != 200:
            sys.exit(f"status {r.status}: {d[:200]!r}")
run(300)
subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
run(n)
subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
PY
  kill "$vg"; wait "$vg" 2>/dev/null || true; vg=
  echo "counted $name: $requests requests" >&2
done
python3 benches/instructions/summary.py "$tmp/out" "$requests" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" "$@"
