#!/usr/bin/env bash
# Side by side, same fake CLI, same run: claudelink-bench against the official
# TypeScript Agent SDK (../shared/bench/ts-sdk-anchor). Prints a Markdown table
# of medians and ratios.
# Usage: tests/bench/compare-ts.sh BUILD_DIR [ROUNDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: compare-ts.sh BUILD_DIR [ROUNDS]}" && pwd)
rounds=${2:-3}
. "$top/tests/bench/server-lib.sh"
ts_anchor anchor
fake="$build/tests/fake-claude"
ours="$build/examples/bench/claudelink-bench"
out=$(mktemp)
for cfg in "100000 4" "100000 1000" "2000 100000"; do
  set -- $cfg
  for _ in $(seq "$rounds"); do
    echo "$1 $2 $(FAKE_MSGS=$1 FAKE_BYTES=$2 node "$anchor/bench.mjs" "$fake")" >>"$out"
    echo "$1 $2 $(FAKE_MSGS=$1 FAKE_BYTES=$2 "$ours" --cli "$fake")" >>"$out"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    n, b, js = line.split(' ', 2)
    r = json.loads(js)
    rows.setdefault((int(n), int(b)), {}).setdefault(r['impl'], []).append(r)
print('| messages × bytes | TS SDK msgs/s | claudelink msgs/s | ratio | TS RSS MB | claudelink RSS MB | RSS ratio |')
print('|---|---|---|---|---|---|---|')
for (n, b), d in rows.items():
    med = lambda impl, k: statistics.median(x[k] for x in d[impl])
    ts, us = med('ts-sdk', 'msgs_per_s'), med('claudelink', 'msgs_per_s')
    tr, ur = med('ts-sdk', 'rss_mb'), med('claudelink', 'rss_mb')
    print(f'| {n:,} × {b:,} | {ts:,.0f} | {us:,.0f} | {us/ts:.2f}× | {tr:.1f} | {ur:.1f} | 1/{tr/ur:.0f} |')
PY
rm -f "$out"
