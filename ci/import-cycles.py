#!/usr/bin/env python3
"""Report import cycles among the files of each Rust crate of the workspace.

Usage: ci/import-cycles.py [--crate NAME_OR_DIR ...] [--verbose]

Without --crate it checks every crate: the members of the root Cargo.toml's
[workspace], plus fuzz/ if it has a src/ directory. --crate takes a member directory
(`conformance`, `reference/proto`) or a package name (`tether-conformance`). Exit status
1 if any checked crate has a cycle, 0 otherwise; 2 on a usage error.

The graph, per crate:

* Nodes are the .rs files under the crate's src/. A file's module path follows from
  where it sits: src/lib.rs and src/main.rs are the crate root, src/a/mod.rs and src/a.rs
  are module `a`, src/a/b.rs is `a::b`; `#[path]` attributes are not followed. Inline
  modules (`mod tests { ... }`) belong to their file, but `self::` and `super::` inside
  them are resolved from the inline module.
* An edge A -> B means file A names an item that file B defines, through a path that
  starts with `crate::`, `super::` or `self::`, or in a `use` of such a path
  (`use crate::x::{y, z::w}` names `crate::x::y` and `crate::x::z::w`). A path is mapped
  to the file of the longest module prefix it has: `crate::host::session::ChannelSession`
  is in host/session.rs, `crate::host::paired` in host/mod.rs (or host.rs) unless
  host/paired.rs exists. A `pub use` re-export is an edge like any other use (lib.rs
  re-exporting from a module depends on that module).
* `mod x;` and `pub mod x;` declarations are not edges: a parent declaring its children
  does not use them. A parent that names its child's items does: `use self::x::Y`,
  `pub use x::Y` (a re-export in lib.rs or a mod.rs is an edge like any other use),
  `x::f()`, where `x` is a module the file declares.
* Edges from a file to itself are ignored. Paths in comments and string literals are
  ignored; so are paths that start with the crate's own name or another crate's.

A cycle is a strongly connected component of two or more files; each is printed with one
shortest loop through it, every edge with the line that makes it.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def strip_comments_and_strings(text: str) -> str:
    """Blanks comments, string and char literals, keeping line breaks (and so line numbers)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        if text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        m = re.compile(r'b?r(#*)"').match(text, i)
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + m.group(1)
            j = text.find(close, m.end())
            j = n if j < 0 else j + len(close)
            out.append('""' + re.sub(r"[^\n]", " ", text[i + 2 : j]))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + re.sub(r"[^\n]", " ", text[i + 2 : j + 1]))
            i = j + 1
            continue
        if c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
            m = re.compile(r"'(\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'").match(text, i)
            if m:
                out.append(" " * (m.end() - i))
                i = m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def expand_use_tree(tree: str) -> list[str]:
    """`a::{b, c::{d, e}}` -> [`a::b`, `a::c::d`, `a::c::e`]; `self` and globs kept."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)

    def split_top(s: str) -> list[str]:
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        return parts

    def expand(prefix: str, s: str) -> list[str]:
        i = s.find("{")
        if i < 0:
            if s == "self":
                return [prefix.rstrip(":")]
            return [prefix + s]
        head = s[:i]
        inner = s[i + 1 : s.rindex("}")]
        res = []
        for part in split_top(inner):
            if part:
                res.extend(expand(prefix + head, part))
        return res

    return [p for p in expand("", tree) if p]


class Crate:
    def __init__(self, name: str, directory: Path):
        self.name = name
        self.dir = directory
        self.src = directory / "src"
        self.files = sorted(self.src.rglob("*.rs"))
        # module path (tuple) -> file
        self.modules: dict[tuple[str, ...], Path] = {}
        for f in self.files:
            self.modules.setdefault(self.module_of(f), f)
        # Binaries under src/bin/ are crates of their own: root them separately.

    def module_of(self, f: Path) -> tuple[str, ...]:
        rel = f.relative_to(self.src).with_suffix("")
        parts = list(rel.parts)
        if parts and parts[0] == "bin":
            # src/bin/x.rs (or src/bin/x/main.rs) is the root of crate `bin::x`.
            parts = ["<bin>", parts[1]] + parts[2:]
            if parts[-1] == "main" and len(parts) > 2:
                parts = parts[:-1]
            return tuple(parts)
        if parts in (["lib"], ["main"]):
            return ()
        if parts[-1] == "mod":
            parts = parts[:-1]
        return tuple(parts)

    def root_of(self, module: tuple[str, ...]) -> tuple[str, ...]:
        if module[:1] == ("<bin>",):
            return module[:2]
        return ()

    def file_for(self, path: tuple[str, ...]) -> Path | None:
        for k in range(len(path), -1, -1):
            f = self.modules.get(path[:k])
            if f is not None:
                return f
        return None

    def edges(self) -> dict[Path, dict[Path, int]]:
        """file -> {file it uses: first line number}."""
        graph: dict[Path, dict[Path, int]] = defaultdict(dict)
        for f in self.files:
            module = self.module_of(f)
            root = self.root_of(module)
            text = strip_comments_and_strings(f.read_text(encoding="utf-8"))
            for line, path, inline in self.paths(text):
                scope = module + inline
                resolved = self.resolve(path, scope, root)
                if resolved is None:
                    continue
                target = self.file_for(resolved)
                if target is None or target == f:
                    continue
                graph[f].setdefault(target, line)
        return graph

    @staticmethod
    def resolve(path: list[str], scope: tuple[str, ...], root: tuple[str, ...]) -> tuple[str, ...] | None:
        if not path:
            return None
        head = path[0]
        if head == "crate":
            return root + tuple(path[1:])
        if head in ("super", "self"):
            cur = list(scope)
            i = 0
            while i < len(path) and path[i] in ("super", "self"):
                if path[i] == "super":
                    if len(cur) <= len(root):
                        return None
                    cur.pop()
                i += 1
            return tuple(cur) + tuple(path[i:])
        return None

    @staticmethod
    def paths(text: str):
        """Yields (line, path segments, inline-module stack) for each crate/super/self path,
        and for each path that starts with a child module the file declares (`mod x;` then
        `pub use x::Y;` or `x::f()`), as a `self::` path."""
        children = set(re.findall(r"(?m)^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text))
        child = "|".join(sorted(children)) or r"(?!)"
        # Track inline modules: `mod name {` opens one; its closing brace ends it.
        inline: list[tuple[str, int]] = []  # (name, depth at which it opened)
        depth = 0
        token = re.compile(
            r"(?P<mod>\bmod\s+(?P<modname>\w+)\s*\{)"
            r"|(?P<use>\buse\s+(?P<tree>[^;]*);)"
            r"|(?P<path>(?<![\w:.])(?:crate|super|self|" + child + r")(?:\s*::\s*\w+)+)"
            r"|(?P<open>\{)|(?P<close>\})"
        )
        for m in token.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            stack = tuple(name for name, _ in inline)
            if m.group("mod"):
                depth += 1
                inline.append((m.group("modname"), depth))
            elif m.group("use"):
                for p in expand_use_tree(m.group("tree")):
                    segs = [s for s in p.split("::") if s]
                    if segs and segs[0] in children and not stack:
                        segs = ["self"] + segs
                    if segs and segs[0] in ("crate", "super", "self"):
                        segs = [s for s in segs if s != "*"]
                        yield line, segs, stack
            elif m.group("path"):
                segs = [s.strip() for s in m.group("path").split("::")]
                if segs[0] in children:
                    if stack:
                        continue
                    segs = ["self"] + segs
                yield line, segs, stack
            elif m.group("open"):
                depth += 1
            elif m.group("close"):
                if inline and inline[-1][1] == depth:
                    inline.pop()
                depth -= 1


def strongly_connected(graph: dict[Path, dict[Path, int]]) -> list[list[Path]]:
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    on_stack: set[Path] = set()
    stack: list[Path] = []
    out: list[list[Path]] = []
    counter = [0]
    nodes = set(graph) | {t for ts in graph.values() for t in ts}

    def visit(v: Path) -> None:
        # Iterative Tarjan.
        work = [(v, iter(sorted(graph.get(v, {}))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, {})))))
                    advanced = True
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def shortest_loop(graph: dict[Path, dict[Path, int]], comp: list[Path]) -> list[Path]:
    members = set(comp)
    best: list[Path] | None = None
    for start in comp:
        # BFS from start back to start inside the component.
        prev: dict[Path, Path] = {}
        frontier = [start]
        seen = {start}
        found = None
        while frontier and found is None:
            nxt = []
            for u in frontier:
                for w in sorted(graph.get(u, {})):
                    if w not in members:
                        continue
                    if w == start:
                        found = u
                        break
                    if w not in seen:
                        seen.add(w)
                        prev[w] = u
                        nxt.append(w)
                if found is not None:
                    break
            frontier = nxt
        if found is None:
            continue
        loop = [found]
        while loop[-1] != start:
            loop.append(prev[loop[-1]])
        loop.reverse()
        if best is None or len(loop) < len(best):
            best = loop
    return best or comp


def workspace_crates() -> list[Crate]:
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text(encoding="utf-8"))
    dirs = list(manifest.get("workspace", {}).get("members", []))
    if (ROOT / "fuzz" / "src").is_dir():
        dirs.append("fuzz")
    crates = []
    for d in dirs:
        path = ROOT / d
        try:
            pkg = tomllib.loads((path / "Cargo.toml").read_text(encoding="utf-8"))
            name = pkg.get("package", {}).get("name", d)
        except OSError:
            name = d
        if (path / "src").is_dir():
            crates.append(Crate(name, path))
    return crates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crate", action="append", default=[], help="member directory or package name (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="print every edge")
    args = parser.parse_args()

    crates = workspace_crates()
    if args.crate:
        chosen = []
        for want in args.crate:
            match = [c for c in crates if c.name == want or c.dir == (ROOT / want).resolve() or c.dir.name == want]
            if not match:
                print(f"import-cycles: no crate {want!r} in the workspace", file=sys.stderr)
                return 2
            chosen.extend(match)
        crates = chosen

    failed = False
    for crate in crates:
        graph = crate.edges()
        rel = lambda p: p.relative_to(ROOT).as_posix()  # noqa: E731
        if args.verbose:
            for a in sorted(graph):
                for b, line in sorted(graph[a].items()):
                    print(f"  {rel(a)}:{line} -> {rel(b)}")
        comps = strongly_connected(graph)
        if not comps:
            print(f"{crate.name}: no import cycle among {len(crate.files)} files")
            continue
        failed = True
        print(f"{crate.name}: {len(comps)} import cycle(s)")
        for comp in comps:
            loop = shortest_loop(graph, comp)
            print(f"  cycle among {len(comp)} files: " + ", ".join(rel(p) for p in comp))
            for a, b in zip(loop, loop[1:] + loop[:1]):
                print(f"    {rel(a)}:{graph[a][b]} uses {rel(b)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
