#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the third-party SSE clients the tests use
# (scripts/install-test-clients.sh), builds everything in the workspace (the library, its
# examples and benches, and the load generator in benches/loadgen), starts a real Kafka
# broker on loopback (scripts/with-kafka.sh), runs unit, integration and doc tests against
# it, and stops the broker, whether the tests pass or not.
#
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-test-clients.sh
cargo build --workspace --all-targets --locked
scripts/with-kafka.sh bash -c 'cargo test --workspace --all-targets --locked "$@" && cargo test --doc --locked' -- "$@"
scripts/fuzz.sh 10
