#!/usr/bin/env bash
# loadtest benchmarks of benches/README.md (issue 5): the gateway and the minimal
# servers (hyper for HTTP/1.1 and HTTP/2, quinn + h3 for HTTP/3; same TLS stack, fixed
# answer) pinned to core 0, loadtest pinned to core 1. Runs alternate between the
# gateway and its baseline within each protocol, so each ratio is taken minutes apart at
# most. Traffic goes to 127.0.0.1 only; everything stops by itself.
# Usage: benches/loadtest/run.sh [SECONDS]   (default 5; ROUNDS=2)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
ROUNDS=${ROUNDS:-2}
cargo build --release -q -p gateway -p gateway-benches -p loadtest --bins
BIN=target/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
STATE="$WORK/state"

taskset -c 0 $BIN/gateway serve --state-dir "$STATE" --listen 127.0.0.1:18443 \
  --admin-listen 127.0.0.1:19090 --plain-listen 127.0.0.1:18080 --max-in-flight 100000 \
  >"$WORK/gw.out" 2>"$WORK/gw.err" &
for _ in $(seq 300); do curl -sf http://127.0.0.1:19090/readyz >/dev/null && break; sleep 0.1; done
CERT="$STATE/tls/cert.pem"; KEYPEM="$STATE/tls/key.pem"
taskset -c 0 $BIN/minimal_server "$CERT" "$KEYPEM" 127.0.0.1:18444 >/dev/null &
taskset -c 0 $BIN/minimal_h3 "$CERT" "$KEYPEM" 127.0.0.1:18444 >/dev/null &
sleep 0.5

# lt TARGET PROTO EXTRA... -> "rps p50_us p99_us wrong errors"
lt() {
  local target=$1 proto=$2; shift 2
  taskset -c 1 $BIN/loadtest --state-dir "$STATE" --target "$target" --protocol "$proto" \
    --duration "$SECS" --warmup 1 --no-progress --json "$WORK/r.json" "$@" >/dev/null || true
  python3 - "$WORK/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_us"]
print(f'{r["throughput_rps"]:.0f} {l["p50"]} {l["p99"]} {r["wrong"]["total"]} {sum(r["errors"].values())}')
PY
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
conns() { case $1 in h1) echo 64;; *) echo 4;; esac; }

GREEN="--mix green=1"
echo "== throughput, closed loop, 64 in flight (rps p50_us p99_us wrong errors)"
printf '%-5s %-5s %-34s %-34s %s\n' round proto "gateway warm" "minimal" "ratio"
for r in $(seq "$ROUNDS"); do
  for p in h1 h2 h3; do
    c=$(conns $p)
    g=$(lt 127.0.0.1:18443 $p $GREEN --connections "$c" --concurrency 64 --pool 1000)
    m=$(lt 127.0.0.1:18444 $p $GREEN --connections "$c" --concurrency 64 --pool 1000)
    printf '%-5s %-5s %-34s %-34s %s\n' "$r" "$p" "$g" "$m" "$(ratio "${g%% *}" "${m%% *}")"
  done
done
echo "== cold (every code new), closed loop, 64 in flight: vs the minimal server, and vs the core's cold rate"
for p in h1 h2 h3; do
  c=$(conns $p)
  g=$(lt 127.0.0.1:18443 $p $GREEN --connections "$c" --concurrency 64 --cold)
  m=$(lt 127.0.0.1:18444 $p $GREEN --connections "$c" --concurrency 64 --cold)
  core=$(taskset -c 0 $BIN/core_rate 3)
  printf 'cold %-4s gateway %-30s minimal %-30s ratio %s | core decisions/s %-8s ratio %s\n' "$p" "$g" "$m" \
    "$(ratio "${g%% *}" "${m%% *}")" "$core" "$(ratio "${g%% *}" "$core")"
done
echo "== where latency leaves its floor: HTTP/2 open loop, warm, default mix"
for rate in 2000 5000 10000 20000 30000 40000 50000 60000; do
  printf 'rate %-6s %s\n' "$rate" "$(lt 127.0.0.1:18443 h2 --connections 4 --rate "$rate" --pool 1000)"
done
echo "== propagation under churn: HTTP/2 open loop 10000/s, 20 changes/s through the feed file"
taskset -c 1 $BIN/loadtest --state-dir "$STATE" --target 127.0.0.1:18443 --protocol h2 \
  --connections 4 --rate 10000 --duration "$((SECS * 2))" --warmup 1 --churn-rate 20 --no-progress \
  --json "$WORK/churn.json" | sed -n '1,20p'
OHA=${OHA:-$(command -v oha || true)}
if [ -n "$OHA" ]; then
  echo "== HTTP/3 clients on the same server (the minimal h3 server), 64 in flight, one code repeated"
  CODE=$($BIN/gateway mint --state-dir "$STATE" --card-kind id_card --number 1 --validity 21600)
  for r in 1 2; do
    o=$(taskset -c 1 "$OHA" --http-version 3 -z "${SECS}s" -c 64 --insecure --no-tui -m POST -d "$CODE" \
      -H "authorization: Bearer $(cat "$STATE/api.key")" -H 'content-type: text/plain' \
      "https://localhost:18444/v1/verify?venue=bus" 2>&1 | awk '/Requests\/sec/ {print $2}')
    l=$(lt 127.0.0.1:18444 h3 $GREEN --connections 64 --concurrency 64 --pool 1)
    printf 'round %s: oha %s req/s | loadtest %s\n' "$r" "$o" "$l"
  done
fi
