#!/usr/bin/env bash
# A/B of two builds of the gateway on the same machine: runs benches/wrk/gateway.sh
# for build A, then B, then A, … (alternating, so a slower minute of the VM hits
# both), N pairs. Each line of gateway.sh's output is prefixed with the build.
#
#   benches/wrk/ab.sh OLD_BINARY NEW_BINARY [pairs] [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
a=$1 b=$2 pairs=${3:-3} secs=${4:-10}
echo "nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$pairs"); do
  for side in A B; do
    bin=$a; [ "$side" = B ] && bin=$b
    SWITCHBOARD_BIN=$bin benches/wrk/gateway.sh "$secs" | sed "s/^/$side run $i  /"
  done
done
