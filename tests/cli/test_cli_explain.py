#!/usr/bin/env python3
"""amprt convert says why each node it leaves in FP32 stays there: --json's "fp32_nodes" (one
{node, op, reason, value, limit} per FP32 node), --verbose's lines after the counts and --dot's
tooltips, on LeNet in BF16 (Conv and MaxPool have no bfloat16 type before opset 22), on the
overflow model with calibration (range, with max |x| and the limit) and on a network whose
activations shrink to ~1e-9 (underflow, and --underflow-limit). Usage:
test_cli_explain.py PATH/TO/amprt"""
import json
import os
import re
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cli_bad as common  # noqa: E402  (run and check; reads sys.argv[1] too)

LENET = common.LENET
OVERFLOW = os.path.join(common.SRC, "models", "overflow")
run, check = common.run, common.check
KEYS = {"node", "op", "reason", "value", "limit"}
REASONS = {"deny-class", "range", "underflow", "blocked", "opset", "error-target", "neighbours", "not-autocast"}
FP16_MIN_NORMAL = 2.0 ** -14


def convert_json(name, args):
    """amprt convert ... --json: the parsed object, or None after recording why."""
    rc, out, err = run(["convert"] + args + ["--json", "-q"])
    check(f"{name}: exit 0", rc == 0, f"exit {rc}: {err.strip()}")
    lines = out.strip().splitlines()
    check(f"{name}: one JSON object on stdout", len(lines) == 1, f"{len(lines)} lines: {out[:300]}")
    try:
        return json.loads(out)
    except ValueError as e:
        check(f"{name}: stdout is JSON", False, f"{e}: {out[:300]}")
        return None


def schema(name, d):
    """The counts and fp32_nodes: one entry per FP32 node the colouring chose, well formed."""
    for k in ("nodes_16bit", "nodes_fp32", "nodes_other", "nodes_range_kept", "nodes_underflow_kept",
              "nodes_blocked", "nodes_error_kept", "nodes_relaxed", "error_passes", "nodes_opset_kept"):
        check(f"{name}: '{k}' is a count", isinstance(d.get(k), int) and d[k] >= 0, f"{k} = {d.get(k)!r}")
    nodes = d.get("fp32_nodes")
    check(f"{name}: fp32_nodes is a list", isinstance(nodes, list), repr(nodes)[:200])
    if not isinstance(nodes, list):
        return []
    check(f"{name}: one reason per FP32 node", len(nodes) == d["nodes_fp32"],
          f"{len(nodes)} reasons, {d['nodes_fp32']} FP32 nodes")
    for e in nodes:
        check(f"{name}: entry keys", set(e) == KEYS, f"{sorted(e)}")
        if e.get("value") in ("inf", "-inf"):  # non-finite numbers are written as strings
            e["value"] = float(e["value"])
        check(f"{name}: reason of {e.get('node')}", e.get("reason") in REASONS, repr(e.get("reason")))
        numbers = e.get("reason") in ("range", "underflow")
        # a deny-class or neighbours node the --max-error search tried in 16 bits: the error
        # measured then and the target
        measured = e.get("reason") in ("deny-class", "neighbours") and e.get("limit") is not None
        if measured:
            check(f"{name}: measured {e.get('node')}: a target and an error",
                  isinstance(e.get("limit"), (int, float)) and e["limit"] > 0 and isinstance(e.get("value"), (int, float))
                  and (e["value"] > 0 or e["value"] == -1), repr(e))
            continue
        for k in ("value", "limit"):
            # an error-target node's value is its measured contribution, with no limit
            has = numbers or (k == "value" and e.get("reason") == "error-target")
            ok = isinstance(e.get(k), (int, float)) and e[k] > 0 if has else e.get(k) is None
            check(f"{name}: {k} of {e.get('node')} ({e.get('reason')})", ok, repr(e.get(k)))
        if e.get("reason") == "range":
            check(f"{name}: range value above its limit", e["value"] > e["limit"], repr(e))
        if e.get("reason") == "underflow":
            check(f"{name}: underflow value below its limit", 0 < e["value"] < e["limit"], repr(e))
    return nodes


def verbose_lines(name, args):
    """The '  FP32 NAME (OP): REASON...' lines of --verbose, as (name, op, reason) triples."""
    rc, out, err = run(["convert"] + args + ["--verbose", "-q"])
    check(f"{name} --verbose: exit 0", rc == 0, f"exit {rc}: {err.strip()}")
    lines = out.splitlines()
    check(f"{name} --verbose: the counts come first", bool(lines) and " nodes in 16 bits" in lines[0], out[:300])
    got = []
    for line in lines[1:]:
        m = re.match(r"^  FP32 (\S+) \((\S+)\): ([a-z-]+)(: .*)?$", line)
        if m:
            got.append((m.group(1), m.group(2), m.group(3), m.group(4) or ""))
    return got


def shrinking_model(tmp):
    """x [4,16] -> 8 x MatMul, each shrinking the values about tenfold: ~1e-8 at the end."""
    rng = np.random.default_rng(7)
    nodes, inits, h = [], [], "x"
    for k in range(8):
        w = (rng.choice([-1.0, 1.0], size=(16, 16)) * rng.uniform(0.5, 1.5, size=(16, 16)) * 0.1 / 4 / 1.08)
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"W{k}"))
        nodes.append(helper.make_node("MatMul", [h, f"W{k}"], [f"h{k}"], name=f"mm{k}"))
        h = f"h{k}"
    nodes.append(helper.make_node("Identity", [h], ["y"], name="out"))
    graph = helper.make_graph(nodes, "shrink", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = common.save(model, os.path.join(tmp, "shrink.onnx"))
    cal = os.path.join(tmp, "shrink_calib")
    os.makedirs(cal)
    x = rng.choice([-1.0, 1.0], size=(4, 16)) * rng.uniform(0.5, 1.5, size=(4, 16))
    with open(os.path.join(cal, "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x.astype(np.float32), "x").SerializeToString())
    return path, cal


def cases(tmp):
    out = os.path.join(tmp, "out.onnx")
    # LeNet in BF16: the four Conv/MaxPool nodes stay FP32 for the opset, each said so
    d = convert_json("lenet bf16", [LENET, out, "--precision", "bf16"])
    if d:
        nodes = schema("lenet bf16", d)
        check("lenet bf16: one reason per FP32 node", len(nodes) == d["nodes_fp32"] == 4,
              f"{len(nodes)} reasons, {d['nodes_fp32']} FP32 nodes")
        check("lenet bf16: Conv and MaxPool, for the opset",
              sorted((e["op"], e["reason"]) for e in nodes) == [("Conv", "opset")] * 2 + [("MaxPool", "opset")] * 2,
              repr(nodes))
        lines = verbose_lines("lenet bf16", [LENET, out, "--precision", "bf16"])
        check("lenet bf16 --verbose: one line per FP32 node, as --json lists them",
              [(n, o, r) for n, o, r, _ in lines] == [(e["node"], e["op"], e["reason"]) for e in nodes], repr(lines))
    dot = os.path.join(tmp, "lenet.dot")
    rc, _, err = run(["convert", LENET, out, "--precision", "bf16", "--dot", dot, "-q"])
    check("lenet bf16 --dot: exit 0", rc == 0, err.strip())
    if rc == 0:
        text = open(dot).read()
        tips = re.findall(r'fillcolor="#f4a582", label="[^"]*", tooltip="opset: [^"]*"', text)
        check("lenet bf16 --dot: the four FP32 nodes carry their reason", len(tips) == 4, f"{len(tips)} tooltips")
    rc, _, err = run(["convert", LENET, out, "--precision", "fp32", "--dot", dot])
    check("convert --precision fp32 --dot is refused", rc == 2 and "--dot" in err, f"exit {rc}: {err.strip()}")
    # FP16 LeNet: nothing stays FP32, nothing is listed
    d = convert_json("lenet fp16", [LENET, out])
    if d:
        check("lenet fp16: no FP32 node, empty list", d["nodes_fp32"] == 0 and d["fp32_nodes"] == [], repr(d))

    # the overflow model with calibration: range, with the value seen and the default limit
    args = [os.path.join(OVERFLOW, "model.onnx"), out, "--calibrate", os.path.join(OVERFLOW, "calib")]
    d = convert_json("overflow calibrated", args)
    if d:
        nodes = schema("overflow calibrated", d)
        ranged = [e for e in nodes if e["reason"] == "range"]
        check("overflow: the range-kept nodes are listed as range", len(ranged) == d["nodes_range_kept"] >= 1,
              f"{len(ranged)} listed, {d['nodes_range_kept']} counted")
        check("overflow: the default limit is 65504 / 16", all(e["limit"] == 4094 for e in ranged), repr(ranged))
        lines = verbose_lines("overflow calibrated", args)
        vr = [x for x in lines if x[2] == "range"]
        check("overflow --verbose: range lines with max |x| and the limit",
              len(vr) == len(ranged) and all("max |x|" in x[3] and "4094" in x[3] for x in vr), repr(lines))
    rc, _, err = run(["inspect", os.path.join(OVERFLOW, "model.onnx"), "--precision", "fp16", "--calibrate",
                      os.path.join(OVERFLOW, "calib"), "--dot", dot])
    check("inspect --dot: exit 0", rc == 0, err.strip())
    if rc == 0:
        check("inspect --dot: range tooltips", 'tooltip="range: max |x|' in open(dot).read(), "none")

    # a shrinking network: underflow, turned off by a negative --underflow-limit
    model, cal = shrinking_model(tmp)
    d = convert_json("shrinking calibrated", [model, out, "--calibrate", cal])
    if d:
        nodes = schema("shrinking calibrated", d)
        under = [e for e in nodes if e["reason"] == "underflow"]
        check("shrinking: underflow nodes listed and counted", len(under) == d["nodes_underflow_kept"] >= 2,
              f"{len(under)} listed, {d['nodes_underflow_kept']} counted")
        check("shrinking: the default limit is FP16's smallest normal",
              all(e["limit"] == FP16_MIN_NORMAL for e in under), repr(under))
        check("shrinking: the first MatMul stays 16-bit", all(e["node"] != "mm0" for e in nodes), repr(nodes))
        lines = verbose_lines("shrinking calibrated", [model, out, "--calibrate", cal])
        check("shrinking --verbose: underflow lines",
              sum(1 for x in lines if x[2] == "underflow" and "below the limit" in x[3]) == len(under), repr(lines))
    d = convert_json("shrinking, guard off", [model, out, "--calibrate", cal, "--underflow-limit", "-1"])
    if d:
        check("shrinking --underflow-limit -1: nothing kept for underflow",
              d["nodes_underflow_kept"] == 0 and all(e["reason"] != "underflow" for e in d["fp32_nodes"]), repr(d))
    d = convert_json("shrinking, high limit", [model, out, "--calibrate", cal, "--underflow-limit", "10"])
    if d:
        under = [e for e in d["fp32_nodes"] if e["reason"] == "underflow"]
        check("shrinking --underflow-limit 10: every node (8 MatMul, the Identity) below it, with that limit",
              len(under) == len(d["fp32_nodes"]) == 9 and all(e["limit"] == 10 for e in under), repr(under))
    # the error-targeted search's report: its measures in --json, each node it kept listed with
    # its measured contribution; without --max-error the measures are null
    unet = os.path.join(os.path.dirname(LENET), "..", "unet")
    d = convert_json("unet --max-error 1e-3", [os.path.join(unet, "model.onnx"), out, "--calibrate", unet,
                                               "--max-error", "1e-3"])
    if d:
        kept = [e for e in schema("unet --max-error", d) if e["reason"] == "error-target"]
        check("unet --max-error 1e-3: within the target, some FLOPs in 16 bits, passes counted",
              0 < d["error"] <= 1e-3 and 0 < d["flops16_share"] < 1 and 3 <= d["error_passes"] <= 100, repr(d))
        check("unet --max-error 1e-3: every node the search kept is listed with its contribution",
              len(kept) == d["nodes_error_kept"] >= 1 and all(e["value"] > 0 for e in kept), repr(kept))
    # the search tries the op classes' FP32 nodes in 16 bits: mlp's two LayerNormalizations and
    # mobilenetv2's ReduceMean hold 1e-2 there; --keep-op-classes leaves them as the classes say
    for name, fp32 in (("mlp", 2), ("mobilenetv2", 1)):
        mdir = os.path.join(common.SRC, "models", name)
        args = [os.path.join(mdir, "model.onnx"), out, "--calibrate", mdir, "--max-error", "1e-2"]
        d = convert_json(f"{name} --max-error 1e-2", args)
        if d:
            schema(f"{name} --max-error", d)
            check(f"{name} --max-error 1e-2: its {fp32} FP32 nodes measured and moved to 16 bits, within the target",
                  d["nodes_relaxed"] == fp32 and d["nodes_fp32"] == 0 and 0 < d["error"] <= 1e-2
                  and d["error_passes"] == 2, repr({k: v for k, v in d.items() if k != "fp32_nodes"}))
        d = convert_json(f"{name} --max-error 1e-2 --keep-op-classes", args + ["--keep-op-classes"])
        if d:
            schema(f"{name} --keep-op-classes", d)
            check(f"{name} --keep-op-classes: the classes' {fp32} FP32 nodes stay, two passes",
                  d["nodes_relaxed"] == 0 and d["nodes_fp32"] == fp32 and d["error_passes"] == 2
                  and all(e["reason"] == "deny-class" and e["limit"] is None for e in d["fp32_nodes"]), repr(d))
    rc, _, err = run(["convert", LENET, out, "--keep-op-classes"])
    check("--keep-op-classes without --max-error is refused", rc == 1 and "--max-error" in err, f"exit {rc}: {err}")
    d = convert_json("lenet fp16, no target", [LENET, out])
    if d:
        check("without --max-error: error and flops16_share are null, no passes",
              d["error"] is None and d["flops16_share"] is None and d["error_passes"] == 0, repr(d))
    # every model of models/, both types: every FP32 node has its reason, the Constants and the
    # model's own Casts that autocast leaves as they are too (not-autocast)
    untouched = 0
    for name in sorted(os.listdir(os.path.join(common.SRC, "models"))):
        path = os.path.join(common.SRC, "models", name, "model.onnx")
        if not os.path.isfile(path):
            continue
        for p in ("fp16", "bf16"):
            d = convert_json(f"{name} {p}", [path, out, "--precision", p])
            if d:
                schema(f"{name} {p}", d)
                untouched += sum(e["reason"] == "not-autocast" for e in d["fp32_nodes"])
    check("some FP32 nodes are explained as not-autocast (the detector's Resize scales, ...)", untouched > 0,
          f"{untouched}")
    for bad in ("abc", "inf", ""):
        rc, _, err = run(["convert", model, out, "--underflow-limit", bad])
        check(f"--underflow-limit '{bad}' is refused", rc == 2 and "--underflow-limit" in err, f"exit {rc}: {err}")
    rc, _, err = run(["convert", model, out, "--precision", "fp32", "--underflow-limit", "1e-3"])
    check("--underflow-limit without a conversion is refused", rc == 2, f"exit {rc}: {err.strip()}")


def main():
    return common.finish("explanation", cases)


if __name__ == "__main__":
    sys.exit(main())
