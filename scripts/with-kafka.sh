#!/usr/bin/env bash
# Runs a command against a fresh single-node Kafka broker on loopback, then
# stops the broker and deletes its files, whether the command succeeds or not.
#
# Usage:
#   scripts/with-kafka.sh CMD [ARGS...]
#   e.g. scripts/with-kafka.sh cargo test --test kafka
#
# CMD sees KAFKA_BROKERS=127.0.0.1:PORT and KAFKA_SSE_BROKER_DIR=<broker dir>;
# a test can restart the broker, keeping port and data, with
#   scripts/kafka-broker.sh restart "$KAFKA_SSE_BROKER_DIR"
# Exits with CMD's status; CMD never runs when the broker cannot start.
set -euo pipefail

BROKER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kafka-broker.sh"

if [[ $# -eq 0 ]]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/kafka-sse-broker.XXXXXX")"

# shellcheck disable=SC2317 # reached through the traps below
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  "$BROKER" stop "$dir" || true
  rm -rf "$dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! bootstrap="$("$BROKER" start "$dir")"; then
  echo "with-kafka: the Kafka broker did not start; not running: $*" >&2
  exit 1
fi

export KAFKA_BROKERS="$bootstrap"
export KAFKA_SSE_BROKER_DIR="$dir"

status=0
"$@" || status=$?
exit "$status"
