#!/usr/bin/env bash
# HTTP benchmarks of benches/README.md (issue 13 item 1): the gateway against the minimal
# servers of the same stacks (hyper + rustls for HTTP/1.1 and HTTP/2, quinn + h3 for
# HTTP/3; fixed answer), and cold codes against a bare signature check, every server
# pinned to core 0 and every load generator to core 1. The machine is noisy, so the two
# sides of each ratio run one after the other within a round, ROUNDS rounds, and each
# ratio is taken within its round. Every figure carries its generator's own CPU; one
# above 85 % of its core is flagged with "!" (the generator, not the server, may then
# be what was measured).
#
# Cases: h1 warm (wrk -t1 -c64), h2 warm (h2load -t1 -c16 -m16), h3 warm (loadtest,
# 8 connections x 8 streams), h1 and h2 cold (loadtest --cold, a distinct code per
# request) against `core_rate` (bare single Ed25519 verifications per second on one
# core). Needs wrk and h2load (Debian: wrk, nghttp2-client). Traffic goes to 127.0.0.1
# only; every run is bounded in time. Usage: [ROUNDS=3] benches/http/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
ROUNDS=${ROUNDS:-3}
cargo build --release -q -p gateway -p gateway-benches -p loadtest --bins
BIN=target/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

taskset -c 0 $BIN/gateway serve --state-dir "$WORK/state" --listen 127.0.0.1:18443 \
  --admin-listen 127.0.0.1:19090 >"$WORK/gw.out" 2>"$WORK/gw.err" &
for _ in $(seq 300); do curl -sf http://127.0.0.1:19090/readyz >/dev/null && break; sleep 0.1; done
CERT="$WORK/state/tls/cert.pem"; TLSKEY="$WORK/state/tls/key.pem"
taskset -c 0 $BIN/minimal_server "$CERT" "$TLSKEY" 127.0.0.1:18444 >/dev/null 2>&1 &
taskset -c 0 $BIN/minimal_h3 "$CERT" "$TLSKEY" 127.0.0.1:18445 >/dev/null 2>&1 &
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/18444) 2>/dev/null && break; sleep 0.1; done
export KEY; KEY=$(cat "$WORK/state/api.key")
export CODE; CODE=$($BIN/gateway mint --state-dir "$WORK/state" --card-kind id_card --number 1 --validity 21600)
printf '%s' "$CODE" >"$WORK/code.txt"
GW=https://localhost:18443/v1/verify?venue=bus
MIN=https://localhost:18444/v1/verify?venue=bus

# Correctness first, over every protocol: a valid code allowed, a forged one denied.
$BIN/loadtest --target 127.0.0.1:18443 --state-dir "$WORK/state" --protocol h1 --requests 200 \
  --mix green=1,forged=1 --fail-if 'wrong>0' --no-progress >/dev/null
$BIN/loadtest --target 127.0.0.1:18443 --state-dir "$WORK/state" --protocol h2 --requests 200 \
  --mix green=1,forged=1 --fail-if 'wrong>0' --no-progress >/dev/null
$BIN/loadtest --target 127.0.0.1:18443 --state-dir "$WORK/state" --protocol h3 --requests 200 \
  --mix green=1,forged=1 --fail-if 'wrong>0' --no-progress >/dev/null
echo "pre-check: valid codes allowed and forged ones denied over HTTP/1.1, HTTP/2, HTTP/3"

timed() { # command... -> its stdout in $WORK/gen.txt; its CPU share in $WORK/cpu
  local TIMEFORMAT=%P
  { time "$@" >"$WORK/gen.txt" 2>"$WORK/gen.err"; } 2>"$WORK/cpu"
}
flag() { awk -v c="$1" 'BEGIN {printf "%s%s", c, (c + 0 > 85 ? "%!" : "%")}'; }
wrk_warm() { # url -> "rps cpu"
  timed taskset -c 1 wrk -t1 -c64 -d"${SECS}s" -s benches/http/warm.lua "$1"
  echo "$(awk '/Requests\/sec/ {print $2}' "$WORK/gen.txt") $(flag "$(cat "$WORK/cpu")")"
}
h2load_warm() { # url -> "rps cpu"
  timed taskset -c 1 h2load -D "$SECS" -c 16 -m 16 -t 1 -d "$WORK/code.txt" \
    -H "authorization: Bearer $KEY" -H 'content-type: text/plain' "$1"
  echo "$(awk '/^finished/ {print $4}' "$WORK/gen.txt") $(flag "$(cat "$WORK/cpu")")"
}
lt() { # port protocol extra... -> "rps cpu" (loadtest reports its own CPU)
  local port=$1 proto=$2; shift 2
  taskset -c 1 $BIN/loadtest --target "127.0.0.1:$port" --protocol "$proto" --state-dir "$WORK/state" \
    --mix green=1 --duration "$SECS" --no-progress --json "$WORK/lt.json" "$@" >"$WORK/lt.txt" 2>&1 || true
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.0f %.0f" % (r["throughput_rps"], 100*(r["generator_cpu"] or 0)))' \
    "$WORK/lt.json" | { read -r rps cpu; echo "$rps $(flag "$cpu")"; }
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores; $SECS s per run, $ROUNDS rounds"
printf '%-5s %-8s %-22s %-22s %s\n' round case "gateway (rps, gen CPU)" "reference (rps, gen CPU)" "ratio"
declare -A R
for r in $(seq "$ROUNDS"); do
  core=$(taskset -c 0 $BIN/core_rate 3)
  row() { # case gateway reference
    local x; x=$(ratio "${2%% *}" "${3%% *}")
    R[$1]="${R[$1]:-} $x"
    printf '%-5s %-8s %-22s %-22s %s\n' "$r" "$1" "$2" "$3" "$x"
  }
  row h1-warm "$(wrk_warm "$GW")" "$(wrk_warm "$MIN")"
  row h2-warm "$(h2load_warm "$GW")" "$(h2load_warm "$MIN")"
  row h3-warm "$(lt 18443 h3 --connections 8 --streams 8)" "$(lt 18445 h3 --connections 8 --streams 8)"
  row h1-cold "$(lt 18443 h1 --cold --connections 64 --concurrency 64)" "$core bare"
  row h2-cold "$(lt 18443 h2 --cold --connections 16 --streams 16)" "$core bare"
done
for c in h1-warm h2-warm h3-warm h1-cold h2-cold; do
  echo "median $c: $(echo "${R[$c]}" | median)"
done
