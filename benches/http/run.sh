#!/usr/bin/env bash
# HTTP benchmarks of benches/README.md: the gateway and the minimal hyper server (same
# TLS stack, fixed answer) both pinned to core 0, the load generator to core 1. The
# machine is noisy, so runs alternate between the two servers, ROUNDS times, and each
# ratio is taken within a round. Needs wrk and h2load (Debian: apt-get install wrk
# nghttp2-client). Traffic goes to 127.0.0.1 only. Usage: benches/http/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
cargo build --release -q -p gateway -p gateway-benches -p loadtest --bins
BIN=target/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

taskset -c 0 $BIN/gateway serve --state-dir "$WORK/state" --listen 127.0.0.1:18443 \
  --admin-listen 127.0.0.1:19090 --max-in-flight 100000 >"$WORK/gw.out" 2>"$WORK/gw.err" &
for _ in $(seq 300); do curl -sf http://127.0.0.1:19090/readyz >/dev/null && break; sleep 0.1; done
taskset -c 0 $BIN/minimal_server "$WORK/state/tls/cert.pem" "$WORK/state/tls/key.pem" 127.0.0.1:18444 >/dev/null &
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/18444) 2>/dev/null && break; sleep 0.1; done
export KEY; KEY=$(cat "$WORK/state/api.key")
export CODE; CODE=$($BIN/gateway mint --state-dir "$WORK/state" --card-kind id_card --number 1 --validity 21600)
export CODES="$WORK/codes.txt"
PER=${COLD_PER_ROUND:-150000}
$BIN/mint_codes "$WORK/state" "$(( ROUNDS * 2 * PER ))" "$CODES"
printf '%s' "$CODE" >"$WORK/code.txt"
GW=https://localhost:18443/v1/verify?venue=bus
MIN=https://localhost:18444/v1/verify?venue=bus

wrk_rps() { # script url -> "rps p50 p99"
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$1" "$2" >"$WORK/wrk.txt"
  awk '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print r, p50, p99}' "$WORK/wrk.txt"
}
h2_rps() { # url -> "rps mean max"
  taskset -c 1 h2load -D "$SECS" -c 16 -m 16 -t 1 -d "$WORK/code.txt" \
    -H "authorization: Bearer $KEY" -H 'content-type: text/plain' "$1" >"$WORK/h2.txt"
  awk '/^finished/ {r=$4} /^time for request/ {mean=$6; max=$5} END {print r, mean, max}' "$WORK/h2.txt"
}
h2_cold() { # -> "rps p50 p99 generator-CPU" (loadtest: a distinct code per request, which h2load cannot send)
  taskset -c 1 $BIN/loadtest --target 127.0.0.1:18443 --protocol h2 --state-dir "$WORK/state" \
    --cold --mix green=1 --connections 16 --streams 16 --duration "$SECS" --no-progress \
    --json "$WORK/lt.json" >"$WORK/lt.txt" 2>&1 || true
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); l=r["latency_us"]
print("%.0f %.2fms %.2fms %.0f%%" % (r["throughput_rps"], l["p50"]/1000, l["p99"]/1000, 100*(r["generator_cpu"] or 0)))' "$WORK/lt.json"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }

printf '%-6s %-26s %-26s %-26s %-9s %s\n' round "h1 warm gw (rps p50 p99)" "h1 minimal" "h1 cold gw" "core/s" "ratios: h1 warm, h2 warm, h1 cold vs core, h2 cold vs core"
for r in $(seq "$ROUNDS"); do
  gw1=$(wrk_rps benches/http/warm.lua "$GW"); min1=$(wrk_rps benches/http/warm.lua "$MIN")
  cold=$(OFFSET=$(( (r - 1) * 2 * PER )) wrk_rps benches/http/cold.lua "$GW")
  cold2=$(h2_cold)
  core=$(taskset -c 0 $BIN/core_rate 3)
  gw2=$(h2_rps "$GW"); min2=$(h2_rps "$MIN")
  printf '%-6s %-26s %-26s %-26s %-9s %s %s %s %s\n' "$r" "$gw1" "$min1" "$cold" "$core" \
    "$(ratio "${gw1%% *}" "${min1%% *}")" "$(ratio "${gw2%% *}" "${min2%% *}")" "$(ratio "${cold%% *}" "$core")" "$(ratio "${cold2%% *}" "$core")"
  printf '       h2load warm: gw %s | minimal %s    loadtest h2 cold gw (rps p50 p99 generator CPU): %s\n' \
    "$gw2" "$min2" "$cold2"
done
echo "cold codes: $(wc -l <"$CODES") distinct, $PER per run (each run must send fewer)"
