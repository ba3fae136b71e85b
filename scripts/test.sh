#!/usr/bin/env bash
# Runs every test of the workspace, installing what the tests need first. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# A clean build gains nothing from incremental data, which took 3 GB of a CI machine's disk.
export CARGO_INCREMENTAL=0
df -h . | tail -1 | awk '{print "disk before the build: " $4 " free"}'
trap 'du -sh target 2>/dev/null | awk "{print \"target: \" \$1}"; df -h . | tail -1 | awk "{print \"disk: \" \$4 \" free\"}"' EXIT

bash scripts/install-test-deps.sh
bash scripts/check-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo nextest run --workspace --no-fail-fast
