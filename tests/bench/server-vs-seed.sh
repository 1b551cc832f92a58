#!/usr/bin/env bash
# claudelink-server against the seed's own stack (FastAPI + uvicorn +
# psutil, ../shared/bench/seed-api-anchor/server.py) on GET /health/detailed
# and GET /metrics: side by side in one run, the same wrk load on each
# (1 thread, 16 connections, keep-alive), alternating rounds; medians of
# requests/s and p99 latency, and each server's RSS after the load.
# Usage: tests/bench/server-vs-seed.sh BUILD_DIR [SECONDS] [ROUNDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: server-vs-seed.sh BUILD_DIR [SECONDS] [ROUNDS]}" && pwd)
secs=${2:-5}
rounds=${3:-3}
bash "$top/.ci/install-deps" wrk python3-fastapi python3-uvicorn python3-psutil
anchor="$top/../shared/bench/seed-api-anchor/server.py"
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT
. "$top/tests/bench/server-lib.sh"

start_ours ours --cli "$build/tests/fake-claude" --port 0 --pool-min 1 --pool-max 2
pids+=("$ours_pid")
seed_port=$(free_port)
/usr/bin/python3 "$anchor" "$seed_port" >"$work/seed.log" 2>&1 &
seed_pid=$!
pids+=("$seed_pid")
seed_url="http://127.0.0.1:$seed_port"
wait_http "$seed_url/metrics"
wait_http "$ours_url/metrics"

: >"$work/rows"
for path in /health/detailed /metrics; do
  for side in ours seed; do # warm-up
    url=${side}_url
    wrk -t1 -c16 -d1s "${!url}$path" >/dev/null 2>&1 || true
  done
  for _ in $(seq "$rounds"); do
    for side in ours seed; do
      url=${side}_url
      echo "$path $side $(wrk_json "$side" -t1 -c16 -d"${secs}s" "${!url}$path")" >>"$work/rows"
    done
  done
done
ours_rss=$(rss_mb "$ours_pid") ours_hwm=$(hwm_mb "$ours_pid")
seed_rss=$(rss_mb "$seed_pid") seed_hwm=$(hwm_mb "$seed_pid")
echo "machine: $(nproc) cores; wrk -t1 -c16 -d${secs}s, median of $rounds alternating rounds"
echo
python3 - "$work/rows" "$ours_rss" "$seed_rss" "$ours_hwm" "$seed_hwm" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    path, side, js = line.split(' ', 2)
    rows.setdefault(path, {}).setdefault(side, []).append(json.loads(js))
ours_rss, seed_rss, ours_hwm, seed_hwm = map(float, sys.argv[2:6])
print('| endpoint | seed (FastAPI) req/s | claudelink req/s | ratio (goal ≥ 20×) | seed p99 ms | claudelink p99 ms | p99 ratio (goal ≤ 1/10) |')
print('|---|---|---|---|---|---|---|')
for path, d in rows.items():
    med = lambda side, k: statistics.median(r[k] for r in d[side])
    sr, orr = med('seed', 'rps'), med('ours', 'rps')
    sp, op = med('seed', 'p99_ms'), med('ours', 'p99_ms')
    print(f'| GET {path} | {sr:,.0f} | {orr:,.0f} | {orr / sr:.1f}× | {sp:.2f} | {op:.3f} | 1/{sp / op:.0f} |')
print()
print('| RSS after the load | seed (FastAPI) | claudelink | ratio (goal ≤ 1/5) |')
print('|---|---|---|---|')
print(f'| now (VmRSS) | {seed_rss:.1f} MB | {ours_rss:.1f} MB | 1/{seed_rss / ours_rss:.1f} |')
print(f'| peak (VmHWM) | {seed_hwm:.1f} MB | {ours_hwm:.1f} MB | 1/{seed_hwm / ours_hwm:.1f} |')
PY
