#!/usr/bin/env python3
"""Planning time for graphs with many tensors alive at once.

Writes, for each N, models with N tensors and times `amprt inspect` on them (load, verify, type
check, shape inference, plan):
  parallel: the input feeds N Relu nodes whose outputs all stay alive until one Sum reads them;
  window:   N Relu outputs, each read by an Add 40 nodes later (40 alive at a time; the greedy
            heuristics run, their cost grows with the pairs alive together).
Usage: tools/bench/plan_bench.py [AMPRT=build/amprt] [N...]   (default N: 1000 10000 100000)
"""
import os
import subprocess
import sys
import tempfile
import time

import onnx
from onnx import TensorProto, helper


def parallel_model(n, path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    nodes = [helper.make_node("Relu", ["x"], [f"t{i}"], name=f"r{i}") for i in range(n)]
    nodes.append(helper.make_node("Sum", [f"t{i}" for i in range(n)], ["y"], name="sum"))
    g = helper.make_graph(nodes, f"parallel{n}", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(m, path)


def window_model(n, path, w=40):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    nodes, acc = [], "x"
    for i in range(n + w):
        if i < n:
            nodes.append(helper.make_node("Relu", [acc if i == 0 else "x"], [f"t{i}"], name=f"r{i}"))
        if i >= w:
            out = "y" if i == n + w - 1 else f"s{i}"
            nodes.append(helper.make_node("Add", [acc, f"t{i - w}"], [out], name=f"a{i}"))
            acc = out
    g = helper.make_graph(nodes, f"window{n}", [x], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


def main():
    args = sys.argv[1:]
    amprt = args.pop(0) if args and not args[0].isdigit() else "build/amprt"
    sizes = [int(a) for a in args] or [1000, 10000, 100000]
    with tempfile.TemporaryDirectory() as tmp:
        for kind, make in (("parallel", parallel_model), ("window", window_model)):
            for n in sizes:
                path = os.path.join(tmp, f"{kind}{n}.onnx")
                make(n, path)
                t0 = time.perf_counter()
                p = subprocess.run([amprt, "inspect", path], capture_output=True, text=True)
                dt = time.perf_counter() - t0
                lines = [l.strip() for l in p.stdout.splitlines()]
                plan = next((k for k, l in enumerate(lines) if "arena" in l), None)
                about = " ".join(lines[plan:plan + 2]) if plan is not None else ""
                status = "ok" if p.returncode == 0 else f"exit {p.returncode}: {p.stderr.strip()[:200]}"
                print(f"{kind:>8} {n:>7} tensors: inspect {dt:7.3f} s  {status}  {about}", flush=True)


if __name__ == "__main__":
    main()
