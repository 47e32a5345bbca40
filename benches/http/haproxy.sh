#!/usr/bin/env bash
# Cold ES256 against HAProxy (issue 13 item 4): what an operator could put at the edge
# instead. HAProxy 2.6 verifies an ES256 JWT (`jwt_verify`, OpenSSL underneath), checks
# its expiry and looks its `jti` up in a 1,000,000-entry revocation map, then answers a
# fixed allow; the gateway verifies ES256 codes through its whole decision (signature,
# validity, status set, policy), every code new (loadtest --cold, signed with an ES256
# issuer key added to the trust list). Both over TLS HTTP/1.1 with 64 keep-alive
# connections, each server alone on core 0, the generators on core 1 (wrk for HAProxy,
# cycling through 100,000 distinct tokens; loadtest --lean for the gateway), rounds
# interleaved, and the bare rate of the same check on one core (`core_rate N es256`:
# cold ES256 decisions without HTTP) in each round. Every figure has its generator's CPU
# ("!" above 85 %).
#
# Needs haproxy (Debian: haproxy), wrk, python3 with `cryptography`. Traffic goes to
# 127.0.0.1 only; every run is bounded in time.
# Usage: [ROUNDS=3] benches/http/haproxy.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
ROUNDS=${ROUNDS:-3}
cargo build --release -q -p gateway -p gateway-benches -p loadtest --bins
BIN=target/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
ready() { for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.1; done; return 1; }

# The gateway's quick-start state, plus an ES256 issuer key in its trust list.
$BIN/gateway serve --state-dir "$WORK/state" --listen 127.0.0.1:18443 \
  --admin-listen 127.0.0.1:19090 >/dev/null 2>&1 & first=$!
ready 19090; kill "$first"; wait "$first" 2>/dev/null || true
$BIN/gateway keygen --alg ES256 --kid bench-es --issuer CN-33 --out "$WORK/es.key" >"$WORK/es.entry"
python3 - "$WORK/state/trust.json" "$WORK/es.entry" <<'EOF'
import json, sys
trust = json.load(open(sys.argv[1]))
entry = json.loads(open(sys.argv[2]).read())
# loadtest issues its codes a little in the past (as phones' clocks are): the key must
# already have been valid then.
entry["not_before"] = trust["keys"][0]["not_before"]
trust["keys"].append(entry)
json.dump(trust, open(sys.argv[1], "w"))
EOF
rm -rf "$WORK/state"/snapshot*
taskset -c 0 $BIN/gateway serve --state-dir "$WORK/state" --listen 127.0.0.1:18443 \
  --admin-listen 127.0.0.1:19090 >"$WORK/gw.out" 2>"$WORK/gw.err" &
GW_PID=$!
ready 19090

# HAProxy: a P-256 key, 100,000 signed tokens, a 1,000,000-entry jti revocation map.
python3 - "$WORK" <<'EOF'
import base64, json, os, sys, time, uuid
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
work = sys.argv[1]
key = ec.generate_private_key(ec.SECP256R1())
open(f"{work}/jwt.pub", "wb").write(key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
head = b64(json.dumps({"alg": "ES256", "typ": "JWT", "kid": "bench-es"}).encode())
exp = int(time.time()) + 6 * 3600
with open(f"{work}/tokens.txt", "w") as out:
    for i in range(100_000):
        body = b64(json.dumps({"iss": "CN-33", "sub": os.urandom(16).hex(), "jti": str(uuid.uuid4()),
                               "exp": exp, "color": "green"}).encode())
        der = key.sign(head + b"." + body, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        out.write((head + b"." + body + b"." + sig).decode() + "\n")
with open(f"{work}/revoked.map", "w") as out:
    for i in range(1_000_000):
        out.write(f"{uuid.uuid4()} 1\n")
EOF
cat "$WORK/state/tls/cert.pem" "$WORK/state/tls/key.pem" >"$WORK/haproxy.pem"
cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    tune.ssl.default-dh-param 2048
defaults
    mode http
    timeout client 30s
    timeout server 30s
    timeout connect 5s
frontend verify
    bind 127.0.0.1:18480 ssl crt $WORK/haproxy.pem alpn http/1.1
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
    http-request deny unless { var(txn.alg) -m str ES256 }
    http-request deny unless { var(txn.bearer),jwt_verify(txn.alg,"$WORK/jwt.pub") -m int 1 }
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
    http-request set-var(txn.now) date()
    http-request deny if { var(txn.exp),sub(txn.now) -m int lt 0 }
    http-request set-var(txn.jti) var(txn.bearer),jwt_payload_query('$.jti')
    http-request deny if { var(txn.jti),map($WORK/revoked.map) -m found }
    http-request return status 200 content-type application/json string '{"decision":"allow"}'
EOF
taskset -c 0 haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.out" 2>&1 &
HA_PID=$!
for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/18480) 2>/dev/null && break; sleep 0.1; done
cat >"$WORK/tokens.lua" <<'EOF'
local tokens = {}
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/verify", { ["Authorization"] = "Bearer " .. tokens[i] })
end
EOF

# Correctness first: HAProxy allows a good token and denies a forged one; the gateway
# allows the ES256 codes and denies forged ones.
good=$(head -1 "$WORK/tokens.txt")
bad=$(python3 -c 'import sys; t = sys.argv[1]; c = t[-20]; print(t[:-20] + ("B" if c == "A" else "A") + t[-19:])' "$good")
[ "$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $good" https://127.0.0.1:18480/verify)" = 200 ]
[ "$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $bad" https://127.0.0.1:18480/verify)" = 403 ]
$BIN/loadtest --target 127.0.0.1:18443 --state-dir "$WORK/state" --protocol h1 --requests 200 \
  --issuer-key "$WORK/es.key" --kid bench-es --iss CN-33 \
  --mix green=1,forged=1 --fail-if 'wrong>0' --no-progress >"$WORK/pre.txt" 2>&1 || { cat "$WORK/pre.txt"; exit 1; }
echo "pre-check: HAProxy allows a signed token and denies a forged one; the gateway allows ES256 codes and denies forged ones"

flag() { awk -v c="$1" 'BEGIN {printf "%s%s", c, (c + 0 > 85 ? "%!" : "%")}'; }
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{n += $1} END {printf "%.0f", n}'; }
haproxy_run() { # -> "rps gen% server-us/request"
  local t0 t1 TIMEFORMAT=%P
  t0=$(cpu_ns $HA_PID)
  { time TOKENS="$WORK/tokens.txt" taskset -c 1 wrk -t1 -c64 -d"${SECS}s" -s "$WORK/tokens.lua" \
      https://127.0.0.1:18480/verify >"$WORK/wrk.txt" 2>&1; } 2>"$WORK/cpu"
  t1=$(cpu_ns $HA_PID)
  local rps; rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
  if grep -q "Non-2xx" "$WORK/wrk.txt"; then echo "HAProxy answered non-2xx: $(grep Non-2xx "$WORK/wrk.txt")" >&2; fi
  awk -v r="$rps" -v c="$(flag "$(cat "$WORK/cpu")")" -v t=$(( t1 - t0 )) -v s="$SECS" \
    'BEGIN {printf "%.0f %s %.2fus", r, c, t / 1000 / (r * s)}'
}
gateway_run() { # -> "rps gen% server-us/request"
  local t0 t1
  t0=$(cpu_ns $GW_PID)
  taskset -c 1 $BIN/loadtest --target 127.0.0.1:18443 --protocol h1 --state-dir "$WORK/state" \
    --issuer-key "$WORK/es.key" --kid bench-es --iss CN-33 --cold --lean --mix green=1 \
    --connections 64 --concurrency 64 --warmup 1 --duration "$SECS" --no-progress \
    --json "$WORK/lt.json" >"$WORK/lt.txt" 2>&1 || true
  t1=$(cpu_ns $GW_PID)
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.0f %.0f" % (r["throughput_rps"], 100*(r["generator_cpu"] or 0)))' \
    "$WORK/lt.json" | { read -r rps cpu; awk -v r="$rps" -v c="$(flag "$cpu")" -v t=$(( t1 - t0 )) -v s="$((SECS + 1))" \
      'BEGIN {printf "%.0f %s %.2fus", r, c, t / 1000 / (r * s)}'; }
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores; $SECS s per run, $ROUNDS rounds; $(haproxy -v | head -1 | cut -d' ' -f1-3)"
printf "%-5s %-10s %-28s %-28s %-10s %s\n" round bare "gateway (rps, gen, CPU/req)" "HAProxy (rps, gen, CPU/req)" gw/HAProxy gw/bare
declare -A R B
for r in $(seq "$ROUNDS"); do
  bare=$(taskset -c 0 $BIN/core_rate 3 es256)
  if [ $((r % 2)) = 1 ]; then g=$(gateway_run); h=$(haproxy_run); else h=$(haproxy_run); g=$(gateway_run); fi
  x=$(awk -v a="${g%% *}" -v b="${h%% *}" 'BEGIN {printf "%.3f", a / b}')
  y=$(awk -v a="${g%% *}" -v b="$bare" 'BEGIN {printf "%.3f", a / b}')
  R[x]="${R[x]:-} $x"; B[x]="${B[x]:-} $y"
  printf "%-5s %-10s %-28s %-28s %-10s %s\n" "$r" "$bare" "$g" "$h" "$x" "$y"
done
echo "median gateway / HAProxy: $(echo "${R[x]}" | median); median gateway / bare ES256 decisions: $(echo "${B[x]}" | median)"
