#!/usr/bin/env bash
# Installs what building troupe needs on Debian or Ubuntu, if it is missing:
# a C/C++ toolchain and libclang (bindgen generates RocksDB's bindings), and Rust via rustup;
# with TROUPE_TEST_TOOLS=1 (scripts/test.sh) also tmux, for the dashboard test.
# Safe to run again: it only installs what is absent.
set -euo pipefail

need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v c++ >/dev/null 2>&1 || need+=(g++)
# libclang itself (libclang.so*, libclang-N.so*), not libclang-cpp, which some images ship alone
# and which bindgen cannot use.
have_libclang=0
for dir in /usr/lib/llvm-*/lib /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu; do
  if compgen -G "$dir/libclang.so*" >/dev/null || compgen -G "$dir/libclang-[0-9]*.so*" >/dev/null; then
    have_libclang=1
  fi
done
[ "$have_libclang" = 1 ] || need+=(libclang-dev)
# The test suite also drives `troupe dashboard` in a real terminal.
if [ "${TROUPE_TEST_TOOLS:-0}" = 1 ] && ! command -v tmux >/dev/null 2>&1; then
  need+=(tmux)
fi
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "troupe: installing ${need[*]} (apt-get)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "troupe: installing Rust with rustup (https://rustup.rs)" >&2
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  export PATH="$HOME/.cargo/bin:$PATH"
fi
