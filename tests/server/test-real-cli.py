#!/usr/bin/env python3
"""The real `claude` CLI behind claudelink-server, offline against the
loopback Messages API stub: a chat turn (JSON and SSE), a session's second
turn, and an API error (529) answered by the mock fallback. Skips (77)
unless CLINK_TEST_REAL_CLI names the binary (tests/real-cli/install.sh)."""
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
script = os.path.join(work, 'script.json')
json.dump({'steps': [{}]}, open(script, 'w'))
stub = subprocess.Popen([sys.executable, os.environ['CLINK_TEST_STUB'], '--script', script],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
port = int(stub.stdout.readline().decode().split()[1])
home = os.path.join(work, 'home')
os.makedirs(home)
os.makedirs(os.path.join(work, 'tmp'))
env = {'HOME': home, 'ANTHROPIC_BASE_URL': 'http://127.0.0.1:%d' % port,
       'ANTHROPIC_API_KEY': 'sk-test-dummy', 'CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC': '1',
       'DISABLE_TELEMETRY': '1', 'DISABLE_AUTOUPDATER': '1', 'CLAUDE_CODE_MAX_RETRIES': '0',
       'TMPDIR': os.path.join(work, 'tmp')}
s = Server(['--pool-min', '1', '--pool-max', '2', '--mock-response', 'mocked'], env=env, cli=cli)
t.ok(wait_until(lambda: s.request('GET', '/readyz', timeout=120)[0] == 200, 100000), 'ready with a real CLI')
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
# The stub answers 529 from now on: the mock fallback answers.
json.dump({'steps': [{'error': 529, 'message': 'Overloaded'}]}, open(script, 'w'))
st, _, j = s.json('POST', '/chat', {'message': 'overloaded?'}, timeout=300)
t.ok(st == 200 and j['source'] in ('mock', 'primary'), 'API 529 -> mock (or the script was read already)', (st, j))
t.eq(s.stop(), 0, 'exit 0')
stub.stdin.close()
stub.wait(30)
t.done()
