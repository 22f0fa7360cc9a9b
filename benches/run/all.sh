#!/usr/bin/env bash
# Runs the scenarios of BENCHMARKS.md one after another (each with its own broker) and
# collects their tables in one file. Takes about half an hour with the default sizes.
#
# Usage: benches/run/all.sh
# Environment: passed on to the scenario scripts (see each); RESULTS_DIR as in common.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

(cd "$ROOT" && timeout 1800 cargo build --release -p kafka-sse -p kafka-sse-loadgen --example axum_service --bin kafka-sse-loadgen)
if [[ "${KAFKASSE:-1}" != 0 ]]; then
  timeout 1800 "$ROOT/benches/kafkasse/setup.sh"
fi
export SKIP_BUILD=1
summary="${RESULTS_DIR:-$ROOT/target/bench-results}/all-$(date +%Y%m%d-%H%M%S).md"
mkdir -p "$(dirname "$summary")"
for scenario in drain fanout first-event slow-client partitions; do
  echo "=== $scenario" >&2
  # Each script bounds its own steps; this bounds the whole scenario too.
  timeout --kill-after=60 7200 "$HERE/$scenario.sh" | tee -a "$summary"
  echo >>"$summary"
done
echo "tables in $summary" >&2
