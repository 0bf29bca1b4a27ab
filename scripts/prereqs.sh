#!/usr/bin/env bash
# Installs what building troupe needs on Debian or Ubuntu, if it is missing:
# a C/C++ toolchain and libclang (bindgen generates RocksDB's bindings), and Rust via rustup.
# With TROUPE_TEST_TOOLS=1 (scripts/test.sh) also what the tests drive besides troupe: tmux
# (the dashboard test); Debian's Chromium at /usr/bin/chromium (TROUPE_CHROMIUM overrides the
# path), Node.js and npm, then `npm ci` in tests/browser (playwright-core, pinned by its
# package-lock.json) for the web UI's browser test; and schemathesis (pinned by
# tests/schema/requirements.txt) in a venv at ~/.cache/troupe-venv for the HTTP API's schema
# test. The npm packages and the venv are installed again when their pins change.
# Safe to run again: it only installs what is absent. If something is still missing after
# installing, it says what and fails (the caller stops too: it sources this with set -e).
# scripts/test-prereqs.sh tests it with stub apt-get, sudo and curl first on PATH.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

# Where the test tools go. Only bash builtins here and in the checks below (no dirname, cmp):
# scripts/test-prereqs.sh runs this with a PATH that holds little more than stubs.
troupe_root=${BASH_SOURCE[0]}
case $troupe_root in
  */*) troupe_root=${troupe_root%/*}/.. ;;
  *) troupe_root=.. ;;
esac
troupe_root=$(cd "$troupe_root" && pwd)
troupe_chromium=${TROUPE_CHROMIUM:-/usr/bin/chromium}
troupe_browser_dir=$troupe_root/tests/browser
troupe_requirements=$troupe_root/tests/schema/requirements.txt
troupe_venv=$HOME/.cache/troupe-venv

# Whether files $1 and $2 hold the same text ($2 may be absent).
same_text() { [ -f "$2" ] && [ "$(<"$1")" = "$(<"$2")" ]; }

# Whether tests/browser/node_modules holds what package-lock.json pins: `npm ci` finished there
# with this lock file (it leaves a copy of it as a stamp).
node_modules_ready() {
  [ -f "$troupe_browser_dir/node_modules/playwright-core/package.json" ] \
    && same_text "$troupe_browser_dir/package-lock.json" \
      "$troupe_browser_dir/node_modules/.troupe-package-lock.json"
}

# Whether the venv holds schemathesis as the requirements file pins it (same stamp scheme).
venv_ready() {
  [ -x "$troupe_venv/bin/schemathesis" ] \
    && same_text "$troupe_requirements" "$troupe_venv/troupe-requirements.txt"
}

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
    # The web UI's browser test (tests/web_browser.rs) and its npm packages.
    [ -x "$troupe_chromium" ] || echo chromium
    have node || echo nodejs
    have npm || echo npm
    # The schema test's venv, made with `python3 -m venv` (Debian keeps ensurepip, which it
    # needs, in python3-venv).
    if ! venv_ready; then
      have python3 || echo python3
      { have python3 && python3 -c 'import ensurepip, venv' >/dev/null 2>&1; } || echo python3-venv
    fi
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
    chromium)
      if [ -n "${TROUPE_CHROMIUM:-}" ]; then
        echo "troupe: chromium still not found after installing chromium: TROUPE_CHROMIUM=$TROUPE_CHROMIUM is not an executable file; point it at Chromium's binary, or unset it for /usr/bin/chromium"
      else
        echo "troupe: chromium still not found after installing chromium (looked for /usr/bin/chromium)"
      fi
      ;;
    nodejs) echo "troupe: node still not found after installing nodejs" ;;
    npm) echo "troupe: npm still not found after installing npm" ;;
    python3) echo "troupe: python3 still not found after installing python3" ;;
    python3-venv) echo "troupe: python3 ($(command -v python3)) still cannot make a venv (no ensurepip) after installing python3-venv" ;;
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

# The test tools that come from npm and PyPI, once node, npm and python3 are there. A failed
# install is reported by the check below.
installed_test_tools=0
if [ "${TROUPE_TEST_TOOLS:-0}" = 1 ]; then
  if ! node_modules_ready && have npm; then
    echo "troupe: installing the browser test's npm packages (npm ci in $troupe_browser_dir)" >&2
    installed_test_tools=1
    if (cd "$troupe_browser_dir" && npm ci --no-audit --no-fund --loglevel=error >&2); then
      printf '%s' "$(<"$troupe_browser_dir/package-lock.json")" \
        >"$troupe_browser_dir/node_modules/.troupe-package-lock.json" || true
    fi
  fi
  if ! venv_ready && have python3; then
    echo "troupe: installing schemathesis into $troupe_venv (python3 -m venv, pip install -r $troupe_requirements)" >&2
    installed_test_tools=1
    if python3 -m venv "$troupe_venv" >&2 \
      && "$troupe_venv/bin/pip" install --quiet --disable-pip-version-check \
        -r "$troupe_requirements" >&2; then
      printf '%s' "$(<"$troupe_requirements")" >"$troupe_venv/troupe-requirements.txt" || true
    fi
  fi
fi

# Check again after installing anything; stop (the caller too) if something is still missing.
if ((${#need[@]})) || [ "$installed_rust" = 1 ] || [ "$installed_test_tools" = 1 ]; then
  mapfile -t still < <(missing_packages)
  for package in "${still[@]}"; do
    still_missing "$package"
  done
  if ! have cargo; then
    still+=(cargo)
    echo "troupe: cargo still not found after installing Rust with rustup (looked in PATH and $HOME/.cargo/bin)" >&2
  fi
  if [ "${TROUPE_TEST_TOOLS:-0}" = 1 ]; then
    if ! node_modules_ready; then
      still+=(node_modules)
      echo "troupe: $troupe_browser_dir/node_modules still lacks playwright-core after npm ci (see npm's messages above; playwright-core 1.60 needs Node.js 18 or newer)" >&2
    fi
    if ! venv_ready; then
      still+=(schemathesis)
      echo "troupe: $troupe_venv/bin/schemathesis still not found after python3 -m venv and pip install -r $troupe_requirements (see the messages above)" >&2
    fi
  fi
  if ((${#still[@]})); then
    return 1 2>/dev/null || exit 1
  fi
fi
