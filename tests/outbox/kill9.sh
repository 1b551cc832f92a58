#!/usr/bin/env bash
# kill -9 harness for the durable outbox. Each round starts `enqueue` (1-20
# messages, sometimes with a session or keys) and a `deliver --follow` next to
# it, and SIGKILLs each at a random moment (enqueue 0-11 ms in, which is
# within its run, deliver 0-99 ms in). Then one `deliver`
# runs to completion. Checks: every id that `enqueue` printed is delivered;
# nothing is dead-lettered; a message was attempted more than once only if its
# lease was lost, i.e. it was in flight in a killed `deliver`; no message was
# reported delivered twice. Prints the counts.
# Usage: kill9.sh CLAUDELINK_OUTBOX FAKE_CLI [ROUNDS]   (default 100)
set -euo pipefail
bin=${1:?usage: kill9.sh CLAUDELINK_OUTBOX FAKE_CLI [ROUNDS]}
cli=${2:?usage: kill9.sh CLAUDELINK_OUTBOX FAKE_CLI [ROUNDS]}
rounds=${3:-100}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db=$work/outbox.db
lease_ms=1500 # far above one delivery: a lease is lost only to a kill
: >"$work/acked"
: >"$work/delivered"
# Sub-millisecond waits without forking sleep(1): read with a timeout on a
# FIFO nobody writes.
mkfifo "$work/never"
exec 3<>"$work/never"
pause_ms() { read -r -t "$(printf '0.%03d' "$1")" -u 3 || true; }
kills_enqueue=0
kills_deliver=0
# The shell's own "Killed" notices go to /dev/null with the rest of the
# round's stderr.
round() {
  local r=$1 n i e_ms d_ms epid dpid
  n=$((RANDOM % 20 + 1))
  msgs=()
  for i in $(seq 1 "$n"); do msgs+=("round $r message $i"); done
  opts=()
  if ((RANDOM % 2)); then opts+=(--session "s$((RANDOM % 3))"); fi
  if ((RANDOM % 3 == 0)); then opts+=(--key "r$r"); fi
  "$bin" --db "$db" enqueue "${opts[@]}" "${msgs[@]}" >"$work/enq.$r" 2>/dev/null &
  epid=$!
  "$bin" --db "$db" deliver --cli "$cli" --size 2 --follow --lease-ms "$lease_ms" \
    >>"$work/delivered" 2>/dev/null &
  dpid=$!
  e_ms=$((RANDOM % 12))
  d_ms=$((RANDOM % 100))
  pause_ms "$e_ms"
  kill -0 "$epid" 2>/dev/null && kills_enqueue=$((kills_enqueue + 1))
  kill -9 "$epid" 2>/dev/null || true
  if ((d_ms > e_ms)); then pause_ms $((d_ms - e_ms)); fi
  kill -0 "$dpid" 2>/dev/null && kills_deliver=$((kills_deliver + 1))
  kill -9 "$dpid" 2>/dev/null || true
  { wait "$epid" || true; } 2>/dev/null
  { wait "$dpid" || true; } 2>/dev/null
  # Killed before its shell even opened the file: it printed nothing.
  if [ -f "$work/enq.$r" ]; then cat "$work/enq.$r" >>"$work/acked"; fi
}
for r in $(seq 1 "$rounds"); do round "$r" 2>/dev/null; done
# Delivers everything left, including what killed processes held (their
# leases expire first).
"$bin" --db "$db" deliver --cli "$cli" --size 2 --lease-ms "$lease_ms" >>"$work/delivered"
"$bin" --db "$db" status >"$work/status"
python3 - "$db" "$work/acked" "$work/delivered" "$work/status" "$rounds" \
  "$kills_enqueue" "$kills_deliver" "$bin" <<'PY'
import json, sqlite3, subprocess, sys
db, acked_f, delivered_f, status_f, rounds, k_enq, k_del, binary = sys.argv[1:]
acked = [int(l) for l in open(acked_f) if l.strip()]
printed = {}
for line in open(delivered_f):
    line = line.strip()
    if not line:
        continue
    d = json.loads(line)  # a torn line would fail here
    printed[d["id"]] = printed.get(d["id"], 0) + 1
rows = {i: (s, a) for i, s, a in sqlite3.connect(db).execute(
    "SELECT id, state, attempts FROM messages")}
status = json.load(open(status_f))
lost = [i for i in set(acked) if rows.get(i, (None,))[0] != 2]
redelivered = [i for i, (s, a) in rows.items() if a > 1]
twice = [i for i, n in printed.items() if n > 1]
unacked = len(rows) - len(set(acked))
# `show` agrees with the table for one acknowledged id.
if acked:
    shown = json.loads(subprocess.run([binary, "--db", db, "show", str(acked[-1])],
                                      check=True, capture_output=True, text=True).stdout)
    assert shown["state"] == "delivered", shown
print(f"rounds {rounds}: killed {k_enq} enqueue and {k_del} deliver processes")
print(f"acknowledged {len(set(acked))} ids ({len(acked)} lines; {unacked} more stored "
      f"by killed enqueues before they printed)")
print(f"delivered {status['delivered']} of {len(rows)}; lost {len(lost)}; dead {status['dead']}; "
      f"pending {status['pending']}; in flight {status['in_flight']}")
print(f"attempted more than once (in flight at a kill): {len(redelivered)}; "
      f"max attempts {max([a for _, a in rows.values()] or [0])}; "
      f"reported delivered twice: {len(twice)}")
ok = (not lost and status["dead"] == 0 and status["pending"] == 0 and status["in_flight"] == 0
      and not twice and len(redelivered) <= int(k_del) * 8)  # 8 = deliver's concurrency
print("OK" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
