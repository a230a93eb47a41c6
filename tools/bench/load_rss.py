#!/usr/bin/env python3
"""Peak resident memory of loading a model, over the model's file size.

Writes, for each size, a model of Add nodes over 8 MiB float initializers (raw_data, as exporters
write them; with --typed in TensorProto.float_data, packed, as some older exporters do) into a
temporary folder, and runs `amprt inspect` on it (load, verify, plan), reading
its peak RSS from GNU time (/usr/bin/time, Debian package `time`). The program's own footprint (`inspect` of a one-node model) is
printed beside it.
Usage: tools/bench/load_rss.py [--typed] [AMPRT=build/amprt] [MB...]   (default MB: 50 500)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_model(mb, path, typed=False):
    per = 2 * 1024 * 1024  # floats per initializer: 8 MiB
    n = max(1, (mb * 1024 * 1024) // (per * 4))
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [per])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [per])
    inits, nodes, prev = [], [], "x"
    for i in range(n):
        w = rng.standard_normal(per, dtype=np.float32)
        t = numpy_helper.from_array(w, f"w{i}")
        if typed:  # the same values in float_data (packed fixed32) instead of raw_data
            t.ClearField("raw_data")
            t.float_data.extend(w.tolist())
        inits.append(t)
        out = "y" if i == n - 1 else f"h{i}"
        nodes.append(helper.make_node("Add", [prev, f"w{i}"], [out], name=f"add{i}"))
        prev = out
    g = helper.make_graph(nodes, f"rss{mb}", [x], [y], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def peak_kb(cmd):
    # GNU time reports the peak of the program alone (a child's ru_maxrss counts the forked
    # Python image it started from)
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr}")
    return int(r.stderr.strip().splitlines()[-1])


def main():
    args = sys.argv[1:]
    typed = "--typed" in args
    args = [a for a in args if a != "--typed"]
    amprt = args.pop(0) if args and not args[0].isdigit() else "build/amprt"
    sizes = [int(a) for a in args] or [50, 500]
    with tempfile.TemporaryDirectory() as tmp:
        tiny = os.path.join(tmp, "tiny.onnx")
        v = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])
        w = helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])
        onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["a"], ["b"])], "t", [v], [w]),
                                    opset_imports=[helper.make_opsetid("", 17)]), tiny)
        base = peak_kb([amprt, "inspect", tiny])
        print(f"weights in {'float_data' if typed else 'raw_data'}")
        print(f"{'model':>8} {'file bytes':>14} {'peak RSS KB':>12} {'RSS / file':>10}   (inspect of a 1-node model: {base} KB)")
        for mb in sizes:
            path = os.path.join(tmp, f"m{mb}.onnx")
            make_model(mb, path, typed)
            size = os.path.getsize(path)
            kb = peak_kb([amprt, "inspect", path])
            print(f"{mb:>6}MB {size:>14,} {kb:>12,} {kb * 1024 / size:>10.2f}")
            os.remove(path)


if __name__ == "__main__":
    main()
