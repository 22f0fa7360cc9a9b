#!/usr/bin/env bash
# Runs a single-node Apache Kafka broker (KRaft, broker+controller) on loopback
# for tests. Kafka comes from Maven Central (scripts/kafka/pom.xml) and is cached
# in ${KAFKA_SSE_CACHE:-$HOME/.cache/kafka-sse}/kafka-<version>/libs.
#
# Usage:
#   scripts/kafka-broker.sh start DIR    start (or reuse) the broker whose files live in DIR;
#                                        prints the plaintext bootstrap address 127.0.0.1:PORT
#   scripts/kafka-broker.sh stop DIR     stop it (no-op when it is not running)
#   scripts/kafka-broker.sh restart DIR  stop, then start again on the same ports and data
#   scripts/kafka-broker.sh fetch        only resolve the Kafka jars into the cache; prints
#                                        the directory that holds them
#
# The broker listens on three loopback ports: PLAINTEXT, SASL_SSL with SCRAM-SHA-512, and
# SSL requiring a client certificate; scripts/kafka-secured.sh makes the certificates and
# the SCRAM user, and writes what clients of the secured listeners need to DIR/secured.env.
#
# DIR holds server.properties, data/, tls/, secured.env, server.log, broker.out, broker.pid
# and bootstrap. A DIR that already has server.properties keeps its ports, data,
# certificates and credentials.
# Environment: KAFKA_VERSION (default: kafka.version in scripts/kafka/pom.xml),
# KAFKA_SSE_CACHE, KAFKA_HEAP_OPTS (default "-Xms256m -Xmx512m"),
# KAFKA_START_TIMEOUT (seconds, default 90); for the tests of this script only,
# KAFKA_SSE_TEST_EXEC_DELAY (seconds the launched process waits before it becomes java).
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPTS/kafka/pom.xml"
SECURED="$SCRIPTS/kafka-secured.sh"
LOG4J_CONFIG="$SCRIPTS/kafka/log4j2.properties"
KAFKA_VERSION="${KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")}"
LIBS="${KAFKA_SSE_CACHE:-$HOME/.cache/kafka-sse}/kafka-$KAFKA_VERSION/libs"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT=30

die() {
  echo "kafka-broker: $*" >&2
  exit 1
}

# Copies the broker jars from Maven Central into $LIBS, again whenever the pom changes.
fetch() {
  local stamp tmp
  stamp="$(sha256sum "$POM" | cut -d' ' -f1)"
  [[ "$(cat "$LIBS/.complete" 2>/dev/null)" == "$stamp" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found; Maven is needed to fetch Kafka $KAFKA_VERSION"
  tmp="$LIBS.tmp.$$"
  echo "kafka-broker: resolving Kafka $KAFKA_VERSION from Maven Central into $LIBS" >&2
  mkdir -p "$tmp"
  if ! mvn -q -B -f "$POM" -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
    grep -v '^\s*$' "$tmp.log" >&2 || true
    rm -rf "$tmp" "$tmp.log"
    die "could not resolve Kafka $KAFKA_VERSION with Maven"
  fi
  echo "$stamp" >"$tmp/.complete"
  rm -rf "$tmp.log" "$LIBS.old.$$"
  [[ -d "$LIBS" ]] && mv -T "$LIBS" "$LIBS.old.$$"
  mv -T "$tmp" "$LIBS"
  rm -rf "$LIBS.old.$$"
}

# Prints $1 distinct free loopback ports, one a line.
free_ports() {
  python3 -c 'import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets: s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in sockets))' "$1"
}

prop() {
  sed -n "s/^$1=//p" "$2"
}

# Prints the start time of process $1 (field 22 of /proc/PID/stat, clock ticks since
# boot), which is fixed when the process is forked and kept across exec; fails when the
# process is gone or a zombie.
start_time() {
  local stat fields
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  read -r -a fields <<<"${stat##*) }"
  [[ "${fields[0]}" != [ZX] ]] || return 1
  echo "${fields[19]}"
}

# Prints the PID in DIR/broker.pid if that process is this DIR's live broker.
#
# broker.pid holds the PID and start time of the process forked to become the broker, both
# known at the fork: a child that has not exec'd java yet is already the broker, and a
# recycled PID, whose start time differs, is not. (Reading /proc/PID/cmdline right after
# the fork raced the exec and took a starting broker for a dead one.)
running_pid() {
  local dir="$1" pid started
  [[ -f "$dir/broker.pid" ]] || return 1
  read -r pid started <"$dir/broker.pid" || return 1
  [[ "$pid" =~ ^[0-9]+$ && -n "$started" ]] || return 1
  [[ "$(start_time "$pid")" == "$started" ]] || return 1
  echo "$pid"
}

# True once server.log, read from byte offset $2 on, says the server started.
started_since() {
  tail -c +"$(($2 + 1))" "$1/server.log" 2>/dev/null | grep -c 'Kafka Server started' >/dev/null
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

write_config() {
  local dir="$1" port sasl_ssl_port mtls_port controller_port
  { read -r port && read -r sasl_ssl_port && read -r mtls_port && read -r controller_port; } \
    < <(free_ports 4)
  cat >"$dir/server.properties.new" <<EOF
# Single-node KRaft test broker written by scripts/kafka-broker.sh.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sasl_ssl_port,MTLS://127.0.0.1:$mtls_port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sasl_ssl_port,MTLS://127.0.0.1:$mtls_port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.initial.task.delay.ms=0
log.retention.check.interval.ms=1000
log.segment.delete.delay.ms=0
EOF
  "$SECURED" make "$dir" "$sasl_ssl_port" "$mtls_port" >>"$dir/server.properties.new"
  mv "$dir/server.properties.new" "$dir/server.properties"
}

java_opts() {
  local dir="$1"
  # shellcheck disable=SC2206
  local heap=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m})
  echo "${heap[@]}" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_CONFIG" -Dkafka.logs.dir="$dir"
}

# A Kafka cluster id is a url-safe base64 UUID; one starting with "-" would read as a flag.
new_cluster_id() {
  python3 -c 'import base64, uuid
while (id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"): pass
print(id)'
}

format_storage() {
  local dir="$1"
  [[ -f "$dir/data/meta.properties" ]] && return 0
  # shellcheck disable=SC2046
  if ! java $(java_opts "$dir") -cp "$LIBS/*" kafka.tools.StorageTool format \
      --config "$dir/server.properties" --cluster-id "$(new_cluster_id)" \
      --add-scram "$("$SECURED" scram "$dir")" >"$dir/format.out" 2>&1; then
    cat "$dir/format.out" >&2
    die "formatting $dir/data failed"
  fi
}

fail_start() {
  local dir="$1" pid="$2"
  shift 2
  echo "kafka-broker: $*" >&2
  if [[ -n "$pid" ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$dir/broker.pid"
  echo "--- last lines of $dir/server.log ---" >&2
  tail -n 40 "$dir/server.log" >&2 2>/dev/null || true
  echo "--- last lines of $dir/broker.out ---" >&2
  tail -n 20 "$dir/broker.out" >&2 2>/dev/null || true
  exit 1
}

start() {
  local dir="$1" pid started port log_size deadline
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if pid="$(running_pid "$dir")"; then
    cat "$dir/bootstrap"
    return 0
  fi
  command -v java >/dev/null || die "java not found; Kafka needs Java 17+"
  fetch
  [[ -f "$dir/server.properties" ]] || write_config "$dir"
  port="$(prop listeners "$dir/server.properties" | sed 's/^PLAINTEXT:\/\/127.0.0.1:\([0-9]*\).*/\1/')"
  port_open "$port" && die "port 127.0.0.1:$port of $dir is already in use"
  format_storage "$dir"

  log_size="$(stat -c %s "$dir/server.log" 2>/dev/null || echo 0)"
  # shellcheck disable=SC2046
  (
    [[ -z "${KAFKA_SSE_TEST_EXEC_DELAY:-}" ]] || sleep "$KAFKA_SSE_TEST_EXEC_DELAY"
    exec setsid java $(java_opts "$dir") -cp "$LIBS/*" kafka.Kafka "$dir/server.properties"
  ) </dev/null >>"$dir/broker.out" 2>&1 &
  pid=$!
  disown "$pid"
  started="$(start_time "$pid")" || fail_start "$dir" "" "broker exited during startup"
  echo "$pid $started" >"$dir/broker.pid"
  echo "127.0.0.1:$port" >"$dir/bootstrap"

  deadline=$((SECONDS + START_TIMEOUT))
  until port_open "$port" && started_since "$dir" "$log_size"; do
    running_pid "$dir" >/dev/null || fail_start "$dir" "" "broker exited during startup"
    ((SECONDS < deadline)) || fail_start "$dir" "$pid" "broker not ready after ${START_TIMEOUT}s"
    sleep 0.2
  done
  echo "127.0.0.1:$port"
}

stop() {
  local dir="$1" pid deadline
  [[ -d "$dir" ]] || return 0
  dir="$(cd "$dir" && pwd)"
  if pid="$(running_pid "$dir")"; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while running_pid "$dir" >/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if running_pid "$dir" >/dev/null; then
      echo "kafka-broker: broker $pid did not stop in ${STOP_TIMEOUT}s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while running_pid "$dir" >/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    fi
  fi
  rm -f "$dir/broker.pid"
}

case "${1:-}" in
  start | stop | restart)
    [[ $# -eq 2 ]] || die "usage: $0 $1 DIR"
    ;;
  fetch)
    fetch
    echo "$LIBS"
    exit 0
    ;;
  *)
    die "usage: $0 start|stop|restart DIR, or $0 fetch"
    ;;
esac

case "$1" in
  start) start "$2" ;;
  stop) stop "$2" ;;
  restart)
    stop "$2"
    start "$2"
    ;;
esac
