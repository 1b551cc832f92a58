#!/usr/bin/env python3
"""GET /metrics as Prometheus text must pass `promtool check metrics`
(Debian's prometheus package). Skips (77) when promtool is not installed."""
import shutil
import subprocess
import sys

from srvtest import Checks, Server, wait_until

promtool = shutil.which('promtool')
if promtool is None:
    print('SKIP: promtool not installed (apt-get install prometheus)')
    sys.exit(77)
t = Checks()
s = Server(['--mock-response', 'm'])
wait_until(lambda: s.request('GET', '/readyz')[0] == 200)
for msg in ('hello', 'fail:529', 'fail:400'):
    s.json('POST', '/chat', {'message': msg})
for path, hdrs in (('/metrics', {'Accept': 'text/plain'}), ('/metrics?format=prometheus', {})):
    st, h, body = s.request('GET', path, headers=hdrs)
    t.eq(st, 200, path + ': 200')
    r = subprocess.run([promtool, 'check', 'metrics'], input=body, capture_output=True)
    t.ok(r.returncode == 0, path + ': promtool check metrics', (r.stdout + r.stderr).decode()[-800:])
t.eq(s.stop(), 0, 'exit 0')
t.done()
