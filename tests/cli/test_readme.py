#!/usr/bin/env python3
"""The README's examples, run as written: the shell block after "Tried from the repository root"
(each line must exit 0, run by bash with -e and pipefail from the repository root) and the C
program under "A first program" (compiled against this build's library and run there).
Usage: test_readme.py BUILD_DIR [CFLAGS] (CFLAGS: what the C program needs to load this build's
library, such as the sanitizer flags of an ASan build)"""
import os
import re
import subprocess
import sys
import tempfile

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(sys.argv[1])
CFLAGS = sys.argv[2].split() if len(sys.argv) > 2 else []
failures = []


def block_after(text, marker, lang):
    """The first ```lang block after marker."""
    at = text.index(marker)
    m = re.compile(r"^```" + lang + r"\n(.*?)^```", re.S | re.M).search(text, at)
    if not m:
        raise SystemExit(f"README: no ```{lang} block after {marker!r}")
    return m.group(1)


def main():
    readme = open(os.path.join(SRC, "README.md")).read()
    shell = block_after(readme, "Tried from the repository root", "sh")
    # the block's PATH line names build/; this build may be elsewhere (build-asan)
    shell = shell.replace('export PATH="$PWD/build:$PATH"', f'export PATH="{BUILD}:$PATH"', 1)
    if f'export PATH="{BUILD}:$PATH"' not in shell:
        failures.append("the shell block no longer starts with the PATH line this test rewrites")
    with tempfile.TemporaryDirectory(prefix="amprt_readme_") as tmp:
        script = os.path.join(tmp, "readme.sh")
        # every command echoed, so a failure names its line
        open(script, "w").write("set -euo pipefail\nset -x\n" + shell)
        p = subprocess.run(["bash", script], cwd=SRC, capture_output=True, text=True, errors="replace", timeout=900)
        if p.returncode != 0:
            failures.append(f"the README's commands failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
        else:
            out = p.stdout
            for want in ('"outputs": [', " ops: ", "p50 ", "accuracy"):
                if want not in out:
                    failures.append(f"the README's commands printed no {want!r}:\n{out[-2000:]}")
        n_cmds = len([line for line in shell.splitlines() if line.startswith("amprt ")])
        ran = len([line for line in p.stderr.splitlines() if line.startswith("+ amprt ")])
        if ran < n_cmds:
            failures.append(f"{ran} of the README's {n_cmds} amprt commands ran")
        # the C program
        prog = block_after(readme, "## A first program", "c")
        c = os.path.join(tmp, "first.c")
        open(c, "w").write(prog)
        exe = os.path.join(tmp, "first")
        cc = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", *CFLAGS, c, "-I", os.path.join(SRC, "include"),
                             "-L", BUILD, "-lamprt", f"-Wl,-rpath,{BUILD}", "-o", exe], capture_output=True, text=True)
        if cc.returncode != 0:
            failures.append(f"the README's C program does not compile:\n{cc.stderr[-2000:]}")
        else:
            r = subprocess.run([exe], cwd=SRC, capture_output=True, text=True, timeout=120)
            if r.returncode != 0 or not re.match(r"^40 bytes out on (cpu|cuda)\n$", r.stdout):
                failures.append(f"the README's C program: exit {r.returncode}, {r.stdout!r} {r.stderr[-1000:]}")
    for f in failures:
        print("FAIL", f)
    print("README examples:", "FAILED" if failures else "pass")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
