#!/usr/bin/env python3
"""Check that amprt's layers point one way (ARCHITECTURE.md, "Layers").

    base (0) <- ir (1) <- passes (2) <- backends (3) <- runtime (4) <- tools (5)

A file may include, and call, its own layer and lower ones only; include/amprt/amprt.h (the
public header) may be included by anyone. The command-line tool (tools/) reaches below the
public API only through base/ and runtime/internal.h. No file cycle.

Usage: tools/check_layers.py BUILD_DIR [--root DIR] [--allow FILE]
       tools/check_layers.py --self-test

Checks
  include  every #include "..." in base/ ir/ passes/ backends/ runtime/ tools/ (.c .cc .h .cu .cuh
           .def) against the layer of the file it names;
  tools    tools/ files include nothing below the public header but base/..., tools/... and
           runtime/internal.h;
  call     every object file CMake wrote for the library and the CLI (BUILD_DIR/CMakeFiles/
           <target>.dir/<source>.o): an undefined symbol of a lower-layer object that a
           higher-layer object defines (nm); two files of different layers that call each other
           always include such a call;
  cycle    a cycle in the include graph.

The allowlist (tools/layers_allow.txt) holds violations another change is removing: one
`FROM -> TO  # reason` per line, paths relative to the root. An entry that matches no
violation any more fails too, so it is removed as soon as its violation is.

Exit status: 0 clean, 1 violations (listed), 2 usage or setup error (no object files found).
"""
import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile

LAYERS = {"base": 0, "ir": 1, "passes": 2, "backends": 3, "runtime": 4, "tools": 5}
NAMES = {v: k for k, v in LAYERS.items()}
SOURCE_EXT = (".c", ".cc", ".h", ".cu", ".cuh", ".def")
# CMake targets whose objects make up the library and the CLI (tests may call anything)
TARGETS = ("amp_objects", "amp_cli_parts", "amprt_cli")
# what a tools/ file may include besides its own layer and the public header
TOOLS_MAY_INCLUDE = ("base/*", "tools/*", "runtime/internal.h")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(rel):
    """The layer number of a root-relative path, None for public or unlayered paths."""
    return LAYERS.get(rel.split("/", 1)[0])


def source_files(root):
    """Root-relative paths of every layered source file."""
    out = []
    for top in LAYERS:
        for d, _, files in os.walk(os.path.join(root, top)):
            for f in files:
                if f.endswith(SOURCE_EXT):
                    out.append(os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/"))
    return sorted(out)


def resolve(root, rel, name):
    """The root-relative file an include names (root first, as amprt writes them, then the
    including file's folder); None for generated or system headers."""
    for base in (root, os.path.join(root, os.path.dirname(rel))):
        p = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(p):
            r = os.path.relpath(p, root).replace(os.sep, "/")
            if not r.startswith(".."):
                return r
    return None


def include_graph(root):
    """{file: [(included file, line number)]} over the layered sources."""
    graph = {}
    for rel in source_files(root):
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        edges = []
        for m in INCLUDE_RE.finditer(text):
            to = resolve(root, rel, m.group(1))
            if to:
                edges.append((to, text.count("\n", 0, m.start()) + 1))
        graph[rel] = edges
    return graph


def include_violations(graph):
    """(kind, from, to, detail) for upward includes and for tools/ reaching past internal.h."""
    out = []
    for src, edges in graph.items():
        ls = layer_of(src)
        for to, line in edges:
            lt = layer_of(to)
            if lt is not None and lt > ls:
                out.append(("include", src, to, "line %d: %s (%d) includes %s (%d)" %
                            (line, NAMES[ls], ls, NAMES[lt], lt)))
            elif ls == LAYERS["tools"] and lt is not None and lt < ls and \
                    not any(fnmatch.fnmatch(to, p) for p in TOOLS_MAY_INCLUDE):
                out.append(("tools", src, to, "line %d: the tool reaches below the public API only "
                            "through base/ and runtime/internal.h" % line))
    return out


def include_cycles(graph):
    """Strongly connected components of more than one file (or a file including itself)."""
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        # iterative Tarjan: include chains are shallow, but recursion limits are not ours to set
        work = [(v, iter(graph.get(v, ())))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for to, _ in it:
                if to not in graph:
                    continue
                if to not in index:
                    index[to] = low[to] = counter[0]
                    counter[0] += 1
                    stack.append(to)
                    on.add(to)
                    work.append((to, iter(graph.get(to, ()))))
                    advanced = True
                    break
                if to in on:
                    low[node] = min(low[node], index[to])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                self_loop = any(t == node for t, _ in graph.get(node, ()))
                if len(comp) > 1 or self_loop:
                    sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [("cycle", c[0], c[-1], "include cycle: " + " -> ".join(c + [c[0]])) for c in sccs]


def object_files(build, root):
    """{source path: object path} for the library's and the CLI's objects. Objects whose source
    no longer exists (a file moved or deleted since the build dir was configured) are left out."""
    out = {}
    base = os.path.join(build, "CMakeFiles")
    for t in TARGETS:
        tdir = os.path.join(base, t + ".dir")
        for d, _, files in os.walk(tdir):
            for f in files:
                if f.endswith(".o"):
                    src = os.path.relpath(os.path.join(d, f[:-2]), tdir).replace(os.sep, "/")
                    if layer_of(src) is not None and os.path.exists(os.path.join(root, src)):
                        out[src] = os.path.join(d, f)
    return out


def nm(args, obj):
    """Global symbol names nm lists for obj with args."""
    r = subprocess.run(["nm"] + args + [obj], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("nm %s %s: %s" % (" ".join(args), obj, r.stderr.strip()))
    names = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and (parts[-2].isupper() or parts[-2] in ("u", "w", "v")):
            names.append(parts[-1])
    return names


def call_violations(objs):
    """(kind, from, to, detail) for calls (or data references) into a higher layer."""
    defined = {}
    for src, obj in objs.items():
        for s in nm(["--defined-only", "-g"], obj):
            defined.setdefault(s, set()).add(src)
    pairs = {}
    for src, obj in objs.items():
        ls = layer_of(src)
        for s in nm(["-u"], obj):
            for to in defined.get(s, ()):
                if layer_of(to) > ls:
                    pairs.setdefault((src, to), []).append(s)
    return [("call", a, b, "%s (%d) calls %s (%d): %s" % (NAMES[layer_of(a)], layer_of(a), NAMES[layer_of(b)],
                                                         layer_of(b), ", ".join(sorted(syms))))
            for (a, b), syms in sorted(pairs.items())]


def read_allow(path):
    """[(from, to, reason, line number)]; malformed lines raise ValueError."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            body = line.strip()
            if not body or body.startswith("#"):
                continue
            edge, _, reason = body.partition("#")
            m = re.match(r"^(\S+)\s*->\s*(\S+)$", edge.strip())
            if not m or not reason.strip():
                raise ValueError("%s:%d: expected 'FROM -> TO  # reason', got %r" % (path, no, body))
            out.append((m.group(1), m.group(2), reason.strip(), no))
    return out


def check(root, build, allow_path):
    """Print violations; return the exit status."""
    objs = object_files(build, root) if build else {}
    if build and not objs:
        print("check_layers: no object files under %s/CMakeFiles/{%s}.dir: build first" % (build, ",".join(TARGETS)))
        return 2
    try:
        allow = read_allow(allow_path)
    except ValueError as e:
        print("check_layers: %s" % e)
        return 2
    graph = include_graph(root)
    found = include_violations(graph) + include_cycles(graph) + call_violations(objs)
    used = set()
    bad = []
    for v in found:
        hit = [a for a in allow if v[0] in ("include", "call") and a[0] == v[1] and a[1] == v[2]]
        if hit:
            used.update(a[3] for a in hit)
        else:
            bad.append(v)
    stale = [a for a in allow if a[3] not in used]
    for kind, a, b, detail in bad:
        print("%-8s %s -> %s\n         %s" % (kind, a, b, detail))
    for a in stale:
        print("stale    %s -> %s\n         %s:%d lists it (%s), but it is no longer a violation: remove the line"
              % (a[0], a[1], allow_path, a[3], a[2]))
    n_allowed = len(found) - len(bad)
    print("check_layers: %d files, %d objects, %d violations, %d allowed, %d stale allowlist entries"
          % (len(graph), len(objs), len(bad), n_allowed, len(stale)))
    return 1 if bad or stale else 0


# ---- self-test: a tiny fake tree with each kind of violation -----------------------------------

def _write(root, rel, text):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        f.write(text)


def _compile(root, build, rel, target="amp_objects"):
    obj = os.path.join(build, "CMakeFiles", target + ".dir", rel + ".o")
    os.makedirs(os.path.dirname(obj), exist_ok=True)
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-c", "-I", root, "-I", os.path.join(root, "include"), os.path.join(root, rel), "-o", obj], check=True)


def _run(root, build, allow):
    """Exit status and output of check() on a fake tree."""
    import io
    import contextlib
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = check(root, build, allow)
    return rc, buf.getvalue()


def self_test(real_root, real_build):
    failures = []

    def expect(name, rc, out, want_rc, want_text=None):
        ok = rc == want_rc and (want_text is None or want_text in out)
        print("%s %s" % ("ok  " if ok else "FAIL", name))
        if not ok:
            failures.append(name)
            print("     rc %d (want %d); output:\n%s" % (rc, want_rc, out))

    with tempfile.TemporaryDirectory() as tmp:
        root, build = os.path.join(tmp, "src"), os.path.join(tmp, "build")
        allow = os.path.join(root, "tools", "layers_allow.txt")
        _write(root, "include/amprt/amprt.h", "int amp_public(void);\n")
        _write(root, "base/base.h", '#include "amprt/amprt.h"\nint base_f(void);\n')
        _write(root, "base/base.c", '#include "base/base.h"\nint base_f(void) { return 1; }\n')
        _write(root, "ir/ir.h", '#include "base/base.h"\nint ir_f(void);\n')
        _write(root, "ir/ir.c", '#include "ir/ir.h"\nint ir_f(void) { return base_f(); }\n')
        _write(root, "runtime/runtime.h", '#include "ir/ir.h"\nint rt_f(void);\n')
        _write(root, "runtime/internal.h", '#include "runtime/runtime.h"\n')
        _write(root, "runtime/rt.c", '#include "runtime/runtime.h"\nint rt_f(void) { return ir_f(); }\n')
        _write(root, "tools/main.c", '#include "runtime/internal.h"\nint main(void) { return rt_f(); }\n')
        for rel in ("base/base.c", "ir/ir.c", "runtime/rt.c"):
            _compile(root, build, rel)
        _compile(root, build, "tools/main.c", "amprt_cli")
        rc, out = _run(root, build, allow)
        expect("a clean tree passes", rc, out, 0)

        rc, out = _run(root, os.path.join(tmp, "empty"), allow)
        expect("no object files is a setup error", rc, out, 2)

        # an upward include
        _write(root, "ir/bad.h", '#include "runtime/runtime.h"\n')
        rc, out = _run(root, build, allow)
        expect("an upward include fails", rc, out, 1, "include  ir/bad.h -> runtime/runtime.h")
        _write(root, "tools/layers_allow.txt", "ir/bad.h -> runtime/runtime.h  # being moved\n")
        rc, out = _run(root, build, allow)
        expect("an allowlisted include passes", rc, out, 0)
        _write(root, "tools/layers_allow.txt", "ir/bad.h -> runtime/runtime.h\n")
        rc, out = _run(root, build, allow)
        expect("an allowlist line without a reason is refused", rc, out, 2)
        os.remove(os.path.join(root, "ir/bad.h"))
        _write(root, "tools/layers_allow.txt", "ir/bad.h -> runtime/runtime.h  # being moved\n")
        rc, out = _run(root, build, allow)
        expect("a stale allowlist entry fails", rc, out, 1, "stale    ir/bad.h -> runtime/runtime.h")
        os.remove(allow)

        # the tool reaching past runtime/internal.h
        _write(root, "tools/peek.c", '#include "ir/ir.h"\n')
        rc, out = _run(root, build, allow)
        expect("a tool including ir/ directly fails", rc, out, 1, "tools    tools/peek.c -> ir/ir.h")
        os.remove(os.path.join(root, "tools/peek.c"))

        # an upward call: base calls into the runtime
        _write(root, "base/up.c", '#include "runtime/runtime.h"\nint up(void) { return rt_f(); }\n')
        _compile(root, build, "base/up.c")
        # the call alone must be enough: the source keeps the call but no longer the include
        _write(root, "base/up.c", 'int rt_f(void);\nint up(void) { return rt_f(); }\n')
        rc, out = _run(root, build, allow)
        expect("an upward call fails", rc, out, 1, "call     base/up.c -> runtime/rt.c")
        os.remove(os.path.join(build, "CMakeFiles", "amp_objects.dir", "base", "up.c.o"))
        os.remove(os.path.join(root, "base/up.c"))

        # an include cycle inside one layer
        _write(root, "ir/a.h", '#include "ir/b.h"\n')
        _write(root, "ir/b.h", '#include "ir/a.h"\n')
        rc, out = _run(root, build, allow)
        expect("an include cycle fails", rc, out, 1, "include cycle: ir/a.h -> ir/b.h -> ir/a.h")
        os.remove(os.path.join(root, "ir/a.h"))
        os.remove(os.path.join(root, "ir/b.h"))

        rc, out = _run(root, build, allow)
        expect("the tree is clean again", rc, out, 0)

        # the real tree, copied, with an upward include injected into the base layer
        if real_root and real_build:
            copy = os.path.join(tmp, "copy")
            for top in list(LAYERS) + ["include"]:
                src = os.path.join(real_root, top)
                if os.path.isdir(src):
                    shutil.copytree(src, os.path.join(copy, top))
            victim = os.path.join(copy, "base", "tensor.c")
            with open(victim, "a", encoding="utf-8") as f:
                f.write('\n#include "runtime/runtime.h"\n')
            rc, out = _run(copy, real_build, os.path.join(copy, "tools", "layers_allow.txt"))
            expect("the real tree with base/tensor.c including runtime/runtime.h fails", rc, out, 1,
                   "include  base/tensor.c -> runtime/runtime.h")
    print("self-test: %d failed" % len(failures))
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", help="the CMake build folder (its object files are read)")
    ap.add_argument("--root", default=None, help="the source tree (default: this script's ../)")
    ap.add_argument("--allow", default=None, help="the allowlist (default: ROOT/tools/layers_allow.txt)")
    ap.add_argument("--self-test", action="store_true",
                    help="check the checker on a fake tree and on a copy of ROOT with an injected "
                         "upward include (uses BUILD when given)")
    a = ap.parse_args()
    root = os.path.abspath(a.root or os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    if a.self_test:
        return self_test(root, a.build)
    if not a.build:
        ap.error("BUILD_DIR is required")
    return check(root, a.build, a.allow or os.path.join(root, "tools", "layers_allow.txt"))


if __name__ == "__main__":
    sys.exit(main())
