#!/usr/bin/env bash
# Runs each cargo-fuzz target of fuzz/ for SECONDS (default 20), or only the targets named
# after it: scripts/fuzz.sh 600 control_frame. Needs a nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz --locked`); without them it says so and exits 0, so CI can call
# it everywhere. A crash fails it (exit 1) and leaves the input in fuzz/artifacts/TARGET/.
# See docs/benchmarks.md, "Fuzzing".
#
# - Built without a sanitizer (`-s none`) and with debug assertions (`-a`): troupe's code is
#   safe Rust, so what a fuzzer finds is a panic (including an arithmetic overflow), which
#   needs no ASan to be caught, and the targets build and run several times faster.
# - Target dir $FUZZ_TARGET_DIR (default ~/.cache/troupe-fuzz-target), kept between runs:
#   the fuzz build has its own flags, so it cannot share troupe's target dir.
# - RocksDB: no target opens a journal, but troupe links it. When troupe's own build has
#   compiled librocksdb.a (under $CARGO_TARGET_DIR), the fuzz build links that one
#   (ROCKSDB_LIB_DIR) instead of compiling RocksDB's C++ again (~40 minutes on 2 cores).
# - Corpora grow in fuzz/corpus/TARGET/ (not in git); fuzz/seeds/TARGET/ holds the committed
#   seeds, read as a second corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(workflow_toml workflow_json control_frame journal_record node_config)
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: skipped (no nightly toolchain; rustup toolchain install nightly)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: skipped (no cargo-fuzz; cargo install cargo-fuzz --locked)"
  exit 0
fi
target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/troupe-fuzz-target}"
main_target="${CARGO_TARGET_DIR:-$HOME/.cache/troupe-target}"
lib=$(ls -t "$main_target"/{release,debug}/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -n 1 || true)
if [ -n "$lib" ]; then
  mkdir -p "$target_dir/rocksdb-lib"
  ln -sfn "$lib" "$target_dir/rocksdb-lib/librocksdb.a"
  export ROCKSDB_LIB_DIR="$target_dir/rocksdb-lib" ROCKSDB_STATIC=1
fi
flags=(-s none -a --target-dir "$target_dir")
cargo +nightly fuzz build "${flags[@]}"
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "fuzz: $t for ${secs}s"
  cargo +nightly fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
