#!/usr/bin/env python3
"""The status page in a real browser: headless Chromium loads GET / from a
running server with some traffic behind it, runs the page's polling for a
few virtual seconds, and the rendered DOM must show the server's own
figures (status, sessions, pool, breakers, fallback statistics, the charts,
recent events). A screenshot is kept: $CLINK_ARTIFACTS/status-page.png.
Skips (77) when chromium is missing, except with CI=true (then it fails)."""
import html
import os
import re
import shutil
import subprocess
import sys
import tempfile

from srvtest import Checks, Server, wait_until

browser = shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')
if browser is None:
    if os.environ.get('CI') == 'true':
        print('FAIL chromium is required in CI (.ci/install-deps installs it)')
        sys.exit(1)
    print('SKIP: chromium not installed (apt-get install chromium)')
    sys.exit(77)

t = Checks()
artifacts = os.environ.get('CLINK_ARTIFACTS') or tempfile.mkdtemp()
s = Server(['--pool-min', '2', '--pool-max', '3', '--mock-response', 'mocked'], env={'FAKE_ECHO': '1'})
wait_until(lambda: s.request('GET', '/readyz')[0] == 200)
for i in range(5):
    s.json('POST', '/chat', {'message': 'hello %d' % i})
s.json('POST', '/chat', {'message': 'fail:529'})  # a fallback (mock)
s.json('POST', '/sessions')
_, _, health = s.json('GET', '/health/detailed')

profile = tempfile.mkdtemp(prefix='clink-chromium-')
flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--disable-dev-shm-usage', '--hide-scrollbars', '--user-data-dir=' + profile,
         '--virtual-time-budget=6000']
url = 'http://127.0.0.1:%d/?interval=500' % s.port


def run(extra):
    return subprocess.run([browser] + flags + extra + [url], capture_output=True, timeout=120)


r = run(['--dump-dom'])
dom = r.stdout.decode('utf-8', 'replace')
t.ok(r.returncode == 0 and '<body' in dom, 'chromium rendered the page', r.stderr[-500:])
open(os.path.join(artifacts, 'status-page.html'), 'w').write(dom)


def text_of(elem_id):
    m = re.search(r'id="%s"[^>]*>([^<]*)<' % re.escape(elem_id), dom)
    return html.unescape(m.group(1)).strip() if m else None


polls = re.search(r'<body[^>]*data-polls="(\d+)"', dom)
t.ok(polls and int(polls.group(1)) >= 3, 'the page polled /health/detailed several times',
     polls and polls.group(1))
t.eq(text_of('status'), health['status'], 'status badge shows the server status')
t.ok(re.search(r'<body[^>]*data-status="%s"' % health['status'], dom), 'body carries the status')
t.eq(text_of('version'), health['version'], 'version')
t.eq(text_of('sessions-active'), str(health['sessions']['active_count']), 'sessions: active count')
t.eq(text_of('sessions-created'), str(health['sessions']['total_created']), 'sessions: created')
t.ok(text_of('pool-size') not in (None, '–') and int(text_of('pool-size')) >= 2, 'pool: processes', text_of('pool-size'))
t.ok(text_of('pool-idle') not in (None, '–'), 'pool: idle shown', text_of('pool-idle'))
t.eq(text_of('sdk-status'), 'connected', 'claude_sdk: connected')
req_total = text_of('req-total')
t.ok(req_total and req_total.isdigit() and int(req_total) >= health['performance']['requests_total'],
     'requests total (grows with the page\'s own polls)', req_total)
t.ok(re.search(r'<tr data-breaker="claude_sdk"><td>claude_sdk</td><td class="state closed">closed</td>', dom),
     'breakers table: claude_sdk closed')
t.ok(re.search(r'<tr data-breaker="session_operations">', dom), 'breakers table: session_operations')
t.ok(dom.count('>reset</button>') >= 2, 'a reset button per breaker')
fb = re.search(r'<tr data-operation="chat"><td>chat</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>', dom)
t.ok(fb and (int(fb.group(1)), int(fb.group(2)), int(fb.group(3))) == (6, 5, 1),
     'fallback statistics: 6 calls, 5 primary, 1 fallback', fb and fb.groups())
rate = text_of('rate-now')
t.ok(rate not in (None, '–') and float(rate) >= 0, 'request rate chart has a value', rate)
t.ok(text_of('errrate-now') not in (None, '–'), 'error rate chart has a value')
t.ok('data-event="server_started"' in dom and 'data-event="session_created"' in dom,
     'recent events listed')
t.ok('cannot reach the server' in dom and 'id="banner" style="display: none;"' in dom,
     'no error banner')

shot = os.path.join(artifacts, 'status-page.png')
if os.path.exists(shot):
    os.unlink(shot)
r = run(['--screenshot=' + shot, '--window-size=1280,1000'])
t.ok(os.path.exists(shot) and os.path.getsize(shot) > 10000, 'screenshot kept: ' + shot,
     r.stderr[-300:])
t.eq(s.stop(), 0, 'exit 0')
shutil.rmtree(profile, ignore_errors=True)
t.done()
