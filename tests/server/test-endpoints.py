#!/usr/bin/env python3
"""claudelink-server: the command line, every endpoint, every error status,
the admin token, SSE, the outbox, fallbacks and the alternative provider.
Loopback only, port 0, never a sleep."""
import json
import os
import re
import signal
import socket
import tempfile
import time

from srvtest import Checks, Server, in_threads, wait_until, SERVER

t = Checks()
tmp = tempfile.mkdtemp(prefix='clink-server-test-')
TOKEN = 's3cret-token-for-tests'
AUTH = {'Authorization': 'Bearer ' + TOKEN}


def no_leak(name, body):
    text = body.decode('utf-8', 'replace') if isinstance(body, bytes) else json.dumps(body)
    t.ok(TOKEN not in text and 'CLINK_E' not in text and '/work' not in text and
         'fake-claude' not in text, name + ': error body leaks nothing', text[:200])


# ------------------------------------------------------------ command line
def exit_code(args, env=None):
    s = Server(args, env=env, wait=False)
    rc = s.p.wait(30)
    s.err.close()
    return rc, s.p.stdout.read().decode(), s.stderr_text()


rc, out, err = exit_code(['--bogus', 'x'])
t.eq(rc, 2, 'unknown option: exit 2')
t.ok('usage: claudelink-server' in err, 'unknown option: usage on stderr', err)
t.eq(exit_code(['--port', 'abc'])[0], 2, 'bad --port: exit 2')
t.eq(exit_code(['--pool-min', '5', '--pool-max', '2'])[0], 2, '--pool-min above --pool-max: exit 2')
t.eq(exit_code([], env={'LOG_LEVEL': 'LOUD'})[0], 2, 'bad LOG_LEVEL: exit 2')
rc, out, err = exit_code(['--host', '0.0.0.0'])
t.eq(rc, 2, 'non-loopback host without a token: refused')
t.ok('CLAUDELINK_ADMIN_TOKEN' in err, 'non-loopback refusal names the token', err)
rc, out, err = exit_code([], env={'HOST': '0.0.0.0'})
t.eq(rc, 2, 'non-loopback HOST without a token: refused')

s = Server()
t.ok(re.fullmatch(r'listening on http://127\.0\.0\.1:\d+', s.first_line or ''),
     'first stdout line: listening on http://HOST:PORT', s.first_line)
t.ok(s.port and s.port != 8989, '--port 0 picks a free port', s.port)
t.eq(s.stop(), 0, 'SIGTERM on an idle server: exit 0')

sock = socket.socket()
sock.bind(('127.0.0.1', 0))
free_port = sock.getsockname()[1]
sock.close()
s = Server(env={'PORT': str(free_port)})
t.eq(s.port, free_port, 'PORT from the environment')
t.eq(s.stop(), 0, 'exit 0 (PORT)')
s = Server(['--port', '0'], env={'PORT': '1'})
t.ok(s.port not in (None, 1), 'flags win over the environment (--port 0 over PORT=1)', s.port)
t.eq(s.stop(signal.SIGINT), 0, 'SIGINT: exit 0')
s = Server(['--host', 'localhost'])
t.ok(s.first_line == 'listening on http://localhost:%d' % (s.port or 0),
     '--host localhost is loopback', s.first_line)
s.stop()

# --------------------------------------------------------- main endpoints
db = os.path.join(tmp, 'outbox.db')
s = Server(['--db', db, '--pool-min', '1', '--pool-max', '4'],
           env={'CLAUDELINK_ADMIN_TOKEN': TOKEN, 'FAKE_ECHO': '1', 'LOG_LEVEL': 'DEBUG'})
t.ok(s.port, 'server with --db and a token starts', s.first_line)
t.ok(wait_until(lambda: s.request('GET', '/readyz')[0] == 200), 'GET /readyz: 200 once warm')
t.eq(s.json('GET', '/livez')[0], 200, 'GET /livez: 200')

st, h, body = s.request('GET', '/')
t.eq(st, 200, 'GET /: 200')
t.ok(h.get('content-type', '').startswith('text/html'), 'GET /: text/html', h)
t.ok(b'<title>claudelink-server status</title>' in body and b'/health/detailed' in body,
     'GET /: the status page')
t.ok("default-src 'none'" in h.get('content-security-policy', ''), 'GET /: a strict CSP')
t.ok(b'http://' not in body.replace(b'http://www.w3.org', b''), 'status page loads nothing external')

st, h, j = s.json('POST', '/chat', {'message': 'hello there'})
t.eq(st, 200, 'POST /chat: 200')
t.ok(j and j.get('response') == 'hello there' and j.get('source') == 'primary' and
     re.fullmatch(r'[0-9a-f-]{36}', j.get('session_id', '')), 'POST /chat: response, session_id, source', j)
t.eq(h.get('content-type'), 'application/json', 'POST /chat: application/json')
sid = j['session_id'] if j else ''
st, _, j2 = s.json('POST', '/chat', {'message': 'second', 'session_id': sid})
t.ok(st == 200 and j2['session_id'] == sid and j2['response'] == 'second',
     'POST /chat with session_id keeps the session', j2)
st, _, j = s.json('POST', '/chat', {'message': 'x', 'session_id': 'no-such-session'})
t.eq(st, 404, 'POST /chat with an unknown session_id: 404')

# SSE
c = s.conn()
c.request('POST', '/chat', body=json.dumps({'message': 'stream me'}),
          headers={'Accept': 'text/event-stream', 'Content-Type': 'application/json'})
r = c.getresponse()
t.eq(r.status, 200, 'SSE: 200')
t.eq(r.getheader('Content-Type'), 'text/event-stream', 'SSE: text/event-stream')
raw = r.read().decode()
c.close()
events = [blk for blk in raw.split('\n\n') if blk.strip()]
names = [re.search(r'^event: (\S+)', e, re.M).group(1) for e in events]
t.ok(names and names[-1] == 'result' and 'message' in names, 'SSE: message events then event: result', raw)
data = json.loads(re.search(r'^data: (.*)$', events[-1], re.M).group(1))
t.ok(data.get('response') == 'stream me' and data.get('source') == 'primary', 'SSE: the result', data)
msg = json.loads(re.search(r'^data: (.*)$', events[0], re.M).group(1))
t.eq(msg.get('text'), 'stream me', 'SSE: the text as it arrives')

# Sessions
st, _, j = s.json('POST', '/sessions')
t.ok(st == 201 and 'session_id' in j, 'POST /sessions: 201 {session_id}', j)
new_sid = j['session_id']
st, _, j = s.json('GET', '/sessions')
t.ok(st == 200 and any(x['session_id'] == new_sid for x in j['sessions']), 'GET /sessions lists it', j)
st, h, j = s.json('DELETE', '/sessions/' + new_sid)
t.eq(st, 401, 'DELETE /sessions/{id} without the token: 401')
t.ok(h.get('www-authenticate', '').startswith('Bearer'), '401 has WWW-Authenticate: Bearer', h)
st, _, j = s.json('DELETE', '/sessions/' + new_sid, headers={'Authorization': 'Bearer wrong'})
t.eq(st, 401, 'DELETE with a wrong token: 401')
st, _, j = s.json('DELETE', '/sessions/' + new_sid, headers={'Authorization': 'Bearer ' + TOKEN + 'x'})
t.eq(st, 401, 'DELETE with a longer token: 401')
st, _, j = s.json('DELETE', '/sessions/' + new_sid, headers={'Authorization': TOKEN})
t.eq(st, 401, 'DELETE with the token but no Bearer: 401')
st, _, j = s.json('DELETE', '/sessions/' + new_sid, headers=AUTH)
t.ok(st == 200 and j.get('deleted') is True, 'DELETE with the token: 200', j)
t.eq(s.json('DELETE', '/sessions/' + new_sid, headers=AUTH)[0], 404, 'DELETE again: 404')
t.eq(s.json('POST', '/chat', {'message': 'x', 'session_id': new_sid})[0], 404, 'chat on a deleted session: 404')

# Outbox
st, _, j = s.json('POST', '/chat', {'message': 'keep this', 'guaranteed': True})
t.ok(st == 202 and j.get('source') == 'queued' and isinstance(j.get('queued'), int),
     'guaranteed: 202 {queued, source: queued}', j)
qid = j['queued'] if j else 0
got = wait_until(lambda: (lambda x: x if x[0] == 200 and x[2]['state'] == 'DELIVERED' else None)(
    s.json('GET', '/outbox/%d' % qid)))
t.ok(got and got[2]['response'] == 'keep this', 'GET /outbox/{id}: DELIVERED with the response', got)
t.eq(s.json('GET', '/outbox/999999')[0], 404, 'GET /outbox/{unknown}: 404')
t.eq(s.json('GET', '/outbox/abc')[0], 404, 'GET /outbox/abc: 404')

# Health and metrics
st, h, d = s.json('GET', '/health/detailed')
t.eq(st, 200, 'GET /health/detailed: 200')
seed = {
    'status': str, 'service': str, 'version': str, 'uptime_seconds': int, 'timestamp': str,
    'sessions': {'active_count': int, 'total_created': int, 'active_sessions': list, 'session_configs': int},
    'system': {'cpu': {'usage_percent': float, 'count': int, 'load_average': list},
               'memory': {'total_gb': float, 'available_gb': float, 'usage_percent': float,
                          'process_rss_mb': float, 'process_vms_mb': float},
               'disk': {'usage_percent': float}},
    'claude_sdk': {'status': str, 'connection_time_ms': float, 'last_check': str},
    'performance': {'requests_total': int, 'requests_in_progress': int, 'errors_total': int,
                    'error_rate': float},
    'stability': {'circuit_breakers': dict},
    'fallback_stats': {'operations': dict},
}


def shape(obj, spec, path, problems):
    for k, v in spec.items():
        if k not in obj:
            problems.append(path + k + ' missing')
        elif isinstance(v, dict):
            if not isinstance(obj[k], dict):
                problems.append(path + k + ' not an object')
            else:
                shape(obj[k], v, path + k + '.', problems)
        elif v is float:
            if not isinstance(obj[k], (int, float)) or isinstance(obj[k], bool):
                problems.append(path + k + ' not a number')
        elif not isinstance(obj[k], v) or isinstance(obj[k], bool):
            problems.append(path + k + ' not ' + v.__name__)
    return problems


t.eq(shape(d, seed, '', []), [], '/health/detailed: every field of the seed')
t.ok(d['service'] == 'Claude Chat API' and d['status'] in ('healthy', 'degraded', 'unhealthy'),
     '/health/detailed: service and status', d.get('status'))
cb = d['stability']['circuit_breakers'].get('claude_sdk', {})
t.eq(sorted(k for k in ('state', 'failure_count', 'can_execute') if k in cb),
     ['can_execute', 'failure_count', 'state'], 'claude_sdk breaker: state, failure_count, can_execute')
chat = d['fallback_stats']['operations'].get('chat', {})
t.ok(all(k in chat for k in ('total_calls', 'primary_success', 'fallback_used', 'cache_hits')),
     'fallback_stats.operations.chat has the seed keys', chat)
# The report's sessions are the CLI processes (the seed's SDK sessions); the
# server's own sessions are GET /sessions.
se = d['sessions']
t.ok(se['active_count'] >= 1 and len(se['active_sessions']) >= 1 and
     all(isinstance(x, str) and x for x in se['active_sessions']) and se['total_created'] >= se['active_count'],
     'sessions: the live CLI sessions and their ids', se)

st, _, j = s.json('GET', '/health/stability')
t.ok(st == 200 and 'claude_sdk' in j['circuit_breakers'] and 'chat' in j['fallback_stats']['operations']
     and 'health_checks' in j, 'GET /health/stability: breakers, fallbacks, checks', j)
st, h, m = s.json('GET', '/metrics')
keys = ['requests_total', 'requests_in_progress', 'errors_total', 'sessions_created', 'sessions_active',
        'uptime_seconds', 'fallbacks_used', 'circuit_breakers_open', 'memory_usage_percent',
        'cpu_usage_percent']
t.ok(st == 200 and all(k in m for k in keys), 'GET /metrics: the seed\'s ten keys', m)
for how, hdrs, path in (('Accept: text/plain', {'Accept': 'text/plain'}, '/metrics'),
                        ('?format=prometheus', {}, '/metrics?format=prometheus')):
    st, h, body = s.request('GET', path, headers=hdrs)
    t.eq(h.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8', 'metrics ' + how + ': content type')
    text = body.decode()
    bad = [l for l in text.splitlines() if l and not l.startswith('# ') and
           not re.fullmatch(r'[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eE]+|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (\+Inf|NaN)', l)]
    t.ok(st == 200 and '# TYPE claudelink_requests_total counter' in text and not bad,
         'metrics ' + how + ': Prometheus text', bad[:3])
st, h, body = s.request('GET', '/metrics', headers={'Accept': 'application/json'})
t.eq(h.get('content-type'), 'application/json', 'metrics Accept: application/json stays JSON')
st, h, j = s.json('GET', '/health')
t.ok(st == 200 and h.get('content-type') == 'application/health+json' and j['status'] == 'pass' and
     isinstance(j.get('checks'), dict), 'GET /health: application/health+json pass', (st, h, j))

# Management
st, _, j = s.json('POST', '/health/circuit-breaker/claude_sdk/reset')
t.eq(st, 401, 'breaker reset without the token: 401')
st, _, j = s.json('POST', '/health/circuit-breaker/claude_sdk/reset', headers=AUTH)
t.ok(st == 200 and j == {'circuit_breaker': 'claude_sdk', 'state': 'closed'}, 'breaker reset: 200', j)
st, _, j = s.json('POST', '/health/circuit-breaker/nope/reset', headers=AUTH)
t.eq(st, 404, 'breaker reset of an unknown name: 404')
st, _, j = s.json('POST', '/health/fallback-cache/clear')
t.eq(st, 401, 'cache clear without the token: 401')
st, _, j = s.json('POST', '/health/fallback-cache/clear', headers=AUTH)
t.ok(st == 200 and isinstance(j.get('cleared'), int), 'cache clear: 200 {cleared}', j)
st, _, j = s.json('GET', '/events')
t.ok(st == 200 and any(e['event'] == 'circuit_breaker_reset' for e in j['events']) and
     any(e['event'] == 'message_delivered' for e in j['events']), 'GET /events: recent events', j)
t.ok(not any(e['event'] == 'http_request' for e in j['events']), 'the access log stays out of the ring')
nxt = j['next']
st, _, j = s.json('GET', '/events?since=%d' % nxt)
t.ok(st == 200 and all(e['seq'] >= nxt for e in j['events']), 'GET /events?since=N')

# Bad input
for name, body, want in (('malformed JSON', '{"message": ', 400), ('not an object', '[1,2]', 400),
                         ('empty body', '', 400), ('missing message', '{"msg":"x"}', 400),
                         ('message not a string', '{"message": 5}', 400),
                         ('empty message', '{"message": ""}', 400),
                         ('session_id not a string', '{"message":"x","session_id":5}', 400),
                         ('guaranteed not a bool', '{"message":"x","guaranteed":"yes"}', 400),
                         ('message not UTF-8', b'{"message":"\xff\xfe"}', 400)):
    st, h, data = s.request('POST', '/chat', body=body, headers={'Content-Type': 'application/json'})
    j = json.loads(data) if data else {}
    t.ok(st == want and h.get('content-type') == 'application/json' and 'error' in j,
         name + ': %d JSON error' % want, (st, data[:100]))
    no_leak(name, data)
out = s.raw(b'POST /chat HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{"message":"aaaa' % ((1 << 20) + 1))
t.ok(out.startswith(b'HTTP/1.1 413'), 'body over 1 MiB: 413', out[:60])
st, h, data = s.request('POST', '/chat', body=b'{"message":"' + b'a' * ((1 << 20) - 20) + b'"}')
t.eq(st, 200, 'a body just under 1 MiB is fine')
out = s.raw(b'POST /chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' +
            (b'10000\r\n' + b'a' * 0x10000 + b'\r\n') * 20 + b'0\r\n\r\n')
t.ok(out.startswith(b'HTTP/1.1 413') or out == b'', 'chunked body over the limit: 413 (or cut)', out[:60])
st, h, data = s.request('GET', '/no/such/path')
t.ok(st == 404 and json.loads(data)['error'], 'unknown path: 404 JSON')
st, h, data = s.request('GET', '/chat')
t.ok(st == 405 and h.get('allow') == 'POST', 'wrong method: 405 with Allow: POST', h)
st, h, data = s.request('PUT', '/sessions')
t.ok(st == 405 and h.get('allow') == 'GET, HEAD, POST', '405 Allow lists every method', h)
st, h, data = s.request('HEAD', '/health/detailed')
t.ok(st == 200 and data == b'', 'HEAD on a GET endpoint: 200, no body')
st, h, data = s.request('GET', '/health/../chat')
t.eq(st, 404, 'path tricks are just unknown paths')
t.ok(s.alive(), 'still alive after bad input')
rc = s.stop()
t.eq(rc, 0, 'exit 0')
evs = s.events()
t.ok(any(e.get('event') == 'http_request' for e in evs), 'LOG_LEVEL=DEBUG: http_request events on stderr')
t.ok(all('timestamp' in e and 'level' in e and 'component' in e for e in evs) and len(evs) > 5,
     'stderr is JSON lines with timestamp, level, event, component')
t.ok(TOKEN not in s.stderr_text(), 'the token never reaches the log')

# ------------------------------------------------- limits: in-flight, slow
s = Server(['--pool-min', '2', '--pool-max', '2'],
           env={'CLAUDELINK_MAX_INFLIGHT': '2', 'FAKE_MSG_DELAY_MS': '1500'})
wait_until(lambda: s.request('GET', '/readyz')[0] == 200)
ts, res = in_threads(lambda: s.json('POST', '/chat', {'message': 'slow'}), [(), ()])
busy = wait_until(lambda: s.json('GET', '/metrics')[2]['requests_in_progress'] >= 3)
st, h, data = s.request('POST', '/chat', body='{"message":"one too many"}')
t.ok(busy and st == 503 and h.get('retry-after'), 'too many requests in flight: 503 with Retry-After', (st, h))
for th in ts:
    th.join()
t.ok(all(not isinstance(r, Exception) and r[0] == 200 for r in res), 'the requests in flight still answer 200', res)
t.eq(s.json('GET', '/health/detailed')[0], 200, 'health endpoints are never limited')
t.eq(s.stop(), 0, 'exit 0 (limits)')

s = Server(env={'CLAUDELINK_REQUEST_TIMEOUT_S': '1'})
t0 = time.monotonic()
out = s.raw(b'GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ', timeout=20)
t.ok(time.monotonic() - t0 < 15 and not out.startswith(b'HTTP/1.1 200'), 'a slow client is cut by the request timeout',
     (time.monotonic() - t0, out[:40]))
t0 = time.monotonic()
out = s.raw(b'POST /chat HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"mess', timeout=20)
t.ok(time.monotonic() - t0 < 15, 'a slow body is cut too', time.monotonic() - t0)
t.ok(s.alive(), 'alive after slow clients')
t.eq(s.stop(), 0, 'exit 0 (slow)')

# ------------------------------------------- fallbacks and the breaker
s = Server(['--mock-response', 'a mock answer'])
wait_until(lambda: s.request('GET', '/readyz')[0] == 200)
st, _, j = s.json('POST', '/chat', {'message': 'fail:529'})
t.ok(st == 200 and j['source'] == 'mock' and j['response'] == 'a mock answer',
     'API 529 -> the mock answer (source mock)', j)
st, _, data = s.request('POST', '/chat', body='{"message":"fail:400"}')
t.eq(st, 502, 'API 400 is never masked by a fallback: 502')
no_leak('502', data)
for _ in range(3):
    s.json('POST', '/chat', {'message': 'fail:529'})
st, _, j = s.json('GET', '/health/stability')
t.eq(j['circuit_breakers']['claude_sdk']['state'], 'open', 'repeated 529s open claude_sdk')
t.eq(s.json('GET', '/health')[0], 503, 'GET /health: 503 while claude_sdk is open')
st, _, j = s.json('POST', '/chat', {'message': 'hello'})
t.ok(st == 200 and j['source'] == 'mock', 'breaker open -> mock', j)
st, _, j = s.json('GET', '/health/detailed')
fs = j['fallback_stats']['operations']['chat']
t.ok(fs['fallback_used'] >= 5 and fs['total_calls'] >= 6, 'fallback statistics count them', fs)
st, _, j = s.json('POST', '/health/circuit-breaker/claude_sdk/reset')
t.eq(st, 200, 'reset without a configured token is allowed')
st, _, j = s.json('POST', '/chat', {'message': 'hello'})
t.ok(st == 200 and j['source'] == 'primary', 'after the reset: primary again', j)
t.eq(s.stop(), 0, 'exit 0 (fallbacks)')

# The seed's chat chain through /chat: an answer of the primary path is
# cached; while the API fails (529 from every process) the same question
# gets the cached answer, a new one the mock. Clearing the cache counts it.
fail_file = os.path.join(tempfile.mkdtemp(), 'fail')
s = Server(['--mock-response', 'a mock answer'], env={'FAKE_FAIL_FILE': fail_file, 'FAKE_ECHO': '1'})
wait_until(lambda: s.request('GET', '/readyz')[0] == 200)
st, _, first = s.json('POST', '/chat', {'message': 'what is cached?'})
t.ok(st == 200 and first['source'] == 'primary', 'cache route: primary answer first', first)
with open(fail_file, 'w') as f:
    f.write('529\n')
st, _, j = s.json('POST', '/chat', {'message': 'what  is cached? '})
t.ok(st == 200 and j['source'] == 'cache' and j['response'] == first['response'],
     'cache route: API 529 -> the cached answer (same question, whitespace aside)', j)
st, _, j = s.json('POST', '/chat', {'message': 'never asked'})
t.ok(st == 200 and j['source'] == 'mock', 'cache route: a new question -> the mock', j)
st, _, j = s.json('GET', '/health/stability')
fs = j['fallback_stats']['operations']['chat']
t.ok(fs['cache_hits'] == 1 and fs['fallback_used'] == 2, 'cache route: /health/stability counts the hit', fs)
os.unlink(fail_file)
st, _, j = s.json('POST', '/health/fallback-cache/clear')
t.ok(st == 200 and j['cleared'] == 1, 'cache clear: the one answer dropped', j)
t.eq(s.stop(), 0, 'exit 0 (cache)')

s = Server()
wait_until(lambda: s.request('GET', '/readyz')[0] == 200)
for _ in range(3):
    s.json('POST', '/chat', {'message': 'fail:529'})
st, h, data = s.request('POST', '/chat', body='{"message":"hello"}')
t.ok(st == 503 and h.get('retry-after'), 'breaker open, no fallback: 503 with Retry-After', (st, h, data))
no_leak('503', data)
st, _, data = s.request('POST', '/chat', body='{"message":"x","guaranteed":true}')
t.eq(st, 400, 'guaranteed without --db: 400')
t.eq(s.stop(), 0, 'exit 0 (no fallback)')

s = Server(['--alt-env', 'FAKE_API_ERROR=0', '--alt-model', 'claude-alt-1'], env={'FAKE_API_ERROR': '529'})
st, _, j = s.json('POST', '/chat', {'message': 'hello'})
t.ok(st == 200 and j['source'] == 'alternative', 'primary 529 -> the alternative provider', j)
st, _, j = s.json('GET', '/health/stability')
t.ok('alternative_provider' in j['circuit_breakers'], 'the alternative has its own breaker', j)
t.eq(s.stop(), 0, 'exit 0 (alternative)')

# The fake echoes every prompt its process ran (its context). By default a
# new chat may land on a warm process holding another chat's turns; with
# CLAUDELINK_ISOLATE=1 never: each conversation gets a process of its own,
# and a session still continues in its own.
echo = {'FAKE_ECHO': '1', 'FAKE_ECHO_HISTORY': '1'}
s = Server(['--pool-min', '1', '--pool-max', '1'], env=echo)
wait_until(lambda: s.request('GET', '/readyz')[0] == 200)
s.json('POST', '/chat', {'message': 'first'})
st, _, j = s.json('POST', '/chat', {'message': 'second'})
t.ok(st == 200 and j['response'] == 'first | second', 'default: a warm process keeps earlier context', j)
t.eq(s.stop(), 0, 'exit 0 (shared context)')
s = Server(['--pool-min', '2', '--pool-max', '4'], env=dict(echo, CLAUDELINK_ISOLATE='1'))
wait_until(lambda: s.request('GET', '/readyz')[0] == 200)
answers = [s.json('POST', '/chat', {'message': 'isolated %d' % i}) for i in range(5)]
t.ok(all(a[0] == 200 and a[2]['response'] == 'isolated %d' % i for i, a in enumerate(answers)),
     'isolate: every new chat sees only its own prompt', answers)
sid = answers[4][2]['session_id']
st, _, j = s.json('POST', '/chat', {'message': 'next', 'session_id': sid})
t.ok(st == 200 and j['session_id'] == sid and j['response'] == 'isolated 4 | next',
     'isolate: a session continues in its own process', j)
d = s.json('GET', '/health/detailed')[2]
t.ok(d['pool']['created'] >= 5 and d['pool']['closed'] >= 1 and d['pool']['size'] <= 4,
     'isolate: a process per conversation; at max size the oldest made room', d['pool'])
t.eq(s.stop(), 0, 'exit 0 (isolate)')
t.eq(exit_code([], env={'CLAUDELINK_ISOLATE': 'yes'})[0], 2, 'bad CLAUDELINK_ISOLATE: exit 2')

s = Server(cli='/nonexistent/claude')
st, h, data = s.request('POST', '/chat', body='{"message":"hello"}')
t.eq(st, 503, 'CLI not found: 503')
no_leak('cli not found', data)
t.eq(s.stop(), 0, 'exit 0 (no CLI)')

t.done()
