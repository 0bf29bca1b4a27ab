#!/usr/bin/env bash
# Tests scripts/prereqs.sh on simulated machines that lack prerequisites, and checks what it
# decides to install, without installing anything and without network: stub apt-get, sudo and
# curl come first on PATH and only record how they were called (so every install "fails", and
# the script must then say what is still missing and fail). The test tools (TROUPE_TEST_TOOLS=1)
# get stub npm, python3 and pip too, which record their calls and, where a case says so
# (PREREQS_TEST_INSTALLS=1), leave what the real ones would: node_modules/playwright-core, a
# venv holding schemathesis.
#
# Most cases run in a clean environment (env -i) whose PATH is a folder holding only the
# stubs, id, sh, and fake versions of the tools that case has, with LIBCLANG_PATH pointing at
# a folder of fake libraries, TROUPE_CHROMIUM at a fake Chromium (or at nothing), HOME at a
# fake home (with or without the venv) and prereqs.sh copied into a fake tree (with or without
# tests/browser/node_modules); they depend on nothing installed here. Three cases use this
# machine: one checks that the real libclang is found, one hides it in a private mount
# namespace (needs root; skipped otherwise), and one checks Chromium's default path.
#
# Usage: scripts/test-prereqs.sh [path/to/prereqs.sh]   (default: scripts/prereqs.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
script=$(realpath "${1:-scripts/prereqs.sh}")
bash_bin=$BASH
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 skipped=0

# --- Fixtures ---

# Stubs that record their calls in $PREREQS_TEST_LOG and install nothing. The rustup
# installer that the curl stub serves records that it ran, and installs nothing either.
mkdir "$tmp/stubs"
stub() {
  printf '#!%s\n%s\n' "$bash_bin" "$2" >"$tmp/stubs/$1"
  chmod +x "$tmp/stubs/$1"
}
stub apt-get 'echo "apt-get $*" >>"$PREREQS_TEST_LOG"'
stub sudo 'exec "$@"'
stub curl 'echo "curl $*" >>"$PREREQS_TEST_LOG"
echo '\''echo "rustup-init $*" >>"$PREREQS_TEST_LOG"'\'

# The test tools' stubs, kept apart: a case's PATH gets those it has. They use real mkdir, cp
# and rm by absolute path (a case's PATH has none). `npm ci` removes node_modules, as the real
# one does, and fails, as without network; with PREREQS_TEST_INSTALLS=1 it leaves
# node_modules/playwright-core instead. `python3 -m venv DIR` leaves DIR/bin/pip with
# PREREQS_TEST_INSTALLS=1; `pip install` fails, or with PREREQS_TEST_INSTALLS=1 leaves
# bin/schemathesis beside itself. With PREREQS_TEST_NO_ENSUREPIP=1, python3 cannot import
# ensurepip (Debian's python3 without python3-venv).
mkdir "$tmp/tools"
tool() {
  local text=$2
  text=${text//@MKDIR@/$(command -v mkdir)}
  text=${text//@CP@/$(command -v cp)}
  text=${text//@RM@/$(command -v rm)}
  text=${text//@TOOLS@/$tmp/tools}
  printf '#!%s\n%s\n' "$bash_bin" "$text" >"$tmp/tools/$1"
  chmod +x "$tmp/tools/$1"
}
tool npm 'echo "npm $* (in $PWD)" >>"$PREREQS_TEST_LOG"
if [ "$1" = ci ]; then
  @RM@ -rf node_modules
  [ "${PREREQS_TEST_INSTALLS:-0}" = 1 ] || exit 1
  @MKDIR@ -p node_modules/playwright-core && echo "{}" >node_modules/playwright-core/package.json
fi'
tool python3 'echo "python3 $*" >>"$PREREQS_TEST_LOG"
case $1 in
  -c) [ "${PREREQS_TEST_NO_ENSUREPIP:-0}" != 1 ] ;;
  -m)
    if [ "$2" = venv ] && [ "${PREREQS_TEST_INSTALLS:-0}" = 1 ]; then
      @MKDIR@ -p "$3/bin" && @CP@ @TOOLS@/pip "$3/bin/pip"
    fi
    ;;
esac'
tool pip 'echo "pip $*" >>"$PREREQS_TEST_LOG"
if [ "$1" = install ]; then
  [ "${PREREQS_TEST_INSTALLS:-0}" = 1 ] || exit 1
  @CP@ @TOOLS@/schemathesis "${0%/*}/schemathesis"
fi'
tool schemathesis 'exit 0'

# bindir NAME TOOL...: a folder for PATH with the stubs, id and sh, and a fake TOOL of each
# name given (cc, c++, tmux, cargo, node: they succeed; npm and python3: the stubs above).
# Prints its path.
bindir() {
  local dir=$tmp/bin-$1 tool
  shift
  mkdir "$dir"
  cp "$tmp"/stubs/* "$dir/"
  ln -s "$(command -v id)" "$dir/id"
  ln -s "$(command -v sh)" "$dir/sh"
  for tool; do
    if [ -f "$tmp/tools/$tool" ]; then
      cp "$tmp/tools/$tool" "$dir/$tool"
    else
      printf '#!%s\nexit 0\n' "$bash_bin" >"$dir/$tool"
      chmod +x "$dir/$tool"
    fi
  done
  echo "$dir"
}

# Fake libraries: only the ELF magic bytes and class (what clang-sys reads of them).
elf() { mkdir -p "$(dirname "$1")" && printf '\177ELF\002\001\001' >"$1"; }
elf "$tmp/libclang/libclang-14.so.1"
elf "$tmp/cpp-only/libclang-cpp.so.14" # the bug: libclang-cpp alone, which bindgen cannot use
mkdir "$tmp/empty-lib" && : >"$tmp/empty-lib/libclang.so"

# A fake Chromium, for TROUPE_CHROMIUM.
printf '#!%s\nexit 0\n' "$bash_bin" >"$tmp/chromium"
chmod +x "$tmp/chromium"

# tree NAME STATE: a fake troupe tree holding a copy of prereqs.sh, the browser test's
# package-lock.json and the schema test's requirements.txt, with tests/browser/node_modules as
# `npm ci` leaves it (STATE ready), as an older lock file left it (stale), or absent (bare).
# Prints the copy's path (prereqs.sh finds the tree from its own path).
tree() {
  local dir=$tmp/tree-$1 browser
  browser=$dir/tests/browser
  mkdir -p "$dir/scripts" "$browser" "$dir/tests/schema"
  cp "$script" "$dir/scripts/prereqs.sh"
  printf '{"lockfileVersion": 3, "packages": {"node_modules/playwright-core": {"version": "1.65.1"}}}\n' \
    >"$browser/package-lock.json"
  printf 'schemathesis==4.32.5\n' >"$dir/tests/schema/requirements.txt"
  case $2 in
    ready | stale)
      mkdir -p "$browser/node_modules/playwright-core"
      echo '{}' >"$browser/node_modules/playwright-core/package.json"
      ;;&
    ready) cp "$browser/package-lock.json" "$browser/node_modules/.troupe-package-lock.json" ;;
    stale) echo '{"lockfileVersion": 3}' >"$browser/node_modules/.troupe-package-lock.json" ;;
  esac
  echo "$dir/scripts/prereqs.sh"
}
tree_ready=$(tree ready ready)
tree_stale=$(tree stale stale)
tree_bare=$(tree bare bare)

# Homes: none with a venv, one with the venv as prereqs.sh leaves it, one with a venv made
# from older pins.
mkdir -p "$tmp/home-empty" "$tmp/home-cargo/.cargo/bin"
printf '#!%s\nexit 0\n' "$bash_bin" >"$tmp/home-cargo/.cargo/bin/cargo"
chmod +x "$tmp/home-cargo/.cargo/bin/cargo"
for home in venv venv-stale; do
  mkdir -p "$tmp/home-$home/.cache/troupe-venv/bin"
  cp "$tmp/tools/schemathesis" "$tmp/tools/pip" "$tmp/home-$home/.cache/troupe-venv/bin/"
done
cp "$tmp/tree-ready/tests/schema/requirements.txt" "$tmp/home-venv/.cache/troupe-venv/troupe-requirements.txt"
printf 'schemathesis==4.0.0\n' >"$tmp/home-venv-stale/.cache/troupe-venv/troupe-requirements.txt"

test_tools="tmux node npm python3"
all=$(bindir all cc c++ cargo $test_tools)
no_cc=$(bindir no-cc c++ cargo $test_tools)
no_cxx=$(bindir no-cxx cc cargo $test_tools)
no_tmux=$(bindir no-tmux cc c++ cargo node npm python3)
no_node=$(bindir no-node cc c++ cargo tmux npm python3)
no_npm=$(bindir no-npm cc c++ cargo tmux node python3)
no_python=$(bindir no-python cc c++ cargo tmux node npm)
build_only=$(bindir build-only cc c++ cargo)
no_cargo=$(bindir no-cargo cc c++ $test_tools)

# The test tools all there (with $all on PATH): for cases about something else.
tools_ready=(HOME="$tmp/home-venv" TROUPE_CHROMIUM="$tmp/chromium")

# --- Running a case and checking it ---

# from_tree SCRIPT run...: runs the case with that copy of prereqs.sh (default: $tree_ready).
from_tree() {
  local case_script=$1
  shift
  "$@"
}

# run NAME VAR=VALUE...: runs prereqs.sh in a clean environment holding only these variables
# (and PREREQS_TEST_LOG); sets $name, $log, $out and $status.
run() {
  name=$1
  shift
  log=$tmp/$name.log out=$tmp/$name.out
  : >"$log"
  env -i PREREQS_TEST_LOG="$log" "$@" "$bash_bin" "${case_script:-$tree_ready}" >"$out" 2>&1
  status=$?
}

# run_sourced NAME VAR=VALUE...: like run, but sources prereqs.sh from a caller written like
# scripts/test.sh, which then prints "caller went on".
run_sourced() {
  name=$1
  shift
  log=$tmp/$name.log out=$tmp/$name.out
  : >"$log"
  env -i PREREQS_TEST_LOG="$log" "$@" "$bash_bin" -c \
    'set -euo pipefail; TROUPE_TEST_TOOLS=1 source "$1"; echo "caller went on"' _ \
    "${case_script:-$tree_ready}" \
    >"$out" 2>&1
  status=$?
}

# check WHAT COMMAND...: one assertion about the last run.
check() {
  local what=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "ok    $name: $what"
  else
    failed=$((failed + 1))
    echo "FAIL  $name: $what (exit status $status)"
    sed 's/^/        output| /' "$out"
    sed 's/^/        calls | /' "$log"
  fi
}
skip() {
  skipped=$((skipped + 1))
  echo "skip  $1"
}

# Whether apt-get was asked to install package $1.
requested() {
  local line
  while IFS= read -r line; do
    [[ $line == "apt-get install "* && " $line " == *" $1 "* ]] && return 0
  done <"$log"
  return 1
}
not_requested() { ! requested "$1"; }
apt_not_called() { ! grep -q '^apt-get' "$log"; }
called() { grep -q "$1" "$log"; }
not_called() { ! grep -q "$1" "$log"; }
succeeded() { [ "$status" = 0 ]; }
failed() { [ "$status" != 0 ]; }
says() { grep -q -- "$1" "$out"; }
not_says() { ! grep -q -- "$1" "$out"; }

# --- Cases in a clean environment ---

run all-present PATH="$all" "${tools_ready[@]}" LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "installs nothing" apt_not_called
check "does not run rustup" not_called curl
check "runs no npm ci" not_called "^npm"
check "makes no venv" not_called "^python3 -m"
check "succeeds" succeeded

run libclang-path-file PATH="$all" HOME="$tmp/home-empty" LIBCLANG_PATH="$tmp/libclang/libclang-14.so.1"
check "LIBCLANG_PATH naming the library itself is enough" apt_not_called
check "succeeds" succeeded

run only-libclang-cpp PATH="$all" HOME="$tmp/home-empty" LIBCLANG_PATH="$tmp/cpp-only"
check "libclang-cpp alone is not libclang: asks for libclang-dev" requested libclang-dev
check "asks for nothing else" not_requested build-essential
check "fails, as libclang is still missing" failed
check "says libclang is still not found" says "libclang still not found after installing libclang-dev"
check "names LIBCLANG_PATH" says "LIBCLANG_PATH"

run empty-libclang PATH="$all" HOME="$tmp/home-empty" LIBCLANG_PATH="$tmp/empty-lib"
check "an empty libclang.so is not a library: asks for libclang-dev" requested libclang-dev
check "fails" failed

run no-cc PATH="$no_cc" HOME="$tmp/home-empty" LIBCLANG_PATH="$tmp/libclang"
check "asks for build-essential" requested build-essential
check "asks for nothing else" not_requested g++
check "fails, as cc is still missing" failed
check "says cc is still not found" says "cc still not found after installing build-essential"

run no-cxx PATH="$no_cxx" HOME="$tmp/home-empty" LIBCLANG_PATH="$tmp/libclang"
check "asks for g++" requested g++
check "asks for nothing else" not_requested build-essential
check "fails, as c++ is still missing" failed
check "says c++ is still not found" says "c++ still not found after installing g++"

run no-tmux-for-tests PATH="$no_tmux" "${tools_ready[@]}" LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "asks for tmux (TROUPE_TEST_TOOLS=1)" requested tmux
check "fails, as tmux is still missing" failed
check "asks for nothing else" not_requested chromium
check "says tmux is still not found" says "tmux still not found"

run no-tmux-for-build PATH="$no_tmux" HOME="$tmp/home-empty" LIBCLANG_PATH="$tmp/libclang"
check "building alone needs no tmux" apt_not_called
check "succeeds" succeeded

run no-cargo PATH="$no_cargo" HOME="$tmp/home-empty" LIBCLANG_PATH="$tmp/libclang"
check "installs no Debian package" apt_not_called
check "downloads rustup" called "^curl .*https://sh.rustup.rs"
check "runs the rustup installer" called "^rustup-init -y --profile minimal"
check "fails, as cargo is still missing" failed
check "says cargo is still not found" says "cargo still not found after installing Rust with rustup"

run cargo-in-home PATH="$no_cargo" HOME="$tmp/home-cargo" LIBCLANG_PATH="$tmp/libclang"
check "finds ~/.cargo/bin/cargo: no rustup" not_called curl
check "succeeds" succeeded

run_sourced sourced-missing PATH="$no_cc" "${tools_ready[@]}" LIBCLANG_PATH="$tmp/libclang"
check "stops a set -e caller when something is still missing" not_says "caller went on"
check "the caller fails" failed

run_sourced sourced-present PATH="$all" "${tools_ready[@]}" LIBCLANG_PATH="$tmp/libclang"
check "lets the caller go on when all is there" says "caller went on"
check "the caller succeeds" succeeded

# The browser and schema tests' tools (TROUPE_TEST_TOOLS=1).

run no-test-tools-for-build PATH="$build_only" HOME="$tmp/home-empty" LIBCLANG_PATH="$tmp/libclang" \
  TROUPE_CHROMIUM="$tmp/absent"
check "building alone needs no chromium, node, npm nor python3" apt_not_called
check "runs no npm" not_called "^npm"
check "runs no python3" not_called "^python3"
check "succeeds" succeeded

run no-chromium PATH="$all" HOME="$tmp/home-venv" TROUPE_CHROMIUM="$tmp/absent" \
  LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "asks for chromium" requested chromium
check "asks for nothing else" not_requested nodejs
check "fails, as chromium is still missing" failed
check "says chromium is still not found, naming TROUPE_CHROMIUM" \
  says "chromium still not found after installing chromium: TROUPE_CHROMIUM=$tmp/absent"

run no-node PATH="$no_node" "${tools_ready[@]}" LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "asks for nodejs" requested nodejs
check "asks for nothing else" not_requested npm
check "fails, as node is still missing" failed
check "says node is still not found" says "node still not found after installing nodejs"

run no-npm PATH="$no_npm" "${tools_ready[@]}" LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "asks for npm" requested npm
check "asks for nothing else" not_requested nodejs
check "fails, as npm is still missing" failed
check "says npm is still not found" says "npm still not found after installing npm"

from_tree "$tree_bare" run no-npm-no-modules PATH="$no_npm" "${tools_ready[@]}" \
  LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "asks for npm" requested npm
check "fails" failed
check "says node_modules is still missing" says "node_modules still lacks playwright-core"

from_tree "$tree_bare" run no-node-modules PATH="$all" "${tools_ready[@]}" \
  LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "installs no Debian package" apt_not_called
check "runs npm ci in tests/browser" called "^npm ci .*(in $tmp/tree-bare/tests/browser)"
check "fails, as npm ci installed nothing" failed
check "says node_modules still lacks playwright-core" \
  says "$tmp/tree-bare/tests/browser/node_modules still lacks playwright-core after npm ci"

from_tree "$tree_bare" run node-modules-installed PATH="$all" "${tools_ready[@]}" \
  LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1 PREREQS_TEST_INSTALLS=1
check "runs npm ci in tests/browser" called "^npm ci .*(in $tmp/tree-bare/tests/browser)"
check "succeeds once npm ci has installed playwright-core" succeeded
from_tree "$tree_bare" run node-modules-installed-again PATH="$all" "${tools_ready[@]}" \
  LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "runs npm ci only once (it left a stamp of the lock file)" not_called "^npm"
check "succeeds" succeeded

from_tree "$tree_stale" run node-modules-stale PATH="$all" "${tools_ready[@]}" \
  LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "node_modules from another lock file: runs npm ci" \
  called "^npm ci .*(in $tmp/tree-stale/tests/browser)"
check "fails, as npm ci installed nothing" failed
check "says node_modules still lacks playwright-core" says "node_modules still lacks playwright-core"

run no-venv PATH="$all" HOME="$tmp/home-empty" TROUPE_CHROMIUM="$tmp/chromium" \
  LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "installs no Debian package (python3 can make a venv)" apt_not_called
check "makes the venv in ~/.cache/troupe-venv" called "^python3 -m venv $tmp/home-empty/.cache/troupe-venv\$"
check "fails, as the venv holds no schemathesis" failed
check "says schemathesis is still not found" \
  says "$tmp/home-empty/.cache/troupe-venv/bin/schemathesis still not found"

mkdir "$tmp/home-new"
run venv-installed PATH="$all" HOME="$tmp/home-new" TROUPE_CHROMIUM="$tmp/chromium" \
  LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1 PREREQS_TEST_INSTALLS=1
check "makes the venv" called "^python3 -m venv $tmp/home-new/.cache/troupe-venv\$"
check "installs the pinned requirements into it" \
  called "^pip install .*-r $tmp/tree-ready/tests/schema/requirements.txt"
check "succeeds once pip has installed schemathesis" succeeded
run venv-installed-again PATH="$all" HOME="$tmp/home-new" TROUPE_CHROMIUM="$tmp/chromium" \
  LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "installs only once (it left a stamp of the requirements)" not_called "^python3 -m\|^pip"
check "succeeds" succeeded

run venv-stale PATH="$all" HOME="$tmp/home-venv-stale" TROUPE_CHROMIUM="$tmp/chromium" \
  LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "a venv from other pins: installs again" called "^pip install .*-r .*requirements.txt"
check "fails, as pip installed nothing" failed

run no-ensurepip PATH="$all" HOME="$tmp/home-empty" TROUPE_CHROMIUM="$tmp/chromium" \
  LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1 PREREQS_TEST_NO_ENSUREPIP=1
check "asks for python3-venv" requested python3-venv
check "asks for nothing else" not_requested python3
check "fails, as python3 still cannot make a venv" failed
check "says python3 still cannot make a venv" \
  says "python3 ($all/python3) still cannot make a venv"

run no-python3 PATH="$no_python" HOME="$tmp/home-empty" TROUPE_CHROMIUM="$tmp/chromium" \
  LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "asks for python3" requested python3
check "and python3-venv" requested python3-venv
check "fails, as python3 is still missing" failed
check "says python3 is still not found" says "python3 still not found after installing python3"

run no-python3-venv-ready PATH="$no_python" "${tools_ready[@]}" LIBCLANG_PATH="$tmp/libclang" \
  TROUPE_TEST_TOOLS=1
check "a venv that is there needs no python3" apt_not_called
check "succeeds" succeeded

# --- Cases on this machine ---

# The libclang names on this machine (files and symlinks), as a superset of what clang-sys
# would take: any libclang*.so* but libclang-cpp, in the folders it searches.
real_libclangs() {
  local prefix roots=(/usr/local /usr/lib*)
  if prefix=$(llvm-config --prefix 2>/dev/null); then
    roots+=("$prefix")
  fi
  find "${roots[@]}" -maxdepth 5 -name 'libclang*.so*' ! -name '*-cpp.*' \( -type f -o -type l \) \
    2>/dev/null | sort -u
}
real_libclangs >"$tmp/libclangs"

# run_here NAME [COMMAND...]: runs prereqs.sh (under COMMAND, if given) in this machine's
# environment, with the stubs first on PATH and nothing pointing elsewhere for libclang.
run_here() {
  name=$1
  shift
  log=$tmp/$name.log out=$tmp/$name.out
  : >"$log"
  "$@" env -u LIBCLANG_PATH -u LD_LIBRARY_PATH -u LIBRARY_PATH -u LLVM_CONFIG_PATH \
    -u TROUPE_TEST_TOOLS PREREQS_TEST_LOG="$log" PATH="$tmp/stubs:$PATH" \
    "$bash_bin" "$script" >"$out" 2>&1
  status=$?
}

# Chromium at its default path, /usr/bin/chromium (TROUPE_CHROMIUM unset).
run default-chromium PATH="$all" HOME="$tmp/home-venv" LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
if [ -x /usr/bin/chromium ]; then
  check "finds this machine's /usr/bin/chromium" not_requested chromium
  check "succeeds" succeeded
else
  check "asks for chromium, as /usr/bin/chromium is absent" requested chromium
  check "says chromium is still not found at /usr/bin/chromium" \
    says "chromium still not found after installing chromium (looked for /usr/bin/chromium)"
fi

if [ -s "$tmp/libclangs" ]; then
  run_here libclang-here
  check "finds this machine's libclang ($(head -n1 "$tmp/libclangs"))" not_requested libclang-dev
else
  skip "libclang-here: no libclang installed on this machine"
fi

# This machine without libclang, but with libclang-cpp (the machine in the bug). In a private
# mount namespace (seen by nothing outside, and gone with it), each folder holding libclang
# names gets a read-only overlay whose top layer has a whiteout (a 0/0 character device) for
# each of them: they vanish from that folder, and everything else in it (libclang-cpp, libc
# and the rest of /usr/lib/x86_64-linux-gnu) stays as it was. Mounting a tmpfs over the
# folders instead would hide all that too, and Debian's libclang-cpp.so.N in
# /usr/lib/x86_64-linux-gnu is a symlink into /usr/lib/llvm-N/lib, which also holds libclang.
# The whiteout layers, one per folder (sorted, so a folder is overlaid before those in it):
: >"$tmp/overlays"
n=0
while IFS= read -r dir; do
  n=$((n + 1))
  mkdir "$tmp/whiteouts-$n"
  printf '%s\t%s\n' "$tmp/whiteouts-$n" "$dir" >>"$tmp/overlays"
  while IFS= read -r file; do
    [ "$(dirname "$file")" = "$dir" ] && mknod "$tmp/whiteouts-$n/$(basename "$file")" c 0 0 2>/dev/null
  done <"$tmp/libclangs"
done < <(while IFS= read -r file; do dirname "$file"; done <"$tmp/libclangs" | sort -u)
# Run in the namespace: mounts the overlays, notes which libclang names are left, runs "$@".
hide_libclang='while IFS=$'\''\t'\'' read -r layer dir; do
    mount -t overlay overlay -o "lowerdir=$layer:$dir" "$dir" || exit 97
  done <"$1"
  find /usr/local /usr/lib* -maxdepth 5 -name "libclang*.so*" 2>/dev/null >"$2"
  shift 2
  exec "$@"'
probe=$tmp/probe
mkdir -p "$probe/dir" "$probe/layer"
: >"$probe/dir/file"
if ! mknod "$probe/layer/file" c 0 0 2>"$tmp/probe.err" \
    || ! unshare -m --propagation private mount -t overlay overlay \
      -o "lowerdir=$probe/layer:$probe/dir" "$probe/dir" 2>"$tmp/probe.err"; then
  skip "libclang-hidden: cannot mount an overlay in a private mount namespace (needs root): $(head -n1 "$tmp/probe.err")"
else
  run_here libclang-hidden unshare -m --propagation private "$bash_bin" -c "$hide_libclang" _ \
    "$tmp/overlays" "$tmp/visible"
  only_libclang_cpp_left() {
    [ "$status" != 97 ] && [ -f "$tmp/visible" ] && ! grep -v -- '-cpp\.' "$tmp/visible"
  }
  check "(setup) only libclang-cpp is left: $(tr '\n' ' ' <"$tmp/visible" 2>/dev/null)" only_libclang_cpp_left
  check "asks for libclang-dev" requested libclang-dev
  check "fails, as libclang is still missing" failed
  check "says libclang is still not found" says "libclang still not found after installing libclang-dev"
  check "says to set LIBCLANG_PATH" says "set LIBCLANG_PATH"
  untouched() {
    local file
    while IFS= read -r file; do [ -e "$file" ] || [ -L "$file" ] || return 1; done <"$tmp/libclangs"
  }
  check "leaves this machine's libclang as it was" untouched
fi

echo "prereqs.sh ($script): $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
