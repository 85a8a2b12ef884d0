#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Summarises a callgrind.out of vdhost (--dump-instr=yes, collection toggled on around
# FuseDispatcher::handle and complete_io): Ir per request, lock-prefixed (and xchg with
# memory) instructions executed per request, and the exclusive Ir per request of the top
# functions. Usage: callgrind_request_cost.py CALLGRIND_OUT PLUGIN_SO
import re, subprocess, sys, collections

def parse(path):
    cost = collections.defaultdict(int)  # (obname, addr) -> Ir (exclusive)
    obnames, ob = {}, None
    prev = [0, 0]
    skip_next = False
    fnnames, fn = {}, None
    fn_cost = collections.defaultdict(int)
    with open(path) as f:
        for line in f:
            line = line.rstrip('\n')
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in '+-*' or line.startswith('0x'):
                parts = line.split()
                pos = []
                for i in range(2):
                    p = parts[i]
                    if p == '*':
                        v = prev[i]
                    elif p[0] in '+-':
                        v = prev[i] + int(p)
                    else:
                        v = int(p, 0)
                    pos.append(v)
                prev = pos
                ir = int(parts[2]) if len(parts) > 2 else 0
                if skip_next:
                    skip_next = False
                    continue
                cost[(ob, pos[0])] += ir
                fn_cost[fn] += ir
                continue
            m = re.match(r'^(\w+)=(?:\((\d+)\))?\s*(.*)$', line)
            if not m:
                continue
            key, idx, name = m.groups()
            if key == 'ob':
                if name:
                    obnames[idx] = name
                ob = obnames.get(idx, idx)
            elif key == 'fn':
                if name:
                    fnnames[idx] = name
                fn = fnnames.get(idx, idx)
            elif key == 'cob':
                if name:
                    obnames[idx] = name
            elif key == 'cfn':
                if name:
                    fnnames[idx] = name
            elif key == 'calls':
                skip_next = True
    return cost, fn_cost

def locked_addrs(obj):
    out = subprocess.run(['objdump', '-d', '--no-show-raw-insn', obj], capture_output=True,
                         text=True).stdout
    addrs = {}
    for l in out.splitlines():
        m = re.match(r'^\s*([0-9a-f]+):\s+(.*)$', l)
        if not m:
            continue
        ins = m.group(2).strip()
        if ins.startswith('lock ') or (ins.startswith('xchg') and '(' in ins):
            addrs[int(m.group(1), 16)] = ins
    return addrs

def sym_addr(obj, pattern):
    out = subprocess.run(['nm', '-C', obj], capture_output=True, text=True).stdout
    for l in out.splitlines():
        parts = l.split(' ', 2)
        if len(parts) == 3 and parts[2].startswith(pattern):
            return int(parts[0], 16)
    return None

def main():
    path, plugin = sys.argv[1], sys.argv[2]
    cost, fn_cost = parse(path)
    total = sum(cost.values())
    entry = sym_addr(plugin, 'vdh::virtiofs::FuseDispatcher::handle(vdh_request const&')
    calls = cost.get((plugin, entry), 0)
    entry_c = sym_addr(plugin, 'vdh::virtiofs::FuseDispatcher::complete_io(')
    completions = cost.get((plugin, entry_c), 0)
    locked_total = 0
    per_fn = collections.Counter()
    objs = {o for (o, _) in cost if o and o.startswith('/')}
    for o in sorted(objs):
        la = locked_addrs(o)
        n = sum(v for (ob, a), v in cost.items() if ob == o and a in la)
        if n:
            print(f'  locked in {o}: {n}')
        locked_total += n
    print(f'handle() calls: {calls}, complete_io() calls: {completions}')
    print(f'Ir collected (inside handle + complete_io): {total}')
    if calls:
        print(f'Ir per request: {total / calls:.1f}')
        print(f'locked instructions per request: {locked_total / calls:.2f}')
    print('top functions (exclusive Ir per request):')
    for f, v in sorted(fn_cost.items(), key=lambda kv: -kv[1])[:25]:
        print(f'  {v / max(calls, 1):9.1f}  {f}')

main()
