#!/usr/bin/env bash
# Manual end-to-end driver: stub Messages API on 127.0.0.1 + the real `claude` CLI in SDK
# (bidirectional stream-json) mode.  Prints a timestamped transcript and a summary.
#
#   tests/real-cli/run-turn.sh [options] [-- extra claude args]
#     -s, --script FILE        stub script (see tests/stub/messages_stub.py); default: echo
#     -p, --prompt TEXT        user message; repeat for several turns in one process (default "hello")
#     -l, --log FILE           stub request log (default <tmp>/requests.jsonl, printed at the end)
#     -r, --retries N          CLAUDE_CODE_MAX_RETRIES (default 0)
#     --deny                   answer can_use_tool with deny (default: allow)
#     --interrupt-after MS     send an `interrupt` control request MS after the first user line
#     --kill-after MS          SIGTERM the CLI MS after the first user line
#     --full                   do not truncate transcript lines (default: 300 chars)
#     --keep                   keep the temp dir (HOME, cwd, logs)
#   Env: CLAUDE_BIN (default: last line of tests/real-cli/install.sh)
#
# Nothing but 127.0.0.1 is contacted: fresh HOME and TMPDIR, a minimal env (no proxies, no host
# ANTHROPIC_* vars), CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC/DISABLE_* set (real-cli.md §2, §9).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
stub="$here/../stub/messages_stub.py"
if [ -z "${CLAUDE_BIN:-}" ]; then
  CLAUDE_BIN="$("$here/install.sh" | tail -n1)"
fi
export CLAUDE_BIN STUB="$stub"
exec python3 - "$@" <<'PY'
import argparse, json, os, queue, shutil, signal, subprocess, sys, tempfile, threading, time

ap = argparse.ArgumentParser(prog="run-turn.sh")
ap.add_argument("-s", "--script")
ap.add_argument("-p", "--prompt", action="append")
ap.add_argument("-l", "--log")
ap.add_argument("-r", "--retries", default="0")
ap.add_argument("--deny", action="store_true")
ap.add_argument("--interrupt-after", type=int)
ap.add_argument("--kill-after", type=int)
ap.add_argument("--full", action="store_true")
ap.add_argument("--keep", action="store_true")
ap.add_argument("--timeout", type=float, default=60.0, help="seconds per turn")
ap.add_argument("extra", nargs="*")
a = ap.parse_args()
prompts = a.prompt or ["hello"]

tmp = tempfile.mkdtemp(prefix="clink-run-turn.")
home, cwd, ctmp = (os.path.join(tmp, d) for d in ("home", "cwd", "tmp"))
for d in (home, cwd, ctmp):
    os.makedirs(d)
log = a.log or os.path.join(tmp, "requests.jsonl")

# 1. stub, with a pipe on stdin: it exits when we do.
cmd = [sys.executable, os.environ["STUB"], "--log", log] + (["--script", a.script] if a.script else [])
stub = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
port = int(stub.stdout.readline().split()[1])

# 2. the CLI, SDK style.
env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": home,
       "ANTHROPIC_BASE_URL": "http://127.0.0.1:%d" % port, "ANTHROPIC_API_KEY": "sk-test-dummy",
       "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
       "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_MAX_RETRIES": a.retries,
       "CLAUDE_CODE_ENTRYPOINT": "sdk-py", "NO_PROXY": "127.0.0.1",
       # The CLI keeps per-cwd task folders (claude-<uid>/) and, since 2.1.332, a
       # messaging socket (cc-socks/<pid>.sock, left behind when it is killed) in TMPDIR.
       "TMPDIR": ctmp}
argv = [os.environ["CLAUDE_BIN"], "--output-format", "stream-json", "--verbose",
        "--input-format", "stream-json"] + a.extra
t0 = time.monotonic()
cli = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, bufsize=1)
ms = lambda: (time.monotonic() - t0) * 1000
lines = queue.Queue()

def reader(f, tag):
    for line in f:
        lines.put((ms(), tag, line.rstrip("\n")))
    lines.put((ms(), tag, None))
threading.Thread(target=reader, args=(cli.stdout, "out"), daemon=True).start()
threading.Thread(target=reader, args=(cli.stderr, "err"), daemon=True).start()

def show(t, tag, text):
    if not a.full and len(text) > 300:
        text = text[:300] + "…(%d chars)" % len(text)
    print("%8.1f %-3s %s" % (t, tag, text), flush=True)

def send(obj):
    line = json.dumps(obj)
    show(ms(), "in", line)
    try:
        cli.stdin.write(line + "\n"); cli.stdin.flush()
    except BrokenPipeError:
        pass

stdout_open = [True]

def wait_for(pred, timeout):
    """Pump stdout; answer can_use_tool; return (t, msg) of the first msg matching pred."""
    deadline = time.monotonic() + timeout
    while stdout_open[0]:
        try:
            t, tag, text = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None, None
        if text is None:
            if tag == "out":
                stdout_open[0] = False
            continue
        show(t, tag, text)
        if tag != "out":
            continue
        try:
            msg = json.loads(text)
        except ValueError:
            continue
        req = msg.get("request") or {}
        if msg.get("type") == "control_request" and req.get("subtype") == "can_use_tool":
            answer = ({"behavior": "deny", "message": "denied by run-turn.sh"} if a.deny else
                      {"behavior": "allow", "updatedInput": req.get("input", {})})
            send({"type": "control_response", "response": {"subtype": "success",
                  "request_id": msg["request_id"], "response": answer}})
        if pred(msg):
            return t, msg
    return None, None

timings, results, ok = {}, [], True
send({"type": "control_request", "request_id": "req_1_init",
      "request": {"subtype": "initialize", "hooks": None}})
t, _ = wait_for(lambda m: m.get("type") == "control_response"
                and m["response"].get("request_id") == "req_1_init", 30)
timings["spawn->initialize response ms"] = t
for n, prompt in enumerate(prompts, 1):
    sent = ms()
    send({"type": "user", "session_id": "default", "parent_tool_use_id": None,
          "message": {"role": "user", "content": prompt}})
    timer = None
    if a.interrupt_after is not None and n == 1:
        timer = threading.Timer(a.interrupt_after / 1000, send, [{"type": "control_request",
            "request_id": "req_2_intr", "request": {"subtype": "interrupt"}}])
    if a.kill_after is not None and n == 1:
        timer = threading.Timer(a.kill_after / 1000, lambda: (show(ms(), "---", "SIGTERM"),
                                                              cli.send_signal(signal.SIGTERM)))
    if timer:
        timer.start()
    t, res = wait_for(lambda m: m.get("type") == "result", a.timeout)
    if timer:
        timer.cancel()
    if res is None:
        ok = False
        show(ms(), "---", "no result for turn %d" % n)
        break
    timings["turn %d: user line->result ms" % n] = t - sent
    results.append(res)

t_eof = ms()
try:
    cli.stdin.close()
except BrokenPipeError:
    pass
wait_for(lambda m: False, 30)  # drain until stdout EOF
try:
    rc = cli.wait(timeout=10)
except subprocess.TimeoutExpired:
    cli.kill(); rc = cli.wait()
timings["stdin EOF->exit ms"] = ms() - t_eof
stub.stdin.close(); stub.wait(timeout=10)

print("\n--- summary")
print("claude: %s  rc=%d" % (os.environ["CLAUDE_BIN"], rc))
for k, v in timings.items():
    print("%-32s %s" % (k, "-" if v is None else "%.0f" % v))
for i, r in enumerate(results, 1):
    print("result %d: subtype=%s is_error=%s api_error_status=%s num_turns=%s result=%r" % (
        i, r.get("subtype"), r.get("is_error"), r.get("api_error_status"), r.get("num_turns"),
        (r.get("result") or "")[:120]))
print("stub requests (%s):" % log)
with open(log) as f:
    for line in f:
        r = json.loads(line)
        body = r.get("body") or {}
        msgs = body.get("messages") or []
        print("  %-4s %-24s step=%s stream=%s model=%s messages=%d roles=%s%s" % (
            r["method"], r["path"], r.get("step", "-"), r.get("stream", "-"),
            body.get("model", "-"), len(msgs), ",".join(m.get("role", "?") for m in msgs),
            "  (%s)" % r["side"] if r.get("side") else ""))
if a.keep:
    print("kept:", tmp)
else:
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(0 if ok else 1)
PY
