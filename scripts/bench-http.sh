#!/usr/bin/env bash
# HTTP latency/throughput of the real service under wrk (Debian package `wrk`).
# Usage: scripts/bench-http.sh [REQUEST_JSON] [SERVICE_ID]
# Builds the release binary, starts it on a free loopback port with a temporary audit store,
# runs wrk for a bounded time at two concurrency levels, prints the figures, stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
req=${1:-hooks/v1-new-symptomatic-no-malignancy.json}
service=${2:-vcf-order-select}
duration=${DURATION:-10s}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }

cargo build --release --quiet
tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
VCF_CDS_LISTEN=127.0.0.1:$port VCF_CDS_AUDIT_DB="$tmp/audit.sqlite" VCF_CDS_AUDIT_SPOOL_DIR="$tmp/spool" \
  VCF_CDS_LOG_LEVEL=warn ./target/release/vcf-cds serve &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

# Every call needs a fresh hookInstance (the audit store keys records on it).
cat > "$tmp/post.lua" <<LUA
local f = io.open("$req", "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local b = body:gsub('"hookInstance"%s*:%s*"[^"]*"', '"hookInstance": "bench-' .. os.time() .. '-' .. math.random(1, 1e9) .. '-' .. n .. '"', 1)
  return wrk.format(nil, "/cds-services/$service", nil, b)
end
LUA

echo "== $req -> $service ($(wc -c < "$req") bytes), $(nproc) cores shared by wrk and the server"
for c in 4 16; do
  echo "-- wrk -t1 -c$c -d$duration"
  wrk -t1 -c$c -d"$duration" --latency -s "$tmp/post.lua" "http://127.0.0.1:$port" | grep -E "Requests/sec|Latency|50%|99%|Non-2xx|Socket errors"
done
echo "-- GET /cds-services, wrk -t1 -c16 -d$duration"
wrk -t1 -c16 -d"$duration" --latency "http://127.0.0.1:$port/cds-services" | grep -E "Requests/sec|50%|99%|Non-2xx"
