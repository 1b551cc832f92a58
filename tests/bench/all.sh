#!/usr/bin/env bash
# Every figure of the README, one benchmark after the other, each side by
# side in its own run (they are programs that print figures, never timed
# tests). Builds BUILD_DIR as a release build when it does not exist.
# Usage: tests/bench/all.sh [BUILD_DIR] [quick]
#   quick: fewer rounds and shorter loads (a smoke run, noisier figures).
# Needs what .ci/install-deps installs, plus node and npm for the TS SDK
# anchor, and the pinned real claude (tests/real-cli/install.sh) for the
# real-CLI sections (skipped, and said so, when it cannot be installed).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
b=${1:-$top/build-release}
quick=${2:-}
if [ ! -f "$b/build.ninja" ]; then
  meson setup "$b" "$top" -Dbuildtype=release >/dev/null || exit 1
fi
meson compile -C "$b" >/dev/null || exit 1
b=$(cd "$b" && pwd)
fake=$b/tests/fake-claude
shim=$b/lib/claudelink-exec
real=$("$top/tests/real-cli/install.sh" 2>/dev/null | tail -n1) || real=
r() { [ -n "$quick" ] && echo "$1" || echo "$2"; } # quick value, full value

section() { printf '\n## %s\n$ %s\n' "$1" "${*:2}"; "${@:2}" || echo "(exit $?)"; }

section "stream vs the TS Agent SDK" bash "$top/tests/bench/compare-ts.sh" "$b" "$(r 1 3)"
section "no regression: this tree against 0532916" bash "$top/tests/bench/old-vs-new.sh" "$b" 0532916 "$(r 2 5)"
section "transport vs a plain read() loop" "$b/tests/bench/bench-transport" "$fake" 1000000 300 "$(r 3 5)"
section "client path: messages/s and allocations" "$b/tests/bench/bench-client" "$fake" 200000 100
section "breaker decisions" "$b/tests/bench/bench-breaker"
section "retry backoff" "$b/tests/bench/bench-retry"
section "pool" "$b/tests/bench/bench-pool" "$fake" "$shim" 1000 "$(r 200000 1000000)"
section "health snapshot and renderings" "$b/tests/bench/bench-health" "$fake" 2000 "$(r 3 7)"
section "fallback cache and clink_ask overhead" "$b/tests/bench/bench-fallback" "$fake" "$shim" "$(r 21 61)"
if [ -x "$b/tests/bench/bench-outbox" ]; then
  section "outbox: group commit and delivery" "$b/tests/bench/bench-outbox" "$fake" 20000 256
  section "outbox: kill -9 of enqueuers and deliverers" bash "$top/tests/outbox/kill9.sh" \
    "$b/examples/outbox/claudelink-outbox" "$fake" "$(r 20 100)"
fi
section "server vs the seed's stack" bash "$top/tests/bench/server-vs-seed.sh" "$b" "$(r 3 5)" "$(r 3 5)"
section "server chat vs the TS SDK chat server" bash "$top/tests/bench/server-chat-vs-ts.sh" "$b" "$(r 3 5)" "$(r 3 5)"
section "server soak with crashing CLIs" bash "$top/tests/bench/server-soak.sh" "$b" "$(r 10000 100000)" 20
if [ -n "$real" ]; then
  section "real CLI: latency" bash "$top/tests/bench/real-cli-latency.sh" "$b" "$real" "$(r 1 3)"
  section "real CLI: POST /chat latency" bash "$top/tests/bench/server-real-cli-latency.sh" "$b" "$real" "$(r 3 9)"
else
  printf '\n## real CLI sections skipped: tests/real-cli/install.sh could not install claude\n'
fi
