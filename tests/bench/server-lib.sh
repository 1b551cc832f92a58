# Helpers for the benchmark scripts (sourced): servers, ports, wrk, RSS,
# and the TS SDK anchor.

# A free loopback port.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_ours VAR ARGS...: starts claudelink-server, waits for its first
# stdout line, sets VAR_pid and VAR_url. stderr goes to $work/VAR.err.
start_ours() {
  local var=$1; shift
  exec {fd}< <(exec "$build/examples/server/claudelink-server" "$@" 2>"$work/$var.err")
  local pid=$!
  local line
  read -r -u "$fd" line
  case "$line" in
    "listening on http://"*) ;;
    *) echo "claudelink-server did not start: $line" >&2; cat "$work/$var.err" >&2; exit 1 ;;
  esac
  printf -v "${var}_pid" '%s' "$pid"
  printf -v "${var}_url" '%s' "${line#listening on }"
}

# wait_http URL: until it answers (a start-up wait for the anchors, which
# print nothing useful when ready).
wait_http() {
  for _ in $(seq 600); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.05
  done
  echo "no answer from $1" >&2
  exit 1
}

rss_mb() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
hwm_mb() { awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# RSS of a process and its descendants (the TS server's CLIs are short-lived:
# this counts the server itself).
fds() { ls "/proc/$1/fd" | wc -l; }

# wrk_json NAME ARGS...: runs wrk --latency, prints one JSON line:
# {"name", "rps", "p50_ms", "p99_ms", "status"}.
wrk_json() {
  local name=$1; shift
  wrk --latency "$@" >"$work/wrk.out" 2>&1 || true
  python3 - "$name" "$work/wrk.out" <<'PY'
import json, re, sys
name, path = sys.argv[1], sys.argv[2]
text = open(path).read()
def ms(v, u):
    return float(v) * {'us': 1e-3, 'ms': 1.0, 's': 1e3, 'm': 6e4}[u]
rps = re.search(r'Requests/sec:\s+([\d.]+)', text)
lat = {p: ms(v, u) for p, v, u in re.findall(r'^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$', text, re.M)}
st = re.search(r'^STATUS (.*)$', text, re.M)
non2xx = re.search(r'Non-2xx or 3xx responses: (\d+)', text)
err = re.search(r'Socket errors: (.*)$', text, re.M)
print(json.dumps({'name': name, 'rps': float(rps.group(1)) if rps else 0.0,
                  'p50_ms': lat.get('50'), 'p99_ms': lat.get('99'),
                  'status': st.group(1) if st else None,
                  'non2xx': int(non2xx.group(1)) if non2xx else 0,
                  'socket_errors': err.group(1) if err else None}))
PY
}

# ts_anchor VAR: installs the TS SDK anchor (../shared/bench/ts-sdk-anchor:
# bench.mjs, chat-server.mjs) with its npm packages in a cache folder, once,
# and sets VAR to that folder. Needs $top.
ts_anchor() {
  local src="$top/../shared/bench/ts-sdk-anchor"
  local dir=${CLINK_TS_ANCHOR_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/claudelink/ts-sdk-anchor}
  command -v node >/dev/null && command -v npm >/dev/null || bash "$top/.ci/install-deps" nodejs npm
  mkdir -p "$dir"
  cp "$src/chat-server.mjs" "$src/bench.mjs" "$src/package.json" "$dir/"
  if [ ! -d "$dir/node_modules/@anthropic-ai/claude-agent-sdk" ]; then
    (cd "$dir" && npm install --no-audit --no-fund --silent >/dev/null)
  fi
  printf -v "$1" '%s' "$dir"
}
