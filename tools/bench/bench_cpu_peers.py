#!/usr/bin/env python3
"""amprt on the CPU beside onnxruntime, OpenVINO and PyTorch, in one run (docs/benchmarks.md).

Part "infer", every model of --models at every batch of --batches (default 1 and 8):

    amprt-fp32   amprt bench MODEL --batch B --threads T --json --runs R --warmup W --backend cpu
                       --input NAME=FILE.pb ... --quiet
    amprt-bf16   the same with --precision bf16 (amprt's own BF16 conversion, FP32 I/O)
    ort-fp32     onnxruntime, CPU EP, intra-op T, inter-op 1, sequential, ORT_ENABLE_ALL, IOBinding
                 (tools/bench/bench_ort.py's session and timing)
    ov-default   OpenVINO on "CPU" at its default precision (INFERENCE_NUM_THREADS T, NUM_STREAMS 1,
                 PERFORMANCE_HINT LATENCY, the batch made static with Model.reshape); the
                 precision it chose (INFERENCE_PRECISION_HINT of the compiled model) is reported
    ov-fp32      the same with INFERENCE_PRECISION_HINT f32

All take the same seeded random input (bench_ort.make_inputs). Accuracy, outside the timing:
`amprt run --output-dir` in FP32 and BF16 on that input gives BF16's rel L2 against amprt's FP32
output and FP32's against onnxruntime; OpenVINO's default output is compared with its FP32 one.

Part "train", LeNet and the encoder of --models at --train-batch (default 64):

    amprt-fp32 / amprt-bf16 / amprt-fp16
                 amprt bench MODEL --train [--precision bf16|fp16] --batch B --threads T --json
                 (SGD, momentum 0.9, lr 1e-3, cross entropy over N x C; AMP with FP32 masters,
                 FP16 with dynamic loss scaling)
    torch-fp32   PyTorch eager, the module models/generate.py exported to that model (same seeded
                 weights), torch.optim.SGD(lr 1e-3, momentum 0.9), CrossEntropyLoss, one step =
                 zero_grad, forward, loss, backward, step
    torch-bf16   the same step under torch.autocast("cpu", dtype=torch.bfloat16)

Every contender runs on --threads T (default 2): amprt --threads, ORT intra-op threads, OpenVINO
INFERENCE_NUM_THREADS, torch.set_num_threads (and one inter-op thread). The contenders alternate:
each of --rounds rounds runs every contender of a model once (R timed runs after W warm-up runs),
in an order rotated from round to round, so that load from elsewhere falls on all alike; a
contender's median is the median of its round medians, its minimum the least run of all rounds.
A contender that cannot run (OpenVINO or torch not installed, a model it fails on) is reported
as failed with the reason and the rest goes on.

    bench_cpu_peers.py [--parts infer,train] [--only lenet,unet] [--batches 1,8] [--markdown]
                       [--json FILE] [--list]

--list prints the contenders (and why any is skipped) and the runs it would make, and times
nothing. Exit status: 0 when every contender ran, 1 when one failed, 2 on a usage error.
"""

import argparse
import copy
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import types

import numpy as np
import onnx
import onnx.numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_ort as bo  # noqa: E402  (inputs, onnxruntime session and timing, amprt's JSON)

REPO = bo.REPO
INFER = ("amprt-fp32", "amprt-bf16", "ort-fp32", "ov-default", "ov-fp32")
TRAIN = ("amprt-fp32", "amprt-bf16", "amprt-fp16", "torch-fp32", "torch-bf16")
TRAIN_MODELS = ("lenet", "encoder")
# the models the BF16 inference targets name
BF16_MODELS = ("lenet", "resnet", "encoder", "unet")
PAUSE_S = 0.05  # between contenders: lets a finished thread pool stop spinning


def optional_import(name):
    """(module, None) or (None, why it could not be imported)."""
    try:
        return __import__(name), None
    except Exception as e:  # noqa: BLE001 - any import failure means "skip this contender"
        return None, f"{name} is not importable ({type(e).__name__}: {e}); pip install {name}"


def rel_l2(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise bo.BenchError(f"output shapes differ: {a.shape} and {b.shape}")
    den = float(np.linalg.norm(b))
    return float(np.linalg.norm(a - b)) / den if den > 0 else float(np.linalg.norm(a))


def summary(times_ms):
    return {"median_ms": statistics.median(times_ms), "min_ms": min(times_ms), "max_ms": max(times_ms),
            "runs": len(times_ms)}


def time_calls(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return summary(times)


# --------------------------------------------------------------------------------------------
# Contenders: each is a name and a callable timing one round; `prepare` errors fail it outright.


class Contender:
    """error: it failed (a result); skipped: its library is not installed (not a failure)."""

    def __init__(self, name, round_fn=None, error=None, info=None, skipped=None):
        self.name, self.round_fn, self.error, self.skipped = name, round_fn, error, skipped
        self.info = dict(info or {})
        self.rounds = []

    def run_round(self):
        if self.error is not None or self.skipped is not None:
            return
        try:
            self.rounds.append(self.round_fn())
        except Exception as e:  # noqa: BLE001 - a failing contender is reported, not fatal
            self.error = str(e) if isinstance(e, bo.BenchError) else f"{type(e).__name__}: {e}"

    def result(self):
        r = dict(self.info)
        if self.skipped is not None:
            r["skipped"] = self.skipped
            return r
        if self.error is not None:
            r["error"] = self.error
            return r
        r["median_ms"] = statistics.median(x["median_ms"] for x in self.rounds)
        r["min_ms"] = min(x["min_ms"] for x in self.rounds)
        r["round_medians_ms"] = [x["median_ms"] for x in self.rounds]
        r["runs"] = sum(x.get("runs", 0) for x in self.rounds)
        for k in ("arena_bytes", "device_bytes", "_command"):
            if k in self.rounds[-1]:
                r[k.lstrip("_")] = self.rounds[-1][k]
        return r


def alternate(contenders, rounds):
    for k in range(rounds):
        order = contenders[k % len(contenders):] + contenders[:k % len(contenders)]
        for c in order:
            c.run_round()
            time.sleep(PAUSE_S)
    return {c.name: c.result() for c in contenders}


def amprt_args(args, batch, extra, runs, warmup):
    """The namespace bench_ort.run_amprt reads."""
    return types.SimpleNamespace(amprt=args.amprt, batch=batch, threads=args.threads, runs=runs,
                                 warmup=warmup, backend="cpu", minimal_amprt_args=False,
                                 amprt_args=extra + " --quiet", timeout=args.timeout)


def amprt_contender(args, name, model_path, batch, extra, input_paths, runs, warmup):
    a = amprt_args(args, batch, extra, runs, warmup)
    return Contender(name, lambda: bo.run_amprt(a, model_path, input_paths))


def amprt_outputs(args, model_path, input_paths, precision, folder):
    """The model's outputs from `amprt run --output-dir` on the benchmark's input."""
    os.makedirs(folder)
    cmd = [args.amprt, "run", model_path, "--threads", str(args.threads), "--output-dir", folder,
           "--precision", precision, "--quiet"]
    for name, p in input_paths.items():
        cmd += ["--input", f"{name}={p}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    if p.returncode != 0:
        raise bo.BenchError(f"amprt run exited with status {p.returncode}: {bo._excerpt(p.stderr, 400)}")
    files = sorted(f for f in os.listdir(folder) if f.endswith(".pb"))
    if not files:
        raise bo.BenchError(f"amprt run wrote no output .pb into {folder}")
    return [onnx.numpy_helper.to_array(onnx.load_tensor(os.path.join(folder, f))) for f in files]


# ---- inference ------------------------------------------------------------------------------


def ov_compiled(ov, core, model_path, inputs, threads, precision):
    model = core.read_model(model_path)
    model.reshape({name: list(arr.shape) for name, arr in inputs.items()})
    cfg = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    if precision:
        cfg["INFERENCE_PRECISION_HINT"] = precision
    compiled = core.compile_model(model, "CPU", cfg)
    req = compiled.create_infer_request()
    for name, arr in inputs.items():
        req.set_tensor(name, ov.Tensor(np.ascontiguousarray(arr)))
    req.infer()
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    chosen = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
    outputs = [np.array(req.get_output_tensor(i).data) for i in range(len(compiled.outputs))]
    return req, chosen, outputs


def ov_contender(args, libs, name, model_path, inputs, precision, outs):
    ov = libs["openvino"]
    if ov is None:
        return Contender(name, skipped=libs["openvino_why"])
    try:
        req, chosen, outputs = ov_compiled(ov, libs["ov_core"], model_path, inputs, args.threads, precision)
    except Exception as e:  # noqa: BLE001 - OpenVINO refusing a model is a result
        return Contender(name, error=f"OpenVINO cannot compile it: {type(e).__name__}: {bo._excerpt(str(e), 300)}")
    outs[name] = outputs
    return Contender(name, lambda: time_calls(req.infer, args.warmup, args.runs), info={"precision": chosen})


def ort_contender(args, sess, inputs, outs):
    outs["ort-fp32"] = sess.run(None, inputs)
    return Contender("ort-fp32", lambda: bo.time_ort(sess, inputs, args.warmup, args.runs))


def accuracy(args, model_path, input_paths, outs, folder):
    """rel L2: amprt BF16 against amprt FP32, amprt FP32 against onnxruntime, OpenVINO default
    against OpenVINO FP32 (the largest over the outputs); a measure that cannot be made is an error."""
    acc = {}

    def worst(a, b):
        return max(rel_l2(x, y) for x, y in zip(a, b))

    try:
        outs["amprt-fp32"] = amprt_outputs(args, model_path, input_paths, "fp32", os.path.join(folder, "fp32"))
        outs["amprt-bf16"] = amprt_outputs(args, model_path, input_paths, "bf16", os.path.join(folder, "bf16"))
    except (bo.BenchError, subprocess.TimeoutExpired, OSError) as e:
        acc["error"] = str(e)
    for key, a, b in (("bf16_vs_fp32", "amprt-bf16", "amprt-fp32"), ("fp32_vs_ort", "amprt-fp32", "ort-fp32"),
                      ("ov_default_vs_ov_fp32", "ov-default", "ov-fp32")):
        if a in outs and b in outs:
            try:
                acc[key] = worst(outs[a], outs[b])
            except bo.BenchError as e:
                acc.setdefault("error", f"{a} vs {b}: {e}")
    return acc


def infer_case(args, libs, name, model_path, batch, tmp):
    """One model at one batch: every inference contender, alternated, and the accuracy."""
    folder = os.path.join(tmp, f"{name}_b{batch}")
    os.makedirs(folder)
    try:
        sess = bo.ort_session(model_path, args.threads)
        inputs = bo.make_inputs(sess, batch, args.seed)
        input_paths = bo.write_inputs(inputs, folder)
    except Exception as e:  # noqa: BLE001 - no input, no contender
        why = f"no input for it: {e}"
        return {c: {"error": why} for c in INFER}, {}
    outs = {}
    contenders = [
        amprt_contender(args, "amprt-fp32", model_path, batch, "", input_paths, args.runs, args.warmup),
        amprt_contender(args, "amprt-bf16", model_path, batch, "--precision bf16", input_paths, args.runs,
                        args.warmup),
        ort_contender(args, sess, inputs, outs),
        ov_contender(args, libs, "ov-default", model_path, inputs, None, outs),
        ov_contender(args, libs, "ov-fp32", model_path, inputs, "f32", outs),
    ]
    contenders = [c for c in contenders if c.name in args.contenders]
    res = alternate(contenders, args.rounds)
    return res, accuracy(args, model_path, input_paths, outs, folder)


# ---- training -------------------------------------------------------------------------------


def torch_step_fn(torch, module, x, y, autocast):
    model = copy.deepcopy(module).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    ce = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        if autocast:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = ce(model(x), y)
        else:
            loss = ce(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach().item()

    return step


def torch_contenders(args, libs, name, batch):
    torch, gen = libs["torch"], libs["generate"]
    names = ("torch-fp32", "torch-bf16")
    if torch is None or gen is None:
        return [Contender(n, skipped=libs["torch_why"] or libs["generate_why"]) for n in names]
    try:
        module, sample = gen.MODELS[name]()
        g = torch.Generator().manual_seed(args.seed)
        if sample.dtype == torch.int64:
            x = torch.randint(0, 100, (batch,) + tuple(sample.shape[1:]), generator=g)
        else:
            x = torch.randn((batch,) + tuple(sample.shape[1:]), generator=g)
        with torch.no_grad():
            classes = module(sample).shape[1]
        y = torch.randint(0, classes, (batch,), generator=g)
    except Exception as e:  # noqa: BLE001
        return [Contender(n, error=f"cannot build the torch module: {type(e).__name__}: {e}") for n in names]
    out = []
    for n, ac in zip(names, (False, True)):
        step = torch_step_fn(torch, module, x, y, ac)
        out.append(Contender(n, lambda s=step: time_calls(s, args.train_warmup, args.train_runs)))
    return out


def train_case(args, libs, name, model_path, batch):
    contenders = [amprt_contender(args, f"amprt-{p}", model_path, batch,
                                  "--train" + ("" if p == "fp32" else f" --precision {p}"), {}, args.train_runs,
                                  args.train_warmup) for p in ("fp32", "bf16", "fp16")]
    contenders += torch_contenders(args, libs, name, batch)
    contenders = [c for c in contenders if c.name in args.contenders]
    return alternate(contenders, args.rounds)


# --------------------------------------------------------------------------------------------
# Tables and targets


def ms(r):
    if r is None:
        return "-"
    if "error" in r:
        return "failed"
    if "skipped" in r:
        return "skipped"
    return f"{r['median_ms']:.3f} ({r['min_ms']:.3f})"


def ratio(rs, a, b, stat="median_ms"):
    ra, rb = rs.get(a), rs.get(b)
    if not ra or not rb or stat not in ra or stat not in rb or rb[stat] <= 0:
        return None
    return ra[stat] / rb[stat]


def fr(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def fe(v):
    return "-" if v is None else f"{v:.1e}"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def infer_table(rows):
    header = ["model", "batch", "amprt FP32", "amprt BF16", "ORT FP32", "OV default", "OV FP32", "FP32/ORT",
              "BF16/FP32", "BF16/OV default", "FP32/OV FP32", "BF16 rel L2", "OV default rel L2"]
    body = []
    for r in rows:
        rs, acc = r["results"], r["accuracy"]
        ovd = rs.get("ov-default") or {}
        body.append([r["model"], str(r["batch"]), ms(rs.get("amprt-fp32")), ms(rs.get("amprt-bf16")),
                     ms(rs.get("ort-fp32")), ms(rs.get("ov-default")) + (f" {ovd['precision']}" if "precision" in ovd
                                                                       and "error" not in ovd else ""),
                     ms(rs.get("ov-fp32")), fr(ratio(rs, "amprt-fp32", "ort-fp32")),
                     fr(ratio(rs, "amprt-bf16", "amprt-fp32")), fr(ratio(rs, "amprt-bf16", "ov-default")),
                     fr(ratio(rs, "amprt-fp32", "ov-fp32")), fe(acc.get("bf16_vs_fp32")),
                     fe(acc.get("ov_default_vs_ov_fp32"))])
    return table(header, body)


def train_table(rows):
    header = ["model", "batch", "amprt FP32", "amprt BF16 AMP", "amprt FP16 AMP", "PyTorch FP32",
              "PyTorch BF16 autocast", "FP32/PT FP32", "BF16/PT FP32", "BF16/PT BF16", "FP16/FP32"]
    body = []
    for r in rows:
        rs = r["results"]
        body.append([r["model"], str(r["batch"])] + [ms(rs.get(c)) for c in TRAIN] +
                    [fr(ratio(rs, "amprt-fp32", "torch-fp32")), fr(ratio(rs, "amprt-bf16", "torch-fp32")),
                     fr(ratio(rs, "amprt-bf16", "torch-bf16")), fr(ratio(rs, "amprt-fp16", "amprt-fp32"))])
    return table(header, body)


def verdict(values, limit):
    """'met' when every value is known and <= limit; 'not met' when one is above; else not measured."""
    known = [v for v in values if v is not None]
    if not known:
        return "not measured"
    if any(v > limit for v in known):
        return "not met"
    return "met" if len(known) == len(values) else "not measured (some not run)"


def target_values(infer_rows, train_rows, stat):
    """The issue's targets as (what, [(label, value)], limit, format), ratios of `stat`."""
    out = []
    if infer_rows:
        fp = [(f"{r['model']} b{r['batch']}", ratio(r["results"], "amprt-fp32", "ort-fp32", stat))
              for r in infer_rows]
        out.append(("FP32 inference <= 1.0x onnxruntime, every model and batch", fp, 1.0, fr))
        known = [v for _, v in fp if v is not None]
        geo = math.exp(sum(math.log(v) for v in known) / len(known)) if known else None
        out.append((f"FP32 inference geomean over the {len(fp)} rows <= 0.9x onnxruntime", [("geomean", geo)], 0.9,
                    fr))
        # a model not run counts as not measured: the target names all four
        b8 = [next((r for r in infer_rows if r["batch"] == 8 and r["model"] == m),
                   {"model": m, "results": {}, "accuracy": {}}) for m in BF16_MODELS]
        out.append(("BF16 inference <= 0.6x amprt FP32 (lenet, resnet, encoder, unet at b8)",
                    [(r["model"], ratio(r["results"], "amprt-bf16", "amprt-fp32", stat)) for r in b8], 0.6, fr))
        out.append(("BF16 output rel L2 <= 1e-2 of FP32 (same models)",
                    [(r["model"], r["accuracy"].get("bf16_vs_fp32")) for r in b8], 1e-2, fe))
        out.append(("BF16 inference <= 1.1x OpenVINO default (same models)",
                    [(r["model"], ratio(r["results"], "amprt-bf16", "ov-default", stat)) for r in b8], 1.1, fr))
    if train_rows:
        def tr(a, b):
            return [(f"{r['model']} b{r['batch']}", ratio(r["results"], a, b, stat)) for r in train_rows]
        out.append(("training FP32 step <= 0.7x PyTorch FP32", tr("amprt-fp32", "torch-fp32"), 0.7, fr))
        out.append(("training BF16 AMP step <= 0.5x PyTorch FP32", tr("amprt-bf16", "torch-fp32"), 0.5, fr))
        out.append(("training BF16 AMP step <= 0.6x PyTorch BF16 autocast", tr("amprt-bf16", "torch-bf16"), 0.6,
                    fr))
        out.append(("training FP16 AMP step <= 1.2x amprt FP32", tr("amprt-fp16", "amprt-fp32"), 1.2, fr))
    return out


def targets(infer_rows, train_rows):
    """Each target with its values and verdict from the medians, and again from the minima (the
    closest a loaded machine comes to an unloaded run); the geomean of a row set with a failed
    row is left out (not measured)."""
    out = []
    for (what, vals, limit, fmt), (_, mins, _, _) in zip(target_values(infer_rows, train_rows, "median_ms"),
                                                         target_values(infer_rows, train_rows, "min_ms")):
        if what.startswith("FP32 inference geomean") and any(
                ratio(r["results"], "amprt-fp32", "ort-fp32") is None for r in infer_rows):
            vals, mins = [("geomean", None)], [("geomean", None)]
        if fmt is fe:
            shown = ", ".join(f"{k} {fe(v)}" for k, v in vals)
        else:
            shown = ", ".join(f"{k} {fr(v)} ({fr(m)})" for (k, v), (_, m) in zip(vals, mins))
        out.append({"target": what, "limit": limit, "values": dict(vals), "values_min": dict(mins),
                    "verdict": verdict([v for _, v in vals], limit),
                    "verdict_min": verdict([v for _, v in mins], limit), "shown": shown})
    return out


def failures_of(rows):
    out = []
    for r in rows:
        for c, res in r["results"].items():
            if "error" in res:
                out.append(f"{r['model']} b{r['batch']} {c}: {res['error']}")
        if "error" in r.get("accuracy", {}):
            out.append(f"{r['model']} b{r['batch']} accuracy: {r['accuracy']['error']}")
    return out


def report(meta, infer_rows, train_rows, goals, markdown):
    lines = []
    if infer_rows:
        lines += ["Inference, ms: median of the round medians (least run in brackets)", "", infer_table(infer_rows), ""]
    if train_rows:
        lines += ["Training step, ms: median (least)", "", train_table(train_rows), ""]
    if goals:
        lines += ["Targets: ratios of the medians (of the minima in brackets)", "",
                  "| target | values | by medians | by minima |", "|---|---|---|---|"]
        lines += [f"| {g['target']} | {g['shown']} | {g['verdict']} | {g['verdict_min']} |" for g in goals]
        lines.append("")
    fails = failures_of(infer_rows + train_rows)
    if fails:
        lines += ["Failed:"] + [f"- {f}" for f in fails] + [""]
    skipped = {c: res["skipped"] for r in infer_rows + train_rows for c, res in r["results"].items()
               if "skipped" in res}
    if skipped:
        lines += ["Skipped:"] + [f"- {c}: {why}" for c, why in sorted(skipped.items())] + [""]
    if markdown:
        lines.append(
            f"{meta['threads']} threads each; {meta['rounds']} alternated rounds per model of {meta['runs']} runs "
            f"after {meta['warmup']} warm-up runs (training: {meta['train_runs']} steps after "
            f"{meta['train_warmup']}); {meta['amprt_version']}, onnxruntime {meta['onnxruntime']}, "
            f"OpenVINO {meta['openvino']}, PyTorch {meta['torch']}; {meta['cpu']}; load average "
            f"{meta['load_before']} before, {meta['load_after']} after; {meta['date']}.")
    print("\n".join(lines))


# --------------------------------------------------------------------------------------------


def load_libs():
    libs = {}
    libs["openvino"], libs["openvino_why"] = optional_import("openvino")
    if libs["openvino"] is not None:
        try:
            libs["ov_core"] = libs["openvino"].Core()
        except Exception as e:  # noqa: BLE001
            libs["openvino"], libs["openvino_why"] = None, f"openvino.Core() failed: {e}"
    libs["torch"], libs["torch_why"] = optional_import("torch")
    libs["generate"], libs["generate_why"] = None, None
    if libs["torch"] is not None:
        sys.path.insert(0, os.path.join(REPO, "models"))
        libs["generate"], libs["generate_why"] = optional_import("generate")
    return libs


def version_of(libs, key):
    m = libs.get(key)
    return getattr(m, "__version__", "?") if m is not None else f"missing ({libs[key + '_why']})"


def amprt_version(path):
    try:
        p = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        return (p.stdout.strip() or p.stderr.strip()).splitlines()[0] if p.returncode == 0 else "?"
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


def list_plan(args, libs, models, train_models):
    print(f"amprt: {args.amprt}")
    for key in ("openvino", "torch"):
        print(f"{key}: {version_of(libs, key)}")
    skip = {"ov-default": libs["openvino_why"], "ov-fp32": libs["openvino_why"],
            "torch-fp32": libs["torch_why"] or libs["generate_why"],
            "torch-bf16": libs["torch_why"] or libs["generate_why"]}
    if "infer" in args.parts:
        for c in INFER:
            if c in args.contenders:
                print(f"infer contender {c}" + (f": skipped: {skip[c]}" if skip.get(c) else ""))
        for name, _ in models:
            for b in args.batches:
                print(f"infer {name} b{b}")
    if "train" in args.parts:
        for c in TRAIN:
            if c in args.contenders:
                print(f"train contender {c}" + (f": skipped: {skip[c]}" if skip.get(c) else ""))
        for name, _ in train_models:
            print(f"train {name} b{args.train_batch}")


def csv_list(text, allowed, what):
    items = [x for x in text.split(",") if x]
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{what}: {', '.join(bad) or '(none)'} not among {', '.join(allowed)}")
    return items


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Contenders: inference " + ", ".join(INFER) + "; training " + ", ".join(TRAIN))
    ap.add_argument("--amprt", default=os.path.join(REPO, "build", "amprt"), help="the amprt binary (%(default)s)")
    ap.add_argument("--models", default=os.path.join(REPO, "models"), help="folder of <name>/model.onnx")
    ap.add_argument("--only", help="comma-separated models for the inference part (default: all)")
    ap.add_argument("--parts", default="infer,train", help="infer, train or both (default %(default)s)")
    ap.add_argument("--contenders", help="comma-separated contenders to run (default: all)")
    ap.add_argument("--batches", default="1,8", help="inference batches (default %(default)s)")
    ap.add_argument("--train-models", default=",".join(TRAIN_MODELS), help="default %(default)s")
    ap.add_argument("--train-batch", type=int, default=64, help="default %(default)s")
    ap.add_argument("--threads", type=int, default=2, help="threads for every contender (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds per model (default 3)")
    ap.add_argument("--runs", type=int, default=50, help="timed inference runs per round (default 50)")
    ap.add_argument("--warmup", type=int, default=5, help="inference warm-up runs per round (default 5)")
    ap.add_argument("--train-runs", type=int, default=20, help="timed steps per round (default 20)")
    ap.add_argument("--train-warmup", type=int, default=3, help="warm-up steps per round (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the inputs (default 0)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per amprt call")
    ap.add_argument("--json", metavar="FILE", help="write every number as JSON to FILE")
    ap.add_argument("--markdown", action="store_true", help="add the run's conditions under the tables")
    ap.add_argument("--list", action="store_true", help="print the contenders and runs; time nothing")
    args = ap.parse_args()
    try:
        args.parts = csv_list(args.parts, ("infer", "train"), "--parts")
        args.contenders = csv_list(args.contenders, sorted(set(INFER + TRAIN)), "--contenders") \
            if args.contenders else list(set(INFER + TRAIN))
        args.batches = [int(b) for b in args.batches.split(",") if b]
    except (argparse.ArgumentTypeError, ValueError) as e:
        ap.error(str(e))
    if min([args.threads, args.rounds, args.runs, args.train_runs, args.train_batch] + args.batches) < 1 \
            or min(args.warmup, args.train_warmup) < 0:
        ap.error("--threads, --rounds, --runs, --train-runs, --train-batch and --batches must be >= 1, "
                 "warm-ups >= 0")
    if not (os.path.isfile(args.amprt) and os.access(args.amprt, os.X_OK)):
        print(f"bench_cpu_peers: error: no executable amprt at {args.amprt} (build it, or --amprt PATH)",
              file=sys.stderr)
        return 2
    args.amprt = os.path.abspath(args.amprt)
    try:
        models = bo.find_models(args.models, args.only) if "infer" in args.parts else []
        train_models = bo.find_models(args.models, args.train_models) if "train" in args.parts else []
    except bo.BenchError as e:
        print(f"bench_cpu_peers: error: {e}", file=sys.stderr)
        return 2
    if not models and not train_models:
        print(f"bench_cpu_peers: error: no <name>/model.onnx under {args.models}", file=sys.stderr)
        return 2

    libs = load_libs()
    if libs["torch"] is not None:
        libs["torch"].set_num_threads(args.threads)
        libs["torch"].set_num_interop_threads(1)
    if args.list:
        list_plan(args, libs, models, train_models)
        return 0
    for key in ("openvino", "torch"):
        if libs[key] is None:
            print(f"bench_cpu_peers: {libs[key + '_why']}: its contenders are skipped", file=sys.stderr)

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:]),
        "cpu": bo.cpu_name(), "python": platform.python_version(), "amprt_version": amprt_version(args.amprt),
        "onnxruntime": bo.ort.__version__, "openvino": version_of(libs, "openvino"),
        "torch": version_of(libs, "torch"), "numpy": np.__version__,
        "threads": args.threads, "rounds": args.rounds, "runs": args.runs, "warmup": args.warmup,
        "train_runs": args.train_runs, "train_warmup": args.train_warmup, "seed": args.seed,
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    infer_rows, train_rows = [], []
    with tempfile.TemporaryDirectory(prefix="amprt-peers-") as tmp:
        for name, path in models:
            for b in args.batches:
                print(f"bench_cpu_peers: infer {name} b{b}", file=sys.stderr, flush=True)
                res, acc = infer_case(args, libs, name, os.path.abspath(path), b, tmp)
                infer_rows.append({"model": name, "batch": b, "results": res, "accuracy": acc})
    for name, path in train_models:
        print(f"bench_cpu_peers: train {name} b{args.train_batch}", file=sys.stderr, flush=True)
        res = train_case(args, libs, name, os.path.abspath(path), args.train_batch)
        train_rows.append({"model": name, "batch": args.train_batch, "results": res})
    meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    goals = targets(infer_rows, train_rows)
    report(meta, infer_rows, train_rows, goals, args.markdown)
    fails = failures_of(infer_rows + train_rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "inference": infer_rows, "training": train_rows, "targets": goals,
                       "failures": fails}, f, indent=1)
            f.write("\n")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
