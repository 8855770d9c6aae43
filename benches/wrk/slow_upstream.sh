#!/usr/bin/env bash
# What the gateway's serving costs when the upstream is slow, as providers are
# (hundreds of milliseconds): the built-in simulator answers every request after
# a fixed delay, and each variant of `switchboard serve` is measured in front of
# it, in turn (every other round in the reverse order), at a few connections.
# Made for busy polling (`serve --busy-poll-us`), whose price is CPU spent
# polling: at the same requests a second, the server CPU per request shows what
# a variant's polling costs where it cannot lower latency.
#
#   benches/wrk/slow_upstream.sh [seconds] [rounds] [delay_ms] NAME=BINARY [SERVE_ARGS...]...
#   benches/wrk/slow_upstream.sh 8 3 2 "off=target/dist/switchboard --busy-poll-us 0" "on=target/dist/switchboard"
#
# Every variant has its own database, one enterprise supplier with a wedding
# today (the quota and rate limit account but do not refuse), a platform OpenAI
# key in a private keyring (as in scripts/test) whose base URL is the simulator.
# `SWITCHBOARD_BENCH_CONNS="1 8"` sets the connection counts. Prints every run
# (rounds × variants × connection counts), then per variant and connection
# count the medians and the CPU per request ÷ the first variant's, in Markdown.
# Needs wrk, dbus, gnome-keyring and python3. Ports 4560–4569 on loopback.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-8}
rounds=${2:-3}
delay=${3:-2}
shift $(($# < 3 ? $# : 3))
[ $# -gt 0 ] || { echo "usage: $0 [seconds] [rounds] [delay_ms] NAME=BINARY [SERVE_ARGS...]..." >&2; exit 2; }
if [ -z "${SWITCHBOARD_BENCH_INNER:-}" ]; then
  tmp=$(mktemp -d); mkdir -p "$tmp/data" "$tmp/run"; chmod 700 "$tmp/run"
  export XDG_DATA_HOME="$tmp/data" XDG_RUNTIME_DIR="$tmp/run" SWITCHBOARD_BENCH_INNER="$tmp"
  exec dbus-run-session -- bash -c 'echo -n bench | gnome-keyring-daemon --unlock --components=secrets --daemonize >/dev/null; exec "$0" "$@"' "$0" "$secs" "$rounds" "$delay" "$@"
fi
tmp=$SWITCHBOARD_BENCH_INNER
conns=${SWITCHBOARD_BENCH_CONNS:-1 8}
key=sk-bench-openai-platform-000000000001
sim_bin=${1#*=}; sim_bin=${sim_bin%% *}
cat >"$tmp/scenario.json" <<JSON
{"seed": 1, "accounts": [{"name": "slow openai", "provider": "openai", "key": "$key",
  "faults": {"latency": {"median_ms": $delay, "sigma": 0.0, "min_ms": $delay}}}]}
JSON
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
"$sim_bin" simulate --listen 127.0.0.1:4560 --scenario "$tmp/scenario.json" >"$tmp/sim.log" 2>&1 &
pids+=($!)
names=() ports=() tokens=() gws=()
i=0
for spec in "$@"; do
  name=${spec%%=*}
  read -r -a cmd <<<"${spec#*=}"
  db=$tmp/$name.db port=$((4561 + i))
  "${cmd[0]}" --db "$db" supplier add --name "Bench Studio" --vendor-type photographer --tier enterprise --wedding "$(date -u +%F)" >/dev/null
  printf '%s' "$key" | "${cmd[0]}" --db "$db" key add --owner platform --provider openai --base-url http://127.0.0.1:4560 >/dev/null
  tokens+=("$("${cmd[0]}" --db "$db" token issue --supplier 1 2>/dev/null)")
  "${cmd[0]}" --db "$db" serve --listen "127.0.0.1:$port" "${cmd[@]:1}" >"$tmp/$name.log" 2>&1 &
  gws+=($!) pids+=($!) names+=("$name") ports+=("$port")
  i=$((i + 1))
done
sleep 2
for i in "${!names[@]}"; do
  kill -0 "${gws[$i]}" 2>/dev/null || { echo "gateway ${names[$i]} did not start:" >&2; cat "$tmp/${names[$i]}.log" >&2; exit 1; }
done
. benches/wrk/measure.sh
echo "# slow_upstream.sh: $(git rev-parse --short HEAD 2>/dev/null), nproc $(nproc), upstream delay $delay ms, $secs s runs, $rounds rounds, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo '```'
for r in $(seq "$rounds"); do
  order=("${!names[@]}")
  if [ $((r % 2)) -eq 0 ]; then
    rev=(); for ((k = ${#order[@]} - 1; k >= 0; k--)); do rev+=("${order[$k]}"); done; order=("${rev[@]}")
  fi
  for i in "${order[@]}"; do
    for c in $conns; do
      GATEWAY_TOKEN=${tokens[$i]} run "$r ${names[$i]}" "http://127.0.0.1:${ports[$i]}/v1/chat/completions" benches/wrk/gateway.lua "$c" "${gws[$i]}"
    done
  done
done | tee "$tmp/runs.txt"
echo '```'
python3 - "$tmp/runs.txt" "${names[@]}" <<'PY'
import re, statistics, sys
rows = {}
unit = {"us": 1, "ms": 1e3, "s": 1e6}
for line in open(sys.argv[1]):
    m = re.match(r"(\d+) (\S+)\s+c=(\d+)\s+([\d.]+) req/s\s+p50 ([\d.]+)(us|ms|s)\s+p99 ([\d.]+)(us|ms|s)\s+server CPU\s+([\d.]+)", line)
    if m:
        key = (m[2], int(m[3]))
        rows.setdefault(key, []).append((float(m[4]), float(m[5]) * unit[m[6]], float(m[7]) * unit[m[8]], float(m[9])))
names = sys.argv[2:]
print("\n| variant | connections | req/s | p50 | p99 | server CPU a request | CPU a request ÷ " + names[0] + " |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for c in sorted({c for _, c in rows}):
    base = rows.get((names[0], c))
    for n in names:
        rs = rows.get((n, c))
        if not rs:
            continue
        med = [statistics.median(x[k] for x in rs) for k in range(4)]
        ratio = statistics.median(x[3] / b[3] for x, b in zip(rs, base)) if base else float("nan")
        print(f"| {n} | {c} | {med[0]:,.0f} | {med[1] / 1e3:.2f} ms | {med[2] / 1e3:.2f} ms | {med[3]:.1f} µs | {ratio:.2f}× |")
PY
