#!/usr/bin/env bash
# Scenario 1b: what TLS costs a drain. One client drains a topic of COUNT one-kilobyte JSON
# events through the crate's axum_service (release build, SSE), side by side in one run,
# from the test broker's plaintext listener, its SASL_SSL listener (SCRAM-SHA-512) and its
# mutual-TLS listener: same broker, same data, same client; only the service's Kafka
# connection differs. A bare librdkafka consumer on the plaintext listener gives the limit.
#
# Usage: benches/run/drain-secured.sh
# Environment: COUNT (default 100000), SIZE (bytes per event, default 1024), REPEAT
# (default 1); see common.sh.
set -euo pipefail
export KAFKASSE=0
# shellcheck source=benches/run/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_setup "$@"

COUNT="${COUNT:-100000}"
SIZE="${SIZE:-1024}"
REPEAT="${REPEAT:-1}"
TOPIC=bench.drain.secured
OUT="$(results_dir drain-secured)"
RESULTS="$OUT/results.jsonl"
ID="$(from_start_id "$TOPIC")"
TLS="$KAFKA_SSE_TLS_DIR"

# The service's --kafka flags per listener; the SCRAM password comes from the environment.
SASL_SSL_ARGS=(--kafka security.protocol=SASL_SSL --kafka "ssl.ca.location=$TLS/ca.pem"
  --kafka sasl.mechanism=SCRAM-SHA-512 --kafka "sasl.username=$KAFKA_SCRAM_USER"
  --kafka-from-env sasl.password=KAFKA_SCRAM_PASSWORD)
MTLS_ARGS=(--kafka security.protocol=SSL --kafka "ssl.ca.location=$TLS/ca.pem"
  --kafka "ssl.certificate.location=$TLS/client.pem" --kafka "ssl.key.location=$TLS/client.key")

log "filling $TOPIC with $COUNT events of $SIZE bytes"
loadgen 900 fill --brokers "$KAFKA_BROKERS" --topic "$TOPIC" --count "$COUNT" --size "$SIZE" \
  --label fill --json-out "$OUT/fill.jsonl" >/dev/null

# drain LABEL BROKERS [-- SERVICE_ARGS...]: one client drains the stream of a new service.
drain() {
  local label="$1"
  BROKERS="$2"
  shift 2
  start_axum "$OUT/axum_service.log" "drain=$TOPIC" "$@"
  loadgen 1800 sse-drain --url "$SERVER_URL/v2/stream/drain" --last-event-id "$ID" \
    --count "$COUNT" --timeout 29m --server-pid "$SERVER_PID" --label "$label" \
    --json-out "$RESULTS" >/dev/null
  stop_server "$SERVER_PID"
}

for ((round = 1; round <= REPEAT; round++)); do
  log "round $round: raw librdkafka, plaintext"
  loadgen 900 raw-drain --brokers "$KAFKA_BROKERS" --topic "$TOPIC" --count "$COUNT" \
    --label "raw rdkafka BaseConsumer, plaintext" --json-out "$RESULTS" >/dev/null
  log "round $round: kafka-sse over plaintext, SASL_SSL and mutual TLS"
  drain "kafka-sse SSE, plaintext" "$KAFKA_BROKERS"
  drain "kafka-sse SSE, SASL_SSL + SCRAM-SHA-512" "$KAFKA_SASL_SSL_BROKERS" -- "${SASL_SSL_ARGS[@]}"
  drain "kafka-sse SSE, mutual TLS" "$KAFKA_MTLS_BROKERS" -- "${MTLS_ARGS[@]}"
done

{
  echo "## Drain over TLS: $COUNT events of $SIZE bytes, one client"
  echo
  machine
  echo
  "$LOADGEN" report --input "$RESULTS" --column label=Reader --column events=Events \
    --column seconds=Seconds --column events_per_sec=Events/s --column mb_per_sec=MB/s \
    --column first_event_ms="First event (ms)" --column gaps=Gaps \
    --column reader_cpu_s="Reader CPU (s)" --column server_cpu_us_per_event="Server CPU (µs/event)" \
    --ratio "events_per_sec:kafka-sse SSE, plaintext"
  echo
  echo "Server CPU is user + system time of the service process over the drain, per event;"
  echo "with TLS it includes decrypting what the broker sends."
} | tee "$OUT/table.md"
log "results in $OUT"
