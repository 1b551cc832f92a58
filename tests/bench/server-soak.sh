#!/usr/bin/env bash
# Soak: N mixed requests (default 100,000: chats plain/SSE/failing, health
# and metrics reads, sessions, bad input; tests/bench/server-soak.py) against
# claudelink-server while the fake CLI dies at random (FAKE_CRASH_RANDOM,
# per mille of turns, default 20). Every request must get a defined HTTP
# status (no socket error, no timeout); the server's RSS and open fds are
# printed at the start (after a warm-up) and at the end, and must stay flat.
# Usage: tests/bench/server-soak.sh BUILD_DIR [REQUESTS] [CRASH_PERMILLE]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: server-soak.sh BUILD_DIR [REQUESTS] [CRASH_PERMILLE]}" && pwd)
total=${2:-100000}
crash=${3:-20}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT
. "$top/tests/bench/server-lib.sh"
client="$top/tests/bench/server-soak.py"
conns=32

FAKE_CRASH_RANDOM=$crash CLAUDELINK_MAX_SESSIONS=2000 LOG_LEVEL=WARNING \
  start_ours ours --cli "$build/tests/fake-claude" --port 0 --pool-min 4 --pool-max 8 \
  --mock-response "mock answer"
pids+=("$ours_pid")
wait_http "$ours_url/livez"
hp=${ours_url#http://}
host=${hp%:*} port=${hp##*:}
# Warm-up: the pool, the session table and the allocator reach their
# working size before the start figures are taken.
python3 "$client" "$host" "$port" 20000 "$conns" >/dev/null
pool_size() { curl -s "$ours_url/health/detailed" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pool"]["size"])'; }
start_rss=$(rss_mb "$ours_pid") start_fds=$(fds "$ours_pid") start_pool=$(pool_size)
echo "start: RSS $start_rss MB, open fds $start_fds ($start_pool CLI processes, 3 fds each)"
t0=$(date +%s.%N)
python3 "$client" "$host" "$port" "$total" "$conns" >"$work/soak.json"
t1=$(date +%s.%N)
# Let the pool settle (crashed members replaced) before the end figures.
for _ in $(seq 200); do
  st=$(curl -s "$ours_url/health/detailed" | python3 -c 'import json,sys; p=json.load(sys.stdin)["pool"]; print(p["starting"], p["in_use"])')
  [ "$st" = "0 0" ] && break
  sleep 0.05
done
end_rss=$(rss_mb "$ours_pid") end_fds=$(fds "$ours_pid") end_pool=$(pool_size)
echo "end:   RSS $end_rss MB, open fds $end_fds ($end_pool CLI processes, 3 fds each)"
curl -s "$ours_url/health/detailed" | python3 -c '
import json,sys
d=json.load(sys.stdin)
print("pool:", d["pool"]); print("fallback_stats:", d["fallback_stats"]["operations"]["chat"])
print("performance:", d["performance"])'
python3 - "$work/soak.json" "$total" "$start_rss" "$end_rss" "$start_fds" "$end_fds" "$start_pool" "$end_pool" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
total = int(sys.argv[2])
s_rss, e_rss, s_fds, e_fds = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
codes = r['statuses']
answered = sum(codes.values())
defined = {'200', '201', '400', '404', '405', '502', '503', '504'}
undefined = {k: v for k, v in codes.items() if k not in defined}
s_pool, e_pool = int(sys.argv[7]), int(sys.argv[8])
# The server's own fds: the total less 3 per CLI process.
flat = e_fds - 3 * e_pool <= s_fds - 3 * s_pool + 2 and e_rss <= s_rss * 1.25 + 2
ok = answered == total and not r['errors'] and not undefined and flat
print(f"{answered:,} of {total:,} requests answered in {r['seconds']} s ({answered / r['seconds']:,.0f}/s)")
print(f"statuses: {dict(sorted(codes.items()))}; errors instead of an answer: {r['errors'] or 0}")
print(f"RSS {s_rss} -> {e_rss} MB, open fds {s_fds} -> {e_fds}: {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
