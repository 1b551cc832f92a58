#!/usr/bin/env bash
# No speed regression across a change: this tree against an older revision
# (default: 0532916, the library before the session core, the layers and the
# monitor/fallback/outbox/server work), both release builds, side by side in
# one run, alternating rounds: the stream benchmark (claudelink-bench on the
# fake CLI, msgs/s and RSS), the pool's warm try_acquire + release, and the
# transport's lines/s. Prints medians and ratios new/old.
# Usage: tests/bench/old-vs-new.sh NEW_BUILD_DIR [OLD_REV] [ROUNDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
new=$(cd "${1:?usage: old-vs-new.sh NEW_BUILD_DIR [OLD_REV] [ROUNDS]}" && pwd)
rev=${2:-0532916}
rounds=${3:-5}
work=${CLINK_OLD_BUILD_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/claudelink/old-$rev}
if [ ! -f "$work/build/build.ninja" ]; then
  rm -rf "$work"
  mkdir -p "$work"
  git -C "$top" archive "$rev" | tar -x -C "$work"
  meson setup "$work/build" "$work" -Dbuildtype=release >/dev/null
fi
meson compile -C "$work/build" >/dev/null
meson compile -C "$new" >/dev/null
old=$work/build
bench_of() { # the stream benchmark moved to examples/bench/
  if [ -x "$1/examples/bench/claudelink-bench" ]; then echo "$1/examples/bench/claudelink-bench"
  else echo "$1/examples/claudelink-bench"; fi
}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
fake=$new/tests/fake-claude # one CLI for both: only the library differs
for _ in $(seq "$rounds"); do
  for side in old new; do
    b=${!side}
    for cfg in "100000 4" "100000 1000" "2000 100000"; do
      set -- $cfg
      echo "stream $side $1x$2 $(FAKE_MSGS=$1 FAKE_BYTES=$2 "$(bench_of "$b")" --cli "$fake")" >>"$out"
    done
    p=$("$b/tests/bench/bench-pool" "$fake" - 200 1000000 2>/dev/null |
        sed -n 's/.*minus it: p50 \([0-9]*\) ns, p99 \([0-9]*\) ns.*/\1 \2/p' | head -1)
    echo "pool $side $p" >>"$out"
    t=$("$b/tests/bench/bench-transport" "$fake" 1000000 300 1 2>/dev/null | grep '"bench":"transport"')
    echo "transport $side $t" >>"$out"
  done
done
python3 - "$out" "$rev" <<'PY'
import json, statistics, sys
stream, pool, tr = {}, {}, {}
for line in open(sys.argv[1]):
    kind, side, rest = line.rstrip('\n').split(' ', 2)
    if kind == 'stream':
        cfg, js = rest.split(' ', 1)
        r = json.loads(js)
        stream.setdefault(cfg, {}).setdefault(side, []).append((r['msgs_per_s'], r['rss_mb']))
    elif kind == 'pool' and rest.strip():
        p50, p99 = map(float, rest.split())
        pool.setdefault(side, []).append((p50, p99))
    elif kind == 'transport' and rest.strip():
        tr.setdefault(side, []).append(json.loads(rest)['transport_lines_per_s'])
med = lambda xs, i: statistics.median(x[i] for x in xs)
print(f'old = {sys.argv[2]}, new = this tree; medians of alternating rounds\n')
print('| measure | old | new | new/old |')
print('|---|---|---|---|')
for cfg, d in stream.items():
    o, n = med(d['old'], 0), med(d['new'], 0)
    print(f'| stream {cfg} B msgs/s | {o:,.0f} | {n:,.0f} | {n/o:.2f} |')
    o, n = med(d['old'], 1), med(d['new'], 1)
    print(f'| stream {cfg} B RSS MB | {o:.1f} | {n:.1f} | {n/o:.2f} |')
if 'old' in pool and 'new' in pool:
    for i, name in ((0, 'p50'), (1, 'p99')):
        o, n = med(pool['old'], i), med(pool['new'], i)
        print(f'| pool try_acquire+release {name} ns | {o:.0f} | {n:.0f} | {n/max(o,1):.2f} |')
if 'old' in tr and 'new' in tr:
    o, n = statistics.median(tr['old']), statistics.median(tr['new'])
    print(f'| transport lines/s (1,000,000 x 300 B) | {o:,.0f} | {n:,.0f} | {n/o:.2f} |')
PY
