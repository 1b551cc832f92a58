#!/usr/bin/env bash
# claudelink-chat's command line is a contract: check it against the fake CLI.
# Usage: check-chat.sh CHAT FAKE_CLI
set -uo pipefail
chat=${1:?} fake=${2:?}
fails=0
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

expect() { # name, expected exit code, command...
  local name=$1 want=$2; shift 2
  "$@" >"$out" 2>"$err"
  local got=$?
  if [ "$got" != "$want" ]; then
    echo "FAIL $name: exit $got, expected $want"; sed 's/^/  stderr: /' "$err"; fails=$((fails+1))
    return 1
  fi
  echo "ok   $name"
}
has() { # name, file, pattern
  grep -q -- "$3" "$2" || { echo "FAIL $1: no '$3' in $(basename "$2")"; sed 's/^/  /' "$2" | head -5; fails=$((fails+1)); }
}

export FAKE_ECHO=1
expect two-turns 0 "$chat" --cli "$fake" "first prompt" "second prompt"
has two-turns "$out" "first prompt"
has two-turns "$out" "second prompt"

expect json 0 "$chat" --json --cli "$fake" 'with "quotes"'
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$out" ||
  { echo "FAIL json: a line is not JSON"; fails=$((fails+1)); }
has json "$out" '"type":"result"'

expect not-found 127 "$chat" --cli /nonexistent/claude hi
has not-found "$err" "claude CLI not found"
[ "$(wc -l <"$err")" = 1 ] || { echo "FAIL not-found: stderr is not one line"; fails=$((fails+1)); }

FAKE_CRASH_AFTER=0 FAKE_CRASH_SIGNAL=9 expect process-died 1 "$chat" --cli "$fake" hi
has process-died "$err" "process died"

FAKE_API_ERROR=529 FAKE_MSGS=0 expect turn-failed 1 "$chat" --cli "$fake" hi
has turn-failed "$err" "turn failed: API Error: 529"

FAKE_TOOL=1 expect tool-denied 0 "$chat" --cli "$fake" hi
has tool-denied "$out" "tool said: denied"
FAKE_TOOL=1 expect tool-allowed 0 "$chat" --allow-tools --cli "$fake" hi
has tool-allowed "$out" "tool said: ran"

expect bad-usage 2 "$chat" --cli
expect bad-mode 2 "$chat" --permission-mode nonsense hi

# --reconnect: the second turn of every process dies; each reconnection
# re-sends the interrupted turn once and the run still succeeds.
FAKE_CRASH_AFTER=0 FAKE_CRASH_SIGNAL=9 FAKE_CRASH_TURN=2 \
  expect reconnect 0 "$chat" --reconnect --cli "$fake" one two three
has reconnect "$out" "three"
has reconnect "$err" "reconnecting in"
has reconnect "$err" "reconnected"
FAKE_CRASH_AFTER=0 FAKE_CRASH_SIGNAL=9 FAKE_CRASH_TURN=2 \
  expect no-reconnect 1 "$chat" --cli "$fake" one two three

echo "$fails failed"
[ "$fails" = 0 ]
