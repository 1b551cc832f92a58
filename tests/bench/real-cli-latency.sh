#!/usr/bin/env bash
# Latency with the real claude CLI against the loopback Messages API stub:
# claudelink (spawn -> initialize response; a query on the connected client ->
# first assistant message; acquire from a pre-warmed pool -> first assistant;
# cold start -> first assistant) next to a cold TypeScript SDK query(), in the
# same run. Prints a Markdown table of medians, headed by the CLI's version.
# Usage: tests/bench/real-cli-latency.sh BUILD_DIR [REAL_CLAUDE] [ROUNDS]
#   REAL_CLAUDE: a claude binary; empty or omitted: the pinned one
#   (tests/real-cli/install.sh, 2.1.332; CLINK_CLAUDE_CODE_VERSION picks another).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: real-cli-latency.sh BUILD_DIR [REAL_CLAUDE] [ROUNDS]}" && pwd)
cli=${2:-}
rounds=${3:-5}
if [ -z "$cli" ]; then
  cli=$("$top/tests/real-cli/install.sh" | tail -n1)
fi
anchor=${CLINK_TS_ANCHOR_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/claudelink/ts-sdk-anchor}
if [ ! -d "$anchor/node_modules/@anthropic-ai/claude-agent-sdk" ]; then
  mkdir -p "$anchor"
  cp "$top/../shared/bench/ts-sdk-anchor/"{bench.mjs,package.json} "$anchor/"
  (cd "$anchor" && npm install --no-audit --no-fund --silent >/dev/null)
fi
work=$(mktemp -d)
trap 'exec 3>&-; wait 2>/dev/null; rm -rf "$work"' EXIT
mkdir "$work/tmp" "$work/vhome"
version=$(HOME="$work/vhome" DISABLE_AUTOUPDATER=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
  "$cli" --version </dev/null 2>/dev/null | head -n1 | awk '{print $1}')
# The stub exits when its stdin (fd 3 here) closes.
mkfifo "$work/in"
python3 "$top/tests/stub/messages_stub.py" <"$work/in" >"$work/port" 2>/dev/null &
exec 3>"$work/in"
for _ in $(seq 100); do grep -q PORT "$work/port" 2>/dev/null && break; sleep 0.05; done
port=$(awk '/PORT/{print $2; exit}' "$work/port")
run_env() {
  local home; home=$(mktemp -d "$work/home.XXXX")
  env HOME="$home" ANTHROPIC_BASE_URL="http://127.0.0.1:$port" ANTHROPIC_API_KEY=sk-test-dummy \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 \
    CLAUDE_CODE_MAX_RETRIES=0 TMPDIR="$work/tmp" "$@"
}
for _ in $(seq "$rounds"); do
  (cd "$work" && run_env "$build/examples/bench/claudelink-bench" --cli "$cli" ping) >>"$work/ours"
  (cd "$work" && run_env "$build/tests/bench/bench-pool-latency" "$cli" ping) >>"$work/pool"
  (cd "$work" && run_env node "$anchor/bench.mjs" "$cli" ping) >>"$work/ts"
done
python3 - "$work/ours" "$work/ts" "$work/pool" "${version:-unknown}" <<'PY'
import json, statistics, sys
ours = [json.loads(l) for l in open(sys.argv[1])]
ts = [json.loads(l) for l in open(sys.argv[2])]
pool = [json.loads(l) for l in open(sys.argv[3])]
m = lambda rows, k: statistics.median(r[k] for r in rows if r.get(k) is not None)
print(f'real claude {sys.argv[4]}')
print()
print(f'| measure (median of {len(ours)}) | claudelink | TS SDK query() |')
print('|---|---|---|')
print(f"| spawn → initialize response (ms) | {m(ours,'connect_ms'):.0f} | – |")
print(f"| query on a connected client → first assistant (ms) | {m(ours,'query_first_assistant_ms'):.0f} | – |")
print(f"| pre-warmed pool: acquire → first assistant (ms) | {m(pool,'acquire_first_assistant_ms'):.0f} | – |")
print(f"| cold start → first assistant (ms) | {m(ours,'first_assistant_ms'):.0f} | {m(ts,'first_assistant_ms'):.0f} |")
print(f"| cold start → done, wall (ms) | {m(ours,'wall_ms'):.0f} | {m(ts,'wall_ms'):.0f} |")
print(f"| host CPU (ms) | {m(ours,'cpu_ms'):.0f} | {m(ts,'cpu_ms'):.0f} |")
print(f"| host RSS (MB) | {m(ours,'rss_mb'):.1f} | {m(ts,'rss_mb'):.1f} |")
PY
