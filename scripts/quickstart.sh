#!/usr/bin/env bash
# Quick start: install prerequisites, build troupe, and run the main job on the bundled
# example (a 22-task word-frequency map/reduce over /usr/share/common-licenses): validate it
# and print its DAG. The first build compiles RocksDB from source (~20 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prereqs.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/troupe-target}"
cargo build --locked --bin troupe
troupe="$CARGO_TARGET_DIR/debug/troupe"
"$troupe" validate examples/wordfreq/wordfreq.toml
"$troupe" graph --format mermaid examples/wordfreq/wordfreq.toml
