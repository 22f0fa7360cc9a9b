#!/usr/bin/env bash
# Installs Wikimedia's KafkaSSE (npm `kafka-sse`) and its native Kafka client (node-rdkafka,
# which compiles the librdkafka it bundles) into benches/kafkasse/node_modules, from the npm
# registry only: node-gyp is pointed at the Node headers installed on this machine instead of
# downloading them from nodejs.org, and librdkafka is configured without --install-deps, so
# nothing but npm packages is fetched.
#
# Usage:
#   benches/kafkasse/setup.sh            install (a no-op when already installed)
#   benches/kafkasse/setup.sh --force    reinstall from scratch
#
# Environment: NODE_HEADERS_DIR, the prefix holding include/node/node.h (default: found next
# to the node binary, else /usr); JOBS, parallel compile jobs (default: nproc).
# Needs: node >= 18, npm, a C/C++ toolchain, make, python3; zlib and OpenSSL headers are
# used when present.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

die() {
  echo "kafkasse-setup: $*" >&2
  exit 1
}

installed() {
  # shellcheck disable=SC2016 # JavaScript template literals, not shell
  node -e '
    const rdkafka = require("node-rdkafka");
    require("kafka-sse");
    console.log(`kafka-sse ${require("kafka-sse/package.json").version}, ` +
      `node-rdkafka ${require("node-rdkafka/package.json").version}, ` +
      `librdkafka ${rdkafka.librdkafkaVersion}`);
  ' 2>/dev/null
}

if [[ "${1:-}" == "--force" ]]; then
  rm -rf node_modules
elif version="$(installed)"; then
  echo "kafkasse-setup: already installed: $version"
  exit 0
fi

for tool in node npm make python3 g++; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

headers="${NODE_HEADERS_DIR:-}"
if [[ -z "$headers" ]]; then
  for candidate in "$(dirname "$(dirname "$(command -v node)")")" /usr /usr/local; do
    if [[ -f "$candidate/include/node/node.h" ]]; then
      headers="$candidate"
      break
    fi
  done
fi
[[ -n "$headers" && -f "$headers/include/node/node.h" ]] ||
  die "no Node headers (include/node/node.h) found; set NODE_HEADERS_DIR"

# node-gyp reads these as its --nodedir and --jobs; with a nodedir it never goes online.
export npm_config_nodedir="$headers"
export JOBS="${JOBS:-$(nproc)}"
export npm_config_jobs="$JOBS"

echo "kafkasse-setup: installing with Node $(node --version) headers from $headers ($JOBS jobs);" \
  "node-rdkafka compiles librdkafka, which takes a few minutes" >&2
log="$(mktemp "${TMPDIR:-/tmp}/kafkasse-setup.XXXXXX.log")"
run() {
  if ! timeout 1800 "$@" >>"$log" 2>&1; then
    tail -n 60 "$log" >&2
    die "failed: $*; full log in $log"
  fi
}
# Optional dependencies are bunyan's dtrace and mv extras, of no use here. Install scripts
# wait: node-rdkafka's build needs a step first (below).
args=(--no-audit --no-fund --omit=optional --ignore-scripts)
if [[ -f package-lock.json ]]; then
  run npm ci "${args[@]}"
else
  run npm install "${args[@]}"
fi
# node-rdkafka's gyp file has librdkafka's configure action write deps/librdkafka/config.h
# but names it relative to the build directory, while the next action waits for it in the
# source tree; current node-gyp (gyp-next) then stops with "No rule to make target
# '../deps/librdkafka/config.h'". Running the package's own configure script first puts the
# file where make looks for it.
(cd node_modules/node-rdkafka && run ./configure)
run npm rebuild node-rdkafka --foreground-scripts
rm -f "$log"
version="$(installed)" || die "installed, but node-rdkafka does not load"
echo "kafkasse-setup: installed: $version"
