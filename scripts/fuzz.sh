#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for SECONDS (default 10), starting
# from the seeds in fuzz/corpus/<target>/. Fails, naming the crashing input, when any
# target crashes, panics, times out or runs out of memory.
#
# Usage: scripts/fuzz.sh [SECONDS]
#   FUZZ_TARGETS="since filter"  only these targets (default: every target)
#   FUZZ_SANITIZER=address       build with AddressSanitizer (default: none, see below)
#
# cargo-fuzz is installed with `cargo install --locked` into cargo's bin directory when
# `cargo fuzz` is missing, and reused when present.
#
# The targets run with `--sanitizer none` on the stable toolchain: they exercise safe Rust
# only (the crate forbids `unsafe`), and without a sanitizer cargo-fuzz passes no `-Z`
# flag, so no nightly toolchain is needed. AddressSanitizer builds need `-Zsanitizer`;
# stable's rust-std ships the ASan runtime, so RUSTC_BOOTSTRAP=1 (set here for that case)
# lets the stable compiler accept it.
#
# New inputs the fuzzer finds go to a temporary directory, so the committed seeds stay
# small; a crashing input is kept in fuzz/artifacts/<target>/ with the command that
# reproduces it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-10}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi
sanitizer="${FUZZ_SANITIZER:-none}"
cargo_fuzz_version=0.13.2

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz $cargo_fuzz_version"
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi
if [[ "$sanitizer" != none ]]; then
  export RUSTC_BOOTSTRAP=1
fi
# librdkafka is linked into every target but never called by them: compile its C sources
# without optimisation, which halves the time of a build from a clean fuzz/target.
export CFLAGS="${CFLAGS:-} -O0 -g0"

read -r -a targets <<<"${FUZZ_TARGETS:-$(cargo fuzz list | tr "\n" " ")}"
echo "fuzz: building ${targets[*]} (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer"

work="$(mktemp -d "${TMPDIR:-/tmp}/kafka-sse-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

failed=()
for target in "${targets[@]}"; do
  mkdir -p "$work/$target"
  log="$work/$target.log"
  echo "fuzz: $target for ${seconds}s"
  if cargo fuzz run --sanitizer "$sanitizer" "$target" "$work/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1; then
    grep -E '^(#[0-9]+\s+DONE|Done [0-9]+ runs)' "$log" | sed "s/^/fuzz: $target: /" || true
  else
    failed+=("$target")
    mkdir -p "fuzz/artifacts/$target"
    cp "$log" "fuzz/artifacts/$target/run.log"
    echo "fuzz: $target FAILED (whole output: fuzz/artifacts/$target/run.log):" >&2
    grep -E -A6 "panicked at|^==[0-9]+==|ERROR: libFuzzer" "$log" | head -n 40 >&2 || true
    grep -E "^(Reproduce with|artifact_prefix|Test unit written to)|cargo fuzz run" "$log" >&2 || true
  fi
done

if ((${#failed[@]} > 0)); then
  echo "fuzz: FAILED: ${failed[*]}; crashing inputs are in fuzz/artifacts/" >&2
  exit 1
fi
echo "fuzz: every target ran ${seconds}s without a failure"
