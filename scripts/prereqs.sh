#!/usr/bin/env bash
# Installs what building troupe needs on Debian or Ubuntu, if it is missing:
# a C/C++ toolchain and libclang (bindgen generates RocksDB's bindings), and Rust via rustup;
# with TROUPE_TEST_TOOLS=1 (scripts/test.sh) also tmux, for the dashboard test.
# Safe to run again: it only installs what is absent. If something is still missing after
# installing, it says what and fails (the caller stops too: it sources this with set -e).
# scripts/test-prereqs.sh tests it with stub apt-get, sudo and curl first on PATH.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

# Whether $1 is a libclang bindgen can load. Same rules as clang-sys 1.9 (build/dynamic.rs and
# build/common.rs), which finds libclang for bindgen: one of these names, but not libclang-cpp
# (a different library, which some images ship alone), and an ELF file (clang-sys reads the
# header too). Symlinks count, as the file they point to.
is_libclang() {
  case ${1##*/} in
    *-cpp.*) return 1 ;;
    libclang.so | libclang-*.so | libclang.so.* | libclang-*.so.*) ;;
    *) return 1 ;;
  esac
  local magic=''
  IFS= read -r -n 4 -d '' magic 2>/dev/null <"$1" || true
  [ "$magic" = $'\177ELF' ]
}

# Whether folder $1 holds a libclang.
libclang_in() {
  local file
  for file in "${1%/}"/libclang*.so*; do
    is_libclang "$file" && return 0
  done
  return 1
}

# Whether bindgen will find a libclang, looking where clang-sys does on Linux: only in
# LIBCLANG_PATH if it is set (a folder, or the library itself); otherwise in the bin, lib and
# lib64 folders of `llvm-config --prefix`, in LD_LIBRARY_PATH and LIBRARY_PATH, and in these
# folders (in clang-sys's order).
have_libclang() {
  local dir prefix dirs
  if [ -n "${LIBCLANG_PATH:-}" ]; then
    if [ -f "$LIBCLANG_PATH" ] && is_libclang "$LIBCLANG_PATH"; then
      return 0
    fi
    libclang_in "$LIBCLANG_PATH"
    return
  fi
  if have "${LLVM_CONFIG_PATH:-llvm-config}" \
      && prefix=$("${LLVM_CONFIG_PATH:-llvm-config}" --prefix 2>/dev/null) && [ -n "$prefix" ]; then
    prefix=${prefix%%$'\n'*}
    for dir in "$prefix/bin" "$prefix/lib" "$prefix/lib64"; do
      libclang_in "$dir" && return 0
    done
  fi
  IFS=: read -r -a dirs <<<"${LD_LIBRARY_PATH:-}:${LIBRARY_PATH:-}"
  for dir in "${dirs[@]}"; do
    [ -n "$dir" ] && libclang_in "$dir" && return 0
  done
  # The trailing slash makes each pattern match folders only.
  for dir in /usr/local/llvm*/lib*/ /usr/local/lib*/*/*/ /usr/local/lib*/*/ /usr/local/lib*/ \
      /usr/lib*/*/*/ /usr/lib*/*/ /usr/lib*/; do
    libclang_in "$dir" && return 0
  done
  return 1
}

# Prints the Debian packages to install for what is missing, one a line.
missing_packages() {
  have cc || echo build-essential
  have c++ || echo g++
  have_libclang || echo libclang-dev
  # The test suite also drives `troupe dashboard` in a real terminal.
  if [ "${TROUPE_TEST_TOOLS:-0}" = 1 ]; then
    have tmux || echo tmux
  fi
}

# Explains, on stderr, why a package that was installed did not provide what it should.
still_missing() {
  case $1 in
    build-essential) echo "troupe: cc still not found after installing build-essential" ;;
    g++) echo "troupe: c++ still not found after installing g++" ;;
    libclang-dev)
      if [ -n "${LIBCLANG_PATH:-}" ]; then
        echo "troupe: libclang still not found after installing libclang-dev: LIBCLANG_PATH=$LIBCLANG_PATH holds no libclang.so; point it at the folder holding libclang.so, or unset it"
      else
        echo "troupe: libclang still not found after installing libclang-dev; set LIBCLANG_PATH to the folder holding libclang.so"
      fi
      ;;
    tmux) echo "troupe: tmux still not found after installing tmux" ;;
    *) echo "troupe: $1 still missing" ;;
  esac >&2
}

mapfile -t need < <(missing_packages)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "troupe: installing ${need[*]} (apt-get)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! have cargo && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
installed_rust=0
if ! have cargo; then
  echo "troupe: installing Rust with rustup (https://rustup.rs)" >&2
  installed_rust=1
  # A failed install is reported by the check below.
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal || true
  export PATH="$HOME/.cargo/bin:$PATH"
fi

# Check again after installing anything; stop (the caller too) if something is still missing.
if ((${#need[@]})) || [ "$installed_rust" = 1 ]; then
  mapfile -t still < <(missing_packages)
  for package in "${still[@]}"; do
    still_missing "$package"
  done
  if ! have cargo; then
    still+=(cargo)
    echo "troupe: cargo still not found after installing Rust with rustup (looked in PATH and $HOME/.cargo/bin)" >&2
  fi
  if ((${#still[@]})); then
    return 1 2>/dev/null || exit 1
  fi
fi
