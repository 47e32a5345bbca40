#!/usr/bin/env bash
# Tail latency at fractions of the peak, open loop (issue 13 items 5 and 3): warm codes
# over HTTP/2 and HTTP/3, cold codes (every one new) over HTTP/2; the gateway pinned to
# core 0, loadtest to core 1.
#
# Each round: the gateway's peak (HTTP/2: h2load -c16 -m16; HTTP/3: loadtest's closed
# loop, 8 × 8 streams, --lean; cold HTTP/2: loadtest's closed loop, 256 in flight over
# CONNS connections, --lean --cold), then loadtest's open loop at each fraction of it
# (--lean; every latency timed from the moment the schedule said to send, so queueing
# is not hidden), against the gateway and then, at the same rate, against the minimal
# server of the same protocol (benches/src/bin/minimal_server.rs, minimal_h3.rs), which
# has headroom there: its p99 is the floor the generator itself puts under any figure.
# Beside each: p50/p99/p99.9, whether the generator kept up ("sent" against the rate),
# its CPU (flagged "!" above 85 %) and the gateway's own CPU over the run (its threads'
# run time from /proc/PID/task/*/schedstat; 100 % = its core is full).
#
# HTTP/2 goes through loadtest's lean client over CONNS connections (default 2): the
# pacer hands each request to its connection, whose one writer sends what fell due
# together in one write (an open loop over hyper's client paid a write and a task per
# request and saturated its core at ~40,000 req/s). Needs h2load (Debian:
# nghttp2-client). Traffic goes to 127.0.0.1 only; every run is bounded in time.
# Usage: [ROUNDS=3] [FRACTIONS="40 60 80"] [CONNS=2] [PROTOS="h2 h3 h2-cold"] benches/http/tail.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
ROUNDS=${ROUNDS:-3}
FRACTIONS=${FRACTIONS:-"40 60 80"}
CONNS=${CONNS:-2}
PROTOS=${PROTOS:-"h2 h3 h2-cold"}
cargo build --release -q -p gateway -p loadtest --bins
cargo build --release -q -p gateway-benches --bin minimal_server --bin minimal_h3
BIN=target/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT

taskset -c 0 $BIN/gateway serve --state-dir "$WORK/state" --listen 127.0.0.1:18443 \
  --admin-listen 127.0.0.1:19090 >"$WORK/gw.out" 2>"$WORK/gw.err" &
GW_PID=$!
for _ in $(seq 300); do curl -sf http://127.0.0.1:19090/readyz >/dev/null && break; sleep 0.1; done
KEY=$(cat "$WORK/state/api.key")
CERT="$WORK/state/tls/cert.pem"; TLSKEY="$WORK/state/tls/key.pem"
taskset -c 0 $BIN/minimal_server "$CERT" "$TLSKEY" 127.0.0.1:18444 >/dev/null 2>&1 &
taskset -c 0 $BIN/minimal_h3 "$CERT" "$TLSKEY" 127.0.0.1:18445 >/dev/null 2>&1 &
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/18444) 2>/dev/null && break; sleep 0.1; done
$BIN/gateway mint --state-dir "$WORK/state" --card-kind id_card --number 1 --validity 21600 >"$WORK/code.txt"

# Correctness first: a valid code allowed, a forged one denied, over both protocols,
# with the full clients; then the lean ones answered.
for p in h2 h3; do
  $BIN/loadtest --target 127.0.0.1:18443 --state-dir "$WORK/state" --protocol $p --requests 200 \
    --mix green=1,forged=1 --fail-if 'wrong>0' --no-progress >/dev/null
  $BIN/loadtest --target 127.0.0.1:18443 --state-dir "$WORK/state" --protocol $p --requests 200 \
    --lean --rate 1000 --mix green=1 --fail-if 'errors>0' --no-progress >/dev/null
done
echo "pre-check: valid codes allowed and forged ones denied over HTTP/2 and HTTP/3; the lean clients answered"

flag() { awk -v c="$1" 'BEGIN {printf "%s%s", c, (c + 0 > 85 ? "%!" : "%")}'; }
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{n += $1} END {printf "%.0f", n}'; }
h2_peak() {
  taskset -c 1 h2load -D "$SECS" -c 16 -m 16 -t 1 -d "$WORK/code.txt" \
    -H "authorization: Bearer $KEY" -H 'content-type: text/plain' \
    "https://localhost:18443/v1/verify?venue=bus" 2>/dev/null | awk '/^finished/ {printf "%.0f", $4}'
}
lt() { # port protocol extra... -> "rps gen% p50 p99 p999"
  local port=$1 proto=$2; shift 2
  taskset -c 1 $BIN/loadtest --target 127.0.0.1:"$port" --protocol "$proto" --state-dir "$WORK/state" \
    --mix green=1 --lean --warmup 1 --duration "$SECS" --no-progress --json "$WORK/lt.json" "$@" \
    >"$WORK/lt.txt" 2>&1 || true
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); l=r["latency_us"]
print("%.0f %.0f %s %s %s" % (r["throughput_rps"], 100*(r["generator_cpu"] or 0), l["p50"], l["p99"], l["p999"]))' "$WORK/lt.json"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores; servers on core 0, loadtest on core 1; $SECS s per run, $ROUNDS rounds; HTTP/2 over $CONNS connections"
printf "%-5s %-7s %-7s %-5s %-7s | %-7s %-6s %-6s %-6s %-7s %-7s | %-6s %-6s %-7s %s\n" \
  round prot peak frac rate sent gen gw_cpu p50_us p99_us p999_us gen p50_us p99_us "p999_us (minimal server, same rate)"
declare -A P99 M99 GCPU
for r in $(seq "$ROUNDS"); do
  for p in $PROTOS; do
    extra=()
    case $p in
      h2) proto=h2; peak=$(h2_peak); conns=$CONNS; min_port=18444 ;;
      h3) proto=h3; peak=$(lt 18443 h3 --connections 8 --streams 8 | awk '{print $1}'); conns=8; min_port=18445 ;;
      h2-cold)
        proto=h2; conns=$CONNS; min_port=18444; extra=(--cold)
        peak=$(lt 18443 h2 --cold --connections "$CONNS" --concurrency 256 | awk '{print $1}') ;;
      *) echo "unknown case $p" >&2; exit 2 ;;
    esac
    for f in $FRACTIONS; do
      rate=$(( peak * f / 100 ))
      before=$(cpu_ns $GW_PID)
      read -r rps gen p50 p99 p999 <<<"$(lt 18443 $proto --rate "$rate" --connections $conns "${extra[@]}")"
      gw_cpu=$(awk -v a="$before" -v b="$(cpu_ns $GW_PID)" -v s="$SECS" 'BEGIN {printf "%.0f%%", (b - a) / 1e7 / (s + 1)}')
      read -r _ mgen m50 m99 m999 <<<"$(lt $min_port $proto --rate "$rate" --connections $conns)"
      P99[$p-$f]="${P99[$p-$f]:-} $p99"; M99[$p-$f]="${M99[$p-$f]:-} $m99"; GCPU[$p-$f]="${GCPU[$p-$f]:-} ${gw_cpu%\%}"
      printf "%-5s %-7s %-7s %-5s %-7s | %-7s %-6s %-6s %-6s %-7s %-7s | %-6s %-6s %-7s %s\n" \
        "$r" $p "$peak" "$f%" "$rate" "$rps" "$(flag "$gen")" "$gw_cpu" "$p50" "$p99" "$p999" "$(flag "$mgen")" "$m50" "$m99" "$m999"
    done
  done
done
for p in $PROTOS; do for f in $FRACTIONS; do
  echo "median, $p at $f % of the peak: gateway p99 $(echo "${P99[$p-$f]}" | median) us (its CPU $(echo "${GCPU[$p-$f]}" | median) %), minimal server at the same rate p99 $(echo "${M99[$p-$f]}" | median) us"
done; done
