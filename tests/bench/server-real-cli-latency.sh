#!/usr/bin/env bash
# POST /chat latency with the real claude CLI against the loopback Messages
# API stub: claudelink-server (a warm pool) against the TS SDK's chat server
# (../shared/bench/ts-sdk-anchor/chat-server.mjs, a cold CLI per request),
# one request at a time, alternating, side by side in one run. Prints the
# p50 (and min/max) of each and the ratio.
# Usage: tests/bench/server-real-cli-latency.sh BUILD_DIR [REAL_CLAUDE] [REQUESTS]
#   REAL_CLAUDE: a claude binary; empty: the pinned one (tests/real-cli/install.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: server-real-cli-latency.sh BUILD_DIR [REAL_CLAUDE] [REQUESTS]}" && pwd)
cli=${2:-}
n=${3:-15}
bash "$top/.ci/install-deps" curl
[ -n "$cli" ] || cli=$("$top/tests/real-cli/install.sh" | tail -n1)
work=$(mktemp -d)
pids=()
trap 'exec 3>&- || true; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT
. "$top/tests/bench/server-lib.sh"
ts_anchor anchor
mkdir "$work/tmp" "$work/home"
version=$(HOME="$work/home" DISABLE_AUTOUPDATER=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
  "$cli" --version </dev/null 2>/dev/null | head -n1 | awk '{print $1}')
mkfifo "$work/in"
python3 "$top/tests/stub/messages_stub.py" <"$work/in" >"$work/port" 2>/dev/null &
pids+=("$!")
exec 3>"$work/in"
for _ in $(seq 200); do grep -q PORT "$work/port" 2>/dev/null && break; sleep 0.05; done
stub_port=$(awk '/PORT/{print $2; exit}' "$work/port")
export HOME="$work/home" ANTHROPIC_BASE_URL="http://127.0.0.1:$stub_port" ANTHROPIC_API_KEY=sk-test-dummy \
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 \
  CLAUDE_CODE_MAX_RETRIES=0 TMPDIR="$work/tmp"

start_ours ours --cli "$cli" --port 0 --pool-min 2 --pool-max 4
pids+=("$ours_pid")
ts_port=$(free_port)
node "$anchor/chat-server.mjs" "$cli" "$ts_port" >"$work/ts.log" 2>&1 &
pids+=("$!")
ts_url="http://127.0.0.1:$ts_port"
wait_http "$ts_url/health"
for _ in $(seq 1200); do
  idle=$(curl -s "$ours_url/health/detailed" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pool"]["idle"])')
  [ "$idle" -ge 2 ] && break
  sleep 0.05
done
one() { # URL -> "status seconds"
  curl -s -o "$work/body" -w '%{http_code} %{time_total}\n' -H 'Content-Type: application/json' \
    -d '{"message":"ping"}' "$1/chat"
}
one "$ours_url" >/dev/null; one "$ts_url" >/dev/null # warm-up (first turn of each)
: >"$work/rows"
for _ in $(seq "$n"); do
  echo "ours $(one "$ours_url")" >>"$work/rows"
  echo "ts $(one "$ts_url")" >>"$work/rows"
done
echo "real claude ${version:-unknown} against the loopback Messages stub; $n sequential POST /chat each, alternating"
echo
python3 - "$work/rows" <<'PY'
import statistics, sys
d = {}
bad = {}
for line in open(sys.argv[1]):
    side, code, secs = line.split()
    if code != '200':
        bad[side] = bad.get(side, 0) + 1
        continue
    d.setdefault(side, []).append(float(secs) * 1000)
print('| POST /chat, real CLI | TS SDK chat-server (cold CLI per request) | claudelink-server (warm pool) | ratio (goal ≤ 1/4) |')
print('|---|---|---|---|')
o, t = statistics.median(d['ours']), statistics.median(d['ts'])
print(f'| p50 | {t:,.0f} ms | {o:,.0f} ms | 1/{t / o:.1f} |')
print(f"| min / max | {min(d['ts']):,.0f} / {max(d['ts']):,.0f} ms | {min(d['ours']):,.0f} / {max(d['ours']):,.0f} ms | |")
if bad:
    print('non-200 answers:', bad)
PY
