#!/usr/bin/env bash
# The secured listeners of the test broker that scripts/kafka-broker.sh starts: a SASL_SSL
# listener with SCRAM-SHA-512 and an SSL listener that requires a client certificate
# (mutual TLS), beside the plaintext one. Their certificates and credentials are made
# anew for each broker directory by OpenSSL, so nothing that can expire is checked in.
#
# Usage:
#   scripts/kafka-secured.sh make DIR SASL_SSL_PORT MTLS_PORT
#       writes DIR/tls/ and DIR/secured.env, and prints the broker properties that
#       configure the two listeners (kafka-broker.sh appends them to server.properties)
#   scripts/kafka-secured.sh scram DIR
#       prints the --add-scram argument that creates the SCRAM user at storage format
#   scripts/kafka-secured.sh check DIR
#       connects to both listeners with Kafka's own Java client, expecting the test
#       credentials to be accepted and a wrong password, a certificate of another CA and
#       no certificate to be refused; fails when any case goes otherwise
#
# DIR/tls/ holds ca.pem (the CA clients trust), client.pem and client.key (a client
# certificate the CA signed), rogue-client.pem and rogue-client.key (the same subject,
# signed by another CA of the same name), and the broker's own files. Keys are unencrypted
# PKCS#8 PEM (EC P-256), which librdkafka and Java both read.
#
# DIR/secured.env holds what clients need, one KEY=VALUE a line; scripts/with-kafka.sh
# exports it: KAFKA_SASL_SSL_BROKERS, KAFKA_MTLS_BROKERS (127.0.0.1:PORT each),
# KAFKA_SSE_TLS_DIR, KAFKA_SCRAM_USER and KAFKA_SCRAM_PASSWORD.
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRAM_USER=kafka-sse
DAYS=30

die() {
  echo "kafka-secured: $*" >&2
  exit 1
}

# Writes a new EC key to $1.key and a certificate for it to $1.pem: self-signed when no
# issuer is given, else signed by issuer $3 (files $3.pem and $3.key), with the X.509 v3
# extensions in $4.
certificate() {
  local name="$1" subject="$2" issuer="${3:-}" extensions="${4:-}"
  if [[ -z "$issuer" ]]; then
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout "$name.key" -out "$name.pem" -days "$DAYS" -subj "$subject" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
      2>/dev/null
    return
  fi
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$name.key" -out "$name.csr" -subj "$subject" 2>/dev/null
  printf '%s\n' "$extensions" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$DAYS" -extfile "$name.ext" \
    -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

# Makes the CA, the broker's certificate (for 127.0.0.1 and localhost), the client's, and
# the rogue client's, in $1.
make_tls() {
  local tls="$1" leaf="basicConstraints=critical,CA:FALSE"
  rm -rf "$tls"
  mkdir -p "$tls"
  chmod 700 "$tls"
  (
    cd "$tls"
    certificate ca "/CN=kafka-sse test CA"
    certificate broker "/CN=localhost" ca \
      "$leaf"$'\n'"subjectAltName=IP:127.0.0.1,DNS:localhost"$'\n'"extendedKeyUsage=serverAuth"
    certificate client "/CN=kafka-sse-client" ca "$leaf"$'\n'"extendedKeyUsage=clientAuth"
    certificate rogue-ca "/CN=kafka-sse test CA"
    certificate rogue-client "/CN=kafka-sse-client" rogue-ca \
      "$leaf"$'\n'"extendedKeyUsage=clientAuth"
    rm -f rogue-ca.key
    cat broker.key broker.pem >broker-keystore.pem
  ) || die "could not make the TLS files in $tls with openssl"
}

make_listeners() {
  local dir="$1" sasl_ssl_port="$2" mtls_port="$3" tls
  [[ "$sasl_ssl_port" =~ ^[0-9]+$ && "$mtls_port" =~ ^[0-9]+$ ]] || die "ports must be numbers"
  command -v openssl >/dev/null || die "openssl not found; it makes the test certificates"
  tls="$dir/tls"
  make_tls "$tls"
  (
    umask 077
    cat >"$dir/secured.env" <<EOF
KAFKA_SASL_SSL_BROKERS=127.0.0.1:$sasl_ssl_port
KAFKA_MTLS_BROKERS=127.0.0.1:$mtls_port
KAFKA_SSE_TLS_DIR=$tls
KAFKA_SCRAM_USER=$SCRAM_USER
KAFKA_SCRAM_PASSWORD=$(openssl rand -hex 16)
EOF
  )
  cat <<EOF
# The secured listeners, written by scripts/kafka-secured.sh. SASL_SSL: SCRAM-SHA-512 over
# TLS; MTLS: TLS with a client certificate signed by the test CA.
ssl.keystore.type=PEM
ssl.keystore.location=$tls/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.mtls.ssl.client.auth=required
EOF
}

# Prints the value of KEY in DIR/secured.env.
setting() {
  sed -n "s/^$2=//p" "$1/secured.env"
}

scram() {
  local dir="$1"
  [[ -f "$dir/secured.env" ]] || die "$dir/secured.env is missing; run make first"
  echo "SCRAM-SHA-512=[name=$(setting "$dir" KAFKA_SCRAM_USER),password=$(setting "$dir" KAFKA_SCRAM_PASSWORD)]"
}

check() {
  local dir="$1" key value libs
  [[ -f "$dir/secured.env" ]] || die "$dir/secured.env is missing; is $dir a broker directory?"
  while IFS='=' read -r key value; do export "$key=$value"; done <"$dir/secured.env"
  libs="$("$SCRIPTS/kafka-broker.sh" fetch)"
  java -cp "$libs/*" -Dlog4j2.level=OFF -Dlog4j2.statusLoggerLevel=OFF \
    "$SCRIPTS/kafka/SecuredProbe.java"
}

case "${1:-}" in
  make)
    [[ $# -eq 4 ]] || die "usage: $0 make DIR SASL_SSL_PORT MTLS_PORT"
    make_listeners "$2" "$3" "$4"
    ;;
  scram | check)
    [[ $# -eq 2 ]] || die "usage: $0 $1 DIR"
    "$1" "$2"
    ;;
  *)
    die "usage: $0 make DIR SASL_SSL_PORT MTLS_PORT, $0 scram DIR, or $0 check DIR"
    ;;
esac
