#!/usr/bin/env bash
# The soak (docs/benchmarks.md, "Soak"): a node under a mixed workload is SIGKILLed KILLS
# times (default 1000) at random moments and restarted; after every kill its journal is
# checked offline (tests/soak/). Prints the figures at the end (lines starting `soak:`).
#
#   scripts/soak.sh [KILLS]
#
# Environment: SOAK_VERIFY_EVERY=N runs `troupe journal verify` after every Nth kill (default:
# every kill up to 100 kills, else every 50th; it reads every snapshot and replays the whole
# journal, so its cost grows with the run; the event checks run after every kill regardless);
# SOAK_PROFILE=release soaks an optimised build (default: the debug build CI
# tests); TROUPE_TEST_SEED repeats a kill schedule; CARGO names the cargo command (e.g. a
# wrapper that serialises builds). The test and the binary are copied out of the target dir
# before the soak starts, so a build meanwhile does not change what is soaked.
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-1000}"
case "$kills" in
  '' | *[!0-9]* | 0)
    echo "usage: scripts/soak.sh [KILLS]   (KILLS: a number of kills, at least 1; default 1000)" >&2
    exit 2
    ;;
esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/troupe-target}"
profile=debug
flags=()
if [ "${SOAK_PROFILE:-debug}" = release ]; then
  profile=release
  flags=(--release)
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
${CARGO:-cargo} test --locked "${flags[@]}" --test soak --no-run --message-format=json \
  > "$work/build.json"
exe="$(grep -o '"executable":"[^"]*/soak-[^"]*"' "$work/build.json" | tail -1 | cut -d'"' -f4)"
if [ -z "$exe" ]; then
  echo "soak.sh: cargo built no soak test (see $work/build.json)" >&2
  exit 3
fi
mkdir -p "$work/bin"
cp "$exe" "$work/bin/soak-test"
cp "$CARGO_TARGET_DIR/$profile/troupe" "$work/bin/troupe"
export SOAK_VERIFY_EVERY="${SOAK_VERIFY_EVERY:-$((kills > 100 ? 50 : 1))}"
echo "soaking the $profile build with $kills kills"
# Progress and figures as they come (lines starting `soak:`); the whole log on failure.
SOAK_KILLS="$kills" SOAK_TROUPE_BIN="$work/bin/troupe" \
  "$work/bin/soak-test" soak_sigkill_under_a_mixed_workload --exact --nocapture \
  2>&1 | tee "$work/soak.log" | grep --line-buffered '^soak:' || true
if ! grep -q '^test result: ok' "$work/soak.log"; then
  tail -n 60 "$work/soak.log" >&2
  echo "soak.sh: the soak failed" >&2
  exit 1
fi
