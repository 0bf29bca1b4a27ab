#!/usr/bin/env bash
# Tests scripts/prereqs.sh on simulated machines that lack prerequisites, and checks what it
# decides to install, without installing anything and without network: stub apt-get, sudo and
# curl come first on PATH and only record how they were called (so every install "fails", and
# the script must then say what is still missing and fail).
#
# Most cases run in a clean environment (env -i) whose PATH is a folder holding only the
# stubs, id, sh, and fake versions of the tools that case has, with LIBCLANG_PATH pointing at
# a folder of fake libraries; they depend on nothing installed here. Two cases use this
# machine: one checks that the real libclang is found, and one hides it in a private mount
# namespace (needs root; skipped otherwise).
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

# bindir NAME TOOL...: a folder for PATH with the stubs, id and sh, and a fake TOOL of each
# name given (cc, c++, tmux, cargo). Prints its path.
bindir() {
  local dir=$tmp/bin-$1 tool
  shift
  mkdir "$dir"
  cp "$tmp"/stubs/* "$dir/"
  ln -s "$(command -v id)" "$dir/id"
  ln -s "$(command -v sh)" "$dir/sh"
  for tool; do
    printf '#!%s\nexit 0\n' "$bash_bin" >"$dir/$tool"
    chmod +x "$dir/$tool"
  done
  echo "$dir"
}

# Fake libraries: only the ELF magic bytes and class (what clang-sys reads of them).
elf() { mkdir -p "$(dirname "$1")" && printf '\177ELF\002\001\001' >"$1"; }
elf "$tmp/libclang/libclang-14.so.1"
elf "$tmp/cpp-only/libclang-cpp.so.14" # the bug: libclang-cpp alone, which bindgen cannot use
mkdir "$tmp/empty-lib" && : >"$tmp/empty-lib/libclang.so"

mkdir -p "$tmp/home-empty" "$tmp/home-cargo/.cargo/bin"
printf '#!%s\nexit 0\n' "$bash_bin" >"$tmp/home-cargo/.cargo/bin/cargo"
chmod +x "$tmp/home-cargo/.cargo/bin/cargo"

all=$(bindir all cc c++ tmux cargo)
no_cc=$(bindir no-cc c++ tmux cargo)
no_cxx=$(bindir no-cxx cc tmux cargo)
no_tmux=$(bindir no-tmux cc c++ cargo)
no_cargo=$(bindir no-cargo cc c++ tmux)

# --- Running a case and checking it ---

# run NAME VAR=VALUE...: runs prereqs.sh in a clean environment holding only these variables
# (and PREREQS_TEST_LOG); sets $name, $log, $out and $status.
run() {
  name=$1
  shift
  log=$tmp/$name.log out=$tmp/$name.out
  : >"$log"
  env -i PREREQS_TEST_LOG="$log" "$@" "$bash_bin" "$script" >"$out" 2>&1
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
    'set -euo pipefail; TROUPE_TEST_TOOLS=1 source "$1"; echo "caller went on"' _ "$script" \
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

run all-present PATH="$all" HOME="$tmp/home-empty" LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "installs nothing" apt_not_called
check "does not run rustup" not_called curl
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

run no-tmux-for-tests PATH="$no_tmux" HOME="$tmp/home-empty" LIBCLANG_PATH="$tmp/libclang" TROUPE_TEST_TOOLS=1
check "asks for tmux (TROUPE_TEST_TOOLS=1)" requested tmux
check "fails, as tmux is still missing" failed
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

run_sourced sourced-missing PATH="$no_cc" HOME="$tmp/home-empty" LIBCLANG_PATH="$tmp/libclang"
check "stops a set -e caller when something is still missing" not_says "caller went on"
check "the caller fails" failed

run_sourced sourced-present PATH="$all" HOME="$tmp/home-empty" LIBCLANG_PATH="$tmp/libclang"
check "lets the caller go on when all is there" says "caller went on"
check "the caller succeeds" succeeded

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
