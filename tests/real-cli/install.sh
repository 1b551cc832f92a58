#!/usr/bin/env bash
# Install a pinned @anthropic-ai/claude-code from npm into a per-version cache
# folder and print the absolute path of the native `claude` binary on the last
# stdout line.  Idempotent: does nothing if the cached binary already reports
# the pinned version.  Only the npm registry is contacted.
#
#   tests/real-cli/install.sh            -> /root/.cache/claudelink/claude-code-2.1.332/.../claude
#   CLINK_CLAUDE_CODE_VERSION=2.1.197 tests/real-cli/install.sh   (the previous pin; still passes)
#
# Env: CLINK_CLAUDE_CODE_VERSION (default 2.1.332, the current release when pinned; see
#                                 real-cli.md §1 for 2.1.197 and tests/real-cli/VERSIONS.md)
#      CLINK_CACHE_DIR           (default $HOME/.cache/claudelink)
set -euo pipefail

VERSION="${CLINK_CLAUDE_CODE_VERSION:-2.1.332}"
CACHE="${CLINK_CACHE_DIR:-$HOME/.cache/claudelink}"
DEST="$CACHE/claude-code-$VERSION"

log() { printf 'install.sh: %s\n' "$*" >&2; }

case "$(uname -m)" in
  x86_64|amd64) arch=x64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) log "unsupported machine $(uname -m)"; exit 1 ;;
esac
plat="linux-$arch"
if ldd --version 2>&1 | grep -qi musl; then plat="$plat-musl"; fi

# Run `claude --version` hermetically: throw-away HOME, no network side traffic.
version_of() {
  local h rc=0 out
  h="$(mktemp -d)"
  out="$(HOME="$h" CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 \
         DISABLE_AUTOUPDATER=1 timeout 30 "$1" --version 2>/dev/null </dev/null)" || rc=$?
  rm -rf "$h"
  [ "$rc" -eq 0 ] && printf '%s\n' "$out" | head -n1
}

# Candidate binaries: the platform package binary (always real) and the wrapper bin
# (the same inode once postinstall ran, a 500-byte stub when it did not).
find_binary() {
  local nm="$1/node_modules/@anthropic-ai" c
  for c in "$nm/claude-code-$plat/claude" "$nm/claude-code/bin/claude.exe"; do
    if [ -f "$c" ] && [ -x "$c" ]; then
      case "$(version_of "$c" || true)" in
        "$VERSION "*|"$VERSION") printf '%s\n' "$c"; return 0 ;;
      esac
    fi
  done
  return 1
}

if bin="$(find_binary "$DEST")"; then
  log "claude-code $VERSION already installed in $DEST"
  readlink -f "$bin"
  exit 0
fi

command -v npm >/dev/null || { log "npm not found"; exit 1; }
mkdir -p "$CACHE"
tmp="$(mktemp -d "$CACHE/.claude-code-$VERSION.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
printf '{"name":"clink-claude-code-cache","private":true}\n' >"$tmp/package.json"
log "installing @anthropic-ai/claude-code@$VERSION into $DEST"
start=$(date +%s)
( cd "$tmp" && npm install --no-audit --no-fund --save-exact --loglevel=error \
    "@anthropic-ai/claude-code@$VERSION" ) >&2
log "npm install took $(( $(date +%s) - start )) s"

# The platform binary must exist even if the wrapper postinstall was skipped.
if ! find_binary "$tmp" >/dev/null; then
  log "no working claude binary after install (platform package claude-code-$plat missing?)"
  exit 1
fi

# Publish atomically; hard links and relative .bin symlinks survive the rename.
rm -rf "$DEST"
mv "$tmp" "$DEST"
trap - EXIT
bin="$(find_binary "$DEST")" || { log "binary check failed after move"; exit 1; }
log "installed: $(version_of "$bin")"
readlink -f "$bin"
