#!/usr/bin/env python3
"""amprt ops against the op table: every OP(...) line of ir/ops.def and the family files it
includes appears once in `amprt ops --json` with its domain, opsets, gradient flag and the
CPU; the CUDA column is the CUDA module's (here the emulator module, which carries the real
module's op tables); each op's dtypes are tools/amprt/op_dtypes.def's (the probe's; CTest
op_dtypes checks that file against a new probe), CUDA's only where CUDA has the op; docs/ops.md
is exactly `amprt ops --markdown`.
usage: test_cli_ops.py PATH/TO/amprt PATH/TO/libamprt_cuda_emu.so"""
import json
import os
import re
import subprocess
import sys

AMPRT, MODULE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
env = dict(os.environ, AMPRT_CUDA_MODULE=MODULE)
failures = []


def table():
    """(name, domain) -> (first opset, last opset, has gradient) from the op table's files."""
    ops, seen = {}, set()
    op_re = re.compile(r'^OP\((\w+), "([^"]+)", "([^"]*)", (\d+), (\d+), \w+, \d+, .*?, (GRAD\(\w+\)|NOGRAD), ')

    def read(path):
        if path in seen:
            return
        seen.add(path)
        for line in open(path):
            inc = re.match(r'#include "(ir/ops/\w+\.def)"', line)
            if inc:
                read(os.path.join(SRC, inc.group(1)))
            m = op_re.match(line)
            if m:
                ops[(m.group(2), m.group(3) or "ai.onnx")] = (int(m.group(4)), int(m.group(5)), m.group(6) != "NOGRAD")

    read(os.path.join(SRC, "ir/ops.def"))
    return ops


DTYPES = {"f32", "f16", "bf16", "f64", "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "bool", "string"}


def probed_dtypes():
    """(name, domain) -> (probed, cpu dtypes, cuda dtypes) from tools/amprt/op_dtypes.def."""
    out = {}
    for line in open(os.path.join(SRC, "tools/amprt/op_dtypes.def")):
        m = re.match(r'^OP_DTYPES\("([^"]+)", "([^"]+)", ([01]), "([^"]*)", "([^"]*)"\)$', line)
        if m:
            out[(m.group(1), m.group(2))] = (m.group(3) == "1", m.group(4).split(), m.group(5).split())
    return out


def main():
    want = table()
    p = subprocess.run([AMPRT, "ops", "--json"], capture_output=True, text=True, env=env, timeout=120)
    if p.returncode != 0:
        print(f"FAIL amprt ops --json: exit {p.returncode}: {p.stderr[-800:]}")
        return 1
    got = json.loads(p.stdout)
    if not got["cuda_backend"]:
        failures.append("the emulated CUDA backend was not created")
    names = [(o["name"], o["domain"]) for o in got["ops"]]
    if len(names) != len(set(names)):
        failures.append("an op is listed twice")
    if set(names) != set(want):
        failures.append(f"ops differ from the table: missing {sorted(set(want) - set(names))[:5]}, "
                        f"extra {sorted(set(names) - set(want))[:5]}")
    for o in got["ops"]:
        w = want.get((o["name"], o["domain"]))
        if w and (o["opset_first"], o["opset_last"], o["gradient"]) != w:
            failures.append(f"{o['name']}: opsets/gradient {o['opset_first']}..{o['opset_last']} {o['gradient']}, table {w}")
        if not o["cpu"]:
            failures.append(f"{o['name']}: not on the CPU")
    dts = probed_dtypes()
    if set(dts) != set(want):
        failures.append(f"tools/amprt/op_dtypes.def differs from the op table: missing "
                        f"{sorted(set(want) - set(dts))[:5]}, extra {sorted(set(dts) - set(want))[:5]}")
    for o in got["ops"]:
        d = dts.get((o["name"], o["domain"]))
        if d is None:
            continue
        shown = (o["dtypes_probed"], o["dtypes"]["cpu"], o["dtypes"]["cuda"])
        expect = (d[0], d[1], d[2] if o["cuda"] else [])
        if shown != expect:
            failures.append(f"{o['name']}: dtypes {shown}, op_dtypes.def {expect}")
        if set(d[1] + d[2]) - DTYPES:
            failures.append(f"{o['name']}: unknown dtype names {sorted(set(d[1] + d[2]) - DTYPES)}")
        if d[2] and not o["cuda"]:
            failures.append(f"{o['name']}: probed on CUDA but the CUDA backend lacks it")
        if not d[0] and (d[1] or d[2]):
            failures.append(f"{o['name']}: dtypes listed but not probed")
    for must, dt in (("Conv", "f16"), ("MatMul", "bf16"), ("Gather", "i64"), ("Add", "f64")):
        if not any(o["name"] == must and dt in o["dtypes"]["cpu"] and (must == "Add" or dt in o["dtypes"]["cuda"])
                   for o in got["ops"]):
            failures.append(f"{must} is not listed in {dt}")
    n_cuda = sum(o["cuda"] for o in got["ops"])
    for must in ("Conv", "MatMul", "LayerNormalization", "FusedGemm", "Attention", "SGD"):
        if not any(o["name"] == must and o["cuda"] for o in got["ops"]):
            failures.append(f"{must} is not listed on CUDA")
    md = subprocess.run([AMPRT, "ops", "--markdown"], capture_output=True, text=True, env=env, timeout=120)
    doc = open(os.path.join(SRC, "docs", "ops.md")).read()
    if md.returncode != 0 or md.stdout != doc:
        failures.append("docs/ops.md is not `amprt ops --markdown`: regenerate it with "
                        "AMPRT_CUDA_MODULE=build/libamprt_cuda_emu.so build/amprt ops --markdown > docs/ops.md")
    for f in failures:
        print("FAIL", f)
    print(f"amprt ops: {len(names)} ops ({n_cuda} on CUDA) against the table's {len(want)}; "
          f"{'failed' if failures else 'passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
