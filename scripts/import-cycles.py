#!/usr/bin/env python3
"""Lists pairs of source files of one crate that import each other.

Every `use` of a path inside the crate (crate::, super::, self::, or a
child module's name) is resolved to the file that *defines* the item it
names, following re-exports (a `pub use` in lib.rs or mod.rs is a window,
not a definition). Two files whose imports point at each other are a pair.
Exit status 1 if any pair is found."""
import pathlib, re, sys

DEF = re.compile(r'^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:unsafe\s+)?'
                 r'(?:struct|enum|fn|trait|type|const|static|union)\s+(\w+)', re.M)
MACRO = re.compile(r'^\s*macro_rules!\s*(\w+)', re.M)
USE = re.compile(r'^\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);', re.M)

def modules(src):
    mods = {}
    for f in src.rglob('*.rs'):
        parts = list(f.relative_to(src).with_suffix('').parts)
        if parts[0] in ('bin', 'tests', 'figures'):
            continue
        if parts[-1] in ('lib', 'main', 'mod'):
            parts = parts[:-1]
        mods[tuple(parts)] = f
    return mods

def flatten(expr):
    expr = re.sub(r'\s+', ' ', expr).replace(' ::', '::').replace(':: ', '::')
    out = []
    def rec(prefix, e):
        e = e.strip()
        i = e.find('{')
        if i < 0:
            out.append(prefix + e)
            return
        head, body = e[:i], e[i + 1:e.rfind('}')]
        depth, cur, items = 0, '', []
        for ch in body:
            depth += ch == '{'
            depth -= ch == '}'
            if ch == ',' and depth == 0:
                items.append(cur); cur = ''
            else:
                cur += ch
        items.append(cur)
        for it in items:
            if it.strip():
                rec(prefix + head, it)
    rec('', expr)
    return [re.sub(r'\s+as\s+\w+$', '', t.strip()) for t in out]

class Crate:
    def __init__(self, src):
        self.mods = modules(src)
        self.text = {m: f.read_text().split('#[cfg(test)]')[0] for m, f in self.mods.items()}
        self.defs = {m: set(DEF.findall(t)) | set(MACRO.findall(t)) for m, t in self.text.items()}
        self.uses = {m: [(bool(p), t) for p, e in USE.findall(txt) for t in flatten(e)]
                     for m, txt in self.text.items()}

    def module_of(self, path, here):
        segs = [s for s in path.split('::') if s]
        if not segs:
            return None, None
        if segs[0] == 'crate':
            base, segs = (), segs[1:]
        elif segs[0] in ('super', 'self'):
            base = here
            while segs and segs[0] in ('super', 'self'):
                if segs[0] == 'super':
                    base = base[:-1]
                segs = segs[1:]
        elif here + (segs[0],) in self.mods:
            base = here
        else:
            return None, None
        mod, rest = base, segs
        while rest and mod + (rest[0],) in self.mods:
            mod, rest = mod + (rest[0],), rest[1:]
        return mod, (rest[0] if rest else None)

    def defining(self, mod, name, seen=()):
        """The module defining `name` as seen from `mod` (following re-exports)."""
        if name is None or name == '*' or name == 'self':
            return mod
        if name in self.defs.get(mod, ()):
            return mod
        if (mod, name) in seen:
            return mod
        for _, t in self.uses.get(mod, ()):
            last = t.split('::')[-1]
            if last == name:
                m2, n2 = self.module_of(t, mod)
                if m2 is not None:
                    return self.defining(m2, n2, seen + ((mod, name),))
        return mod

    def edges(self):
        out = set()
        for mod, uses in self.uses.items():
            for public, t in uses:
                target, name = self.module_of(t, mod)
                if target is None:
                    continue
                target = self.defining(target, name)
                if public and name is not None and target != mod and mod in [target[:i] for i in range(len(target))]:
                    continue  # a parent re-exporting its child's item: a window
                if target != mod:
                    out.add((mod, target))
        return out

def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else '.')
    found = 0
    for src in sorted(root.glob('crates/*/src')):
        crate = Crate(src)
        edges = crate.edges()
        for a, b in sorted(edges):
            if (b, a) in edges and a < b:
                found += 1
                print(f'{crate.mods[a]} <-> {crate.mods[b]}')
    return 1 if found else 0

sys.exit(main())
