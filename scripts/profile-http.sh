#!/usr/bin/env bash
# Where a hook call's CPU time goes (issue 12). Builds the `profiling` profile (release code
# generation with line tables), starts the service (default durable SQLite audit store in a
# temporary directory on disk) and then, by MODE:
#   perf       (default) wrk drives the prefetch request at 32 connections for DURATION while
#              `perf record` samples the service (cpu-clock, DWARF call graphs); prints the top
#              entries by self time and by inclusive time, and the service's CPU time per request.
#   callgrind  the service runs under valgrind --tool=callgrind; 200 sequential prefetch calls
#              (fresh hookInstance each) are counted with instrumentation switched on only
#              around them; prints instructions per call and the top functions (inclusive).
# Usage: scripts/profile-http.sh [perf|callgrind]   (environment: DURATION=10s, REQUEST=…)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-perf}
req=${REQUEST:-hooks/v1-new-symptomatic-no-malignancy.json}
duration=${DURATION:-10s}
target=${CARGO_TARGET_DIR:-target}
if [ -n "${SVC_BIN:-}" ]; then
  bin=$SVC_BIN # an already built binary (for comparing builds)
else
  cargo build --profile profiling --quiet --bin vcf-cds
  bin=$target/profiling/vcf-cds
fi
mkdir -p "$target"
tmp=$(mktemp -d "$target/profile-http.XXXXXX")
tmp=$(cd "$tmp" && pwd)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export VCF_CDS_LISTEN=127.0.0.1:$port VCF_CDS_AUDIT_DB="$tmp/audit.sqlite" \
  VCF_CDS_AUDIT_SPOOL_DIR="$tmp/spool" VCF_CDS_LOG_LEVEL=${VCF_CDS_LOG_LEVEL:-warn}
prefix=()
if [ "$mode" = callgrind ]; then
  prefix=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$tmp/callgrind.out")
fi
"${prefix[@]}" "$bin" serve >"$tmp/service.log" 2>&1 &
pid=$!
for _ in $(seq 600); do curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.05; done

calls() { # N: sequential calls with a fresh hookInstance each
  python3 - "$port" "$req" "$1" <<'PY'
import http.client, json, sys, uuid
port, req, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
body = json.load(open(req))
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    body["hookInstance"] = str(uuid.uuid4())
    conn.request("POST", "/cds-services/vcf-order-select", json.dumps(body).encode(),
                 {"Content-Type": "application/json"})
    r = conn.getresponse(); r.read()
    assert r.status == 200, r.status
PY
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

case $mode in
perf)
  calls 50
  cat >"$tmp/post.lua" <<LUA
local f = assert(io.open("$req", "rb")); local body = f:read("*a"); f:close()
local s, e = body:find('"hookInstance"%s*:%s*"[^"]*"')
local prefix, suffix = body:sub(1, s - 1) .. '"hookInstance": "', '"' .. body:sub(e + 1)
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function request()
  n = n + 1
  return wrk.format(nil, "/cds-services/vcf-order-select", nil,
    prefix .. "prof-" .. os.time() .. "-" .. tostring(tid) .. "-" .. n .. suffix)
end
function done(summary) io.write(string.format("REQUESTS %d\n", summary.requests)) end
LUA
  t0=$(cpu_ticks "$pid")
  perf record -q -e cpu-clock -F 2000 --call-graph dwarf,16384 -p "$pid" -o "$tmp/perf.data" &
  perf_pid=$!
  requests=$(wrk -t2 -c32 -d"$duration" -s "$tmp/post.lua" "http://127.0.0.1:$port" |
    awk '/^REQUESTS/ {print $2}')
  t1=$(cpu_ticks "$pid")
  kill -INT "$perf_pid"; wait "$perf_pid" || true
  hz=$(getconf CLK_TCK)
  echo "== $requests requests; service CPU time $(( (t1 - t0) * 1000 / hz )) ms =" \
    "$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.0f", t / hz * 1e6 / n}') µs per request" \
    "(load average $(cut -d' ' -f1-3 /proc/loadavg))"
  if [ -n "${PERF_DATA:-}" ]; then cp "$tmp/perf.data" "$PERF_DATA"; fi
  set +o pipefail # `head` closes the reports' pipes early
  echo "== by thread"
  perf report -i "$tmp/perf.data" --no-children --stdio --sort comm -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -8
  echo "== top entries, self time"
  perf report -i "$tmp/perf.data" --no-children --stdio --percent-limit 0.7 -g none \
    --sort dso,symbol 2>/dev/null | grep -v '^#' | grep -v '^$' | cut -c1-150 | head -40
  echo "== top entries of this crate and the engine, inclusive time"
  perf report -i "$tmp/perf.data" --children --stdio --percent-limit 1 -g none --sort symbol \
    2>/dev/null | grep -E 'vcf_cds::|vcf_engine::|fhir_build::|sqlx|serde_json::(ser|de)::(to|from)' |
    grep -v '{async_block\|{closure' | cut -c1-150 | head -50

  ;;
callgrind)
  calls 20
  callgrind_control -i on "$pid" >/dev/null
  calls 200
  callgrind_control -i off "$pid" >/dev/null
  callgrind_control -d "$pid" >/dev/null
  sleep 1
  out=$(ls -t "$tmp"/callgrind.out* | head -1)
  total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "== instructions per call: $((total / 200)) (200 sequential calls, all threads)"
  cp "$out" "${CALLGRIND_OUT:-/dev/null}"
  set +o pipefail
  callgrind_annotate --inclusive=yes "$out" 2>/dev/null | sed -n '/^Ir/,$p' | cut -c1-170 | head -60
  ;;
*)
  echo "unknown mode $mode (perf | callgrind)" >&2
  exit 1
  ;;
esac
