#!/usr/bin/env bash
# Batch audit at scale: a synthetic export of PATIENTS patients (default 250000, about 4 orders
# each) written by `vcf-cds synth`, then `vcf-cds batch-audit` over it under GNU time for wall
# time and peak RSS. Usage: scripts/bench-batch-audit.sh [PATIENTS] [WORKDIR]
# Needs about 3 GB of disk in WORKDIR (default: a temporary directory, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
patients=${1:-250000}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin vcf-cds
bin="$target/release/vcf-cds"
work=${2:-}
if [ -z "$work" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
echo "== machine: $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== synth --patients $patients"
/usr/bin/time -f "synth: %e s wall, %M KB peak RSS" "$bin" synth --patients "$patients" --seed 1 --out "$work/export"
du -sh "$work/export"
echo "== batch-audit"
/usr/bin/time -f "batch-audit: %e s wall, %U s user, %S s system, %M KB peak RSS" \
  "$bin" batch-audit "$work/export" --out "$work/report" --quiet
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
