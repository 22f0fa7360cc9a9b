#!/usr/bin/env bash
# Installs the third-party clients the test suite reads the example services with, each from
# its own registry: Node's `eventsource` and `playwright-core` (npm, pinned in
# tests/clients/package-lock.json), Python's `requests-sse` and `sseclient-py` and the
# OpenAPI validator `openapi-spec-validator` (PyPI, pinned in tests/clients/requirements.txt,
# into a virtualenv in the cache), and Debian's `chromium`, `curl` and `nginx` (the reverse
# proxy tests/reverse_proxy.rs starts as the current user with its stock proxy settings).
# Re-running is cheap: whatever is installed already is kept.
#
# Usage: scripts/install-test-clients.sh
# Prints nothing on success but progress lines on stderr; the virtualenv's python is at
# ${KAFKA_SSE_CACHE:-$HOME/.cache/kafka-sse}/clients-venv/bin/python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLIENTS="$ROOT/tests/clients"
VENV="${KAFKA_SSE_CACHE:-$HOME/.cache/kafka-sse}/clients-venv"

say() { echo "install-test-clients: $*" >&2; }

missing_debs=()
command -v chromium >/dev/null || missing_debs+=(chromium)
command -v curl >/dev/null || missing_debs+=(curl)
[[ -x /usr/sbin/nginx ]] || missing_debs+=(nginx)
if ((${#missing_debs[@]})); then
  say "installing ${missing_debs[*]} from Debian"
  as_root=()
  [[ $(id -u) -eq 0 ]] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing_debs[@]}" >/dev/null
fi

if [[ ! -d "$CLIENTS/node_modules/eventsource" || ! -d "$CLIENTS/node_modules/playwright-core" ]]; then
  say "installing Node clients from npm"
  (cd "$CLIENTS" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

stamp="$VENV/.requirements"
if ! cmp -s "$CLIENTS/requirements.txt" "$stamp"; then
  say "installing Python clients from PyPI into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$CLIENTS/requirements.txt"
  cp "$CLIENTS/requirements.txt" "$stamp"
fi
