#!/usr/bin/env bash
# The claudelink-outbox command line is a contract: enqueue prints one id per
# message, status and show print one JSON object, deliver one JSON line per
# delivered message and its exit status says whether anything died.
# Usage: check-cli.sh CLAUDELINK_OUTBOX FAKE_CLI
set -euo pipefail
bin=${1:?usage: check-cli.sh CLAUDELINK_OUTBOX FAKE_CLI}
cli=${2:?usage: check-cli.sh CLAUDELINK_OUTBOX FAKE_CLI}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db=$work/o.db
fail() { echo "FAIL: $*" >&2; exit 1; }
json() { python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print(($1))"; }

ids=$("$bin" --db "$db" enqueue "first message" "second \"quoted\" message")
[ "$(echo "$ids" | wc -l)" -eq 2 ] || fail "enqueue printed: $ids"
echo "$ids" | grep -qvE '^[0-9]+$' && fail "ids are not integers: $ids"
k1=$("$bin" --db "$db" enqueue --key order-7 --session conv-1 "keyed")
k2=$("$bin" --db "$db" enqueue --key order-7 "keyed again")
[ "$k1" = "$k2" ] || fail "same key, different ids: $k1 $k2"
st=$("$bin" --db "$db" status)
[ "$(echo "$st" | json 'd["pending"], d["in_flight"], d["delivered"], d["dead"]')" = "(3, 0, 0, 0)" ] ||
  fail "status: $st"

out=$("$bin" --db "$db" deliver --cli "$cli" --size 2) || fail "deliver exited $?"
[ "$(echo "$out" | wc -l)" -eq 3 ] || fail "deliver printed: $out"
echo "$out" | while read -r line; do
  [ "$(echo "$line" | json 'sorted(d)')" = "['attempts', 'id', 'key', 'response']" ] ||
    fail "deliver line: $line"
  [ "$(echo "$line" | json 'd["attempts"], d["response"]')" = "(1, 'xxxx')" ] || fail "$line"
done
echo "$out" | grep -q "\"key\":\"order-7\"" || fail "the key is not reported: $out"
st=$("$bin" --db "$db" status)
[ "$(echo "$st" | json 'd["pending"], d["delivered"]')" = "(0, 3)" ] || fail "status: $st"

sh=$("$bin" --db "$db" show "$k1")
[ "$(echo "$sh" | json 'd["state"], d["attempts"], d["response"], d["session_id"], d["prompt"]')" = \
  "('delivered', 1, 'xxxx', 'conv-1', 'keyed')" ] || fail "show: $sh"
if "$bin" --db "$db" show 999 >/dev/null 2>"$work/err"; then fail "show of a missing id"; fi
grep -q "no message 999" "$work/err" || fail "show 999: $(cat "$work/err")"

# A delivery that cannot succeed is dead-lettered: non-zero exit.
dead=$("$bin" --db "$db" enqueue "doomed")
if "$bin" --db "$db" deliver --cli "$work/no-such-claude" --max-attempts 1 >/dev/null 2>"$work/err"; then
  fail "deliver exited 0 with a dead letter"
fi
[ "$("$bin" --db "$db" show "$dead" | json 'd["state"], d["last_error"]')" = \
  "('dead', 'CLINK_ECLI_NOT_FOUND')" ] || fail "dead letter: $("$bin" --db "$db" show "$dead")"

# Clear errors: bad usage (2), a file that is not an outbox (1).
set +e
"$bin" --db "$db" >/dev/null 2>&1; [ $? -eq 2 ] || fail "no command: not usage"
"$bin" --db "$db" enqueue >/dev/null 2>&1; [ $? -eq 2 ] || fail "no message: not usage"
"$bin" --db "$db" frobnicate >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown command: not usage"
echo "this is not a database, just some text that is long enough to be read...................." \
  >"$work/text.db"
"$bin" --db "$work/text.db" status >/dev/null 2>"$work/err"; rc=$?
set -e
[ $rc -eq 1 ] || fail "status of a text file exited $rc"
grep -q "not a database" "$work/err" || fail "text file: $(cat "$work/err")"
echo "claudelink-outbox command line: OK"
