#!/usr/bin/env bash
# Every test, three ways: a plain build, ASan+UBSan, and valgrind (plus the
# unit suite against a static build).
# Installs what it needs (Debian 12, as root) and builds from scratch.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash .ci/install-deps

# The real `claude` CLI for the real-cli suite (from npm). Without it those
# tests SKIP, which CI (CI=true) does not accept.
real_cli() {
  command -v npm >/dev/null || bash .ci/install-deps nodejs npm || return 1
  local path
  path=$(tests/real-cli/install.sh | tail -n1) || return 1
  export CLINK_TEST_REAL_CLI="$path"
}
if ! real_cli; then
  [ "${CI:-}" = true ] && { echo "ERROR: could not install the real claude CLI" >&2; exit 1; }
  echo "WARNING: could not install the real claude CLI: the real-cli tests will SKIP" >&2
fi

out=${CLINK_BUILD_ROOT:-$top/build-tests}
rm -rf "$out"
mkdir -p "$out"

status=0
run() { # name, meson test args...
  local name=$1; shift
  echo "== $name"
  if ! meson test -C "$@" --print-errorlogs; then status=1; fi
}

meson setup "$out/plain" -Dwerror=true -Dbuildtype=debugoptimized >/dev/null
meson compile -C "$out/plain" >/dev/null
run plain "$out/plain"
run valgrind "$out/plain" --setup valgrind --no-suite script

# A static library must build and pass the unit suite too.
meson setup "$out/static" -Dwerror=true -Ddefault_library=static -Dbenchmarks=false >/dev/null
meson compile -C "$out/static" >/dev/null
run static "$out/static" --suite unit

meson setup "$out/asan" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
  -Dbenchmarks=false >/dev/null
meson compile -C "$out/asan" >/dev/null
run asan+ubsan "$out/asan" --setup asan

python3 - "$out" <<'PY'
import json, pathlib, sys
passed = failed = skipped = 0
for log in sorted(pathlib.Path(sys.argv[1]).glob('*/meson-logs/testlog*.json')):
    for line in log.read_text().splitlines():
        r = json.loads(line)
        res = r.get('result')
        if res in ('OK', 'EXPECTEDFAIL'): passed += 1
        elif res == 'SKIP': skipped += 1
        else: failed += 1
print(f'{passed} passed, {failed} failed, {skipped} skipped')
PY
exit $status
