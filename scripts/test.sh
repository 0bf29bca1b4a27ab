#!/usr/bin/env bash
# Runs every test (unit, doc, property, integration against the real binary and real
# RocksDB, the SIGKILL crash test) after installing missing prerequisites.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prereqs.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/troupe-target}"
cargo test --locked "$@"
