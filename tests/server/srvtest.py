"""A small harness for claudelink-server tests: start the server on a free
loopback port, wait for its first stdout line (never a sleep), talk HTTP to
it, stop it, and count checks.

Environment: CLINK_SERVER (the binary), CLINK_TEST_FAKE_CLI (the fake CLI),
CLINK_SERVER_WRAPPER (optional: a command the server runs under, e.g.
"valgrind --error-exitcode=3 --leak-check=full --show-leak-kinds=definite")."""
import http.client
import json
import os
import signal as _signal
import socket
import subprocess
import sys
import threading

SERVER = os.environ.get('CLINK_SERVER', '')
FAKE = os.environ.get('CLINK_TEST_FAKE_CLI', '')


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, cond, name, detail=''):
        if cond:
            self.passed += 1
            print('ok   ' + name, flush=True)
        else:
            self.failed += 1
            print('FAIL ' + name + (': ' + str(detail) if detail != '' else ''), flush=True)
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, 'got %r, want %r' % (got, want))

    def done(self):
        print('%d passed, %d failed' % (self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed else 0)


class Server:
    """claudelink-server as a child process."""

    def __init__(self, args=(), env=None, cli=None, stderr_path=None, wait=True):
        e = dict(os.environ)
        e.setdefault('LOG_LEVEL', 'INFO')
        for k in [k for k in e if k.startswith('FAKE_')]:
            del e[k]
        e.pop('CLAUDELINK_ADMIN_TOKEN', None)
        e.pop('HOST', None)
        e.pop('PORT', None)
        if env:
            e.update(env)
        argv = os.environ.get('CLINK_SERVER_WRAPPER', '').split() + [SERVER]
        if cli is not False:
            argv += ['--cli', cli or FAKE]
        if '--port' not in args and 'PORT' not in (env or {}):
            argv += ['--port', '0']
        argv += list(args)
        self.stderr_path = stderr_path or os.path.join(
            os.environ.get('TMPDIR', '/tmp'), 'clink-server-%d.err' % os.getpid())
        self.err = open(self.stderr_path, 'wb')
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.err, env=e)
        self.first_line = None
        self.host = self.port = None
        if wait:
            self.first_line = self.p.stdout.readline().decode().rstrip('\n')
            if self.first_line.startswith('listening on http://'):
                hp = self.first_line[len('listening on http://'):]
                self.host, _, port = hp.rpartition(':')
                self.host = self.host.strip('[]')
                self.port = int(port)

    def conn(self, timeout=60):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=60):
        """(status, headers dict with lower-case names, body bytes)."""
        c = self.conn(timeout)
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h.setdefault('Content-Type', 'application/json')
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, data

    def json(self, method, path, body=None, headers=None, timeout=60):
        st, h, data = self.request(method, path, body, headers, timeout)
        try:
            j = json.loads(data) if data else None
        except ValueError:
            j = None
        return st, h, j

    def raw(self, payload, timeout=10, shutdown_write=False):
        """Sends raw bytes, returns everything read until the server closes
        or the timeout (then what came so far)."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            if payload:
                s.sendall(payload)
            if shutdown_write:
                s.shutdown(socket.SHUT_WR)
            out = b''
            while True:
                try:
                    b = s.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not b:
                    break
                out += b
            return out
        finally:
            s.close()

    def alive(self):
        try:
            st, _, _ = self.request('GET', '/livez', timeout=10)
            return st == 200 and self.p.poll() is None
        except OSError:
            return False

    def signal(self, sig=_signal.SIGTERM):
        self.p.send_signal(sig)

    def stop(self, sig=_signal.SIGTERM, timeout=120):
        """Signals and waits; the exit code (None if it had to be killed)."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            rc = None
        self.err.close()
        return rc

    def stderr_text(self):
        if not self.err.closed:
            self.err.flush()
        with open(self.stderr_path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')

    def events(self):
        out = []
        for line in self.stderr_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


def in_threads(fn, args_list):
    """Runs fn(*args) for each args in threads; returns the results in order."""
    results = [None] * len(args_list)

    def run(i, a):
        try:
            results[i] = fn(*a)
        except Exception as e:  # reported as the result
            results[i] = e
    ts = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args_list)]
    for t in ts:
        t.start()
    return ts, results


def wait_until(fn, limit=2000):
    """Polls fn() (each poll is a request to the server) until it is true,
    at most limit times. Never sleeps: each poll waits on the server."""
    for _ in range(limit):
        v = fn()
        if v:
            return v
    return None
