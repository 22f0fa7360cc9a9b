#!/usr/bin/env bash
# Scenario 5: a restart storm. CLIENTS clients that behave like a browser's EventSource
# (the load generator's `storm`: they keep the last id and the server's `retry:`, and after
# any end of the stream or failed connection come back after the retry delay, 3 s until the
# server sets one, with Last-Event-ID) follow one live stream of axum_service at RATE
# events/s. The service is SIGKILLed, events go on being produced for DOWN seconds, and it
# is started again on the same port.
#
# Reported: the time from the restart until every client holds every event produced before
# it, the p50/p99 of each client's catch-up, clients that got an answer other than 200 (an
# EventSource then gives up for good), clients not caught up in time, duplicates, gaps and
# events missing at the end of the run (every client must get every event exactly once),
# the most Kafka consumers in use at once (the service's kafka_sse_consumers gauge, scraped
# every 100 ms) and the service's peak RSS (VmHWM), before the kill and after the restart.
#
# Usage: benches/run/restart-storm.sh
# Environment: CLIENTS (default 10000; 1000 for a quick run), RATE (default 20), DOWN
# (seconds, default 5), REPEAT (default 1); see common.sh. KafkaSSE is not part of it.
set -euo pipefail
# shellcheck source=benches/run/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
export KAFKASSE=0
bench_setup "$@"

CLIENTS="${CLIENTS:-10000}"
RATE="${RATE:-20}"
DOWN="${DOWN:-5}"
REPEAT="${REPEAT:-1}"
TOPIC=bench.storm
OUT="$(results_dir restart-storm)"
RESULTS="$OUT/results.jsonl"

epoch_ms() {
  date +%s%3N
}

# put DIR NAME TEXT: a hand-over file for the load generator, written whole.
put() {
  echo "$3" >"$1/.$2"
  mv "$1/.$2" "$1/$2"
}

for ((round = 1; round <= REPEAT; round++)); do
  control="$OUT/control-$round"
  mkdir -p "$control"
  port="$(free_port)"
  log "round $round: axum_service, $CLIENTS clients at $RATE events/s"
  start_axum_binary "$AXUM_SERVICE" "$port" "$OUT/axum_service-$round-before.log" "storm=$TOPIC"
  timeout --kill-after=10 3600 "$LOADGEN" storm --url "$SERVER_URL/v2/stream/storm" \
    --connections "$CLIENTS" --brokers "$KAFKA_BROKERS" --topic "$TOPIC" --rate "$RATE" \
    --control "$control" --server-pid "$SERVER_PID" --metrics-url "$SERVER_URL/metrics" \
    --label "$CLIENTS clients" --json-out "$RESULTS" \
    >"$OUT/storm-$round.json" 2>"$OUT/storm-$round.log" &
  loadgen_pid=$!
  STARTED_PIDS+=("$loadgen_pid")

  deadline=$((SECONDS + 900))
  until [[ -e "$control/ready" ]]; do
    kill -0 "$loadgen_pid" 2>/dev/null || die "the load generator exited; see $OUT/storm-$round.log"
    ((SECONDS < deadline)) || die "the clients were not ready after 900s; see $OUT/storm-$round.log"
    sleep 0.1
  done
  log "clients ready (load average $(cut -d' ' -f1-3 /proc/loadavg)); SIGKILL to pid $SERVER_PID"
  kill -KILL "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  put "$control" killed "$(epoch_ms)"
  sleep "$DOWN"
  log "restarting on port $port"
  put "$control" restarting "$(epoch_ms)"
  start_axum_binary "$AXUM_SERVICE" "$port" "$OUT/axum_service-$round-after.log" "storm=$TOPIC"
  put "$control" restarted "$SERVER_PID $(epoch_ms)"
  wait "$loadgen_pid" || die "the load generator failed; see $OUT/storm-$round.log"
  log "round $round done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  stop_server "$SERVER_PID"
done

{
  echo "## Restart storm: $CLIENTS EventSource clients, one live stream at $RATE events/s, ${DOWN}s down"
  echo
  machine
  echo
  "$LOADGEN" report --input "$RESULTS" --column label=Run --column connected=Connected \
    --column produced_while_down="Events while down" \
    --column listening_after_s="Listening after (s)" \
    --column all_caught_up_s="All caught up (s)" \
    --column reconnect_p50_ms="Reconnect p50 (ms)" \
    --column catch_up_p50_ms="Catch-up p50 (ms)" --column catch_up_p99_ms="Catch-up p99 (ms)" \
    --column catch_up_max_ms="Catch-up max (ms)" \
    --column gave_up="Non-200 / gave up" --column not_caught_up="Not caught up" \
    --column duplicates=Duplicates --column gaps=Gaps --column missing_at_end="Missing at end" \
    --column consumers_peak_before_kill="Consumers before kill" \
    --column consumers_peak_after_restart="Consumers peak after restart" \
    --column rss_peak_before_kill_mib="Peak RSS before kill (MiB)" \
    --column rss_peak_after_restart_mib="Peak RSS after restart (MiB)" \
    --column loadavg_at_kill="Load (1 min) at kill" --column loadavg="Load (1 min) at end"
  echo
  echo "Times run from the moment the service was started again (the script spawns it; it"
  echo "listens after the time shown, read at 0.2 s resolution). A client has caught up once"
  echo "it holds every event produced before that moment; reconnect is its first 200 after"
  echo "it. Consumers are the service's kafka_sse_consumers gauge, scraped every 100 ms;"
  echo "peak RSS is the process's VmHWM. Missing at end counts events of the whole run a"
  echo "client that did not give up never received; duplicates and gaps count repeated and"
  echo "skipped sequence numbers over the whole run, across every reconnection."
} | tee "$OUT/table.md"
log "results in $OUT"
