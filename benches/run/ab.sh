#!/usr/bin/env bash
# Before and after: the drain scenario (drain.sh: one client drains COUNT events of SIZE
# bytes through the service, SSE) and the fan-out scenario (fanout.sh: CLIENTS clients on
# one live stream at RATE events/s for DURATION) against two axum_service binaries, in one
# run: one broker, the same data, this branch's load generator for both (the HTTP side is
# the same wire format), and the two binaries taking turns, old, new, old, new, so that a
# change in the machine's load lands on both.
#
# Usage: benches/run/ab.sh OLD_AXUM_SERVICE [NEW_AXUM_SERVICE]
#   OLD_AXUM_SERVICE: an axum_service release binary built from another commit, e.g.
#     git worktree add /work/wt-old 1067032
#     (cd /work/wt-old && CARGO_TARGET_DIR=/work/wt-old/target \
#        cargo build --release --example axum_service)
#     benches/run/ab.sh /work/wt-old/target/release/examples/axum_service
#   NEW_AXUM_SERVICE: defaults to this checkout's target/release/examples/axum_service.
# Environment: COUNT (default 200000), SIZE (default 1024), CLIENTS (default 1000), RATE
# (default 100), DURATION (default 20s), REPEAT (turns per binary, default 2), OLD_LABEL
# and NEW_LABEL (row names, default "old" and "new"), SCENARIOS (default "drain fanout");
# see common.sh.
set -euo pipefail
# shellcheck source=benches/run/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
export KAFKASSE=0
[[ $# -ge 1 ]] || die "usage: $0 OLD_AXUM_SERVICE [NEW_AXUM_SERVICE]"
bench_setup "$@"

OLD="$(realpath "$1")"
NEW="$(realpath "${2:-$AXUM_SERVICE}")"
[[ -x "$OLD" ]] || die "$OLD is not an executable"
[[ -x "$NEW" ]] || die "$NEW is not an executable"
COUNT="${COUNT:-200000}"
SIZE="${SIZE:-1024}"
CLIENTS="${CLIENTS:-1000}"
RATE="${RATE:-100}"
DURATION="${DURATION:-20s}"
REPEAT="${REPEAT:-2}"
OLD_LABEL="${OLD_LABEL:-old}"
NEW_LABEL="${NEW_LABEL:-new}"
SCENARIOS="${SCENARIOS:-drain fanout}"
OUT="$(results_dir ab)"
DRAIN="$OUT/drain.jsonl"
FANOUT="$OUT/fanout.jsonl"
DRAIN_TOPIC=bench.drain
LIVE_TOPIC=bench.live
ID="$(from_start_id "$DRAIN_TOPIC")"

log "old: $OLD"
log "new: $NEW"
if [[ " $SCENARIOS " == *" drain "* ]]; then
  log "filling $DRAIN_TOPIC with $COUNT events of $SIZE bytes"
  loadgen 900 fill --brokers "$KAFKA_BROKERS" --topic "$DRAIN_TOPIC" --count "$COUNT" --size "$SIZE" \
    --label fill --json-out "$OUT/fill.jsonl" >/dev/null
fi

# drain BINARY LABEL: a fresh service, one SSE client drains the topic.
drain() {
  start_axum_binary "$1" "$(free_port)" "$OUT/$2-drain.log" "drain=$DRAIN_TOPIC"
  loadgen 1800 sse-drain --url "$SERVER_URL/v2/stream/drain" --last-event-id "$ID" --count "$COUNT" \
    --timeout 29m --server-pid "$SERVER_PID" --label "$2" --json-out "$DRAIN" >/dev/null
  stop_server "$SERVER_PID"
}

# fanout BINARY LABEL: a fresh service, CLIENTS live clients for the window.
fanout() {
  start_axum_binary "$1" "$(free_port)" "$OUT/$2-fanout.log" "live=$LIVE_TOPIC"
  loadgen 3600 clients --url "$SERVER_URL/v2/stream/live" --connections "$CLIENTS" \
    --duration "$DURATION" --brokers "$KAFKA_BROKERS" --topic "$LIVE_TOPIC" --rate "$RATE" \
    --server-pid "$SERVER_PID" --label "$2" --json-out "$FANOUT" \
    >"$OUT/$2-fanout.json" 2>"$OUT/$2-fanout-loadgen.log" ||
    log "$2: the load generator failed; see $OUT/$2-fanout-loadgen.log"
  stop_server "$SERVER_PID"
}

for scenario in $SCENARIOS; do
  for ((round = 1; round <= REPEAT; round++)); do
    for side in old new; do
      if [[ $side == old ]]; then binary="$OLD" label="$OLD_LABEL"; else binary="$NEW" label="$NEW_LABEL"; fi
      log "$scenario, $label, turn $round (load average $(cut -d' ' -f1-3 /proc/loadavg))"
      case "$scenario" in
        drain) drain "$binary" "$label" ;;
        fanout) fanout "$binary" "$label" ;;
        *) die "unknown scenario $scenario (drain, fanout)" ;;
      esac
    done
  done
done

# compare FILE KEY...: per key, each side's turns, their mean, and the new side's mean
# against the old one's, next to the spread between turns of one binary.
compare() {
  python3 - "$OLD_LABEL" "$NEW_LABEL" "$@" <<'EOF'
import json, sys
old, new, path, *keys = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]
print("| Figure | " + old + " (each turn) | " + new + " (each turn) | " + new + " / " + old
      + " (means) | Spread between turns of one binary |")
print("|---|---|---|---|---|")
for key in keys:
    values = {side: [r[key] for r in rows if r["label"] == side and r.get(key) is not None]
              for side in (old, new)}
    if not values[old] or not values[new]:
        print(f"| {key} | – | – | – | – |")
        continue
    mean = {side: sum(v) / len(v) for side, v in values.items()}
    spreads = [(max(v) - min(v)) / (sum(v) / len(v)) for v in values.values() if len(v) > 1 and sum(v)]
    fmt = lambda v: ", ".join(f"{x:,.2f}" if abs(x) < 100 else f"{x:,.0f}" for x in v)
    ratio = mean[new] / mean[old] if mean[old] else float("nan")
    spread = f"{max(spreads) * 100:.1f} %" if spreads else "– (one turn each)"
    print(f"| {key} | {fmt(values[old])} | {fmt(values[new])} | {ratio:.3f} | {spread} |")
EOF
}

drain_table() {
  echo "### Drain: $COUNT events of $SIZE bytes, one SSE client"
  echo
  "$LOADGEN" report --input "$DRAIN" --column label=Service --column events=Events \
    --column events_per_sec=Events/s --column mb_per_sec=MB/s \
    --column server_cpu_us_per_event="Server CPU (µs/event)" --column gaps=Gaps \
    --column loadavg="Load (1 min)"
  echo
  compare "$DRAIN" events_per_sec server_cpu_us_per_event
  echo
}

fanout_table() {
  echo "### Fan-out: $CLIENTS clients on one live stream at $RATE events/s, $DURATION"
  echo
  "$LOADGEN" report --input "$FANOUT" --column label=Service --column connected=Connected \
    --column events_per_sec="Events/s delivered" --column latency_p50_ms="p50 (ms)" \
    --column latency_p99_ms="p99 (ms)" --column server_cpu_s="Server CPU (s)" \
    --column server_cpu_us_per_event="Server CPU (µs/delivered event)" \
    --column rss_connected_mib="RSS connected (MiB)" --column lost_total=Lost \
    --column client_errors=Errors --column loadavg="Load (1 min)"
  echo
  compare "$FANOUT" latency_p50_ms latency_p99_ms server_cpu_s server_cpu_us_per_event rss_connected_mib
  echo
}

{
  echo "## Before and after: $OLD_LABEL vs $NEW_LABEL, turns taken old, new, old, new"
  echo
  machine
  echo "- old binary: $OLD"
  echo "- new binary: $NEW"
  echo
  if [[ -s "$DRAIN" ]]; then drain_table; fi
  if [[ -s "$FANOUT" ]]; then fanout_table; fi
  echo "Server CPU is user + system time of the service process: over the drain, per event;"
  echo "over the fan-out window, in all and per event delivered to a client. The spread is"
  echo "(max - min) / mean over one binary's turns, the larger of the two binaries: a ratio"
  echo "of means further from 1 than that is beyond this run's noise."
} | tee "$OUT/table.md"
log "results in $OUT"
