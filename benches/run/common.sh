#!/usr/bin/env bash
# Shared by the scenario scripts in benches/run/: building, a broker per run, starting and
# stopping the servers under test, and result files. Sourced, not run.
#
# A scenario script calls `bench_setup "$@"` first: it builds the release binaries, then
# re-runs the script under scripts/with-kafka.sh, which starts a fresh single-node Kafka
# broker on loopback and exports KAFKA_BROKERS; the broker is stopped when the script ends.
# Every step is bounded with `timeout`, and every server started here is stopped on exit.
#
# Environment: RESULTS_DIR (default target/bench-results), SKIP_BUILD=1 to reuse binaries,
# KAFKASSE=0 to leave KafkaSSE out.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOADGEN="$ROOT/target/release/kafka-sse-loadgen"
AXUM_SERVICE="$ROOT/target/release/examples/axum_service"
KAFKASSE_DIR="$ROOT/benches/kafkasse"
STARTED_PIDS=()

log() {
  echo "[$(date +%H:%M:%S)] $*" >&2
}

die() {
  log "error: $*"
  exit 1
}

# Builds the binaries, installs KafkaSSE, then re-runs the calling script with a broker.
bench_setup() {
  if [[ -n "${KAFKA_SSE_BENCH_INNER:-}" ]]; then
    [[ -n "${KAFKA_BROKERS:-}" ]] || die "KAFKA_BROKERS is not set"
    trap stop_all EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # Thousands of connections on each side.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    return 0
  fi
  if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building release binaries"
    (cd "$ROOT" && timeout 1800 cargo build --release -p kafka-sse -p kafka-sse-loadgen --example axum_service --bin kafka-sse-loadgen) ||
      die "the release build failed"
  fi
  if [[ "${KAFKASSE:-1}" != 0 ]]; then
    timeout 1800 "$KAFKASSE_DIR/setup.sh" || die "KafkaSSE could not be installed (KAFKASSE=0 skips it)"
  fi
  export KAFKA_SSE_BENCH_INNER=1
  exec "$ROOT/scripts/with-kafka.sh" "$0" "$@"
}

# A directory for this run's result files; prints its path.
results_dir() {
  local name="$1" dir
  dir="${RESULTS_DIR:-$ROOT/target/bench-results}/$name-$(date +%Y%m%d-%H%M%S)"
  mkdir -p "$dir"
  echo "$dir"
}

machine() {
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1))," \
    "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- commit: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$(cd "$ROOT" && [[ -n "$(git status --porcelain 2>/dev/null)" ]] && echo "(uncommitted changes)")"
  echo "- rustc: $(rustc --version 2>/dev/null), node: $(node --version 2>/dev/null)," \
    "Kafka: $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Waits up to 60 s for a server to listen; fails if its process died.
wait_listening() {
  local pid="$1" port="$2" deadline=$((SECONDS + 60))
  until port_open "$port"; do
    kill -0 "$pid" 2>/dev/null || die "the server (pid $pid) exited; see its log"
    ((SECONDS < deadline)) || die "the server (pid $pid) is not listening on $port after 60s"
    sleep 0.2
  done
}

# start_axum LOG NAME=TOPIC... [-- ARGS...]: starts the crate's axum_service, with ARGS
# (such as --kafka KEY=VALUE) after the streams, against BROKERS (default KAFKA_BROKERS);
# sets SERVER_PID, SERVER_URL.
start_axum() {
  start_axum_binary "$AXUM_SERVICE" "$(free_port)" "$@"
}

# start_axum_binary BINARY PORT LOG NAME=TOPIC... [-- ARGS...]: the same with another
# axum_service binary (one built from an older commit, say) on PORT.
start_axum_binary() {
  local binary="$1" port="$2" log_file="$3" args=()
  shift 3
  while (($#)); do
    if [[ "$1" == -- ]]; then
      shift
      args+=("$@")
      break
    fi
    args+=(--stream "$1")
    shift
  done
  "$binary" --listen "127.0.0.1:$port" --brokers "${BROKERS:-$KAFKA_BROKERS}" \
    --max-connection-duration 0 "${args[@]}" >"$log_file" 2>&1 &
  SERVER_PID=$!
  STARTED_PIDS+=("$SERVER_PID")
  SERVER_URL="http://127.0.0.1:$port"
  wait_listening "$SERVER_PID" "$port"
  log "$(basename "$binary") pid $SERVER_PID at $SERVER_URL"
}

# start_kafkasse LOG NAME=TOPIC...: starts KafkaSSE's Node server; sets SERVER_PID, SERVER_URL.
start_kafkasse() {
  local log_file="$1" port args=()
  shift
  port="$(free_port)"
  for stream in "$@"; do args+=(--stream "$stream"); done
  # Every client's blocking consume call holds a libuv pool thread; KafkaSSE's own tests
  # run with 128.
  UV_THREADPOOL_SIZE="${UV_THREADPOOL_SIZE:-128}" node "$KAFKASSE_DIR/server.js" \
    --listen "127.0.0.1:$port" --brokers "$KAFKA_BROKERS" "${args[@]}" >"$log_file" 2>&1 &
  SERVER_PID=$!
  STARTED_PIDS+=("$SERVER_PID")
  SERVER_URL="http://127.0.0.1:$port"
  wait_listening "$SERVER_PID" "$port"
  log "KafkaSSE server pid $SERVER_PID at $SERVER_URL"
}

# start_loadgen_serve LOG DESERIALIZER NAME=TOPIC...: the library on bare hyper (loadgen
# serve); sets SERVER_PID, SERVER_URL.
start_loadgen_serve() {
  local log_file="$1" deserializer="$2" port args=()
  shift 2
  port="$(free_port)"
  for stream in "$@"; do args+=(--stream "$stream"); done
  "$LOADGEN" serve --listen "127.0.0.1:$port" --brokers "$KAFKA_BROKERS" \
    --deserializer "$deserializer" "${args[@]}" >"$log_file" 2>&1 &
  SERVER_PID=$!
  STARTED_PIDS+=("$SERVER_PID")
  SERVER_URL="http://127.0.0.1:$port"
  wait_listening "$SERVER_PID" "$port"
  log "loadgen serve ($deserializer) pid $SERVER_PID at $SERVER_URL"
}

# Stops one server started here: TERM, then KILL after 15 s.
stop_server() {
  local pid="$1" deadline=$((SECONDS + 15))
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_all() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do stop_server "$pid"; done
}

# loadgen SECONDS ARGS...: runs the load generator, bounded.
loadgen() {
  local limit="$1"
  shift
  timeout --kill-after=10 "$limit" "$LOADGEN" "$@"
}

# Prints the Last-Event-ID that starts every partition of TOPIC at offset 0.
from_start_id() {
  local topic="$1" partitions="${2:-1}" entries=() p
  for ((p = 0; p < partitions; p++)); do
    entries+=("{\"topic\":\"$topic\",\"partition\":$p,\"offset\":0}")
  done
  local IFS=,
  echo "[${entries[*]}]"
}
