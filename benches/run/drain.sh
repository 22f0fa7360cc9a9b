#!/usr/bin/env bash
# Scenario 1: one client drains a topic of COUNT one-kilobyte JSON events as fast as it
# can, side by side in one run: a bare librdkafka consumer loop (the limit), this crate
# (axum_service, release build, SSE and NDJSON) and KafkaSSE, all from the same broker and
# the same data.
#
# Usage: benches/run/drain.sh
# Environment: COUNT (default 1000000), SIZE (bytes per event, default 1024),
# KAFKASSE_COUNT (events KafkaSSE drains, default COUNT; it is slow), REPEAT (default 1),
# KAFKASSE=0 to leave KafkaSSE out; see common.sh.
set -euo pipefail
# shellcheck source=benches/run/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_setup "$@"

COUNT="${COUNT:-1000000}"
SIZE="${SIZE:-1024}"
KAFKASSE_COUNT="${KAFKASSE_COUNT:-$COUNT}"
REPEAT="${REPEAT:-1}"
TOPIC=bench.drain
OUT="$(results_dir drain)"
RESULTS="$OUT/results.jsonl"
ID="$(from_start_id "$TOPIC")"

log "filling $TOPIC with $COUNT events of $SIZE bytes"
loadgen 900 fill --brokers "$KAFKA_BROKERS" --topic "$TOPIC" --count "$COUNT" --size "$SIZE" \
  --label fill --json-out "$OUT/fill.jsonl" >/dev/null

# sse_drain COUNT LABEL [ARGS...]: one client drains the stream of the server started last.
sse_drain() {
  local count="$1" label="$2"
  shift 2
  loadgen 1800 sse-drain --url "$SERVER_URL/v2/stream/drain" --last-event-id "$ID" --count "$count" \
    --timeout 29m --server-pid "$SERVER_PID" --label "$label" --json-out "$RESULTS" "$@" >/dev/null
}

for ((round = 1; round <= REPEAT; round++)); do
  log "round $round: raw librdkafka"
  loadgen 900 raw-drain --brokers "$KAFKA_BROKERS" --topic "$TOPIC" --count "$COUNT" \
    --label "raw rdkafka BaseConsumer" --json-out "$RESULTS" >/dev/null
  loadgen 900 raw-drain --brokers "$KAFKA_BROKERS" --topic "$TOPIC" --count "$COUNT" --api stream \
    --label "raw rdkafka StreamConsumer" --json-out "$RESULTS" >/dev/null

  log "round $round: kafka-sse (axum_service)"
  start_axum "$OUT/axum_service.log" "drain=$TOPIC"
  sse_drain "$COUNT" "kafka-sse SSE"
  sse_drain "$COUNT" "kafka-sse NDJSON" --ndjson
  stop_server "$SERVER_PID"

  # The same library on bare hyper with the pass-through deserializer: what the example
  # service's choice of JsonWithMeta (parse, add meta, serialize again) costs.
  log "round $round: kafka-sse (bare hyper, JsonPassThrough)"
  start_loadgen_serve "$OUT/serve.log" passthrough "drain=$TOPIC"
  sse_drain "$COUNT" "kafka-sse SSE, JsonPassThrough"
  stop_server "$SERVER_PID"

  if [[ "${KAFKASSE:-1}" != 0 ]]; then
    log "round $round: KafkaSSE ($KAFKASSE_COUNT events)"
    start_kafkasse "$OUT/kafkasse.log" "drain=$TOPIC"
    sse_drain "$KAFKASSE_COUNT" "KafkaSSE"
    stop_server "$SERVER_PID"
  fi
done

{
  echo "## Drain: $COUNT events of $SIZE bytes, one client"
  echo
  machine
  echo
  "$LOADGEN" report --input "$RESULTS" --column label=Reader --column events=Events \
    --column seconds=Seconds --column events_per_sec=Events/s --column mb_per_sec=MB/s \
    --column first_event_ms="First event (ms)" --column gaps=Gaps \
    --column reader_cpu_s="Reader CPU (s)" --column server_cpu_us_per_event="Server CPU (µs/event)" \
    --ratio "events_per_sec:raw rdkafka BaseConsumer" --ratio "events_per_sec:KafkaSSE"
  echo
  echo "MB/s counts message payloads for the raw consumers and the de-chunked HTTP body"
  echo "(frames with ids, and the metadata each server adds) for the HTTP readers. Reader CPU"
  echo "is the raw consumer's or the HTTP client's; server CPU is user + system time of the"
  echo "server process over the drain, per event."
} | tee "$OUT/table.md"
log "results in $OUT"
