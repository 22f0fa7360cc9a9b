#!/usr/bin/env bash
# Scenario 3: time to first event for a new live client. Events flow at RATE/s; new
# clients connect one after another and the load generator times each one's response head
# and first event, and the first event's own produce-to-receive latency. A live client
# starts at the end of the log, so its first event is the first one produced after the
# server fixed its start position: at RATE events/s that alone is 1000 / RATE / 2 ms on
# average.
#
# Rows: this crate with BACKGROUND clients already on the stream (the shared live feed
# exists, the usual case), this crate with no other client (every new client starts its
# own look-up and consumer), and KafkaSSE (every client has its own consumer anyway).
#
# Usage: benches/run/first-event.sh
# Environment: TRIALS (default 200), KAFKASSE_TRIALS (default 50), RATE (default 100),
# BACKGROUND (default 10), KAFKASSE=0 to leave KafkaSSE out; see common.sh.
set -euo pipefail
# shellcheck source=benches/run/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_setup "$@"

TRIALS="${TRIALS:-200}"
KAFKASSE_TRIALS="${KAFKASSE_TRIALS:-50}"
RATE="${RATE:-100}"
BACKGROUND="${BACKGROUND:-10}"
TOPIC=bench.first
OUT="$(results_dir first-event)"
RESULTS="$OUT/results.jsonl"

# first_event TRIALS BACKGROUND PAUSE LABEL
first_event() {
  loadgen 1800 first-event --url "$SERVER_URL/v2/stream/live" --trials "$1" --background "$2" \
    --pause "$3" --brokers "$KAFKA_BROKERS" --topic "$TOPIC" --rate "$RATE" \
    --label "$4" --json-out "$RESULTS" >/dev/null
}

log "kafka-sse: $TRIALS new clients next to $BACKGROUND live ones"
start_axum "$OUT/axum_service.log" "live=$TOPIC"
first_event "$TRIALS" "$BACKGROUND" 50ms "kafka-sse, shared stream open"
# With no other client, the shared stream closes after each trial (about a second idle).
log "kafka-sse: new clients with no other client on the stream"
first_event "$((TRIALS / 5 > 10 ? TRIALS / 5 : 10))" 0 2s "kafka-sse, no other client"
stop_server "$SERVER_PID"

if [[ "${KAFKASSE:-1}" != 0 ]]; then
  log "KafkaSSE: $KAFKASSE_TRIALS new clients next to $BACKGROUND live ones"
  start_kafkasse "$OUT/kafkasse.log" "live=$TOPIC"
  first_event "$KAFKASSE_TRIALS" "$BACKGROUND" 50ms "KafkaSSE"
  stop_server "$SERVER_PID"
fi

{
  echo "## Time to first event for a new live client, $RATE events/s"
  echo
  machine
  echo
  "$LOADGEN" report --input "$RESULTS" --column label=Server --column succeeded=Clients \
    --column headers_p50_ms="Headers p50 (ms)" --column headers_p99_ms="Headers p99 (ms)" \
    --column first_event_p50_ms="First event p50 (ms)" \
    --column first_event_p99_ms="First event p99 (ms)" \
    --column first_event_latency_p50_ms="Its latency p50 (ms)" \
    --column first_event_latency_p99_ms="Its latency p99 (ms)"
  echo
  echo "Times are from the start of the TCP connect. At $RATE events/s the next event is on"
  echo "average $(python3 -c "print(round(500 / $RATE, 1))") ms away when a client's start position is fixed; \"its latency\" is the"
  echo "first event's own produce-to-receive time."
} | tee "$OUT/table.md"
log "results in $OUT"
