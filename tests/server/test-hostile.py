#!/usr/bin/env python3
"""A corpus of hostile requests (truncated, garbage, oversized headers, bad
chunking, smuggling shapes, path tricks, huge bodies, slowloris, random
bytes) that must never crash claudelink-server: after each one it still
answers /livez, and at the end it shuts down cleanly (exit 0; under the
asan setup that also means no leak and no memory error)."""
import json
import random
import socket
import threading
import time

from srvtest import Checks, Server, wait_until

t = Checks()
s = Server(env={'CLAUDELINK_REQUEST_TIMEOUT_S': '2', 'FAKE_ECHO': '1'})
t.ok(s.port, 'server started', s.first_line)
wait_until(lambda: s.request('GET', '/readyz')[0] == 200)

H = b'Host: 127.0.0.1\r\nConnection: close\r\n'


def req(line, headers=b'', body=b''):
    return line + b'\r\n' + H + headers + b'\r\n' + body


def post_json(body, headers=b''):
    """POST /chat with a correct Content-Length."""
    return req(b'POST /chat HTTP/1.1', headers + b'Content-Length: %d\r\n' % len(body), body)


corpus = [
    ('truncated request line', b'GET /hea', True),
    ('truncated headers', b'GET /health HTTP/1.1\r\nHost: x\r\nX-A', True),
    ('truncated body', req(b'POST /chat HTTP/1.1', b'Content-Length: 50\r\n', b'{"message"'), True),
    ('garbage', b'\x00\xff\xfe\x01\x02garbage\r\n\r\n', False),
    ('no version', b'GET /\r\n\r\n', False),
    ('HTTP/0.9', b'GET /\r\n', True),
    ('HTTP/2 preface', b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', False),
    ('unknown version', req(b'GET /livez HTTP/9.9'), False),
    ('lower-case method', req(b'get /livez HTTP/1.1'), False),
    ('weird method', req(b'FOO /chat HTTP/1.1'), False),
    ('OPTIONS *', req(b'OPTIONS * HTTP/1.1'), False),
    ('absolute URI', req(b'GET http://evil.example/health HTTP/1.1'), False),
    ('header of 100 KB', req(b'GET /health HTTP/1.1', b'X-Big: ' + b'a' * 100000 + b'\r\n'), False),
    ('5,000 headers', req(b'GET /health HTTP/1.1', b''.join(b'X-%d: y\r\n' % i for i in range(5000))), False),
    ('header without colon', req(b'GET /health HTTP/1.1', b'NoColonHere\r\n'), False),
    ('header with NUL', req(b'GET /health HTTP/1.1', b'X-A: a\x00b\r\n'), False),
    ('bare LF line ends', b'GET /livez HTTP/1.1\nHost: x\n\n', False),
    ('obsolete line folding', req(b'GET /livez HTTP/1.1', b'X-A: a\r\n  folded\r\n'), False),
    ('path of 64 KB', req(b'GET /' + b'a' * 65536 + b' HTTP/1.1'), False),
    ('dot segments', req(b'GET /../../etc/passwd HTTP/1.1'), False),
    ('encoded dot segments', req(b'GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1'), False),
    ('encoded NUL in path', req(b'GET /health%00/detailed HTTP/1.1'), False),
    ('encoded slash in parameter', req(b'DELETE /sessions/..%2F..%2Fchat HTTP/1.1'), False),
    ('CRLF in parameter', req(b'POST /health/circuit-breaker/a%0d%0aX-Injected:%201/reset HTTP/1.1',
                              b'Content-Length: 0\r\n'), False),
    ('long parameter', req(b'DELETE /sessions/' + b'a' * 300 + b' HTTP/1.1'), False),
    ('bad percent escapes', req(b'GET /health/%zz%%%2 HTTP/1.1'), False),
    ('query tricks', req(b'GET /metrics?format=prometheus&format=json&&=&a HTTP/1.1'), False),
    ('events since garbage', req(b'GET /events?since=-99999999999999999999999 HTTP/1.1'), False),
    ('chunk size not hex', req(b'POST /chat HTTP/1.1', b'Transfer-Encoding: chunked\r\n', b'zz\r\nabc\r\n0\r\n\r\n'), False),
    ('chunk size huge', req(b'POST /chat HTTP/1.1', b'Transfer-Encoding: chunked\r\n',
                            b'ffffffffffffffffff\r\nabc\r\n0\r\n\r\n'), False),
    ('chunk size negative', req(b'POST /chat HTTP/1.1', b'Transfer-Encoding: chunked\r\n', b'-5\r\nabc\r\n0\r\n\r\n'), False),
    ('chunk without CRLF', req(b'POST /chat HTTP/1.1', b'Transfer-Encoding: chunked\r\n', b'3\r\nabcXY0\r\n\r\n'), False),
    ('chunk extension flood', req(b'POST /chat HTTP/1.1', b'Transfer-Encoding: chunked\r\n',
                                  b'3;' + b'x' * 20000 + b'\r\nabc\r\n0\r\n\r\n'), False),
    ('truncated chunked body', req(b'POST /chat HTTP/1.1', b'Transfer-Encoding: chunked\r\n', b'100\r\nabc'), True),
    ('CL and TE both', req(b'POST /chat HTTP/1.1', b'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n',
                           b'0\r\n\r\nGET /livez HTTP/1.1\r\nHost: x\r\n\r\n'), False),
    ('two Content-Lengths', req(b'POST /chat HTTP/1.1', b'Content-Length: 5\r\nContent-Length: 50\r\n', b'{"a":1}'), False),
    ('Content-Length negative', req(b'POST /chat HTTP/1.1', b'Content-Length: -1\r\n'), False),
    ('Content-Length not a number', req(b'POST /chat HTTP/1.1', b'Content-Length: abc\r\n'), False),
    ('Content-Length overflow', req(b'POST /chat HTTP/1.1', b'Content-Length: 99999999999999999999999\r\n'), False),
    ('unknown Transfer-Encoding', req(b'POST /chat HTTP/1.1', b'Transfer-Encoding: gzip\r\n', b'xx'), False),
    ('huge body announced', req(b'POST /chat HTTP/1.1', b'Content-Length: 50000000\r\n', b'{"message":"'), False),
    ('Expect 100-continue, huge', req(b'POST /chat HTTP/1.1', b'Content-Length: 50000000\r\nExpect: 100-continue\r\n'), False),
    ('Expect unknown', req(b'POST /chat HTTP/1.1', b'Content-Length: 2\r\nExpect: teapot\r\n', b'{}'), False),
    ('deeply nested JSON', req(b'POST /chat HTTP/1.1', b'Content-Length: 200000\r\n', b'[' * 100000 + b']' * 100000), False),
    ('JSON with NUL', post_json(b'{"message":"a\x00b"}'), False),
    ('JSON invalid UTF-8', post_json(b'{"message":"\xff\xfe\xc3("}'), False),
    ('JSON escaped NUL', post_json(b'{"message":"a\\u0000b"}'), False),
    ('JSON lone surrogate', post_json(b'{"message":"\\ud800x"}'), False),
    ('JSON huge number', post_json(b'{"message":"x","guaranteed":1e999}'), False),
    ('JSON duplicate keys', post_json(b'{"message":"a","message":null}'), False),
    ('100 pipelined requests', b''.join(req(b'GET /livez HTTP/1.1') for _ in range(100)), False),
    ('pipelined mixed', req(b'POST /chat HTTP/1.1', b'Content-Length: 17\r\n', b'{"message":"hi"}\n') +
     req(b'GET /nope HTTP/1.1') + req(b'DELETE /sessions/x HTTP/1.1'), False),
    ('Connection: close chat', req(b'POST /chat HTTP/1.1', b'Connection: close\r\nContent-Length: 16\r\n',
                                   b'{"message":"hi"}'), False),
    ('SSE then close', req(b'POST /chat HTTP/1.1', b'Accept: text/event-stream\r\nContent-Length: 16\r\n',
                           b'{"message":"hi"}'), True),
]

for name, payload, half_close in corpus:
    try:
        out = s.raw(payload, timeout=15, shutdown_write=half_close)
    except OSError as e:
        out = ('error: %s' % e).encode()
    status = out.split(b'\r\n', 1)[0][:40]
    t.ok(s.alive(), 'survives: %s (%s)' % (name, status.decode('latin-1') or 'closed'))

# A client that goes away in the middle of its answer (SSE and JSON).
for accept in (b'text/event-stream', b'application/json'):
    c = socket.create_connection((s.host, s.port))
    c.sendall(req(b'POST /chat HTTP/1.1', b'Accept: ' + accept + b'\r\nContent-Length: 16\r\n', b'{"message":"hi"}'))
    c.close()
    t.ok(s.alive(), 'survives a client gone mid-request (%s)' % accept.decode())

# Slowloris: 30 connections trickling headers; the server keeps serving
# others meanwhile and cuts them all.
slow = []
for i in range(30):
    c = socket.create_connection((s.host, s.port))
    c.sendall(b'GET /health HTTP/1.1\r\nHost: x\r\n')
    slow.append(c)
t.ok(s.alive(), 'serves others while 30 slow clients trickle')
t0 = time.monotonic()
cut = 0
for c in slow:
    c.settimeout(20)
    try:
        while c.recv(4096):
            pass
        cut += 1
    except OSError:
        cut += 1
    c.close()
t.ok(cut == 30 and time.monotonic() - t0 < 20, 'every slow client is cut by the timeout', (cut, time.monotonic() - t0))

# Random bytes, and random mutations of valid requests (seeded).
rng = random.Random(1337)
valid = [req(b'GET /health/detailed HTTP/1.1'),
         req(b'POST /chat HTTP/1.1', b'Content-Length: 19\r\n', b'{"message":"hello"}'),
         req(b'POST /chat HTTP/1.1', b'Transfer-Encoding: chunked\r\n', b'5\r\n{"mes\r\ne\r\nsage":"hello"}\r\n0\r\n\r\n')]
payloads = []
for i in range(300):
    if i % 3 == 0:
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
    else:
        b = bytearray(rng.choice(valid))
        for _ in range(rng.randrange(1, 6)):
            op = rng.randrange(3)
            pos = rng.randrange(len(b))
            if op == 0:
                b[pos] = rng.randrange(256)
            elif op == 1:
                del b[pos]
            else:
                b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20)))
        payload = bytes(b)
    payloads.append(payload)


def send_all(chunk):
    for payload in chunk:
        try:
            s.raw(payload, timeout=15, shutdown_write=True)
        except OSError:
            pass


ts = [threading.Thread(target=send_all, args=(payloads[k::10],)) for k in range(10)]
for th in ts:
    th.start()
for th in ts:
    th.join()
t.ok(s.p.poll() is None and s.alive(), '300 random and mutated requests (10 at a time): still alive')
st, _, j = s.json('POST', '/chat', {'message': 'still fine'})
t.ok(st == 200 and j['response'] == 'still fine', 'and still answers a chat', j)
t.eq(s.stop(), 0, 'clean shutdown after the corpus: exit 0')
t.done()
