#!/usr/bin/env python3
"""Module-import cycles between the files of a Rust crate's src/ tree
(`make lint` runs it on every crate: no module of a crate may import a module
that imports it back, so data flows one way — api → app → domain/store).
Usage: scripts/module_cycles.py services/tickets/src [--edges]

Edges: every `use` path (brace trees expanded) and every inline path that
starts with `crate::`, `super::`, `self::` or a child module declared in the
file (`mod x;` then `x::f`), resolved to the file that defines the module it
names. `super` inside an inline `mod tests { .. }` resolves to the file itself
(no edge). Test-only imports count too: they are compiled deps as well.
Prints every edge with --edges, then every strongly connected component of
more than one file, with one concrete cycle through it; exit 1 if any.
"""
import re, sys, pathlib

src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith('-') else 'src')
show_edges = '--edges' in sys.argv

def module_of(path):
    rel = path.relative_to(src).with_suffix('')
    parts = list(rel.parts)
    if parts[-1] in ('mod',):
        parts = parts[:-1]
    if parts in (['lib'],):
        parts = []
    return tuple(parts)

files = {}
for p in sorted(src.rglob('*.rs')):
    if p.name == 'main.rs' and p.parent == src:
        continue  # a separate crate root (the binary), it uses the library by name
    files[module_of(p)] = p

def strip(text):
    # comments, strings and char literals out (keeping line structure)
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith('//', i):
            j = text.find('\n', i); j = n if j < 0 else j; i = j; continue
        if text.startswith('/*', i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith('/*', i): depth += 1; i += 2
                elif text.startswith('*/', i): depth -= 1; i += 2
                else:
                    if text[i] == '\n': out.append('\n')
                    i += 1
            continue
        m = re.match(r'r(#*)"', text[i:i+10]) if c == 'r' and (i == 0 or not (text[i-1].isalnum() or text[i-1] == '_')) else None
        if m:
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            out.append('""'); out.extend('\n' * text.count('\n', i, j)); i = j + len(end); continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == '\\' else 1
            out.append('""'); out.extend('\n' * text.count('\n', i, j)); i = j + 1; continue
        if c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:i+12])
            if m:
                out.append("' '"); i += len(m.group(0)); continue
        out.append(c); i += 1
    return ''.join(out)

def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]"""
    tree = re.sub(r'\s+', '', tree)
    def parse(s):
        # returns list of paths for a comma-separated list at top level
        items, depth, cur = [], 0, ''
        for ch in s:
            if ch == '{': depth += 1
            elif ch == '}': depth -= 1
            if ch == ',' and depth == 0:
                items.append(cur); cur = ''
            else:
                cur += ch
        if cur: items.append(cur)
        paths = []
        for it in items:
            k = it.find('{')
            if k < 0:
                paths.append(re.sub(r'\bas\w+$', '', it.split(' as ')[0]))
            else:
                prefix, inner = it[:k], it[k+1:it.rfind('}')]
                for sub in parse(inner):
                    paths.append(prefix + sub)
        return paths
    return [p for p in parse(tree) if p]

edges = {}
def resolve(cur_mod, file_mod, segs, children):
    if not segs: return None
    if segs[0] == 'crate':
        base, rest = (), segs[1:]
    elif segs[0] in ('super', 'self'):
        base = cur_mod
        rest = segs
        while rest and rest[0] in ('super', 'self'):
            if rest[0] == 'super': base = base[:-1]
            rest = rest[1:]
    elif segs[0] in children and cur_mod == file_mod:
        base, rest = file_mod, segs
    else:
        return None
    target = tuple(base)
    best = target if target in files else None
    for s in rest:
        target = target + (s,)
        if target in files: best = target
        else: break
    # the innermost enclosing file module of `base` when base is an inline module
    if best is None:
        t = tuple(base)
        while t and t not in files: t = t[:-1]
        best = t
    return best

for mod, path in files.items():
    text = strip(path.read_text())
    children = set(re.findall(r'^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;', text, re.M))
    # walk with a stack of inline modules
    stack, depth_stack, depth = [], [], 0
    tokens = re.finditer(r'(?P<mod>\bmod\s+(?P<name>\w+)\s*\{)|(?P<use>\buse\s+(?P<tree>[^;]+);)|(?P<path>(?<![\w:])(?:crate|super|self|\w+)(?:::\w+)+)|(?P<open>\{)|(?P<close>\})', text)
    for t in tokens:
        cur = mod + tuple(stack)
        if t.group('mod'):
            stack.append(t.group('name')); depth += 1; depth_stack.append(depth); continue
        if t.group('open'): depth += 1; continue
        if t.group('close'):
            if depth_stack and depth_stack[-1] == depth:
                depth_stack.pop(); stack.pop()
            depth -= 1; continue
        if t.group('use'):
            paths = expand(t.group('tree'))
        else:
            paths = [t.group('path')]
        for p in paths:
            segs = [s for s in p.split('::') if s and s != '*']
            target = resolve(cur, mod, segs, children)
            if target is not None and target != mod:
                edges.setdefault(mod, set()).add(target)

name = lambda m: str(files[m].relative_to(src))
if show_edges:
    for a in sorted(edges):
        for b in sorted(edges[a]):
            print(f'{name(a)} -> {name(b)}')
    print()

# Tarjan
index, low, on, st, sccs, counter = {}, {}, set(), [], [], [0]
sys.setrecursionlimit(10000)
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1; st.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in index: visit(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        sccs.append(comp)
for v in files:
    if v not in index: visit(v)
cyclic = [c for c in sccs if len(c) > 1]
print(f'{len(files)} files, {sum(len(v) for v in edges.values())} import edges between files')
if not cyclic:
    print('no cycles'); sys.exit(0)
for comp in cyclic:
    comp_set = set(comp)
    # one concrete cycle: BFS from first back to itself
    start = sorted(comp)[0]
    from collections import deque
    prev, q, found = {start: None}, deque([start]), None
    while q and not found:
        v = q.popleft()
        for w in sorted(edges.get(v, ())):
            if w not in comp_set: continue
            if w == start: found = v; break
            if w not in prev: prev[w] = v; q.append(w)
    path, v = [], found
    while v is not None: path.append(v); v = prev[v]
    path.reverse()
    print(f'cycle among {len(comp)} files: ' + ', '.join(sorted(name(m) for m in comp)))
    print('  e.g. ' + ' -> '.join(name(m) for m in path + [start]))
sys.exit(1)
