#!/usr/bin/env bash
# Scenario 2: many concurrent clients on one live stream at RATE events/s. For each client
# count, a fresh server; the load generator connects every client, then produces for the
# window and checks that each client got every event. Reported: Kafka clients (librdkafka
# handles, i.e. consumers plus the crate's one look-up client) and broker connections held
# by the server, server RSS per client (idle, after connecting; and at the window's peak),
# produce-to-receive latency, connection set-up time, and events lost.
#
# KafkaSSE runs at increasing client counts until one it does not survive (a client not
# connected, an error, a lost event, or events still undelivered when the grace period after
# the window ends: it did not keep up), or the list ends.
#
# BARE_CLIENTS adds runs of the library on bare hyper (loadgen serve, JsonWithMeta like the
# example service) with a shared queue of BARE_QUEUE events, to show what the queue size
# does under CPU saturation.
#
# Usage: benches/run/fanout.sh
# Environment: CLIENTS (default "1000 10000"), KAFKASSE_CLIENTS (default
# "10 50 100 500 1000 2000"), RATE (default 100), DURATION (default 30s), SIZE (bytes per
# event, 0 = sample size, the default), BARE_CLIENTS (default none), BARE_QUEUE (default
# 16384), KAFKASSE=0 to leave KafkaSSE out; see common.sh.
set -euo pipefail
# shellcheck source=benches/run/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_setup "$@"

CLIENTS="${CLIENTS:-1000 10000}"
KAFKASSE_CLIENTS="${KAFKASSE_CLIENTS:-10 50 100 500 1000 2000}"
BARE_CLIENTS="${BARE_CLIENTS:-}"
BARE_QUEUE="${BARE_QUEUE:-16384}"
RATE="${RATE:-100}"
DURATION="${DURATION:-30s}"
SIZE="${SIZE:-0}"
TOPIC=bench.live
OUT="$(results_dir fanout)"
RESULTS="$OUT/results.jsonl"

# clients N LABEL [ARGS...]: one measurement against the server started last.
clients() {
  local n="$1" label="$2"
  shift 2
  loadgen 3600 clients --url "$SERVER_URL/v2/stream/live" --connections "$n" --duration "$DURATION" \
    --brokers "$KAFKA_BROKERS" --topic "$TOPIC" --rate "$RATE" --size "$SIZE" \
    --server-pid "$SERVER_PID" --label "$label" --json-out "$RESULTS" "$@" \
    >"$OUT/$label.json" 2>"$OUT/$label.log" || {
    log "$label: the load generator failed; see $OUT/$label.log"
    return 1
  }
}

# survived LABEL: whether every client connected, none failed, and none lost an event.
survived() {
  python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
ok = r["connected"] == r["clients"] and r["client_errors"] == 0
sys.exit(0 if ok and r["lost_total"] == 0 and r["late_total"] == 0 and not r["overload"] else 1)' \
    "$OUT/$1.json"
}

for n in $CLIENTS; do
  log "kafka-sse: $n clients at $RATE events/s for $DURATION"
  start_axum "$OUT/axum_service-$n.log" "live=$TOPIC"
  clients "$n" "kafka-sse $n" --metrics-url "$SERVER_URL/metrics" || true
  stop_server "$SERVER_PID"
done

for n in $BARE_CLIENTS; do
  log "kafka-sse on bare hyper, shared queue $BARE_QUEUE: $n clients"
  port="$(free_port)"
  "$LOADGEN" serve --listen "127.0.0.1:$port" --brokers "$KAFKA_BROKERS" --stream "live=$TOPIC" \
    --deserializer meta --fan-out-queue "$BARE_QUEUE" >"$OUT/serve-$n.log" 2>&1 &
  SERVER_PID=$!
  STARTED_PIDS+=("$SERVER_PID")
  SERVER_URL="http://127.0.0.1:$port"
  wait_listening "$SERVER_PID" "$port"
  clients "$n" "kafka-sse $n, bare hyper, queue $BARE_QUEUE" || true
  stop_server "$SERVER_PID"
done

if [[ "${KAFKASSE:-1}" != 0 ]]; then
  for n in $KAFKASSE_CLIENTS; do
    log "KafkaSSE: $n clients at $RATE events/s for $DURATION"
    start_kafkasse "$OUT/kafkasse-$n.log" "live=$TOPIC"
    ok=1
    clients "$n" "KafkaSSE $n" || ok=0
    stop_server "$SERVER_PID"
    if [[ $ok == 0 ]] || ! survived "KafkaSSE $n"; then
      log "KafkaSSE did not survive $n clients; stopping there"
      break
    fi
  done
fi

{
  echo "## Fan-out: one live stream at $RATE events/s, $DURATION window"
  echo
  machine
  echo
  "$LOADGEN" report --input "$RESULTS" --column label=Server --column connected=Connected \
    --column kafka_clients="Kafka clients" --column broker_connections="Broker conns" \
    --column rss_before_mib="RSS before (MiB)" --column rss_connected_mib="RSS connected (MiB)" \
    --column rss_per_client_bytes="RSS/client idle (B)" \
    --column rss_per_client_peak_bytes="RSS/client peak (B)" \
    --column events_per_sec="Events/s delivered" --column latency_p50_ms="p50 (ms)" \
    --column latency_p99_ms="p99 (ms)" --column latency_max_ms="max (ms)" \
    --column setup_p50_ms="Set-up p50 (ms)" --column setup_p99_ms="Set-up p99 (ms)" \
    --column lost_total=Lost --column late_total="Late at end" --column client_errors=Errors \
    --column overload="Cut short"
  echo
  echo "Kafka clients counts librdkafka handles in the server process (threads named"
  echo "rdk:main): the crate's shared look-up client plus its consumers. Broker conns are"
  echo "established TCP connections from the server to the broker port. RSS per client is"
  echo "(RSS after connecting - RSS with one warm-up client) / clients; the peak uses the"
  echo "highest RSS seen during the window. Latency is produce-to-receive (sent_ms in each"
  echo "event against the load generator's clock, 1 ms resolution). Lost counts events a client"
  echo "skipped; late counts events a client had not received by the end of the grace period"
  echo "after the window (it was still behind). A run is cut short when the server exceeds"
  echo "20,000 threads or 6 GiB RSS."
} | tee "$OUT/table.md"
log "results in $OUT"
