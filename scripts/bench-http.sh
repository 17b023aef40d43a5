#!/usr/bin/env bash
# HTTP throughput and latency of the real service against a bare actix-web baseline, in the same
# run, with the same load generator (wrk) and the same duration per row (issue 12).
#
# Usage: scripts/bench-http.sh   (environment: DURATION=10s, IDLE_DURATION=5s, REQUEST=hooks/….json)
#
# Builds (release) the service, `examples/baseline_echo.rs` (reads the body, parses it into a
# serde_json::Value, answers a fixed small card) and `examples/fhir_stub.rs` (a loopback FHIR
# server answering the five prefetch queries from the request file's prefetch). Starts all three
# on free loopback ports (the service with its default durable SQLite audit store in a temporary
# directory on disk), then for each row runs wrk against the baseline, the service and the
# baseline again (the ratio uses the mean of the two baseline runs):
#   - the prefetch request at 32 and 4 connections;
#   - the fetch-mode request (no prefetch, `fhirServer` = the stub: 5 FHIR queries per call)
#     at 32 and 4 connections (the baseline gets the same, smaller, body);
#   - GET /cds-services at 32 connections;
# and an idle single request (wrk, one connection, one call at a time 20 ms apart). Every POST
# carries a fresh hookInstance. Prints requests/s, p50, p99, max, non-2xx, peak RSS (VmHWM) and
# the ratio to the baseline. Bounded in time (about 15 x DURATION + 2 x IDLE_DURATION + 1 min
# after the build); stops everything it started, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
req=${REQUEST:-hooks/v1-new-symptomatic-no-malignancy.json}
service=vcf-order-select
duration=${DURATION:-10s}
secs=${duration%s}
threads=2

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing wrk (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null ||
      { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }
  else
    echo "wrk is not installed: apt-get install wrk" >&2
    exit 1
  fi
fi
for tool in curl python3 timeout; do
  command -v $tool >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done

profile=${PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
if [ -n "${BENCH_BIN_DIR:-}" ]; then
  # Already built binaries (vcf-cds, baseline_echo, fhir_stub side by side): for comparing builds.
  svc_bin=$BENCH_BIN_DIR/vcf-cds
  ex_dir=$BENCH_BIN_DIR
else
  echo "== build ($profile)"
  cargo build --profile "$profile" --quiet --bin vcf-cds --example baseline_echo --example fhir_stub
  svc_bin=$target/$profile/vcf-cds
  ex_dir=$target/$profile/examples
fi

# On disk (not tmpfs): the audit store's fsyncs are part of what is measured.
mkdir -p "$target"
tmp=$(mktemp -d "$target/bench-http.XXXXXX")
tmp=$(cd "$tmp" && pwd)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_http() { # URL: waits (up to 10 s) for a 2xx answer
  for _ in $(seq 1000); do curl -fs -o /dev/null "$1" && return 0; sleep 0.01; done
  echo "no answer from $1" >&2
  exit 1
}
now_ms() { date +%s%3N; }

stub_port=$(free_port)
"$ex_dir/fhir_stub" --listen "127.0.0.1:$stub_port" --hook "$req" >"$tmp/stub.log" 2>&1 &
pids+=($!)
base_port=$(free_port)
"$ex_dir/baseline_echo" --listen "127.0.0.1:$base_port" >"$tmp/baseline.log" 2>&1 &
base_pid=$!
pids+=($base_pid)
svc_port=$(free_port)
t0=$(now_ms)
VCF_CDS_LISTEN=127.0.0.1:$svc_port VCF_CDS_AUDIT_DB="$tmp/audit.sqlite" \
  VCF_CDS_AUDIT_SPOOL_DIR="$tmp/spool" VCF_CDS_LOG_LEVEL=warn \
  "$svc_bin" serve >"$tmp/service.log" 2>&1 &
svc_pid=$!
pids+=($svc_pid)
wait_http "http://127.0.0.1:$svc_port/readyz"
startup_ms=$(($(now_ms) - t0))
wait_http "http://127.0.0.1:$stub_port/fhir/Patient/x"
for _ in $(seq 1000); do curl -s -o /dev/null "http://127.0.0.1:$base_port/cds-services" && break; sleep 0.01; done

# The two request bodies: as sent (full prefetch), and fetch mode (no prefetch, fhirServer = stub).
cp "$req" "$tmp/prefetch.json"
python3 - "$req" "$tmp/fetch.json" "http://127.0.0.1:$stub_port/fhir" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r.pop("prefetch", None)
r["fhirServer"] = sys.argv[3]
json.dump(r, open(sys.argv[2], "w"))
PY

# A fresh hookInstance per request: the body is split once around the hookInstance value;
# every request is prefix .. unique id .. suffix (per wrk thread: its own counter and id).
cat >"$tmp/post.lua" <<'LUA'
local path = os.getenv("BENCH_BODY")
local f = assert(io.open(path, "rb")); local body = f:read("*a"); f:close()
local s, e = body:find('"hookInstance"%s*:%s*"[^"]*"')
local prefix, suffix = body:sub(1, s - 1) .. '"hookInstance": "', '"' .. body:sub(e + 1)
local run = os.getenv("BENCH_RUN") or "run"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function request()
  n = n + 1
  return wrk.format(nil, os.getenv("BENCH_PATH"), nil,
    prefix .. "bench-" .. run .. "-" .. tostring(tid) .. "-" .. n .. suffix)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max, e.status,
    e.connect + e.read + e.write + e.timeout))
end
LUA
sed -n '/^function done/,$p' "$tmp/post.lua" >"$tmp/get.lua"

# Sanity: both bodies are answered 200 with cards before any load.
for body in prefetch fetch; do
  code=$(curl -s -o "$tmp/check.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "@$tmp/$body.json" "http://127.0.0.1:$svc_port/cds-services/$service")
  if [ "$code" != 200 ] || ! grep -q '"cards"' "$tmp/check.json"; then
    echo "the $body request was answered $code:" >&2
    head -c 600 "$tmp/check.json" >&2
    exit 1
  fi
done

rss_mb() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# run_wrk PORT CONNECTIONS LUA PATH BODY DURATION -> "requests duration_us p50 p99 max non2xx errors"
run_wrk() {
  BENCH_BODY=$5 BENCH_PATH=$4 BENCH_RUN="$1-$2-$RANDOM$RANDOM" \
    timeout $((${6%s} + 30)) wrk -t"$(($2 < threads ? $2 : threads))" -c"$2" -d"$6" \
    -s "$3" "http://127.0.0.1:$1$4" | awk '/^RESULT/ {print $2, $3, $4, $5, $6, $7, $8}'
}

echo "== warm-up"
run_wrk "$base_port" 4 "$tmp/post.lua" "/cds-services/$service" "$tmp/prefetch.json" 2s >/dev/null
run_wrk "$svc_port" 4 "$tmp/post.lua" "/cds-services/$service" "$tmp/prefetch.json" 2s >/dev/null

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== $(nproc) cores shared by wrk ($threads threads), the servers and the FHIR stub;" \
  "load average before: $load_before; $duration per row"
rows=()
fmt_ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }
# The baseline runs before and after the service and the ratio uses the mean of the two: the
# machine's speed drifts (the baseline's own figure moved by 20 % over one day), and a baseline
# measured on one side only would tilt the ratio with it.
row() { # LABEL CONNECTIONS LUA PATH BODY
  local b1 s b2
  b1=$(run_wrk "$base_port" "$2" "$3" "$4" "$5" "$duration")
  s=$(run_wrk "$svc_port" "$2" "$3" "$4" "$5" "$duration")
  b2=$(run_wrk "$base_port" "$2" "$3" "$4" "$5" "$duration")
  local line
  line=$(awk -v label="$1" -v c="$2" -v b1="$b1" -v b2="$b2" -v s="$s" \
    -v brss="$(rss_mb $base_pid)" -v srss="$(rss_mb $svc_pid)" 'BEGIN {
      split(b1, B, " "); split(b2, A, " "); split(s, S, " ");
      before = B[1] / (B[2] / 1e6); after = A[1] / (A[2] / 1e6);
      brps = (before + after) / 2; srps = S[1] / (S[2] / 1e6);
      printf "| %s | %d | %.0f | %.0f (%.0f, %.0f) | **%.2f** | %.2f ms | %.2f ms | %.2f ms | %d | %d | %s MB | %s MB |",
        label, c, srps, brps, before, after, srps / brps, S[3] / 1000, S[4] / 1000, S[5] / 1000,
        S[6], S[7], srss, brss
    }')
  echo "$line"
  rows+=("$line")
}
header="| row | conns | vcf-cds req/s | baseline req/s (before, after) | ratio | p50 | p99 | max | non-2xx | socket errors | vcf-cds peak RSS | baseline peak RSS |"
echo "$header"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
row "prefetch POST" 32 "$tmp/post.lua" "/cds-services/$service" "$tmp/prefetch.json"
row "prefetch POST" 4 "$tmp/post.lua" "/cds-services/$service" "$tmp/prefetch.json"
row "fetch-mode POST (5 FHIR queries)" 32 "$tmp/post.lua" "/cds-services/$service" "$tmp/fetch.json"
row "fetch-mode POST (5 FHIR queries)" 4 "$tmp/post.lua" "/cds-services/$service" "$tmp/fetch.json"
row "GET /cds-services" 32 "$tmp/get.lua" "/cds-services" "$tmp/prefetch.json"

# Idle single request: one call at a time on one kept-alive connection, 20 ms apart (wrk's
# `delay()`), fresh hookInstance each, for IDLE_DURATION (default 5s); wrk times each request
# from writing it to reading the complete answer. (Before, a Python http.client loop measured
# this row: it added about 0.5 ms of client time to both servers.)
idle_duration=${IDLE_DURATION:-5s}
{ cat "$tmp/post.lua"; echo 'function delay() return 20 end'; } >"$tmp/idle.lua"
idle() { # PORT -> "requests p50_us p99_us max_us"
  local r
  r=$(run_wrk "$1" 1 "$tmp/idle.lua" "/cds-services/$service" "$tmp/prefetch.json" "$idle_duration")
  awk '{print $1, $3, $4, $5}' <<<"$r"
}
read -r b_n b_med b_p99 b_max <<<"$(idle "$base_port")"
read -r s_n s_med s_p99 s_max <<<"$(idle "$svc_port")"
idle_line="| idle single request (prefetch), one at a time 20 ms apart ($s_n / $b_n calls) | 1 | p50 $(fmt_ms "$s_med"), p99 $(fmt_ms "$s_p99"), max $(fmt_ms "$s_max") | p50 $(fmt_ms "$b_med"), p99 $(fmt_ms "$b_p99"), max $(fmt_ms "$b_max") | | | | | | | | |"
echo "$idle_line"
echo
echo "start-up to ready (spawn to first 200 from /readyz, incl. audit store migration): ${startup_ms} ms"
echo "peak RSS (VmHWM over the whole run): vcf-cds $(rss_mb $svc_pid) MB, baseline $(rss_mb $base_pid) MB"
echo "load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
audit_rows=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from audit_calls").fetchone()[0])' "$tmp/audit.sqlite" 2>/dev/null || echo "?")
echo "audit_calls rows committed during the run: $audit_rows"
