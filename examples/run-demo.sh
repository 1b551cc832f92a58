#!/usr/bin/env bash
# The README's demo command. Installs what it needs (Debian 12, as root),
# builds, and runs the demo.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash .ci/install-deps >&2
b=${CLINK_DEMO_BUILD:-$top/build-demo}
[ -f "$b/build.ninja" ] || meson setup "$b" -Dbuildtype=release >/dev/null
meson compile -C "$b" >/dev/null
echo "Streaming 1,000,000 NDJSON lines from the test fake CLI through the transport:" >&2
exec "$b/tests/bench/bench-transport" "$b/tests/fake-claude" 1000000 300 3
