#!/usr/bin/env bash
# The gateway on one core (the generator on the other) against the gateway on both cores
# (the generator sharing them), interleaved rounds: cold (loadtest, green codes, HTTP/2,
# 8 connections x 16 streams) and warm (h2load -c16 -m16, one code). On a 2-core machine
# the second layout shares the cores with the generator, so its ratio is a lower bound:
# run it where the generator can have cores of its own (GW_CPUS / GEN_CPUS). Beside each
# figure, the gateway's own CPU per request (all its threads' run time from
# /proc/PID/task/*/schedstat over the requests its /metrics counted): where throughput
# cannot show the scaling (the generator competes), the CPU a request costs on two cores
# against one can, and 2 × (one / two) is the factor two dedicated cores would give if
# nothing else limited them.
# Needs h2load (Debian: nghttp2-client). Traffic to 127.0.0.1 only; each run 4 s.
# Usage: [ROUNDS=3] [ONE=0] [TWO=0,1] [GEN_ONE=1] [GEN_TWO=0,1] benches/http/scaling.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}; ONE=${ONE:-0}; TWO=${TWO:-0,1}; GEN_ONE=${GEN_ONE:-1}; GEN_TWO=${GEN_TWO:-0,1}
cargo build --release -q -p gateway -p loadtest
GW=target/release/gateway; LT=target/release/loadtest
WORK=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
D=$WORK/state
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{n += $1} END {printf "%.0f", n}'; }
served() { curl -sf http://127.0.0.1:19090/metrics | awk '/^gateway_requests_total/ {n += $NF} END {printf "%.0f", n}'; }
run() { # gateway-cpus generator-cpus cold|warm -> "req/s generator-cpu server-us/request"
  taskset -c "$1" "$GW" serve --state-dir "$D" --listen 127.0.0.1:18443 --admin-listen 127.0.0.1:19090 >/dev/null 2>&1 &
  local G=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:19090/readyz >/dev/null && break; sleep 0.1; done
  local c0 n0 out; c0=$(cpu_ns $G); n0=$(served)
  out=$(load "$@")
  awk -v o="$out" -v t=$(( $(cpu_ns $G) - c0 )) -v n=$(( $(served) - n0 )) \
    'BEGIN {printf "%s %.2fus", o, t / 1000 / (n > 0 ? n : 1)}'
  echo
  kill "$G"; wait "$G" 2>/dev/null || true
}
load() { # gateway-cpus generator-cpus cold|warm -> "req/s generator-cpu"
  if [ "$3" = cold ]; then
    taskset -c "$2" "$LT" --target 127.0.0.1:18443 --protocol h2 --state-dir "$D" --api-key-file "$D/api.key" \
      --duration 4 --no-progress --mix green=1 --cold --cold-codes 160000 --connections 8 --streams 16 \
      --json "$WORK/s.json" >/dev/null 2>&1
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(round(r['throughput_rps']), '%.0f%%' % (100*r['generator_cpu']))" "$WORK/s.json"
  else
    "$GW" mint --state-dir "$D" --card-kind id_card --number 1 --validity 21600 | tr -d '\n' >"$WORK/code.txt"
    local TIMEFORMAT=%P
    { time taskset -c "$2" h2load -D 4 -c 16 -m 16 -t 1 -d "$WORK/code.txt" -H "authorization: Bearer $(cat "$D/api.key")" \
        -H 'content-type: text/plain' "https://localhost:18443/v1/verify?venue=bus" >"$WORK/h2.txt" 2>&1; } 2>"$WORK/cpu"
    echo "$(awk '/finished in/ {print $4}' "$WORK/h2.txt") $(cat "$WORK/cpu")%"
  fi
}
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores"
printf '%-6s %-5s %-30s %-30s %s\n' round case "one core (rps, gen, CPU/req)" "two cores (rps, gen, CPU/req)" "two / one, CPU/req one / two"
for r in $(seq "$ROUNDS"); do
  for k in cold warm; do
    a=$(run "$ONE" "$GEN_ONE" "$k"); b=$(run "$TWO" "$GEN_TWO" "$k")
    e=$(awk -v x="$(echo "$a" | awk '{print $3}' | tr -d us)" -v y="$(echo "$b" | awk '{print $3}' | tr -d us)" 'BEGIN {printf "%.3f", x / y}')
    printf '%-6s %-5s %-30s %-30s %s %s\n' "$r" "$k" "$a" "$b" "$(awk -v x="${b%% *}" -v y="${a%% *}" 'BEGIN {printf "%.3f", x / y}')" "$e"
  done
done
