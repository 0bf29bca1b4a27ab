#!/usr/bin/env bash
# Runs every test (unit, doc, property, integration against the real binary and real
# RocksDB, the SIGKILL crash test) after installing missing prerequisites, with the tools the
# tests drive (tmux, Chromium, Node.js and tests/browser's npm packages, schemathesis), and the
# test of the script that installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
TROUPE_TEST_TOOLS=1 source scripts/prereqs.sh
# The test of prereqs.sh itself (stub apt-get, curl and sudo: installs nothing, needs no network).
scripts/test-prereqs.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/troupe-target}"
# --all-targets also runs the benchmarks once each in test mode (so they keep compiling and
# working); it leaves out doctests, which the second command runs.
cargo test --locked --all-targets "$@"
cargo test --locked --doc "$@"
# Without the default `cluster` feature (docs/decisions.md D57): ractor keeps its blanket
# `Message` impl, as for embedders who turn the feature off. The unit tests, the embedding
# test and the examples build and run without it.
cargo test --locked --no-default-features --lib --test embed "$@"
cargo build --locked --no-default-features --examples --bins
