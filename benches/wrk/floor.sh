#!/usr/bin/env bash
# The gateway against the forwarding floor (issue 22's "How to measure"), in one
# command that prints the Markdown BENCHMARKS.md takes.
#
#   benches/wrk/floor.sh [seconds] [rounds] [NAME=BINARY [SERVE_ARGS...]]...
#
# - The upstream is nginx itself answering every request with a canned OpenAI
#   `chat.completion` that carries `usage`: a fixed answer, far faster than
#   either proxy, so the upstream is not the bottleneck (the table shows its own
#   requests per second at 32 connections).
# - The floor is a second nginx as a plain reverse proxy in front of it, with a
#   keep-alive upstream pool and no logging.
# - Each gateway variant is `switchboard serve` (the `dist` build, process
#   durability by default) in front of the same upstream: one enterprise supplier
#   on a platform OpenAI account whose base URL is the canned upstream, routing,
#   quotas, the rate limiter and the ledger all on. The supplier has a wedding
#   today, so neither its quota nor its rate limit refuses the traffic, but both
#   are accounted on every request, and every request is a usage row.
# - Each round measures nginx and every variant, alternating which goes first:
#   at one connection (the upstream alone right before, for the added latency),
#   and at 32 connections; each gateway both without and with a fresh
#   `Idempotency-Key` per request (with one, an idempotency record is written
#   and completed on every request).
# - The summary gives, per variant, the median over the rounds of each round's
#   gateway ÷ nginx ratio, against the issue's targets.
#
# Without variants it measures this checkout's `dist` build (the shipped
# profile: `--release` with link-time optimisation; built first), or
# `SWITCHBOARD_BIN` when set. Variants compare builds or flags in the same
# alternation (benches/wrk/ab.sh is `floor.sh` with two builds), e.g.
#   benches/wrk/floor.sh 8 3 "1-lane=$bin --lanes 1" "2-lanes=$bin --lanes 2"
# A variant whose name starts with `pg` runs on PostgreSQL (issue 25): a private
# cluster is started (Debian's postgresql 15, as scripts/test does; fsync on),
# the variant gets its own database, a fleet key (`fleet init --key-file`) and
# `serve --database URL --fleet-dir DIR`, e.g.
#   benches/wrk/floor.sh 8 3 "sqlite=$bin" "pg=$bin"
# (the supplier has a wedding today in both: its quota does not refuse the
# load, but on PostgreSQL every platform request is still reserved from and
# debited to the instance's quota lease, and folded into PostgreSQL).
# `SWITCHBOARD_BENCH_SUPPLIERS=N` (N > 1) instead gives every variant N
# enterprise suppliers with no wedding today and spreads the requests over
# their N tokens (round robin), so that each supplier's quota and rate limit
# (6,000 a minute) are enforced, not bypassed, and on PostgreSQL its quota
# lease is topped up and shrunk as it runs; pick N so that N × 100 req/s is
# well above the load (e.g. 500).
# A variant whose name starts with `bare` is the hyper floor: a plain reverse
# proxy on the gateway's HTTP stack and lanes, doing nothing else
# (`examples/bare_proxy.rs`; BINARY is target/dist/examples/bare_proxy, from
# `cargo build --profile dist --example bare_proxy`, its
# ARGS e.g. `--collect`), measured without the Idempotency-Key runs, e.g.
#   floor.sh 8 3 "gateway=target/dist/switchboard" "bare=target/dist/examples/bare_proxy"
# `SWITCHBOARD_DURABILITY=power` measures `serve --ledger-durability power`;
# `SWITCHBOARD_BENCH_PERF=FILE` also profiles the first variant (see below;
# with `SWITCHBOARD_BENCH_PERF_KEYED=1` its requests carry an Idempotency-Key,
# with `SWITCHBOARD_BENCH_PERF_CONNS=N` it is profiled under N connections;
# `SWITCHBOARD_BENCH_PERF_GRAPH="--call-graph dwarf"` replaces perf's `-g`,
# `SWITCHBOARD_BENCH_PERF_RATE` its `-F 2999`, e.g. with
# `SWITCHBOARD_BENCH_PERF_RATE="-c 1" SWITCHBOARD_BENCH_PERF_GRAPH="-e sched:sched_switch -g"`
# every context switch is recorded with its stack).
# `SWITCHBOARD_BENCH_PERF_ALL=1` records every CPU (`perf record -a`, e.g. the
# scheduler's events of wrk, nginx and the gateway together), and
# `SWITCHBOARD_BENCH_PERF_NGINX=1` sends the profiled load through the nginx
# proxy instead of the gateway.
# `SWITCHBOARD_BENCH_TRACE=DIR` traces its slow moments at one connection (below);
# `SWITCHBOARD_BENCH_SYSCALLS=DIR` counts every variant's system calls per thread (below).
#
# Needs wrk, nginx (`apt-get install wrk nginx-light`), dbus, gnome-keyring
# (the platform key goes into a private keyring, as in scripts/test) and
# python3 (the summary). Ports 4570–4579 on loopback.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-8}
rounds=${2:-3}
shift $(($# < 2 ? $# : 2))
durability=${SWITCHBOARD_DURABILITY:-process}
suppliers=${SWITCHBOARD_BENCH_SUPPLIERS:-1}
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "floor.sh needs nginx: apt-get install nginx-light" >&2; exit 1; }
command -v wrk >/dev/null || { echo "floor.sh needs wrk: apt-get install wrk" >&2; exit 1; }
if [ -z "${SWITCHBOARD_BENCH_INNER:-}" ]; then
  if [ $# -eq 0 ] && [ -z "${SWITCHBOARD_BIN:-}" ]; then
    cargo build --profile dist --bin switchboard >/dev/null
  fi
  tmp=$(mktemp -d); mkdir -p "$tmp/data" "$tmp/run"; chmod 700 "$tmp/run"
  export XDG_DATA_HOME="$tmp/data" XDG_RUNTIME_DIR="$tmp/run" SWITCHBOARD_BENCH_INNER="$tmp"
  exec dbus-run-session -- bash -c 'echo -n bench | gnome-keyring-daemon --unlock --components=secrets --daemonize >/dev/null; exec "$0" "$@"' "$0" "$secs" "$rounds" "$@"
fi
tmp=$SWITCHBOARD_BENCH_INNER
if [ $# -eq 0 ]; then
  target=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
  set -- "gateway=${SWITCHBOARD_BIN:-$target/dist/switchboard}"
fi
up=127.0.0.1:4571 proxy=127.0.0.1:4570

# The canned answer (no `$` in it: nginx would read it as a variable).
answer='{"id":"chatcmpl-bench","object":"chat.completion","created":1764720000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Book the venue early, plan for April showers and pick seasonal flowers.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":14,"completion_tokens":16,"total_tokens":30},"system_fingerprint":"fp_bench"}'
nginx_conf() { # NAME SERVER_BLOCK
  mkdir -p "$tmp/$1"
  cat >"$tmp/$1/nginx.conf" <<CONF
worker_processes auto;
user $(id -un) $(id -gn);
pid $tmp/$1/nginx.pid;
error_log $tmp/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/$1;
  proxy_temp_path $tmp/$1;
  $2
}
CONF
  "$nginx" -c "$tmp/$1/nginx.conf" -e "$tmp/$1/error.log"
}
nginx_conf upstream "server { listen $up; keepalive_requests 1000000; location / { default_type application/json; return 200 '$answer'; } }"
nginx_conf proxy "upstream canned { server $up; keepalive 128; keepalive_requests 1000000; }
  server { listen $proxy; keepalive_requests 1000000;
    location / { proxy_pass http://canned; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
pids=()
cleanup() {
  for n in upstream proxy; do "$nginx" -c "$tmp/$n/nginx.conf" -e "$tmp/$n/error.log" -s stop 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${pg_url:-}" ] && { "${pg_stop_cmd[@]}" >/dev/null 2>&1 || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT
sleep 0.5
workers() { pgrep -P "$(cat "$tmp/$1/nginx.pid")" | tr '\n' ' '; }

# A private PostgreSQL for the `pg…` variants (see the top).
pg_url=
start_pg() {
  local pgbin=/usr/lib/postgresql/15/bin pg_user pg_port
  [ -x "$pgbin/initdb" ] || { echo "a pg variant needs PostgreSQL: apt-get install postgresql" >&2; exit 1; }
  pgdir=$tmp/pg pg_as=() pg_user=$(id -un)
  mkdir -p "$pgdir/socket"
  if [ "$(id -u)" -eq 0 ]; then pg_user=postgres pg_as=(runuser -u postgres --); chmod 755 "$tmp"; chown -R postgres: "$pgdir"; fi
  pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${pg_as[@]}" "$pgbin/initdb" -D "$pgdir/data" -U "$pg_user" -A reject --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$tmp/initdb.log" 2>&1 \
    || { cat "$tmp/initdb.log" >&2; exit 1; }
  printf 'local all %s trust\nhost all %s 127.0.0.1/32 trust\n' "$pg_user" "$pg_user" | "${pg_as[@]}" tee "$pgdir/data/pg_hba.conf" >/dev/null
  "${pg_as[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pgdir/socket" start >/dev/null || { cat "$pgdir/server.log" >&2; exit 1; }
  pg_stop_cmd=("${pg_as[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m fast -w stop)
  pg_create=("${pg_as[@]}" "$pgbin/createdb" -h "$pgdir/socket" -p "$pg_port" -U "$pg_user")
  pg_url="postgres://$pg_user@127.0.0.1:$pg_port"
}

# The gateway variants: NAME=BINARY [ARGS], each with its own database and port.
names=() ports=() tokens=() token_files=() gws=()
i=0
for spec in "$@"; do
  name=${spec%%=*}
  read -r -a cmd <<<"${spec#*=}"
  db=$tmp/$name.db port=$((4572 + i))
  serve_extra=()
  if [ "${name#bare}" != "$name" ]; then
    # The hyper floor (examples/bare_proxy.rs): no database, no token.
    "${cmd[0]}" --listen "127.0.0.1:$port" --upstream "http://$up" "${cmd[@]:1}" >"$tmp/$name.log" 2>&1 &
    gws+=($!) pids+=($!) names+=("$name") ports+=("$port") tokens+=(none) token_files+=("")
    i=$((i + 1))
    continue
  fi
  if [ "${name#pg}" != "$name" ]; then
    [ -n "$pg_url" ] || start_pg
    dbname=bench_${name//[^a-zA-Z0-9]/_}
    "${pg_create[@]}" "$dbname"
    db=$pg_url/$dbname
    export SWITCHBOARD_FLEET_KEY_FILE=$tmp/fleet-$name.key
    "${cmd[0]}" --database "$db" fleet init --key-file "$SWITCHBOARD_FLEET_KEY_FILE" >/dev/null
    serve_extra=(--fleet-dir "$tmp/$name-fleet")
  fi
  if [ "$suppliers" -gt 1 ]; then
    { echo "name,vendor_type,tier,mode,time_zone,weddings"
      for n in $(seq "$suppliers"); do echo "Bench Studio $n,photographer,enterprise,platform,UTC,"; done; } >"$tmp/$name-suppliers.csv"
    "${cmd[0]}" --db "$db" supplier import "$tmp/$name-suppliers.csv" >/dev/null
    : >"$tmp/$name.tokens"
    for n in $(seq "$suppliers"); do "${cmd[0]}" --db "$db" token issue --supplier "$n" 2>/dev/null >>"$tmp/$name.tokens"; echo >>"$tmp/$name.tokens"; done
    token_files+=("$tmp/$name.tokens")
  else
    "${cmd[0]}" --db "$db" supplier add --name "Bench Studio" --vendor-type photographer --tier enterprise --wedding "$(date -u +%F)" >/dev/null
    token_files+=("")
  fi
  printf 'sk-bench-openai-platform-000000000001' | "${cmd[0]}" --db "$db" key add --owner platform --provider openai --base-url "http://$up" >/dev/null
  tokens+=("$("${cmd[0]}" --db "$db" token issue --supplier 1 2>/dev/null)")
  # The variant's flags go after `serve`.
  "${cmd[0]}" --db "$db" serve --listen "127.0.0.1:$port" --ledger-durability "$durability" "${serve_extra[@]}" "${cmd[@]:1}" >"$tmp/$name.log" 2>&1 &
  gws+=($!) pids+=($!)
  names+=("$name") ports+=("$port")
  i=$((i + 1))
done
sleep 2
# SWITCHBOARD_BENCH_TRACE=DIR: after the rounds, the first variant's slow
# moments under one connection, for `secs` seconds each: its system calls that
# took over 1 ms (`perf trace --duration 1`, DIR/syscalls.txt), then how long
# every thread on the machine waited to run once woken (`perf sched record`,
# system-wide; DIR/sched.txt is `perf sched latency` sorted by the longest).
if [ -n "${SWITCHBOARD_BENCH_TRACE:-}" ]; then
  mkdir -p "$SWITCHBOARD_BENCH_TRACE"
  export GATEWAY_TOKEN=${tokens[0]} GATEWAY_TOKENS_FILE=${token_files[0]}
  url=http://127.0.0.1:${ports[0]}/v1/chat/completions
  perf trace --duration 1 -p "${gws[0]}" -o "$SWITCHBOARD_BENCH_TRACE/syscalls.txt" -- sleep "$secs" 2>"$tmp/trace.log" &
  trace_pid=$!
  sleep 0.5
  wrk -t1 -c1 -d"${secs}s" --latency -s benches/wrk/gateway.lua "$url" >"$SWITCHBOARD_BENCH_TRACE/wrk-syscalls.txt"
  wait "$trace_pid" || cat "$tmp/trace.log" >&2
  perf sched record -o "$SWITCHBOARD_BENCH_TRACE/sched.data" -- sleep "$secs" 2>"$tmp/sched.log" &
  trace_pid=$!
  sleep 0.5
  wrk -t1 -c1 -d"${secs}s" --latency -s benches/wrk/gateway.lua "$url" >"$SWITCHBOARD_BENCH_TRACE/wrk-sched.txt"
  wait "$trace_pid" || cat "$tmp/sched.log" >&2
  perf sched latency -i "$SWITCHBOARD_BENCH_TRACE/sched.data" --sort max >"$SWITCHBOARD_BENCH_TRACE/sched.txt" 2>/dev/null
  # Where the gateway's threads go to sleep on a lock (a futex): every
  # context switch's stack for 2 s, the futex waits' counted by their frames
  # (DIR/blocked.txt, the most frequent first).
  perf record -e sched:sched_switch --call-graph dwarf,32768 -p "${gws[0]}" -o "$SWITCHBOARD_BENCH_TRACE/switch.data" -- sleep 2 2>"$tmp/switch.log" &
  trace_pid=$!
  sleep 0.3
  wrk -t1 -c1 -d2s -s benches/wrk/gateway.lua "$url" >/dev/null
  wait "$trace_pid" || cat "$tmp/switch.log" >&2
  perf script -i "$SWITCHBOARD_BENCH_TRACE/switch.data" 2>/dev/null | python3 benches/wrk/futex_stacks.py >"$SWITCHBOARD_BENCH_TRACE/blocked.txt"
  echo "traced ${names[0]} at 1 connection -> $SWITCHBOARD_BENCH_TRACE/{syscalls,sched}.txt" >&2
fi
for i in "${!names[@]}"; do
  kill -0 "${gws[$i]}" 2>/dev/null || { echo "gateway ${names[$i]} did not start:" >&2; cat "$tmp/${names[$i]}.log" >&2; exit 1; }
done

# One wrk run: appends a row to results.tsv and echoes it to stderr.
#   run ROUND SIDE PATH CONNECTIONS URL LUA PID...
tick=$(getconf CLK_TCK)
# CPU ticks of the processes given; `pg` stands for the private PostgreSQL
# (the postmaster and every backend alive at that moment).
cpu() {
  local s=0 p
  for p in "$@"; do
    if [ "$p" = pg ]; then
      p=$(head -1 "$pgdir/data/postmaster.pid")
      s=$((s + $(cpu "$p" $(pgrep -P "$p" | tr '\n' ' '))))
      continue
    fi
    [ -r "/proc/$p/stat" ] && s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$s"
}
us() { awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u); f = (u == "s") ? 1e6 : (u == "ms") ? 1e3 : 1; printf "%.0f", n * f }'; }
run() {
  local round=$1 side=$2 path=$3 c=$4 url=$5 lua=$6 before after out reqs
  shift 6
  before=$(cpu "$@")
  out=$(wrk -t1 -c"$c" -d"${secs}s" --latency -s "$lua" "$url")
  after=$(cpu "$@")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  row=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$round" "$side" "$path" "$c" \
    "$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')" \
    "$(us "$(echo "$out" | awk '$1 == "50%" {print $2}')")" "$(us "$(echo "$out" | awk '$1 == "99%" {print $2}')")" \
    "$(awk -v t="$((after - before))" -v k="$tick" -v n="$reqs" 'BEGIN {printf "%.1f", t / k * 1e6 / n}')" \
    "$(echo "$out" | awk '/Non-2xx/ {print $NF} END {}' | head -1)" "$(cut -d' ' -f1 /proc/loadavg)")
  echo "$row" >>"$tmp/results.tsv"
  echo "$row" >&2
}
direct=benches/wrk/floor_direct.lua
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$rounds"); do
  # nginx and the variants in turn; every other round in the reverse order.
  sides=(nginx "${names[@]}")
  if [ $((r % 2)) -eq 0 ]; then
    rev=(); for ((k = ${#sides[@]} - 1; k >= 0; k--)); do rev+=("${sides[$k]}"); done; sides=("${rev[@]}")
  fi
  run "$r" upstream direct 32 "http://$up/v1/chat/completions" "$direct" $(workers upstream)
  for side in "${sides[@]}"; do
    if [ "$side" = nginx ]; then
      # shellcheck disable=SC2046
      run "$r" nginx direct 1 "http://$up/v1/chat/completions" "$direct" $(workers upstream)
      # shellcheck disable=SC2046
      run "$r" nginx proxied 1 "http://$proxy/v1/chat/completions" "$direct" $(workers proxy)
      # shellcheck disable=SC2046
      run "$r" nginx proxied 32 "http://$proxy/v1/chat/completions" "$direct" $(workers proxy)
      continue
    fi
    for i in "${!names[@]}"; do [ "${names[$i]}" = "$side" ] && break; done
    export GATEWAY_TOKEN=${tokens[$i]} GATEWAY_TOKENS_FILE=${token_files[$i]}
    url=http://127.0.0.1:${ports[$i]}/v1/chat/completions
    # shellcheck disable=SC2046
    run "$r" "$side" direct 1 "http://$up/v1/chat/completions" "$direct" $(workers upstream)
    # A pg variant's CPU is its gateway's and PostgreSQL's (the machine's cost of a request).
    measured=("${gws[$i]}"); [ "${side#pg}" != "$side" ] && measured+=(pg)
    run "$r" "$side" proxied 1 "$url" benches/wrk/gateway.lua "${measured[@]}"
    # A bare proxy has no idempotency path to measure.
    [ "${side#bare}" = "$side" ] && run "$r" "$side" idem 1 "$url" benches/wrk/gateway_idem.lua "${measured[@]}"
    run "$r" "$side" proxied 32 "$url" benches/wrk/gateway.lua "${measured[@]}"
    [ "${side#bare}" = "$side" ] && run "$r" "$side" idem 32 "$url" benches/wrk/gateway_idem.lua "${measured[@]}"
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
# SWITCHBOARD_BENCH_PERF=FILE: after the rounds, the first variant is profiled
# (`perf record -g`) under one connection for `secs` seconds; read it with
#   perf report -i FILE --no-children --sort dso,sym
if [ -n "${SWITCHBOARD_BENCH_PERF:-}" ]; then
  export GATEWAY_TOKEN=${tokens[0]} GATEWAY_TOKENS_FILE=${token_files[0]}
  before=$(cpu "${gws[0]}")
  perf_scope=(-p "${gws[0]}")
  [ -n "${SWITCHBOARD_BENCH_PERF_ALL:-}" ] && perf_scope=(-a)
  perf_url=http://127.0.0.1:${ports[0]}/v1/chat/completions
  [ -n "${SWITCHBOARD_BENCH_PERF_NGINX:-}" ] && perf_url=http://$proxy/v1/chat/completions
  perf record ${SWITCHBOARD_BENCH_PERF_RATE:--F 2999} ${SWITCHBOARD_BENCH_PERF_GRAPH:--g} -o "$SWITCHBOARD_BENCH_PERF" "${perf_scope[@]}" -- sleep "$((secs + 1))" 2>"$tmp/perf.log" &
  perf_pid=$!
  sleep 0.2
  perf_lua=benches/wrk/gateway.lua
  [ -n "${SWITCHBOARD_BENCH_PERF_KEYED:-}" ] && perf_lua=benches/wrk/gateway_idem.lua
  reqs=$(wrk -t1 -c"${SWITCHBOARD_BENCH_PERF_CONNS:-1}" -d"${secs}s" -s "$perf_lua" "$perf_url" | awk '/requests in/ {print $1}')
  wait "$perf_pid" || cat "$tmp/perf.log" >&2
  echo "profiled ${names[0]}: $reqs requests at ${SWITCHBOARD_BENCH_PERF_CONNS:-1} connection(s), $(awk -v t="$(($(cpu "${gws[0]}") - before))" -v k="$tick" -v n="$reqs" 'BEGIN {printf "%.1f", t / k * 1e6 / n}') µs CPU each (perf running) -> $SWITCHBOARD_BENCH_PERF" >&2
fi
# SWITCHBOARD_BENCH_SYSCALLS=DIR: after the rounds, every variant's system
# calls under 32 connections for `secs` seconds, counted per thread by
# `perf trace -s` (DIR/NAME.txt; the request count is its first line; tracing
# slows the run, the counts per request stand), then printed per request by
# benches/wrk/syscalls_table.py: what the kernel is asked per request, variant
# against variant.
if [ -n "${SWITCHBOARD_BENCH_SYSCALLS:-}" ]; then
  mkdir -p "$SWITCHBOARD_BENCH_SYSCALLS"
  for i in "${!names[@]}"; do
    export GATEWAY_TOKEN=${tokens[$i]} GATEWAY_TOKENS_FILE=${token_files[$i]}
    out=$SWITCHBOARD_BENCH_SYSCALLS/${names[$i]}.txt
    perf trace -s -p "${gws[$i]}" -o "$out.trace" -- sleep "$secs" 2>"$tmp/strace.log" &
    trace_pid=$!
    sleep 0.3
    reqs=$(wrk -t1 -c32 -d"$((secs - 1))s" -s benches/wrk/gateway.lua "http://127.0.0.1:${ports[$i]}/v1/chat/completions" | awk '/requests in/ {print $1}')
    wait "$trace_pid" || cat "$tmp/strace.log" >&2
    { echo "requests $reqs"; cat "$out.trace"; } >"$out" && rm -f "$out.trace"
    echo "counted ${names[$i]}'s system calls: $reqs requests at 32 connections -> $out" >&2
  done
  python3 benches/wrk/syscalls_table.py "$SWITCHBOARD_BENCH_SYSCALLS"/*.txt >&2
fi
for i in "${!names[@]}"; do
  kill -0 "${gws[$i]}" 2>/dev/null || { echo "gateway ${names[$i]} died during the run:" >&2; cat "$tmp/${names[$i]}.log" >&2; exit 1; }
done
python3 benches/wrk/floor_table.py "$tmp/results.tsv" "$secs" "$durability" "$(nproc)" "$load_start" "$load_end" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" "$@"
