#!/usr/bin/env python3
"""The layers of lib/ and what each may include (README "Layout").

Checks every `#include "layer/file.h"` in lib/ against the allowed table
below, and that the include graph between files has no cycle. A new layer
must be added here, with its place in the order."""
import pathlib
import re
import sys

ALLOWED = {
    'base': set(),
    'wire': {'base'},
    'spawn': {'base', 'wire'},
    'io': {'base', 'wire', 'spawn'},
    'session': {'base', 'wire', 'spawn'},
    'resilience': {'base', 'monitor'},
    'monitor': {'base', 'wire'},
    'client': {'base', 'wire', 'spawn', 'io', 'session', 'monitor'},
    'pool': {'base', 'spawn', 'client', 'monitor'},
    'fallback': {'base', 'wire', 'monitor', 'resilience'},
    'outbox': {'base', 'wire', 'monitor'},
}

lib = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else 'lib')
inc = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
errors = []
graph = {}
for f in sorted(lib.rglob('*.[ch]')):
    rel = f.relative_to(lib).as_posix()
    layer = rel.split('/')[0]
    if layer not in ALLOWED:
        if '/' in rel:
            errors.append(f'{rel}: layer "{layer}" is not in tests/check-layers.py')
        continue
    deps = []
    for name in inc.findall(f.read_text()):
        if '/' not in name:
            continue  # claudelink.h, generated headers
        other = name.split('/')[0]
        deps.append(name)
        if other != layer and other not in ALLOWED[layer]:
            errors.append(f'{rel}: includes {name} ({layer} may use {sorted(ALLOWED[layer])})')
    graph[rel] = deps

# No cycle between headers (a .c file is a leaf).
state = {}
def visit(n, path):
    if state.get(n) == 1:
        errors.append('include cycle: ' + ' -> '.join(path + [n]))
        return
    if state.get(n) == 2:
        return
    state[n] = 1
    for d in graph.get(n, []):
        visit(d, path + [n])
    state[n] = 2
for n in graph:
    visit(n, [])

for e in errors:
    print(e)
print(f'{len(graph)} files checked, {len(errors)} problems')
sys.exit(1 if errors else 0)
