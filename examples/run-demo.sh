#!/usr/bin/env bash
# The README's demo command: installs what it needs (Debian 12, as root),
# builds, and runs claudelink-chat with two turns on one process. It drives the
# real `claude` when it is installed and configured (ANTHROPIC_API_KEY or a
# login in ~/.claude), otherwise the test fake CLI, and says which.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash .ci/install-deps >&2
b=${CLINK_DEMO_BUILD:-$top/build-demo}
[ -f "$b/build.ninja" ] || meson setup "$b" -Dbuildtype=release >/dev/null
meson compile -C "$b" >/dev/null
chat="$b/examples/chat/claudelink-chat"
if command -v claude >/dev/null 2>&1 &&
   { [ -n "${ANTHROPIC_API_KEY:-}" ] || [ -f "$HOME/.claude/.credentials.json" ]; }; then
  echo "demo: using the real claude CLI at $(command -v claude)" >&2
  exec "$chat" "Say hello in five words." "Now say it in French."
fi
echo "demo: no configured claude CLI found; using the test fake CLI ($b/tests/fake-claude)" >&2
export FAKE_ECHO=1
exec "$chat" --cli "$b/tests/fake-claude" "Hello from libclaudelink." "A second turn, same process."
