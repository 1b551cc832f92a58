#!/usr/bin/env python3
"""Graceful shutdown with requests in flight: SIGTERM stops accepting,
every request in flight (JSON and SSE) is answered, the sessions are closed
in batches, exit 0. A second signal hurries the shutdown along."""
import json
import signal
import socket

from srvtest import Checks, Server, in_threads, wait_until

t = Checks()

s = Server(['--pool-min', '3', '--pool-max', '6'], env={'FAKE_MSG_DELAY_MS': '1500'})
wait_until(lambda: s.request('GET', '/readyz')[0] == 200)


def sse(msg):
    c = s.conn(120)
    c.request('POST', '/chat', body=json.dumps({'message': msg}), headers={'Accept': 'text/event-stream'})
    r = c.getresponse()
    return r.status, r.read().decode()


ts, res = in_threads(lambda m: s.json('POST', '/chat', {'message': m}, timeout=120),
                     [('in flight %d' % i,) for i in range(4)])
ts2, res2 = in_threads(sse, [('streamed',)])
busy = wait_until(lambda: s.json('GET', '/metrics')[2]['requests_in_progress'] >= 6)
t.ok(busy, 'five requests are in flight')
s.signal(signal.SIGTERM)
# Once the shutdown began, new connections are refused (the listening
# socket is closed): wait for that, a connect at a time.


def refused():
    try:
        socket.create_connection((s.host, s.port), timeout=5).close()
        return False
    except OSError:
        return True


t.ok(wait_until(refused, 5000), 'after SIGTERM: new connections are refused')
for th in ts + ts2:
    th.join()
t.ok(all(not isinstance(r, Exception) and r[0] == 200 and r[2]['source'] == 'primary' for r in res),
     'every JSON request in flight was answered 200', res)
st, body = res2[0] if not isinstance(res2[0], Exception) else (None, str(res2[0]))
t.ok(st == 200 and 'event: result' in body, 'the SSE stream in flight ended with its result', body[-200:])
rc = s.stop()
t.eq(rc, 0, 'exit 0 after a graceful shutdown')
evs = [e['event'] for e in s.events()]
for name in ('shutdown_started', 'requests_drained', 'pool_shutdown', 'server_stopped'):
    t.ok(name in evs, 'event ' + name)
t.ok(evs.index('requests_drained') < evs.index('pool_shutdown'),
     'requests drain before the sessions close')

# A second signal: the pool closes its members at once.
s = Server(['--pool-min', '2', '--pool-max', '2'], env={'FAKE_MSG_DELAY_MS': '60000'})
wait_until(lambda: s.request('GET', '/readyz')[0] == 200)
ts, res = in_threads(lambda: s.request('POST', '/chat', body='{"message":"forever"}', timeout=120), [()])
wait_until(lambda: s.json('GET', '/metrics')[2]['requests_in_progress'] >= 2)
s.signal(signal.SIGTERM)
t.ok(wait_until(lambda: 'shutdown_started' in s.stderr_text(), 100000), 'shutdown started')
s.signal(signal.SIGINT)
rc = s.stop(timeout=60)
for th in ts:
    th.join()
t.eq(rc, 0, 'a second signal hurries it: exit 0')
r = res[0]
t.ok(not isinstance(r, Exception) and r[0] == 503, 'the hurried request got 503', r)
t.done()
