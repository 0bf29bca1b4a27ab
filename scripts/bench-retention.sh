#!/usr/bin/env bash
# Disk use of the journal over time, with and without `[retention] runs`, on two nodes that
# keep running the same work side by side: every second each gets a run of TASKS no-op
# tasks; every SAMPLE seconds the script prints the size of both journal directories.
#
#   scripts/bench-retention.sh [SECONDS] [TASKS] [KEEP]
#   defaults: 180 s, 50 tasks per run, retention "5s" (retention runs every 10 s at most)
#
# Uses TROUPE (default: the release binary in the shared target dir, else `troupe`).
set -euo pipefail
SECONDS_TOTAL="${1:-180}"
TASKS="${2:-50}"
KEEP="${3:-5s}"
SAMPLE=10
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/troupe-target}"
TROUPE="${TROUPE:-$TARGET/release/troupe}"
[ -x "$TROUPE" ] || TROUPE=troupe
work="$(mktemp -d)"
trap 'for d in with without; do "$TROUPE" --data-dir "$work/$d" node stop >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT

wf="$work/wf.toml"
{
  echo 'name = "retention-bench"'
  for i in $(seq 1 "$TASKS"); do
    printf '[[task]]\nid = "t%d"\ncommand = ["true"]\n' "$i"
  done
} > "$wf"
mkdir -p "$work/with" "$work/without"
printf '[retention]\nruns = "%s"\n' "$KEEP" > "$work/with/troupe.toml"
for d in with without; do
  TROUPE_HTTP_ADDR=127.0.0.1:0 "$TROUPE" --data-dir "$work/$d" node start >/dev/null 2>&1 &
done
for d in with without; do
  until "$TROUPE" --data-dir "$work/$d" status >/dev/null 2>&1; do sleep 0.1; done
done

size() { du -sb "$1/journal" | cut -f1; }
echo "troupe: $TROUPE; $TASKS tasks per run, one run per second per node; retention runs = $KEEP"
printf '%8s %16s %16s %12s %12s\n' "t (s)" "with (bytes)" "without (bytes)" "runs with" "runs without"
start=$(date +%s)
next_sample=0
while :; do
  t=$(( $(date +%s) - start ))
  if [ "$t" -ge "$next_sample" ]; then
    rw=$("$TROUPE" --data-dir "$work/with" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    ro=$("$TROUPE" --data-dir "$work/without" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    printf '%8d %16d %16d %12d %12d\n' "$t" "$(size "$work/with")" "$(size "$work/without")" "$rw" "$ro"
    next_sample=$(( next_sample + SAMPLE ))
  fi
  [ "$t" -ge "$SECONDS_TOTAL" ] && break
  for d in with without; do
    "$TROUPE" --data-dir "$work/$d" run --detach "$wf" >/dev/null
  done
  sleep 1
done
