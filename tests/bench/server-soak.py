#!/usr/bin/env python3
"""Soak client for claudelink-server (tests/bench/server-soak.sh): exactly N
mixed requests over C keep-alive connections (asyncio, raw HTTP/1.1), each
request accounted for: its status, or the error that took its place
(reset, timeout, malformed answer). Prints one JSON line:
  {"total": N, "statuses": {"200": ..}, "errors": {..}, "seconds": S}
Usage: server-soak.py HOST PORT N [CONNECTIONS]"""
import asyncio
import collections
import json
import sys
import time

host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conns = int(sys.argv[4]) if len(sys.argv) > 4 else 32


def req(method, path, body=b'', headers=()):
    h = [b'%s %s HTTP/1.1' % (method, path), b'Host: %s:%d' % (host.encode(), port)]
    h += list(headers)
    if body or method in (b'POST', b'PUT', b'DELETE'):
        h.append(b'Content-Length: %d' % len(body))
    return b'\r\n'.join(h) + b'\r\n\r\n' + body


JSON = b'Content-Type: application/json'
REQS = [
    req(b'POST', b'/chat', b'{"message":"hello"}', [JSON]),
    req(b'GET', b'/health/detailed'),
    req(b'POST', b'/chat', b'{"message":"stream"}', [JSON, b'Accept: text/event-stream']),
    req(b'GET', b'/metrics'),
    req(b'POST', b'/chat', b'{"message":', [JSON]),
    req(b'GET', b'/metrics?format=prometheus'),
    req(b'POST', b'/sessions'),
    req(b'GET', b'/health'),
    req(b'POST', b'/chat', b'{"message":"hello again"}', [JSON]),
    req(b'GET', b'/no/such/path'),
    req(b'DELETE', b'/sessions/00000000-0000-4000-8000-000000000000'),
    req(b'GET', b'/health/stability'),
    req(b'PUT', b'/chat'),
    req(b'GET', b'/readyz'),
    req(b'GET', b'/events?since=0'),
    req(b'GET', b'/sessions'),
]


async def read_response(r):
    line = await r.readline()
    if not line:
        raise ConnectionResetError('closed')
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b'HTTP/1.'):
        raise ValueError('bad status line %r' % line[:40])
    status = int(parts[1])
    length, chunked, close = None, False, False
    while True:
        h = await r.readline()
        if h in (b'\r\n', b'\n'):
            break
        if not h:
            raise ConnectionResetError('closed in headers')
        k, _, v = h.partition(b':')
        k, v = k.strip().lower(), v.strip().lower()
        if k == b'content-length':
            length = int(v)
        elif k == b'transfer-encoding' and b'chunked' in v:
            chunked = True
        elif k == b'connection' and v == b'close':
            close = True
    if chunked:
        while True:
            size = int((await r.readline()).split(b';')[0], 16)
            await r.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await r.readexactly(length)
    return status, close


async def worker(wid, count, statuses, errors):
    rw = None
    for i in range(count):
        payload = REQS[(wid * 7 + i) % len(REQS)]
        try:
            if rw is None:
                rw = await asyncio.open_connection(host, port)
            rw[1].write(payload)
            status, close = await asyncio.wait_for(read_response(rw[0]), 60)
            statuses[str(status)] += 1
            if close:
                rw[1].close()
                rw = None
        except Exception as e:  # accounted for, and a new connection
            errors[type(e).__name__] += 1
            if rw:
                rw[1].close()
            rw = None
    if rw:
        rw[1].close()


async def main():
    statuses, errors = collections.Counter(), collections.Counter()
    t0 = time.monotonic()
    share = [total // conns + (1 if k < total % conns else 0) for k in range(conns)]
    await asyncio.gather(*(worker(k, share[k], statuses, errors) for k in range(conns)))
    print(json.dumps({'total': total, 'statuses': dict(statuses), 'errors': dict(errors),
                      'seconds': round(time.monotonic() - t0, 1)}))


asyncio.run(main())
