#!/usr/bin/env bash
# Soak: N mixed requests (default 100,000: chats plain/SSE, health and
# metrics reads, sessions, bad input; tests/bench/server-soak.lua) against
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
bash "$top/.ci/install-deps" wrk
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT
. "$top/tests/bench/server-lib.sh"
lua="$top/tests/bench/server-soak.lua"
threads=2 conns=32

FAKE_CRASH_RANDOM=$crash CLAUDELINK_MAX_SESSIONS=2000 LOG_LEVEL=WARNING \
  start_ours ours --cli "$build/tests/fake-claude" --port 0 --pool-min 4 --pool-max 8 \
  --mock-response "mock answer"
pids+=("$ours_pid")
wait_http "$ours_url/livez"
# Warm-up: the pool, the session table and the allocator reach their
# working size before the start figures are taken.
wrk -t$threads -c$conns -d30s -s "$lua" "$ours_url" -- 4000 >/dev/null 2>&1 || true
start_rss=$(rss_mb "$ours_pid") start_fds=$(fds "$ours_pid")
echo "start: RSS $start_rss MB, open fds $start_fds"
t0=$(date +%s.%N)
wrk -t$threads -c$conns -d3600s --timeout 30s -s "$lua" "$ours_url" -- $((total / threads)) >"$work/wrk.out" 2>&1 || true
t1=$(date +%s.%N)
# Let the pool settle (crashed members replaced) before the end figures.
for _ in $(seq 200); do
  st=$(curl -s "$ours_url/health/detailed" | python3 -c 'import json,sys; p=json.load(sys.stdin)["pool"]; print(p["starting"], p["in_use"])')
  [ "$st" = "0 0" ] && break
  sleep 0.05
done
end_rss=$(rss_mb "$ours_pid") end_fds=$(fds "$ours_pid")
echo "end:   RSS $end_rss MB, open fds $end_fds"
grep -E '^(STATUS|ERRORS)' "$work/wrk.out"
grep -E 'Requests/sec' "$work/wrk.out" || true
curl -s "$ours_url/health/detailed" | python3 -c '
import json,sys
d=json.load(sys.stdin)
print("pool:", d["pool"]); print("fallback_stats:", d["fallback_stats"]["operations"]["chat"])
print("performance:", d["performance"])'
python3 - "$work/wrk.out" "$total" "$start_rss" "$end_rss" "$start_fds" "$end_fds" "$t0" "$t1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
total = int(sys.argv[2])
s_rss, e_rss, s_fds, e_fds = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
secs = float(sys.argv[8]) - float(sys.argv[7])
st = re.search(r'^STATUS (.*) total=(\d+)$', text, re.M)
err = re.search(r'^ERRORS connect=(\d+) read=(\d+) write=(\d+) status=\d+ timeout=(\d+)$', text, re.M)
answered = int(st.group(2)) if st else 0
codes = dict(kv.split('=') for kv in st.group(1).split()) if st else {}
defined = {'200', '201', '400', '404', '405', '503', '502', '504'}
undefined = {k: v for k, v in codes.items() if k not in defined}
errors = sum(int(x) for x in err.groups()) if err else -1
ok = answered >= total and errors == 0 and not undefined and e_fds <= s_fds + 4 and e_rss <= s_rss * 1.25 + 2
print(f'{answered:,} requests in {secs:.0f} s ({answered / secs:,.0f}/s): statuses {codes}; socket errors {errors}')
print(f'RSS {s_rss} -> {e_rss} MB, fds {s_fds} -> {e_fds}: {"PASS" if ok else "FAIL"}')
sys.exit(0 if ok else 1)
PY
