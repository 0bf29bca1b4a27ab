#!/usr/bin/env bash
# Quick start: install prerequisites, build troupe, link the binary onto PATH, and run the main
# job on the bundled example (a 22-task word-frequency map/reduce over
# /usr/share/common-licenses): validate it, then run it to completion with `troupe run` (an
# embedded node, journaled in the data dir) and show its result. The first build compiles
# RocksDB from source (~20 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prereqs.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/troupe-target}"
if ! compgen -G "$CARGO_TARGET_DIR/debug/build/librocksdb-sys-*/out/*.a" >/dev/null; then
  echo "troupe: first build: compiling RocksDB from source takes about 20 minutes on 2 cores (later builds take seconds)" >&2
fi
# --all-targets builds the tests too, with the same dependency features as scripts/test.sh,
# so RocksDB is compiled once for both commands (a `--bin`-only build resolves features
# differently and would compile it a second time for the tests).
cargo build --locked --all-targets
troupe="$CARGO_TARGET_DIR/debug/troupe"
# Put `troupe` where cargo installs binaries (on PATH wherever Rust is), as a link, so that
# later builds are picked up too.
bin="${CARGO_HOME:-$HOME/.cargo}/bin"
mkdir -p "$bin"
ln -sf "$troupe" "$bin/troupe"
echo "troupe: linked $bin/troupe -> $troupe" >&2
case ":$PATH:" in
  *":$bin:"*) ;;
  *) echo "troupe: $bin is not on your PATH; add it: export PATH=\"$bin:\$PATH\"" >&2 ;;
esac
"$troupe" validate examples/wordfreq/wordfreq.toml
# Runs in a node of its own unless one already serves the data dir (then it is submitted there).
"$troupe" run examples/wordfreq/wordfreq.toml
echo "--- examples/wordfreq/out/report.txt"
cat examples/wordfreq/out/report.txt
