#!/usr/bin/env python3
"""`amprt train` end to end on Fashion-MNIST, checked from outside:

1. a short FP16-AMP run writes its JSON log (every field), chart, checkpoint and the trained
   model; onnx.checker (full) accepts the model, onnxruntime runs it and agrees with `amprt run`;
   the FP16 export loads in onnxruntime and stays within 1e-2 of the FP32 export;
2. crash safety: a run killed (SIGKILL) after its first checkpoint and resumed with --resume ends
   with exactly the same weights as a run that was never interrupted.

Usage: test_train_peer.py [--amprt build/amprt] [--data /usr/share/datasets/fashion-mnist]
"""
import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper as nh

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit("FAIL: %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
    return r


def weights(path):
    m = onnx.load(path)
    return {t.name: nh.to_array(t) for t in m.graph.initializer}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--amprt", default=os.path.join(ROOT, "build-rel", "amprt"))
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--backend", default="cpu", help="amprt --backend for train and run (cpu-check: the checking backend)")
    a = ap.parse_args()
    if not os.path.isdir(a.data):
        sys.exit("FAIL: %s is missing (install dataset-fashion-mnist)" % a.data)
    lenet = os.path.join(ROOT, "models", "lenet", "model.onnx")
    common = ["--data", a.data, "--batch", "32", "--lr", "0.01", "--momentum", "0.9", "--limit-test", "300",
              "--progress", "plain", "--threads", "2", "--backend", a.backend]
    with tempfile.TemporaryDirectory() as tmp:
        # 1. a short run and its artefacts
        out = os.path.join(tmp, "trained.onnx")
        log = os.path.join(tmp, "log.jsonl")
        svg = os.path.join(tmp, "curves.svg")
        run([a.amprt, "train", lenet, "--epochs", "2", "--limit-train", "640", "--amp", "fp16", "--out", out,
             "--json-log", log, "--plot", svg, "--checkpoint", os.path.join(tmp, "ck")] + common)
        lines = [json.loads(l) for l in open(log)]
        assert len(lines) == 2, lines
        for l in lines:
            for k in ("epoch", "train_loss", "test_accuracy", "epoch_seconds", "loss_scale"):
                assert k in l, (k, l)
            assert np.isfinite(l["train_loss"]) and 0 <= l["test_accuracy"] <= 1, l
        assert lines[1]["train_loss"] < lines[0]["train_loss"], lines
        assert open(svg).read().lstrip().startswith("<"), "chart is not SVG"
        assert not glob.glob(os.path.join(tmp, "*.tmp*")), "temporary files left behind"
        onnx.checker.check_model(onnx.load(out), full_check=True)
        x = nh.to_array(onnx.load_tensor(os.path.join(ROOT, "models", "lenet", "test_data_set_0", "input_0.pb")))
        y_ort = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        inp = os.path.join(tmp, "x.pb")
        open(inp, "wb").write(nh.from_array(x, "input").SerializeToString())
        od = os.path.join(tmp, "outs")
        run([a.amprt, "run", out, "--input", "input=" + inp, "--output-dir", od, "--backend", a.backend])
        y_amp = nh.to_array(onnx.load_tensor(os.path.join(od, "output_0.pb")))
        rel = np.linalg.norm(y_amp - y_ort) / np.linalg.norm(y_ort)
        assert rel < 1e-5, "amprt and onnxruntime disagree on the trained model: %g" % rel
        ref = weights(lenet)
        moved = sum(float(np.abs(w - ref[k]).max()) > 0 for k, w in weights(out).items())
        assert moved >= 4, "training moved only %d initializers" % moved
        out16 = os.path.join(tmp, "trained16.onnx")
        run([a.amprt, "convert", out, out16, "--dtype", "fp16", "--keep-io-types"])
        onnx.checker.check_model(onnx.load(out16), full_check=True)
        y16 = ort.InferenceSession(out16, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        rel16 = np.linalg.norm(y16.astype(np.float64) - y_ort) / np.linalg.norm(y_ort)
        assert rel16 < 1e-2, "FP16 export differs by %g" % rel16
        print("train: log, chart, checkpoint, export ok; amprt vs onnxruntime %.2e, FP16 export %.2e" % (rel, rel16))

        # 2. kill and resume
        steps = ["--epochs", "2", "--limit-train", "1280", "--amp", "fp16", "--checkpoint-every", "10"] + common
        whole = os.path.join(tmp, "whole.onnx")
        run([a.amprt, "train", lenet, "--out", whole, "--checkpoint", os.path.join(tmp, "ck_whole")] + steps)
        ck = os.path.join(tmp, "ck_killed")
        p = subprocess.Popen([a.amprt, "train", lenet, "--checkpoint", ck] + steps, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        t0 = time.time()
        while not os.path.exists(ck) and p.poll() is None and time.time() - t0 < 120:
            time.sleep(0.02)
        time.sleep(0.3)
        killed = p.poll() is None
        if killed:
            p.send_signal(signal.SIGKILL)
        p.wait()
        assert os.path.exists(ck), "no checkpoint was written before the kill"
        resumed = os.path.join(tmp, "resumed.onnx")
        r = run([a.amprt, "train", lenet, "--out", resumed, "--checkpoint", ck, "--resume", ck] + steps)
        wa, wb = weights(whole), weights(resumed)
        for k in wa:
            assert np.array_equal(wa[k], wb[k]), "parameter %s differs after kill and resume" % k
        print("train: killed %s, resumed (%s), weights bit-identical to the uninterrupted run"
              % ("mid-run" if killed else "after it finished", r.stderr.strip().splitlines()[0]))
    print("train peer checks passed")


if __name__ == "__main__":
    main()
