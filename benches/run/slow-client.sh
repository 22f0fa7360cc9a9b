#!/usr/bin/env bash
# Scenario 4: slow clients next to fast ones. FAST clients read at full speed, SLOW clients
# read at SLOW_FRACTION of the event rate (1% by default) with a small receive buffer. Two
# runs on fresh servers, same rate and window: the fast clients alone (baseline), then with
# the slow ones. Memory must stay bounded (the shared queue is bounded; a slow client that
# falls behind moves to its own memory-bounded consumer), the fast clients' p99 must not
# move, and no client may see a gap.
#
# Usage: benches/run/slow-client.sh
# Environment: FAST (default 1000), SLOW (default 10), SLOW_FRACTION (default 0.01),
# RATE (default 100), DURATION (default 120s; at 100 events/s a slow client needs about a
# minute to fill its socket buffers before it lags the shared queue), KAFKASSE=0 to leave
# KafkaSSE out (it runs with KAFKASSE_FAST fast clients, default 100); see common.sh.
set -euo pipefail
# shellcheck source=benches/run/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_setup "$@"

FAST="${FAST:-1000}"
SLOW="${SLOW:-10}"
SLOW_FRACTION="${SLOW_FRACTION:-0.01}"
RATE="${RATE:-100}"
DURATION="${DURATION:-120s}"
KAFKASSE_FAST="${KAFKASSE_FAST:-100}"
TOPIC=bench.slow
OUT="$(results_dir slow-client)"
RESULTS="$OUT/results.jsonl"

# run FAST SLOW LABEL: one measurement against the server started last.
run() {
  local extra=()
  [[ "$3" == kafka-sse* ]] && extra+=(--metrics-url "$SERVER_URL/metrics")
  loadgen 3600 clients --url "$SERVER_URL/v2/stream/live" --connections "$1" --slow "$2" \
    --slow-fraction "$SLOW_FRACTION" --duration "$DURATION" --grace 20s \
    --brokers "$KAFKA_BROKERS" --topic "$TOPIC" --rate "$RATE" --server-pid "$SERVER_PID" \
    "${extra[@]}" --label "$3" --json-out "$RESULTS" >"$OUT/$3.json" 2>"$OUT/$3.log"
}

for slow in 0 "$SLOW"; do
  label="kafka-sse $FAST fast + $slow slow"
  log "$label"
  start_axum "$OUT/axum_service-$slow.log" "live=$TOPIC"
  run "$FAST" "$slow" "$label"
  stop_server "$SERVER_PID"
done

if [[ "${KAFKASSE:-1}" != 0 ]]; then
  for slow in 0 "$SLOW"; do
    label="KafkaSSE $KAFKASSE_FAST fast + $slow slow"
    log "$label"
    start_kafkasse "$OUT/kafkasse-$slow.log" "live=$TOPIC"
    run "$KAFKASSE_FAST" "$slow" "$label" || log "$label: the load generator failed"
    stop_server "$SERVER_PID"
  done
fi

{
  echo "## Slow clients ($SLOW_FRACTION of the rate) next to fast ones, $RATE events/s, $DURATION"
  echo
  machine
  echo
  "$LOADGEN" report --input "$RESULTS" --column label=Run \
    --column latency_p50_ms="Fast p50 (ms)" --column latency_p99_ms="Fast p99 (ms)" \
    --column latency_max_ms="Fast max (ms)" --column lost_total="Fast lost" \
    --column slow_events_received="Slow events read" --column slow_gaps="Slow gaps" \
    --column rss_connected_mib="RSS connected (MiB)" --column rss_peak_mib="RSS peak (MiB)" \
    --column server_end.rss_kib="RSS end (KiB)" --column kafka_clients="Kafka clients (peak)" \
    --column late_total="Fast late" --column client_errors=Errors
  echo
  echo "Kafka clients (peak) rises by one for each slow client moved off the shared stream"
  echo "onto a consumer of its own. Per-second RSS samples are in $OUT/*.json."
} | tee "$OUT/table.md"
log "results in $OUT"
