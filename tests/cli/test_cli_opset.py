#!/usr/bin/env python3
"""amprt convert --target-opset: the opset conversion on the ONNX node tests it touches (every
listed passing case below the target whose op the conversion rewrites, upgraded with
`convert --precision fp32 --target-opset N`, must still pass `amprt check` against its expected
outputs and onnx.checker), refusals (a target below the model's opset or above amprt's, a node
whose meaning cannot be carried: nothing written), Softmax-11 over a middle axis written out, and BF16 end to end on an opset-10 CNN: without
--target-opset most nodes stay FP32 for the opset and a warning says so; with 22 more nodes run
in BF16, the counts add up and the output stays within rel L2 2e-2 of FP32. Usage:
test_cli_opset.py PATH/TO/amprt"""
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cli_bad as common  # noqa: E402  (run and check; reads sys.argv[1] too)

run, check = common.run, common.check
NODE_DIR = "/usr/share/libonnx-testdata/data/node"
PASS_LIST = os.path.join(common.SRC, "tests", "conformance", "node_pass.txt")
# ops whose form the conversion changes somewhere below the target
REWRITTEN = {"Split", "Squeeze", "Unsqueeze", "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
             "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "Pad", "Clip", "Slice",
             "Dropout", "TopK", "BatchNormalization", "Softmax", "LogSoftmax", "Hardmax", "Upsample", "Resize",
             "Scatter"}
TARGET = 21


def default_opset(m):
    return next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 1)


def node_cases(tmp):
    if not os.path.isdir(NODE_DIR):
        check("node tests present", False, f"{NODE_DIR} is missing (install libonnx-testdata)")
        return
    with open(PASS_LIST) as f:
        listed = sorted({line.strip() for line in f if line.strip()})
    tried = passed = refused = 0
    for case in listed:
        src = os.path.join(NODE_DIR, case)
        model = os.path.join(src, "model.onnx")
        if not os.path.isfile(model):
            continue
        m = onnx.load(model)
        if default_opset(m) >= TARGET or not any(n.op_type in REWRITTEN for n in m.graph.node):
            continue
        dst = os.path.join(tmp, "node", case)
        os.makedirs(dst)
        for d in os.listdir(src):
            if d.startswith("test_data_set"):
                shutil.copytree(os.path.join(src, d), os.path.join(dst, d))
        rc, out, err = run(["convert", model, os.path.join(dst, "model.onnx"), "--precision", "fp32",
                            "--target-opset", str(TARGET)])
        if rc != 0:
            # a refusal must name the node and write nothing
            refused += 1
            check(f"{case}: a refusal is clear and writes nothing",
                  "opset" in err and not os.path.exists(os.path.join(dst, "model.onnx")), f"exit {rc}: {err.strip()}")
            shutil.rmtree(dst)
            continue
        tried += 1
        up = onnx.load(os.path.join(dst, "model.onnx"))
        check(f"{case}: opset {TARGET} written", default_opset(up) == TARGET, str(up.opset_import))
        try:
            onnx.checker.check_model(up, full_check=True)
            ok, why = True, ""
        except Exception as e:  # noqa: BLE001 (any checker complaint is the failure)
            ok, why = False, str(e).splitlines()[0]
        check(f"{case}: onnx.checker accepts the upgraded model", ok, why)
        rc, out, err = run(["check", dst, "--quiet"])
        good = rc == 0 and "1 passed" in out
        passed += good
        check(f"{case}: upgraded model still matches the expected outputs", good, (out + err).strip()[-400:])
    check("some node tests were upgraded", tried >= 50, f"only {tried}")
    print(f"node tests below opset {TARGET} with a rewritten op: {tried} upgraded, {passed} pass, {refused} refused")


def cnn(opset):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "W")
    b = numpy_helper.from_array(rng.standard_normal((8,)).astype(np.float32) * 0.1, "B")
    gw = numpy_helper.from_array(rng.standard_normal((128, 10)).astype(np.float32) * 0.1, "G")
    gb = numpy_helper.from_array(rng.standard_normal((10,)).astype(np.float32) * 0.1, "GB")
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "G", "GB"], ["g"], name="gemm"),
             helper.make_node("Unsqueeze", ["g"], ["u"], axes=[0], name="unsq"),
             helper.make_node("Squeeze", ["u"], ["s"], axes=[0], name="sq"),
             helper.make_node("Clip", ["s"], ["cl"], min=-2.0, max=2.0, name="clip"),
             helper.make_node("Softmax", ["cl"], ["y"], axis=1, name="softmax")]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [w, b, gw, gb])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 6
    onnx.checker.check_model(m)
    return m


def outputs_of(tmp, model, x, tag):
    """y of model on x through `amprt run`."""
    xin = os.path.join(tmp, f"x_{tag}.npy")
    np.save(xin, x)
    out = os.path.join(tmp, f"y_{tag}")
    rc, o, err = run(["run", model, "--input", f"x={xin}", "--output-dir", out, "-q"])
    check(f"{tag}: runs", rc == 0, f"exit {rc}: {err.strip()}")
    path = os.path.join(out, "y.npy")
    return np.load(path) if rc == 0 and os.path.exists(path) else None


def bf16_cases(tmp):
    src = common.save(cnn(10), os.path.join(tmp, "cnn10.onnx"))
    plain = os.path.join(tmp, "cnn_bf16.onnx")
    rc, out, err = run(["convert", src, plain, "--precision", "bf16", "--json"])
    check("bf16 at opset 10: converts", rc == 0, f"exit {rc}: {err.strip()}")
    d0 = json.loads(out) if rc == 0 else {}
    check("bf16 at opset 10: a warning names the count and --target-opset 13 and 22",
          "warning" in err and "--target-opset 13" in err and "22" in err and
          f"{d0.get('nodes_opset_kept')} nodes stay FP32" in err, err.strip())
    check("bf16 at opset 10: most nodes kept FP32 by the opset",
          d0.get("nodes_opset_kept", 0) >= 5 and d0.get("nodes_16bit", 99) <= 1 and d0.get("opset_from") == 10 and
          d0.get("opset_to") == 10, repr(d0)[:400])
    up = os.path.join(tmp, "cnn_bf16_22.onnx")
    rc, out, err = run(["convert", src, up, "--precision", "bf16", "--target-opset", "22", "--json"])
    check("bf16 --target-opset 22: converts", rc == 0, f"exit {rc}: {err.strip()}")
    d1 = json.loads(out) if rc == 0 else {}
    check("bf16 --target-opset 22: no warning", "warning" not in err, err.strip())
    check("bf16 --target-opset 22: nothing kept FP32 by the opset, more nodes in 16 bits, opsets reported",
          d1.get("nodes_opset_kept") == 0 and d1.get("nodes_16bit", 0) >= 6 and
          d1.get("nodes_16bit", 0) > d0.get("nodes_16bit", 99) and d1.get("opset_from") == 10 and
          d1.get("opset_to") == 22 and d1.get("nodes_opset_rewritten") == 4, repr(d1)[:400])
    if rc == 0:
        m = onnx.load(up)
        check("bf16 --target-opset 22: opset 22 written, Clip bounds and axes as inputs",
              default_opset(m) == 22 and all(len(n.attribute) == 0 for n in m.graph.node
                                             if n.op_type in ("Clip", "Squeeze", "Unsqueeze")), str(m.opset_import))
        try:
            onnx.checker.check_model(m, full_check=True)
            ok, why = True, ""
        except Exception as e:  # noqa: BLE001
            ok, why = False, str(e).splitlines()[0]
        check("bf16 --target-opset 22: onnx.checker accepts it", ok, why)
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    y32 = outputs_of(tmp, src, x, "fp32")
    y16 = outputs_of(tmp, up, x, "bf16_22")
    if y32 is not None and y16 is not None:
        rel = float(np.linalg.norm(y16 - y32) / np.linalg.norm(y32))
        check("bf16 --target-opset 22: rel L2 to FP32 < 2e-2", rel < 2e-2, f"rel L2 {rel:.3g}")
    # the FP32 upgrade alone keeps the outputs
    f21 = os.path.join(tmp, "cnn21.onnx")
    rc, out, err = run(["convert", src, f21, "--precision", "fp32", "--target-opset", "21"])
    check("fp32 --target-opset 21: reports the change", rc == 0 and "opset 10 -> 21, 4 nodes rewritten" in out,
          f"exit {rc}: {out.strip()} {err.strip()}")
    y21 = outputs_of(tmp, f21, x, "fp32_21") if rc == 0 else None
    if y32 is not None and y21 is not None:
        check("fp32 --target-opset 21: outputs bit for bit", np.array_equal(y21, y32),
              f"max diff {np.abs(y21 - y32).max()}")


def refusal_cases(tmp):
    src = common.save(cnn(10), os.path.join(tmp, "cnn10r.onnx"))
    out = os.path.join(tmp, "low.onnx")
    rc, _, err = run(["convert", src, out, "--precision", "fp32", "--target-opset", "9"])
    check("a target below the model's opset is refused, nothing written",
          rc == 1 and "below the model's opset 10" in err and not os.path.exists(out), f"exit {rc}: {err.strip()}")
    rc, _, err = run(["convert", src, out, "--precision", "bf16", "--target-opset", "99"])
    check("a target above amprt's opsets is refused", rc == 1 and "above the highest opset" in err
          and not os.path.exists(out), f"exit {rc}: {err.strip()}")
    # BatchNormalization-7 with spatial=0 (per-element statistics) has no form from opset 9 on
    rng = np.random.default_rng(2)
    stats = [numpy_helper.from_array(rng.random((3, 4)).astype(np.float32) + 0.5, k) for k in ("s", "b", "m", "v")]
    bn = common.model_of([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], spatial=0,
                                           name="bn")],
                         [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])], stats)
    bn.opset_import[0].version = 7
    bnp = common.save(bn, os.path.join(tmp, "bn7.onnx"))
    rc, _, err = run(["convert", bnp, out, "--precision", "fp32", "--target-opset", "13"])
    check("BatchNormalization-7 spatial=0 is refused, naming node, op and opsets, nothing written",
          rc == 1 and "'bn' (BatchNormalization)" in err and "7 -> 13" in err and "spatial" in err and
          not os.path.exists(out), f"exit {rc}: {err.strip()}")
    # Softmax over axis 1 of a rank-3 input flattens to 2-D before opset 13: written out
    sm = common.model_of([helper.make_node("Softmax", ["x"], ["y"], axis=1, name="sm")],
                         [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])])
    sm.opset_import[0].version = 11
    smp = common.save(sm, os.path.join(tmp, "sm11.onnx"))
    sm13 = os.path.join(tmp, "sm13.onnx")
    rc, _, err = run(["convert", smp, sm13, "--precision", "fp32", "--target-opset", "13"])
    check("Softmax-11 over a middle axis converts", rc == 0, f"exit {rc}: {err.strip()}")
    if rc == 0:
        ops = [n.op_type for n in onnx.load(sm13).graph.node]
        check("Softmax-11 axis 1 of rank 3: Flatten, Softmax, Shape, Reshape", sorted(ops) ==
              ["Flatten", "Reshape", "Shape", "Softmax"], repr(ops))
        x = rng.standard_normal((2, 3, 4)).astype(np.float32)
        a, b = outputs_of(tmp, smp, x, "sm11"), outputs_of(tmp, sm13, x, "sm13")
        if a is not None and b is not None:
            check("Softmax-11 -> 13: outputs bit for bit", np.array_equal(a, b), f"max diff {np.abs(a - b).max()}")
    rc, _, err = run(["convert", smp, out, "--target-opset", "abc"])
    check("--target-opset abc is refused", rc == 2 and "--target-opset" in err, f"exit {rc}: {err.strip()}")


def cases(tmp):
    refusal_cases(tmp)
    bf16_cases(tmp)
    node_cases(tmp)


def main():
    return common.finish("opset conversion", cases)


if __name__ == "__main__":
    sys.exit(main())
