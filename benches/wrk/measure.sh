# Sourced by gateway.sh and floor.sh: one wrk run and its figures on one line.
# Needs $secs (the run's length in seconds).

# CPU ticks (utime + stime) of the given processes together.
cpu() {
  local s=0 p
  for p in "$@"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$s"
}

# run NAME URL WRK_SCRIPT CONNECTIONS PID...: requests per second, p50, p99
# (wrk's, corrected for coordinated omission), and the CPU per request of the
# server processes PID...
run() {
  local name=$1 url=$2 script=$3 c=$4 before after out reqs tick
  shift 4
  tick=$(getconf CLK_TCK)
  before=$(cpu "$@")
  out=$(wrk -t1 -c"$c" -d"${secs}s" --latency -s "$script" "$url")
  after=$(cpu "$@")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  printf '%-22s c=%-3s %9s req/s  p50 %-9s p99 %-9s  server CPU %6s µs/req  non-2xx: %s  load: %s\n' "$name" "$c" \
    "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(echo "$out" | awk '$1 == "50%" {print $2}')" "$(echo "$out" | awk '$1 == "99%" {print $2}')" \
    "$(awk -v t="$((after - before))" -v k="$tick" -v n="$reqs" 'BEGIN {printf "%.1f", t / k * 1e6 / n}')" \
    "$(echo "$out" | awk '/Non-2xx/ {print $NF}')" "$(cut -d' ' -f1 /proc/loadavg)"
}
