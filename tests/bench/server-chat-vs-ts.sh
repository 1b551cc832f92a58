#!/usr/bin/env bash
# POST /chat: claudelink-server (a warm pool) against the TS SDK's chat
# server (../shared/bench/ts-sdk-anchor/chat-server.mjs: one query() per
# request, so one CLI process per request), both on the fast fake CLI, the
# same wrk load (1 thread, 16 connections, tests/bench/server-post.lua),
# alternating rounds, side by side in one run. Prints medians and ratios;
# every response's status is counted (a run of errors is no throughput).
# Usage: tests/bench/server-chat-vs-ts.sh BUILD_DIR [SECONDS] [ROUNDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: server-chat-vs-ts.sh BUILD_DIR [SECONDS] [ROUNDS]}" && pwd)
secs=${2:-10}
rounds=${3:-3}
bash "$top/.ci/install-deps" wrk
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT
. "$top/tests/bench/server-lib.sh"
ts_anchor anchor
fake="$build/tests/fake-claude"
lua="$top/tests/bench/server-post.lua"

start_ours ours --cli "$fake" --port 0 --pool-min 16 --pool-max 16
pids+=("$ours_pid")
ts_port=$(free_port)
node "$anchor/chat-server.mjs" "$fake" "$ts_port" >"$work/ts.log" 2>&1 &
ts_pid=$!
pids+=("$ts_pid")
ts_url="http://127.0.0.1:$ts_port"
wait_http "$ts_url/health"
# The pool is warm when 16 members are idle.
for _ in $(seq 600); do
  idle=$(curl -s "$ours_url/health/detailed" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pool"]["idle"])')
  [ "$idle" -ge 16 ] && break
  sleep 0.05
done
for side in ours ts; do
  url=${side}_url
  wrk -t1 -c16 -d2s -s "$lua" "${!url}/chat" >/dev/null 2>&1 || true
done
: >"$work/rows"
for _ in $(seq "$rounds"); do
  for side in ours ts; do
    url=${side}_url
    echo "$side $(wrk_json "$side" -t1 -c16 -d"${secs}s" --timeout 30s -s "$lua" "${!url}/chat")" >>"$work/rows"
  done
done
ours_rss=$(rss_mb "$ours_pid") ts_rss=$(rss_mb "$ts_pid")
echo "fake CLI; wrk -t1 -c16 -d${secs}s POST /chat, median of $rounds alternating rounds"
echo
python3 - "$work/rows" "$ours_rss" "$ts_rss" <<'PY'
import json, statistics, sys
d = {}
for line in open(sys.argv[1]):
    side, js = line.split(' ', 1)
    d.setdefault(side, []).append(json.loads(js))
med = lambda side, k: statistics.median(r[k] for r in d[side])
print('| POST /chat, 16 connections | TS SDK chat-server | claudelink-server | ratio (goal ≥ 20×) |')
print('|---|---|---|---|')
tr, orr = med('ts', 'rps'), med('ours', 'rps')
print(f'| requests/s | {tr:,.1f} | {orr:,.0f} | {orr / tr:.0f}× |')
print(f"| p50 latency | {med('ts', 'p50_ms'):.1f} ms | {med('ours', 'p50_ms'):.2f} ms | 1/{med('ts', 'p50_ms') / med('ours', 'p50_ms'):.0f} |")
print(f"| p99 latency | {med('ts', 'p99_ms'):.1f} ms | {med('ours', 'p99_ms'):.2f} ms | 1/{med('ts', 'p99_ms') / med('ours', 'p99_ms'):.0f} |")
print(f'| server RSS after | {float(sys.argv[3]):.1f} MB | {float(sys.argv[2]):.1f} MB | 1/{float(sys.argv[3]) / float(sys.argv[2]):.0f} |')
print()
for side in ('ts', 'ours'):
    print(f"{side} statuses per round: " + '; '.join(str(r['status']) for r in d[side]))
PY
