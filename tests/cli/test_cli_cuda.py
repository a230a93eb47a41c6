#!/usr/bin/env python3
"""The amprt tool on the CUDA backend, here through the emulator module: --backend cuda trains
and runs LeNet (and the overflow model, beside the CPU), refuses a model with a node it has no
kernel for (naming the node), and "auto"
says which backend it took and why (the device when every node is supported; the CPU, naming
the node or the missing device, otherwise). Usage: test_cli_cuda.py PATH/TO/amprt CUDA_MODULE
(CTest passes the build's amprt and libamprt_cuda_emu.so)."""
import os
import subprocess
import sys
import tempfile

import onnx
from onnx import TensorProto, helper

AMPRT = os.path.abspath(sys.argv[1])
MODULE = os.path.abspath(sys.argv[2])
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LENET = os.path.join(SRC, "models", "lenet", "model.onnx")
FMNIST = "/usr/share/datasets/fashion-mnist"
failures = []


def run(args, env_extra=None, timeout=300):
    env = dict(os.environ, AMPRT_CUDA_MODULE=MODULE)
    env.pop("AMP_EMU_NO_DEVICE", None)
    env.update(env_extra or {})
    p = subprocess.run([AMPRT] + args, capture_output=True, text=True, errors="replace", timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def expect(name, cond, rc, out, err):
    if not cond:
        failures.append(f"{name}: rc {rc}\nstdout: {out[-800:]}\nstderr: {err[-800:]}")


with tempfile.TemporaryDirectory() as tmp:
    out_model = os.path.join(tmp, "lenet_fp16.onnx")
    if os.path.isdir(FMNIST):
        rc, out, err = run(["train", LENET, "--data", FMNIST, "--backend", "cuda", "--amp", "fp16", "--max-steps", "20",
                            "--batch", "64", "--limit-test", "256", "--out", out_model, "--out-dtype", "fp16",
                            "--progress", "plain"])
        loss = [float(w.rstrip(",")) for line in (out + err).splitlines() if "train loss" in line
                for k, w in enumerate(line.split()) if k > 0 and line.split()[k - 1] == "loss"]
        expect("train --backend cuda", rc == 0 and "amprt: backend cuda (as asked)" in err and loss
               and 0.0 < loss[-1] < 2.3026 and os.path.isfile(out_model), rc, out, err)
        # the trained, converted model runs on the device and on the CPU alike
        if os.path.isfile(out_model):
            rc, out, err = run(["run", out_model, "--backend", "cuda"])
            expect("run trained --backend cuda", rc == 0 and "argmax" in out, rc, out, err)
    else:
        print(f"SKIP train cases: no Fashion-MNIST at {FMNIST}")
    def argmax(text):
        return [line for line in text.splitlines() if line.startswith("argmax")]

    rc, out, err = run(["run", LENET, "--backend", "cuda"])
    cu = out
    expect("run --backend cuda", rc == 0 and "backend cuda (as asked)" in err and "argmax" in out, rc, out, err)
    rc, out, err = run(["run", LENET, "--backend", "cpu"])
    expect("cpu and cuda pick the same class", rc == 0 and argmax(cu) and argmax(cu) == argmax(out), rc, cu, out)
    # the overflow model (MatMul and Mul, FP32 values beyond FP16's range) on both backends
    overflow = os.path.join(SRC, "models", "overflow", "model.onnx")
    rc, out, err = run(["run", overflow, "--backend", "cuda", "--output-dir", os.path.join(tmp, "ov_cuda")])
    rc2, out2, err2 = run(["run", overflow, "--backend", "cpu", "--output-dir", os.path.join(tmp, "ov_cpu")])
    same = False
    if rc == 0 and rc2 == 0:
        a = onnx.numpy_helper.to_array(onnx.load_tensor(os.path.join(tmp, "ov_cuda", "output_0.pb")))
        b = onnx.numpy_helper.to_array(onnx.load_tensor(os.path.join(tmp, "ov_cpu", "output_0.pb")))
        rel = float(((a.astype("float64") - b) ** 2).sum() ** 0.5 / (((b.astype("float64")) ** 2).sum() ** 0.5))
        same = a.shape == b.shape and rel < 1e-5
        print(f"overflow model: CUDA against the CPU, relative L2 {rel:.3g}")
    expect("overflow on cuda beside the cpu", same and "backend cuda (as asked)" in err, rc, out, err)
    rc, out, err = run(["run", LENET, "--backend", "auto"])
    expect("auto takes the device", rc == 0 and "backend cuda (auto: a CUDA device" in err, rc, out, err)
    # a model with an op the CUDA backend has no kernel for (Det: outside what the models need)
    det = os.path.join(tmp, "det.onnx")
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["r"], name="relu_first"),
                           helper.make_node("Det", ["r"], ["y"], name="the_det")], "det",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), det)
    rc, out, err = run(["run", det, "--backend", "cuda"])
    expect("cuda refuses an op it lacks, by node", rc == 1 and "'the_det'" in err and "no kernel for Det" in err,
           rc, out, err)
    rc, out, err = run(["run", det, "--backend", "auto"])
    expect("auto falls back on the node", rc == 0 and "backend cpu (auto: the CPU, since cuda has no kernel for Det" in err
           and "output y" in out, rc, out, err)
    rc, out, err = run(["run", LENET, "--backend", "auto"], {"AMP_EMU_NO_DEVICE": "1"})
    expect("auto without a device", rc == 0 and "backend cpu (auto: the CPU, since backend 'cuda'" in err
           and "argmax" in out, rc, out, err)
    rc, out, err = run(["run", LENET, "--backend", "cuda"], {"AMP_EMU_NO_DEVICE": "1"})
    expect("cuda without a device", rc == 1 and "no CUDA device" in err, rc, out, err)
    rc, out, err = run(["run", LENET, "--backend", "cuda"], {"AMPRT_CUDA_MODULE": os.path.join(tmp, "missing.so")})
    expect("cuda without its module", rc == 1 and "cannot be loaded" in err, rc, out, err)

# the training step's device memory (arena with its workspaces, and the persistent block), as
# `inspect --train --json` reports it: the arena within 1.05 x the planner's lower bound
import json
for dtype in ["", "fp16", "bf16"]:
    extra = ["--autocast", dtype] if dtype else []
    rc, out, err = run(["inspect", LENET, "--train", "--backend", "cuda", "--json", "--dim", "N=64"] + extra)
    try:
        doc = json.loads(out)
        tp, weights = doc["train_plan"], doc["parameter_bytes"]
    except (ValueError, KeyError, TypeError):
        tp, weights = None, 0
    ok = rc == 0 and tp is not None and tp.get("backend") == "cuda"
    if ok:
        print(f"train step memory on cuda ({dtype or 'fp32'}): arena {tp['arena_bytes']} "
              f"({tp['arena_over_lower_bound']:.3f} x the bound, workspaces {tp['workspace_bytes']}), "
              f"persistent {tp['persistent_bytes']}, device {tp['device_bytes']}")
        ok = (tp["arena_bytes"] <= 1.05 * tp["lower_bound_bytes"] and tp["workspace_bytes"] > 0
              and tp["persistent_bytes"] >= weights > 0 and tp["device_bytes"] == tp["arena_bytes"] + tp["persistent_bytes"])
    expect(f"inspect --train --backend cuda {dtype or 'fp32'}", ok, rc, out, err)

# every model's training step on CUDA (bench --train: the loss its output takes), each precision:
# the arena with its workspaces within 1.05 x the lower bound
for name in sorted(os.listdir(os.path.join(SRC, "models"))):
    path = os.path.join(SRC, "models", name, "model.onnx")
    if not os.path.isfile(path):
        continue
    for dtype in ["", "fp16", "bf16"]:
        extra = ["--autocast", dtype] if dtype else []
        rc, out, err = run(["bench", path, "--train", "--backend", "cuda", "--batch", "8", "--runs", "1", "--warmup", "0",
                            "--json"] + extra)
        try:
            d = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
            ratio = d["arena_bytes"] / d["lower_bound_bytes"]
        except (ValueError, KeyError, IndexError, ZeroDivisionError):
            d, ratio = None, None
        ok = rc == 0 and d is not None and d["backend"] == "cuda" and ratio <= 1.05
        if ok:
            print(f"{name} {dtype or 'fp32'} training step on cuda: arena {ratio:.3f} x the lower bound, "
                  f"{d['device_bytes']} device bytes")
        expect(f"bench --train {name} {dtype or 'fp32'} on cuda within 1.05 x", ok, rc, out, err)
        if dtype != "fp16":
            continue
        # inspect --train plans the same step (the loss from the output's shape, as bench's)
        rc, out, err = run(["inspect", path, "--train", "--backend", "cuda", "--dim", "N=8", "--json"] + extra)
        try:
            tp = json.loads(out).get("train_plan")
        except ValueError:
            tp = None
        expect(f"inspect --train {name} fp16 on cuda: a plan within 1.05 x",
               rc == 0 and tp is not None and tp["backend"] == "cuda" and tp["arena_over_lower_bound"] <= 1.05,
               rc, out[-300:], err)

for f in failures:
    print("FAIL", f)
print(f"test_cli_cuda: {len(failures)} failures")
sys.exit(1 if failures else 0)
