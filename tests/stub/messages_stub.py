#!/usr/bin/env python3
"""Loopback stub of the Anthropic Messages API, for driving the real `claude` CLI offline.

Standard library only.  Binds 127.0.0.1 on an ephemeral port and prints `PORT <n>` as
its first stdout line.  See tests/real-cli/run-turn.sh and docs in real-cli.md §5.

Usage:
  messages_stub.py [--script FILE] [--log FILE] [--port-file FILE] [--verbose]

Script: a JSON list of steps (or {"steps": [...]}).  Each POST /v1/messages consumes
the next step; the last step repeats.  Step kinds:
  {}                                      echo: "echo: <last user text>" (the default)
  {"text": "hi"}                          one text block, stop_reason end_turn
  {"tool_use": {"name": "Bash", "input": {...}}, "text": "optional preamble"}
                                          stop_reason tool_use, id toolu_fake_<random>
  {"error": 500, "message": "...", "retry_after": 3}
                                          400/401/403/404/413/429/500/529 + JSON error body
  {"hold_ms": 2000, "text": "slow reply"} stream the first delta, wait, then finish
Without --script every request gets the echo step.  A model check (max_tokens 1, no tools,
not streamed: what set_model sends in newer CLIs) gets "ok" and consumes no step; it is logged
with "step": null and "side": "model_check".

--log FILE appends one JSON line per request: {"ts","method","path","step","stream","headers","body"}
(headers: lower-case names; x-api-key and authorization are redacted).
The server exits on SIGTERM/SIGINT/SIGHUP, and when stdin reaches EOF if stdin is a pipe
or socket (so a parent that spawned it with a stdin pipe stops it by closing the pipe).
"""
import argparse
import gzip
import json
import os
import random
import signal
import stat
import string
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    500: "api_error", 529: "overloaded_error",
}
STOP = threading.Event()  # set on shutdown; also wakes up held streams


def rand_id(prefix, n=10):
    return prefix + "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def last_user_text(body):
    """Text of the last user message (ignoring <system-reminder> blocks); roles are not validated."""
    for msg in reversed(body.get("messages") or []):
        if not isinstance(msg, dict) or msg.get("role") != "user":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            return content
        texts = []
        for block in content or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and not block.get("text", "").startswith("<system-reminder>"):
                texts.append(block["text"])
            elif block.get("type") == "tool_result":
                c = block.get("content")
                texts.append(c if isinstance(c, str) else json.dumps(c))
        if texts:
            return texts[-1]
    return ""


class Stub:
    def __init__(self, steps, log_path):
        self.steps = steps or [{}]
        self.count = 0
        self.lock = threading.Lock()
        self.log_path = log_path

    def next_step(self):
        with self.lock:
            i = min(self.count, len(self.steps) - 1)
            self.count += 1
            return i, self.steps[i]

    def log(self, record):
        if not self.log_path:
            return
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line)


def is_model_check(body):
    """A side request that is not a model call of a turn: 2.1.332 (not 2.1.197) checks the
    model named by a set_model control request with a one-token call (max_tokens 1, no
    tools, not streamed, the single user message "Hi") before it answers the request."""
    return (isinstance(body, dict) and body.get("max_tokens") == 1 and not body.get("tools")
            and not body.get("stream"))


def build_message(step, body):
    """The assistant message (full content) for a non-error step."""
    blocks = []
    text = step.get("text")
    tool = step.get("tool_use")
    if text is None and tool is None:
        text = "echo: " + (last_user_text(body) or "pong")
    if text is not None:
        blocks.append({"type": "text", "text": text})
    if tool is not None:
        blocks.append({"type": "tool_use", "id": tool.get("id") or rand_id("toolu_fake_"),
                       "name": tool.get("name", "Bash"), "input": tool.get("input", {})})
    out_tokens = max(1, sum(len(json.dumps(b).split()) for b in blocks))
    return {
        "id": rand_id("msg_fake_"), "type": "message", "role": "assistant",
        "model": body.get("model") or "claude-fake", "content": blocks,
        "stop_reason": "tool_use" if tool is not None else step.get("stop_reason", "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": out_tokens,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "service_tier": "standard"},
    }


def halves(s):
    """Split a string into (up to) two non-empty chunks so each block gets several deltas."""
    if len(s) < 2:
        return [s]
    mid = len(s) // 2
    return [s[:mid], s[mid:]]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "messages-stub/1"
    stub = None      # set in main()
    verbose = False

    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("stub: " + (fmt % args) + "\n")

    def logged_headers(self):
        return {k.lower(): ("<redacted>" if k.lower() in ("x-api-key", "authorization") else v)
                for k, v in self.headers.items()}

    def do_HEAD(self):
        self.stub.log({"ts": time.time(), "method": "HEAD", "path": self.path,
                       "headers": self.logged_headers(), "body": None})
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.stub.log({"ts": time.time(), "method": "GET", "path": self.path,
                       "headers": self.logged_headers(), "body": None})
        self.send_json(200, {"ok": True})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            raw = gzip.decompress(raw)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_unparsed": raw.decode("utf-8", "replace")}
        if urlsplit(self.path).path != "/v1/messages":
            self.stub.log({"ts": time.time(), "method": "POST", "path": self.path,
                           "headers": self.logged_headers(), "body": body})
            return self.send_error_body(404, {"error": 404})
        stream = bool(isinstance(body, dict) and body.get("stream"))
        if is_model_check(body):
            # Not a turn: answered at once, no script step consumed.
            self.stub.log({"ts": time.time(), "method": "POST", "path": self.path, "step": None,
                           "side": "model_check", "stream": stream,
                           "headers": self.logged_headers(), "body": body})
            msg = build_message({"text": "ok"}, body)
            return self.send_sse(msg, 0) if stream else self.send_json(200, msg)
        idx, step = self.stub.next_step()
        self.stub.log({"ts": time.time(), "method": "POST", "path": self.path, "step": idx,
                       "stream": stream, "headers": self.logged_headers(), "body": body})
        try:
            if "error" in step:
                self.send_error_body(int(step["error"]), step)
            elif stream:
                self.send_sse(build_message(step, body), step.get("hold_ms", 0))
            else:
                if step.get("hold_ms"):
                    STOP.wait(step["hold_ms"] / 1000.0)
                self.send_json(200, build_message(step, body))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # client gave up (interrupt / kill): fine

    # --- responses -------------------------------------------------------------------
    def common_headers(self, rid=None):
        self.send_header("request-id", rid or rand_id("req_fake_"))
        self.send_header("anthropic-organization-id", "00000000-0000-0000-0000-000000000000")

    def send_json(self, status, obj, extra=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.common_headers(obj.get("request_id"))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_error_body(self, status, step):
        etype = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        msg = step.get("message") or "%s (fake, HTTP %d)" % (etype, status)
        extra = {}
        if step.get("retry_after") is not None:
            extra["retry-after"] = str(step["retry_after"])
        if status >= 500 or status == 429:
            extra["x-should-retry"] = "true"
        body = {"type": "error", "error": {"type": etype, "message": msg},
                "request_id": rand_id("req_fake_")}
        self.send_json(status, body, extra)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def event(self, name, payload):
        self.chunk(("event: %s\ndata: %s\n\n" % (name, json.dumps(payload))).encode())

    def send_sse(self, msg, hold_ms):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.common_headers()
        self.end_headers()
        start = dict(msg, content=[], stop_reason=None,
                     usage=dict(msg["usage"], output_tokens=1))
        self.event("message_start", {"type": "message_start", "message": start})
        self.event("ping", {"type": "ping"})
        held = not hold_ms
        for i, block in enumerate(msg["content"]):
            if block["type"] == "text":
                self.event("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}})
                deltas = [{"type": "text_delta", "text": t} for t in halves(block["text"])]
            else:
                self.event("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": dict(block, input={})})
                deltas = [{"type": "input_json_delta", "partial_json": p}
                          for p in halves(json.dumps(block["input"]))]
            for d in deltas:
                self.event("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d})
                if not held:  # hold after the very first delta
                    held = True
                    if STOP.wait(hold_ms / 1000.0):
                        return
            self.event("content_block_stop", {"type": "content_block_stop", "index": i})
        self.event("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
                                     "usage": {"output_tokens": msg["usage"]["output_tokens"]}})
        self.event("message_stop", {"type": "message_stop"})
        self.chunk(b"")  # terminating zero-length chunk


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that went away (interrupt, kill) or a shutdown is not worth a traceback."""
        if STOP.is_set() or isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def load_steps(path):
    if not path:
        return [{}]
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    steps = data.get("steps") if isinstance(data, dict) else data
    if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
        sys.exit("messages_stub: --script must hold a non-empty list of step objects")
    return steps


def watch_stdin():
    """Stop when stdin (a pipe or socket) reaches EOF; /dev/null and ttys are ignored."""
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return

    def run():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        STOP.set()
    threading.Thread(target=run, daemon=True).start()


def main():
    ap = argparse.ArgumentParser(description="Loopback stub of the Anthropic Messages API")
    ap.add_argument("--script", help="JSON list of steps (see module docstring)")
    ap.add_argument("--log", help="append one JSON line per request to this file")
    ap.add_argument("--port-file", help="also write the port number to this file")
    ap.add_argument("--verbose", action="store_true", help="log HTTP requests to stderr")
    args = ap.parse_args()

    Handler.stub = Stub(load_steps(args.script), args.log)
    Handler.verbose = args.verbose
    server = Server(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    print("PORT %d" % port, flush=True)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: STOP.set())
    watch_stdin()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    while not STOP.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
