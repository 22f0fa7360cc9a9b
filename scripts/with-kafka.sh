#!/usr/bin/env bash
# Runs a command against a fresh single-node Kafka broker on loopback, then
# stops the broker and deletes its files, whether the command succeeds or not.
#
# Usage:
#   scripts/with-kafka.sh CMD [ARGS...]
#   e.g. scripts/with-kafka.sh cargo test --test kafka
#
# CMD sees, besides KAFKA_SSE_BROKER_DIR=<broker dir>:
#   KAFKA_BROKERS=127.0.0.1:PORT           the plaintext listener
#   KAFKA_SASL_SSL_BROKERS=127.0.0.1:PORT  SASL_SSL, SCRAM-SHA-512 as the user below
#   KAFKA_SCRAM_USER, KAFKA_SCRAM_PASSWORD
#   KAFKA_MTLS_BROKERS=127.0.0.1:PORT      SSL, a client certificate signed by the CA required
#   KAFKA_SSE_TLS_DIR=<dir>                ca.pem (the CA both secured listeners' certificate
#                                          chains to), client.pem and client.key (signed by
#                                          it), rogue-client.pem and rogue-client.key (not)
# (made for this run by scripts/kafka-secured.sh). A test can restart the broker, keeping
# ports, data, certificates and credentials, with
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
while IFS='=' read -r key value; do
  export "$key=$value"
done <"$dir/secured.env"

status=0
"$@" || status=$?
exit "$status"
