#!/usr/bin/env bash
# Scenario: what a stream's partition count costs, with JSON and compact event ids side by
# side in one run. For each partition count, a topic of COUNT one-kilobyte JSON events spread
# evenly over its partitions is drained by one client from offset 0 of every partition,
# through axum_service (release build) started with `--id-format json` and then
# `--id-format compact`: events/s, bytes per event on the wire (the de-chunked HTTP body:
# frames with their ids) and the server's CPU time per event.
#
# Usage: benches/run/partitions.sh
# Environment: COUNT (default 50000), SIZE (bytes per event, default 1024),
# PARTITIONS (default "1 16 64 256 1024"); see common.sh. KafkaSSE is not part of it.
set -euo pipefail
# shellcheck source=benches/run/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
export KAFKASSE=0
bench_setup "$@"

COUNT="${COUNT:-50000}"
SIZE="${SIZE:-1024}"
read -r -a PARTITION_COUNTS <<<"${PARTITIONS:-1 16 64 256 1024}"
OUT="$(results_dir partitions)"
RESULTS="$OUT/results.jsonl"

for partitions in "${PARTITION_COUNTS[@]}"; do
  topic="bench.partitions.$partitions"
  log "filling $topic ($partitions partitions) with $COUNT events of $SIZE bytes"
  loadgen 900 fill --brokers "$KAFKA_BROKERS" --topic "$topic" --partitions "$partitions" \
    --count "$COUNT" --size "$SIZE" --label fill --json-out "$OUT/fill.jsonl" >/dev/null
  id="$(from_start_id "$topic" "$partitions")"
  for form in json compact; do
    log "$partitions partitions, $form ids"
    start_axum "$OUT/axum_service-$partitions-$form.log" "drain=$topic" -- --id-format "$form"
    loadgen 1800 sse-drain --url "$SERVER_URL/v2/stream/drain" --last-event-id "$id" \
      --count "$COUNT" --partitions "$partitions" --timeout 29m --server-pid "$SERVER_PID" \
      --label "$partitions, $form" --json-out "$RESULTS" >/dev/null
    stop_server "$SERVER_PID"
  done
done

{
  echo "## Partitions: $COUNT events of $SIZE bytes, one client, JSON and compact ids"
  echo
  machine
  echo
  "$LOADGEN" report --input "$RESULTS" --column label="Partitions, ids" --column events=Events \
    --column events_per_sec=Events/s --column bytes_per_event="Bytes/event" \
    --column server_cpu_us_per_event="Server CPU (µs/event)" --column gaps=Gaps \
    --ratio "bytes_per_event:1, compact" \
    --ratio "server_cpu_us_per_event:1, compact"
  echo
  echo "Bytes/event is the de-chunked HTTP body (frames with their ids, and the metadata"
  echo "JsonWithMeta adds) per event; server CPU is user + system time of the server process"
  echo "over the drain, per event. Every partition starts at offset 0 (a JSON Last-Event-ID)."
} | tee "$OUT/table.md"
log "results in $OUT"
