#!/usr/bin/env bash
# A/B of two builds of the gateway on the same machine, against the forwarding
# floor: benches/wrk/floor.sh with the two builds as its variants, so each round
# measures nginx, A and B in turn (alternating the order, so a slower minute of
# the VM hits all of them), and the summary gives B ÷ A as the median of the
# rounds' ratios next to each build's gateway ÷ nginx.
#
#   benches/wrk/ab.sh OLD_BINARY NEW_BINARY [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
a=$1 b=$2 rounds=${3:-3} secs=${4:-8}
exec benches/wrk/floor.sh "$secs" "$rounds" "A=$a" "B=$b"
