#!/usr/bin/env bash
# The offline bundle served to many validators at once (issue 25 item 6): a quick-start
# gateway holding a status list of 10 M subjects (1 % flagged, about 190 KB signed) and
# its updates; h2load fetches /v1/offline/bundle from N clients at once (one request
# each, then N more), and the gateway's RSS is read before, at its peak, and after.
# The bundle is made once per state of the feed and shared as one buffer: memory must
# not grow with the number of clients beyond their connections' own state.
# Needs h2load (Debian: nghttp2-client). Traffic to 127.0.0.1 only; bounded.
# Usage: benches/http/bundle_fanout.sh [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000}
cargo build --release -q -p gateway -p gateway-benches
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
GW=target/release/gateway
ulimit -n 65536 || true
"$GW" serve --state-dir "$WORK/s" --listen 127.0.0.1:18643 --admin-listen 127.0.0.1:19290 \
  --max-connections 4096 --max-connections-per-ip 4096 >/dev/null 2>"$WORK/err" & pid=$!
for _ in $(seq 300); do curl -sf http://127.0.0.1:19290/readyz >/dev/null && break; sleep 0.1; done
# A 10 M-subject list of the quick start's issuer, as the benchmark binary signs it.
target/release/status_lists feed "$WORK/s" >>"$WORK/s/feed.jsonl"
for _ in $(seq 300); do
  [ "$(curl -sf http://127.0.0.1:19290/v1/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["status_lists"])')" -ge 2 ] && break
  sleep 0.1
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
KEY=$(cat "$WORK/s/api.key")
bytes=$(curl -sf --cacert "$WORK/s/tls/cert.pem" -H "Authorization: Bearer $KEY" https://localhost:18643/v1/offline/bundle | wc -c)
before=$(rss)
peak=$before
( while kill -0 $pid 2>/dev/null; do r=$(rss); [ "$r" -gt "$(cat "$WORK/peak" 2>/dev/null || echo 0)" ] && echo "$r" >"$WORK/peak"; sleep 0.05; done ) & watcher=$!
for round in 1 2; do
  h2load -n "$N" -c "$N" -m 1 -t 1 -H "authorization: Bearer $KEY" \
    "https://127.0.0.1:18643/v1/offline/bundle" >"$WORK/h2load-$round" 2>&1 || true
done
kill $watcher 2>/dev/null || true
peak=$(cat "$WORK/peak" 2>/dev/null || echo "$before")
after=$(rss)
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "bundle: $bytes bytes; $N clients at once, twice"
grep -h -E '^requests:|^status codes:' "$WORK"/h2load-* | sed 's/^/  /'
echo "gateway RSS (KiB): before $before, peak $peak, after $after; peak - before = $((peak - before)) KiB, $(( (peak - before) * 1024 / N )) bytes per client"
