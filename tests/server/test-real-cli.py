#!/usr/bin/env python3
"""The real `claude` CLI behind claudelink-server, offline against loopback
Messages API stubs: a chat turn (JSON and SSE) and a session's second turn;
the API answering 529 -> the mock fallback (seen through /chat's source and
/health/stability); an alternative provider (a second pool whose CLI talks
to another stub) answering when the first fails. Skips (77) unless
CLINK_TEST_REAL_CLI names the binary (tests/real-cli/install.sh)."""
import json
import os
import subprocess
import sys
import tempfile

from srvtest import Checks, Server, wait_until

cli = os.environ.get('CLINK_TEST_REAL_CLI')
if not cli:
    print('SKIP: set CLINK_TEST_REAL_CLI to a claude binary (tests/real-cli/install.sh | tail -n1)')
    sys.exit(77)
t = Checks()
work = tempfile.mkdtemp(prefix='clink-server-real-')


def stub(steps):
    """A Messages API stub on its own port; returns (process, port)."""
    path = os.path.join(work, 'script-%d.json' % len(os.listdir(work)))
    json.dump({'steps': steps}, open(path, 'w'))
    p = subprocess.Popen([sys.executable, os.environ['CLINK_TEST_STUB'], '--script', path],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    return p, int(p.stdout.readline().decode().split()[1])


ok_stub, ok_port = stub([{}])
bad_stub, bad_port = stub([{'error': 529, 'message': 'Overloaded'}])
home = os.path.join(work, 'home')
os.makedirs(home)
os.makedirs(os.path.join(work, 'tmp'))


def env_for(port):
    return {'HOME': home, 'ANTHROPIC_BASE_URL': 'http://127.0.0.1:%d' % port,
            'ANTHROPIC_API_KEY': 'sk-test-dummy', 'CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC': '1',
            'DISABLE_TELEMETRY': '1', 'DISABLE_AUTOUPDATER': '1', 'CLAUDE_CODE_MAX_RETRIES': '0',
            'TMPDIR': os.path.join(work, 'tmp')}


def ready(s):
    return wait_until(lambda: s.request('GET', '/readyz', timeout=120)[0] == 200, 100000)


s = Server(['--pool-min', '1', '--pool-max', '2'], env=env_for(ok_port), cli=cli)
t.ok(ready(s), 'ready with a real CLI')
st, _, j = s.json('POST', '/chat', {'message': 'hello real'}, timeout=300)
t.ok(st == 200 and j['source'] == 'primary' and 'hello real' in j['response'],
     'POST /chat through the real CLI', (st, j))
sid = j['session_id'] if j else None
st, _, j = s.json('POST', '/chat', {'message': 'second turn', 'session_id': sid}, timeout=300)
t.ok(st == 200 and j['session_id'] == sid and 'second turn' in j['response'], 'a session\'s second turn', (st, j))
c = s.conn(300)
c.request('POST', '/chat', body=json.dumps({'message': 'streamed'}), headers={'Accept': 'text/event-stream'})
r = c.getresponse()
body = r.read().decode()
t.ok(r.status == 200 and 'event: result' in body and 'streamed' in body, 'SSE through the real CLI', body[-300:])
t.eq(s.stop(), 0, 'exit 0')

# The API answers 529: the mock fallback answers, and the breaker saw it.
s = Server(['--pool-min', '1', '--pool-max', '1', '--mock-response', 'mocked'], env=env_for(bad_port), cli=cli)
t.ok(ready(s), 'ready (API failing)')
st, _, j = s.json('POST', '/chat', {'message': 'overloaded?'}, timeout=300)
t.ok(st == 200 and j['source'] == 'mock' and j['response'] == 'mocked', 'API 529 -> the mock answer', (st, j))
st, _, j = s.json('GET', '/health/stability')
t.ok(j['circuit_breakers']['claude_sdk']['failure_count'] >= 1, '/health/stability counts the failure', j)
t.eq(s.stop(), 0, 'exit 0 (529)')

# An alternative provider: a second pool whose CLI talks to another API.
s = Server(['--pool-min', '1', '--pool-max', '1', '--alt-env', 'ANTHROPIC_BASE_URL=http://127.0.0.1:%d' % ok_port],
           env=env_for(bad_port), cli=cli)
t.ok(ready(s), 'ready (with an alternative)')
st, _, j = s.json('POST', '/chat', {'message': 'via the alternative'}, timeout=300)
t.ok(st == 200 and j['source'] == 'alternative' and 'via the alternative' in j['response'],
     'API 529 -> the alternative provider answers', (st, j))
t.eq(s.stop(), 0, 'exit 0 (alternative)')
for p in (ok_stub, bad_stub):
    p.stdin.close()
    p.wait(30)
t.done()
