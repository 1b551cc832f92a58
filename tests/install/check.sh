#!/usr/bin/env bash
# Installs a build into a scratch prefix and builds a program against it with
# nothing but pkg-config, then runs it (one turn through the fake CLI).
# Usage: tests/install/check.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: check.sh BUILD_DIR}" && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
option() {
  meson introspect "$build" --buildoptions |
    python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]==sys.argv[1]][0])' "$1"
}
# A plain program cannot load a sanitized library: nothing to learn there.
if [ "$(option b_sanitize)" != none ]; then
  echo "SKIP: install check needs a build without sanitizers"
  exit 77
fi
prefix=$(option prefix)
meson install -C "$build" --destdir "$root" --quiet --no-rebuild
pcdir=$(dirname "$(find "$root" -name claudelink.pc | head -1)")
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$root"
# Exactly the line a newcomer types (README), plus warnings as errors.
cc -std=c11 -pedantic "$here/consumer.c" -o "$root/consumer" $(pkg-config --cflags --libs claudelink)
cc -std=c11 -pedantic -Wall -Wextra -Werror "$here/consumer.c" -o "$root/consumer" $(pkg-config --cflags --libs claudelink)
libdir=$(dirname "$(find "$root" -name 'libclaudelink.so*' | head -1)")
LD_LIBRARY_PATH="$libdir" "$root/consumer" "$build/tests/fake-claude"
test -x "$root$prefix/libexec/claudelink/claudelink-exec"
echo "install check: OK (pkg-config $(pkg-config --modversion claudelink), prefix $prefix)"
