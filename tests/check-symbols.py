#!/usr/bin/env python3
"""The exported API, three ways, must agree: CLINK_EXTERN declarations in the
header, the linker version script, and (when given) the dynamic symbol table
of the built library."""
import re
import subprocess
import sys

header, symfile = sys.argv[1], sys.argv[2]
lib = sys.argv[3] if len(sys.argv) > 3 else None

text = open(header).read()
decl = set(re.findall(r'CLINK_EXTERN[^;{(]*?\b(clink_\w+)\s*\(', text, re.S))
script = open(symfile).read()
listed = set(re.findall(r'^\s*(clink_\w+)\s*;', script, re.M))

ok = True
for name in sorted(decl - listed):
    print(f'declared in the header but missing from {symfile}: {name}')
    ok = False
for name in sorted(listed - decl):
    print(f'listed in {symfile} but not declared CLINK_EXTERN: {name}')
    ok = False
if lib:
    out = subprocess.run(['nm', '-D', '--defined-only', lib], capture_output=True,
                         text=True, check=True).stdout
    exported = {l.split()[-1].split('@')[0] for l in out.splitlines()
                if l.split() and l.split()[-2] in ('T', 'D', 'B', 'R')}
    exported = {s for s in exported if not s.startswith('CLINK_')}
    for name in sorted(exported - decl):
        print(f'exported by {lib} but not in the header: {name}')
        ok = False
    for name in sorted(decl - exported):
        print(f'declared but not exported by {lib}: {name}')
        ok = False
print(f'{len(decl)} symbols checked' if ok else 'symbol lists disagree')
sys.exit(0 if ok else 1)
