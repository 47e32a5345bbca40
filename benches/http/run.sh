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
# Cases: h1 warm over TLS (wrk -t1 -c64, and h2load --h1 -c64) and plaintext (h2load
# --h1), h2 warm over TLS and h2c (h2load -t1 -c16 -m16), h3 warm (loadtest --lean:
# frames written and read by hand, answers counted by status, 8 connections x 8
# streams), h1 and h2 cold (loadtest --cold --lean, a distinct code per request)
# against `core_rate` (bare single Ed25519 verifications per second on one core). The
# lean runs do not check answers: the pre-check below does, over every protocol, before
# anything is timed. Needs wrk and h2load (Debian: wrk, nghttp2-client). Traffic goes to
# 127.0.0.1 only; every run is bounded in time. Usage: [ROUNDS=3] [CASES="h3-warm ..."]
# benches/http/run.sh [SECONDS]
#
# Beside each figure, the server's own CPU time per request (all its threads, from
# /proc/PID/task/*/schedstat, over the requests the generator counted): where a
# generator is saturated ("!") the throughput ratio is partly the generator's, and the
# ratio of CPU per request (minimal / gateway, the last column) compares the two
# servers' work.
#
# CAP=50 puts every server in a CPU cgroup limited to 50 % of one core (cgroup v2
# cpu.max, or v1 cpu.cfs_quota_us; needs root): the generator then has twice the
# server's CPU, so even a heavy generator (wrk, h2load --h1) is not what is measured,
# and the throughput ratio is the ratio of the servers' costs.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
ROUNDS=${ROUNDS:-3}
cargo build --release -q -p gateway -p gateway-benches -p loadtest --bins
BIN=target/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

taskset -c 0 $BIN/gateway serve --state-dir "$WORK/state" --listen 127.0.0.1:18443 \
  --admin-listen 127.0.0.1:19090 --plain-listen 127.0.0.1:18446 >"$WORK/gw.out" 2>"$WORK/gw.err" &
GW_PID=$!
for _ in $(seq 300); do curl -sf http://127.0.0.1:19090/readyz >/dev/null && break; sleep 0.1; done
CERT="$WORK/state/tls/cert.pem"; TLSKEY="$WORK/state/tls/key.pem"
PLAIN_LISTEN=127.0.0.1:18447 taskset -c 0 $BIN/minimal_server "$CERT" "$TLSKEY" 127.0.0.1:18444 >/dev/null 2>&1 &
MIN_PID=$!
taskset -c 0 $BIN/minimal_h3 "$CERT" "$TLSKEY" 127.0.0.1:18445 >/dev/null 2>&1 &
MIN3_PID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/18444) 2>/dev/null && break; sleep 0.1; done
if [ -n "${CAP:-}" ]; then
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    CG=/sys/fs/cgroup/jkm-bench-$$; mkdir "$CG"
    echo "$(( CAP * 1000 )) 100000" >"$CG/cpu.max"
  else
    CG=/sys/fs/cgroup/cpu/jkm-bench-$$; mkdir "$CG"
    echo 100000 >"$CG/cpu.cfs_period_us"; echo $(( CAP * 1000 )) >"$CG/cpu.cfs_quota_us"
  fi
  for p in $GW_PID $MIN_PID $MIN3_PID; do
    for t in /proc/"$p"/task/*; do echo "${t##*/}" >"$CG/cgroup.procs" 2>/dev/null || echo "${t##*/}" >"$CG/tasks"; done
  done
  trap 'kill $(jobs -p) 2>/dev/null || true; sleep 0.2; rmdir "$CG" 2>/dev/null; rm -rf "$WORK"' EXIT
  echo "servers capped at $CAP % of a core ($CG)"
fi
export KEY; KEY=$(cat "$WORK/state/api.key")
export CODE; CODE=$($BIN/gateway mint --state-dir "$WORK/state" --card-kind id_card --number 1 --validity 21600)
printf '%s' "$CODE" >"$WORK/code.txt"
GW=https://localhost:18443/v1/verify?venue=bus
MIN=https://localhost:18444/v1/verify?venue=bus
GW_PLAIN=http://127.0.0.1:18446/v1/verify?venue=bus
MIN_PLAIN=http://127.0.0.1:18447/v1/verify?venue=bus

# Correctness first, over every protocol: a valid code allowed, a forged one denied.
$BIN/loadtest --target 127.0.0.1:18443 --state-dir "$WORK/state" --protocol h1 --requests 200 \
  --mix green=1,forged=1 --fail-if 'wrong>0' --no-progress >/dev/null
$BIN/loadtest --target 127.0.0.1:18443 --state-dir "$WORK/state" --protocol h2 --requests 200 \
  --mix green=1,forged=1 --fail-if 'wrong>0' --no-progress >/dev/null
$BIN/loadtest --target 127.0.0.1:18443 --state-dir "$WORK/state" --protocol h3 --requests 200 \
  --mix green=1,forged=1 --fail-if 'wrong>0' --no-progress >/dev/null
$BIN/loadtest --target 127.0.0.1:18443 --state-dir "$WORK/state" --protocol h3 --requests 200 \
  --mix green=1,forged=1 --lean --fail-if 'errors>0' --no-progress >/dev/null
echo "pre-check: valid codes allowed and forged ones denied over HTTP/1.1, HTTP/2, HTTP/3; the lean HTTP/3 client answered"

timed() { # command... -> its stdout in $WORK/gen.txt; its CPU share in $WORK/cpu
  local TIMEFORMAT=%P
  { time "$@" >"$WORK/gen.txt" 2>"$WORK/gen.err"; } 2>"$WORK/cpu"
}
flag() { awk -v c="$1" 'BEGIN {printf "%s%s", c, (c + 0 > 85 ? "%!" : "%")}'; }
wrk_warm() { # url -> "rps cpu"
  timed taskset -c 1 wrk -t1 -c64 -d"${SECS}s" -s benches/http/warm.lua "$1"
  echo "$(awk '/Requests\/sec/ {print $2}' "$WORK/gen.txt") $(flag "$(cat "$WORK/cpu")")"
}
h2load_warm() { # url [h2load flags...] -> "rps cpu" (h2c when the url is http://)
  local url=$1; shift
  timed taskset -c 1 h2load -D "$SECS" -c 16 -m 16 -t 1 -d "$WORK/code.txt" \
    -H "authorization: Bearer $KEY" -H 'content-type: text/plain' "$@" "$url"
  echo "$(awk '/^finished/ {print $4}' "$WORK/gen.txt") $(flag "$(cat "$WORK/cpu")")"
}
h1load_warm() { # url -> "rps cpu": HTTP/1.1, 64 connections, one request at a time each
  h2load_warm "$1" --h1 -c 64 -m 1
}
lt() { # port protocol extra... -> "rps cpu" (loadtest reports its own CPU)
  local port=$1 proto=$2; shift 2
  taskset -c 1 $BIN/loadtest --target "127.0.0.1:$port" --protocol "$proto" --state-dir "$WORK/state" \
    --mix green=1 --lean --warmup 0 --duration "$SECS" --no-progress --json "$WORK/lt.json" "$@" >"$WORK/lt.txt" 2>&1 || true
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.0f %.0f" % (r["throughput_rps"], 100*(r["generator_cpu"] or 0)))' \
    "$WORK/lt.json" | { read -r rps cpu; echo "$rps $(flag "$cpu")"; }
}
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{n += $1} END {printf "%.0f", n}'; }
on() { # pid gen-function args... -> "rps cpu% server-us/request"
  local pid=$1 t0 t1 out; shift
  t0=$(cpu_ns "$pid"); out=$("$@"); t1=$(cpu_ns "$pid")
  awk -v o="$out" -v t=$(( t1 - t0 )) -v s="$SECS" 'BEGIN {split(o, f, " "); n = f[1] * s;
    printf "%s %.2fus", o, t / 1000 / (n > 0 ? n : 1)}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores; $SECS s per run, $ROUNDS rounds"
printf "%-5s %-14s %-32s %-32s %s\n" round case "gateway (rps, gen CPU, CPU/req)" "reference" "throughput ratio, CPU/req ratio"
CASES=${CASES:-"h1-warm h1-warm-h2load h1-plain h2-warm h2c-warm h3-warm h1-cold h2-cold"}
declare -A R C
for r in $(seq "$ROUNDS"); do
  core=$(taskset -c 0 $BIN/core_rate 3)
  row() { # case gateway reference
    case " $CASES " in *" $1 "*) ;; *) return ;; esac
    local x c=""; x=$(ratio "${2%% *}" "${3%% *}")
    R[$1]="${R[$1]:-} $x"
    # CPU per request, minimal / gateway (the third field of each side, when both have one).
    local g m; g=$(echo "$2" | awk '{print $3}' | tr -d us); m=$(echo "$3" | awk '{print $3}' | tr -d us)
    if [ -n "$g" ] && [ -n "$m" ]; then c=$(ratio "$m" "$g"); C[$1]="${C[$1]:-} $c"; fi
    printf '%-5s %-14s %-32s %-32s %s %s\n' "$r" "$1" "$2" "$3" "$x" "$c"
  }
  want() { case " $CASES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
  want h1-warm && row h1-warm "$(on $GW_PID wrk_warm "$GW")" "$(on $MIN_PID wrk_warm "$MIN")"
  want h1-warm-h2load && row h1-warm-h2load "$(on $GW_PID h1load_warm "$GW")" "$(on $MIN_PID h1load_warm "$MIN")"
  want h1-plain && row h1-plain "$(on $GW_PID h1load_warm "$GW_PLAIN")" "$(on $MIN_PID h1load_warm "$MIN_PLAIN")"
  want h2-warm && row h2-warm "$(on $GW_PID h2load_warm "$GW")" "$(on $MIN_PID h2load_warm "$MIN")"
  want h2c-warm && row h2c-warm "$(on $GW_PID h2load_warm "$GW_PLAIN")" "$(on $MIN_PID h2load_warm "$MIN_PLAIN")"
  want h3-warm && row h3-warm "$(on $GW_PID lt 18443 h3 --connections 8 --streams 8)" "$(on $MIN3_PID lt 18445 h3 --connections 8 --streams 8)"
  want h1-cold && row h1-cold "$(on $GW_PID lt 18443 h1 --cold --connections 64 --concurrency 64)" "$core bare"
  want h2-cold && row h2-cold "$(on $GW_PID lt 18443 h2 --cold --connections 16 --streams 16)" "$core bare"
done
for c in $CASES; do
  echo "median $c: throughput $(echo "${R[$c]}" | median)${C[$c]:+, CPU per request minimal / gateway $(echo "${C[$c]}" | median)}"
done
