#!/usr/bin/env python3
"""Compare `amprt convert` with onnxconverter-common's float16 converter, model by model.

    convert_compare.py [MODEL ...] [--amprt PATH] [--json] [--threads N]

MODEL is a model.onnx file or a folder holding one (default: every models/*/model.onnx); its
test_data_set_0/ (ONNX backend-test layout) beside it supplies the input and the FP32 expected
output. Each model is converted

  - by amprt:                 AMPRT convert IN OUT --dtype fp16 --keep-io-types
  - by amprt with calibration, when the model folder holds calib/ (its input sets):
                              ... --calibrate MODEL_DIR/calib
  - by onnxconverter-common:  float16.convert_float_to_float16(model, keep_io_types=True)

and every variant, the FP32 model too, is measured on test_data_set_0:

  rel L2 ORT   ||y - y_fp32|| / ||y_fp32|| over all outputs, onnxruntime CPU at its default
               optimisation level (what users get). Beware: the CPU build runs ops that lack an
               FP16 kernel (most of them) in FP32 behind inserted casts with no FP16 rounding
               between consecutive ones, so this column hides overflow inside 16-bit regions.
  rel L2 ref   the same with the onnx reference evaluator, which rounds every op's output to
               its declared type: the error the converted graph has as written.
  casts        Cast nodes in the graph.
  16-bit FLOPs share of MatMul/Gemm/Conv/ConvTranspose FLOPs (2·MACs, from the shapes that
               onnx.shape_inference finds once the symbolic dims are bound to the test input's,
               and where it finds none, from an onnxruntime run) whose node computes in FP16/BF16.
  ORT loads    whether onnxruntime creates a session (default optimisations).
  param bytes  bytes of initializers and Constant-node tensors.

With --max-error E two more variants, each timed (seconds, the conversion alone):

  - amprt --max-error E:      ... --calibrate CALIB/NAME --max-error E (CALIB from --calib-root,
                              the sets of tools/bench/make_calib.py); its own report (error,
                              16-bit FLOP share, passes, nodes kept) is read from stderr
  - onnxconverter-common auto_mixed_precision: auto_convert_mixed_precision(model, feed,
                              validate_fn: rel L2 over all outputs <= E, keep_io_types=True), its
                              onnxruntime bisection over the nodes; the feed is CALIB/NAME's sets
                              concatenated along the batch axis (the data amprt searched on),
                              test_data_set_0 without --calib-root. It runs in a forked child:
                              onnxruntime 1.32 dies of SIGSEGV creating some of its sessions

Both are measured like the rest on test_data_set_0, and also on the calibration sets: by
onnxruntime, and by amprt's own CPU run (unfused, as the search measures: per output rel L2 over
the sets, the largest), the one measure that rounds like FP16 hardware on both files.
"FP32 nodes" counts the nodes (Cast and Constant aside) with an FP32 output. The time of 100 FP32
inferences of the calibration sets through amprt (`amprt bench` median per set, summed, x 100)
gives the time ratio. --summary prints only these two variants, one table over the models.

Prints one markdown table per model, or with --json one JSON list. A variant that fails is shown
with its error; the exit status is 1 only on a usage error (no models, no amprt binary).
"""

import argparse
import contextlib
import glob
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import onnx
import onnx.numpy_helper as nh
from onnx import TensorProto as TP

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SIXTEEN = {TP.FLOAT16, TP.BFLOAT16}
FLOAT_TYPES = {TP.FLOAT, TP.FLOAT16, TP.BFLOAT16, TP.DOUBLE}
FLOP_OPS = {"MatMul", "Gemm", "Conv", "ConvTranspose"}


# --------------------------------------------------------------------------------------------
# Data


def read_tensor(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return t.name, nh.to_array(t)


def numbered(folder, prefix):
    out = []
    k = 0
    while os.path.exists(os.path.join(folder, f"{prefix}_{k}.pb")):
        out.append(read_tensor(os.path.join(folder, f"{prefix}_{k}.pb")))
        k += 1
    return out


def bind(tensors, names):
    if all(t[0] for t in tensors) and sorted(t[0] for t in tensors) == sorted(names):
        by = dict(tensors)
        return {n: by[n] for n in names}
    return {n: t[1] for n, t in zip(names, tensors)}


def calib_sets(folder, names):
    """The sets CALIB/NAME/set_K/ (K = 0, 1, ...) bound to the graph inputs, and all of them
    concatenated along the batch axis (the one feed onnxconverter-common takes)."""
    sets = []
    while os.path.isdir(os.path.join(folder, f"set_{len(sets)}")):
        sets.append(bind(numbered(os.path.join(folder, f"set_{len(sets)}"), "input"), names))
    if not sets:
        raise RuntimeError(f"no calibration sets in {folder}")
    return sets, {n: np.concatenate([st[n] for st in sets]) for n in names}


def graph_inputs(model):
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def rel_l2(outs, wants):
    """Over all outputs together; inf when a value is non-finite where FP32 is finite."""
    num = den = 0.0
    for got, want in zip(outs, wants):
        g = np.asarray(got, dtype=np.float64).reshape(-1)
        w = np.asarray(want, dtype=np.float64).reshape(-1)
        if g.shape != w.shape:
            return float("nan")
        fin = np.isfinite(w)
        if not np.array_equal(np.isfinite(g), fin):
            return float("inf")
        num += float(np.sum((g[fin] - w[fin]) ** 2))
        den += float(np.sum(w[fin] ** 2))
    return (num / den) ** 0.5 if den > 0 else num ** 0.5


# --------------------------------------------------------------------------------------------
# Graph measures


def bound_copy(model, feeds):
    """A copy whose graph inputs carry the test input's concrete shapes."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.input:
        if vi.name in feeds:
            shape = vi.type.tensor_type.shape
            for d, n in zip(shape.dim, feeds[vi.name].shape):
                d.Clear()
                d.dim_value = int(n)
    return onnx.shape_inference.infer_shapes(m)


def value_infos(model):
    """Name -> (elem_type, shape or None)."""
    g = model.graph
    out = {}
    for v in list(g.input) + list(g.output) + list(g.value_info):
        tt = v.type.tensor_type
        shape = None
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            shape = [d.dim_value for d in tt.shape.dim]
        out[v.name] = (tt.elem_type, shape)
    for t in g.initializer:
        out[t.name] = (t.data_type, list(t.dims))
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = (a.t.data_type, list(a.t.dims))
    return out


def attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def node_flops(n, vi):
    """2·MACs of one MatMul/Gemm/Conv/ConvTranspose node, or None when a shape is unknown."""
    def shape(name):
        return vi.get(name, (None, None))[1]
    y = shape(n.output[0])
    if n.op_type == "MatMul":
        a = shape(n.input[0])
        if y is None or a is None:
            return None
        return 2 * int(np.prod(y)) * a[-1]
    if n.op_type == "Gemm":
        a = shape(n.input[0])
        if y is None or a is None:
            return None
        k = a[0] if attr(n, "transA", 0) else a[1]
        return 2 * int(np.prod(y)) * k
    if n.op_type == "Conv":
        w = shape(n.input[1])
        if y is None or w is None:
            return None
        return 2 * int(np.prod(y)) * int(np.prod(w[1:]))  # C_in/group · kernel
    if n.op_type == "ConvTranspose":
        x = shape(n.input[0])
        w = shape(n.input[1])
        if x is None or w is None:
            return None
        return 2 * int(np.prod(x)) * int(np.prod(w[1:]))  # C_out/group · kernel per input
    return None


def ran_shapes(model, feeds, vi):
    """Fills in vi the shapes onnx shape inference left unknown around the FLOP nodes (Reshapes to
    computed shapes), from an onnxruntime run with those tensors made graph outputs."""
    import onnxruntime as ort
    want = sorted({x for n in model.graph.node if n.op_type in FLOP_OPS
                   for x in list(n.input[:2]) + [n.output[0]] if x and vi.get(x, (None, None))[1] is None})
    if not want:
        return
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for x in want:
        if x not in have:
            m.graph.output.append(onnx.ValueInfoProto(name=x))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    for o, y in zip(sess.get_outputs(), sess.run(None, feeds)):
        if o.name in want:
            vi[o.name] = (vi.get(o.name, (None, None))[0], list(np.shape(y)))


def flop_share(model, feeds):
    try:
        vi = value_infos(bound_copy(model, feeds))
        ran_shapes(model, feeds, vi)
    except Exception:  # noqa: BLE001 - a converter's broken typing shows up as "?"
        return None
    total = sixteen = 0
    for n in model.graph.node:
        if n.op_type not in FLOP_OPS:
            continue
        f = node_flops(n, vi)
        if f is None:
            return None
        total += f
        t = vi.get(n.input[0], (None, None))[0]
        if t in SIXTEEN:
            sixteen += f
    return sixteen / total if total else None


def fp32_nodes(model, feeds):
    """Nodes (Cast and Constant aside) with an FP32 or FP64 output: what a conversion left in FP32.
    None when shape inference fails on the graph."""
    try:
        vi = value_infos(bound_copy(model, feeds))
    except Exception:  # noqa: BLE001
        return None
    wide = {TP.FLOAT, TP.DOUBLE}
    return sum(1 for n in model.graph.node if n.op_type not in ("Cast", "Constant")
               and any(vi.get(o, (None, None))[0] in wide for o in n.output if o))


def param_bytes(model):
    size = 0
    tensors = list(model.graph.initializer)
    tensors += [a.t for n in model.graph.node if n.op_type == "Constant"
                for a in n.attribute if a.name == "value"]
    for t in tensors:
        size += nh.to_array(t).nbytes
    return size


# --------------------------------------------------------------------------------------------
# Running


def ort_run(model_bytes, feeds, threads):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    # ORT_ENABLE_ALL crashes onnxruntime 1.32 on the converted encoder (see
    # tests/peer/test_autocast_peer.py); every variant runs at the extended level
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def ref_run(model, feeds):
    from onnx.reference import ReferenceEvaluator
    with np.errstate(all="ignore"):
        return ReferenceEvaluator(model).run(None, feeds)


def amprt_convert(amprt, src, dst, extra):
    cmd = [amprt, "convert", src, dst, "--dtype", "fp16", "--keep-io-types", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip() or f"exit status {r.returncode}")
    return onnx.load(dst)


SEARCH_LINE = re.compile(r"--max-error \S+: error (\S+), ([0-9.]+)% of MatMul/Gemm/Conv FLOPs in 16 bits, "
                         r"(\d+) passes over the calibration sets; (\d+) nodes kept FP32"
                         r"(?: for the error, (\d+) FP32 by their op class)?")


def amprt_search(amprt, src, dst, calib, max_error):
    """convert --max-error; also returns the search's own report (error on the calibration sets
    by amprt's CPU run, 16-bit FLOP share, passes, nodes kept FP32 for the error)."""
    cmd = [amprt, "convert", src, dst, "--dtype", "fp16", "--keep-io-types", "--calibrate", calib,
           "--max-error", repr(max_error)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip() or f"exit status {r.returncode}")
    m = SEARCH_LINE.search(r.stderr)
    if not m:
        raise RuntimeError(f"no search report in: {short(r.stderr, 200)}")
    own = {"error": float(m.group(1)), "flops_16bit": float(m.group(2)) / 100,
           "passes": int(m.group(3)), "kept": int(m.group(4)), "relaxed": int(m.group(5) or 0)}
    return onnx.load(dst), own


def amprt_outputs(amprt, path, calib):
    """The outputs of amprt's CPU run (unfused, as the search runs) of every calibration set,
    concatenated along the batch axis, one array per graph output."""
    per = []
    k = 0
    while os.path.isdir(os.path.join(calib, f"set_{k}")):
        d = os.path.join(calib, f"set_{k}")
        with tempfile.TemporaryDirectory() as od:
            cmd = [amprt, "run", path, "--fusion", "off", "--quiet", "--output-dir", od]
            for i, (name, _) in enumerate(numbered(d, "input")):
                cmd += ["--input", f"{name}={os.path.join(d, f'input_{i}.pb')}"]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError(r.stderr.strip() or f"exit status {r.returncode}")
            per.append([a for _, a in numbered(od, "output")])
        k += 1
    return [np.concatenate([p[j] for p in per]) for j in range(len(per[0]))]


def amprt_error(amprt, model, path, calib, wants):
    """amprt's measure of a converted file: its run on the calibration sets against the FP32
    model's, rel L2 per output, the largest over the outputs."""
    onnx.save(model, path)
    outs = amprt_outputs(amprt, path, calib)
    return max(rel_l2([g], [w]) for g, w in zip(outs, wants))


def amprt_fp32_seconds(amprt, path, calib, runs=100):
    """Seconds of `runs` FP32 inferences of every calibration set through amprt (CPU backend,
    all cores as convert uses): the median of `amprt bench` on each set, summed, times runs."""
    total = 0.0
    k = 0
    while os.path.isdir(os.path.join(calib, f"set_{k}")):
        d = os.path.join(calib, f"set_{k}")
        feeds = [f"{name}={os.path.join(d, f'input_{i}.pb')}"
                 for i, (name, _) in enumerate(numbered(d, "input"))]
        cmd = [amprt, "bench", path, "--iterations", "20", "--warmup", "3", "--json", "--quiet"]
        for f in feeds:
            cmd += ["--input", f]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.strip() or f"exit status {r.returncode}")
        total += json.loads(r.stdout.strip().splitlines()[-1])["median_ms"] / 1000.0
        k += 1
    return runs * total


def occ_convert(model):
    from onnxconverter_common import float16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its truncation notices
        return float16.convert_float_to_float16(model, keep_io_types=True)


def occ_auto(model, feeds, max_error):
    from onnxconverter_common import auto_mixed_precision

    def within(ref, got):
        return rel_l2(got, ref) <= max_error

    # it prints every attempt on stdout
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return auto_mixed_precision.auto_convert_mixed_precision(model, feeds, validate_fn=within,
                                                                 keep_io_types=True)


def timed(conv):
    t0 = time.perf_counter()
    out = conv()
    return out, time.perf_counter() - t0


def timed_apart(conv, tmp):
    """timed(conv) in a forked child, for a converter that can crash the process (onnxruntime
    1.32 dies of SIGSEGV creating some of onnxconverter-common's sessions): the model comes
    back through a file; a crash is a RuntimeError naming the signal and the innermost frame."""
    import faulthandler
    import multiprocessing
    import signal
    res, trace = os.path.join(tmp, "apart.onnx"), os.path.join(tmp, "apart.trace")

    def child():
        with open(trace, "w") as tf:
            faulthandler.enable(tf)
            try:
                model, seconds = timed(conv)
                onnx.save(model, res)
                with open(res + ".s", "w") as f:
                    f.write(repr(seconds))
            except Exception as e:  # noqa: BLE001
                with open(res + ".err", "w") as f:
                    f.write(str(e))
    for f in (res, res + ".s", res + ".err"):
        if os.path.exists(f):
            os.remove(f)
    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join()
    if proc.exitcode and proc.exitcode < 0:
        frames = [ln.strip() for ln in open(trace) if ln.strip().startswith("File")]
        where = f" in {frames[0]}" if frames else ""
        raise RuntimeError(f"the process died of {signal.Signals(-proc.exitcode).name}{where}")
    if os.path.exists(res + ".err"):
        raise RuntimeError(open(res + ".err").read())
    with open(res + ".s") as f:
        return onnx.load(res), float(f.read())


def short(msg, n=90):
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= n else msg[:n - 1] + "…"


def measure(label, model, feeds, wants, threads, calib=None):
    """calib: (feed, FP32 outputs) of the calibration sets concatenated, for rel_l2_calib_ort."""
    row = {"variant": label, "nodes": len(model.graph.node),
           "casts": sum(n.op_type == "Cast" for n in model.graph.node),
           "flops_16bit": flop_share(model, feeds), "fp32_nodes": fp32_nodes(model, feeds),
           "param_bytes": param_bytes(model)}
    data = model.SerializeToString()
    try:
        outs = ort_run(data, feeds, threads)
        row["ort_loads"] = True
        row["rel_l2_ort"] = rel_l2(outs, wants)
        if calib:
            row["rel_l2_calib_ort"] = rel_l2(ort_run(data, calib[0], threads), calib[1])
    except Exception as e:  # noqa: BLE001
        row["ort_loads"] = False
        row["ort_error"] = short(e, 300)
        row["rel_l2_ort"] = None
    try:
        row["rel_l2_ref"] = rel_l2(ref_run(model, feeds), wants)
    except Exception as e:  # noqa: BLE001
        row["rel_l2_ref"] = None
        row["ref_error"] = short(e, 300)
    return row


def compare_model(path, amprt, threads, tmp, max_error=None, calib_root=None, targeted_only=False):
    mdir = os.path.dirname(path)
    name = os.path.basename(mdir)
    model = onnx.load(path)
    ds = os.path.join(mdir, "test_data_set_0")
    names = graph_inputs(model)
    feeds = bind(numbered(ds, "input"), names)
    wants = [a for _, a in numbered(ds, "output")]
    calib = cal_dir = None
    if max_error and calib_root:
        cal_dir = os.path.join(calib_root, name)
        _, cal_feed = calib_sets(cal_dir, names)
        calib = (cal_feed, ort_run(model.SerializeToString(), cal_feed, threads))
    rows = [measure("FP32", model, feeds, wants, threads, calib)]

    variants = []
    if amprt and not targeted_only:
        variants.append(("amprt fp16", lambda: amprt_convert(
            amprt, path, os.path.join(tmp, name + ".amprt.onnx"), [])))
        own_calib = os.path.join(mdir, "calib")
        if os.path.isdir(own_calib):
            variants.append(("amprt fp16 --calibrate", lambda: amprt_convert(
                amprt, path, os.path.join(tmp, name + ".amprt_cal.onnx"),
                ["--calibrate", own_calib])))
    if not targeted_only:
        variants.append(("onnxconverter-common fp16", lambda: occ_convert(model)))
    if max_error:
        if amprt and cal_dir:
            variants.append((f"amprt --max-error {max_error:g}", lambda: amprt_search(
                amprt, path, os.path.join(tmp, name + ".amprt_err.onnx"), cal_dir, max_error)))
        # the calibration sets when there are (the same data amprt searched on), else the test set
        peer_feed = calib[0] if calib else feeds
        variants.append((f"onnxconverter-common auto_mixed_precision {max_error:g}",
                         lambda: occ_auto(model, peer_feed, max_error)))
    amprt_wants = None  # the FP32 model's outputs on the calibration sets, amprt's run
    for label, conv in variants:
        try:
            if "auto_mixed_precision" in label:
                converted, seconds = timed_apart(conv, tmp)
            else:
                converted, seconds = timed(conv)
        except Exception as e:  # noqa: BLE001
            rows.append({"variant": label, "error": short(e, 300)})
            continue
        own = None
        if isinstance(converted, tuple):
            converted, own = converted
        row = measure(label, converted, feeds, wants, threads, calib)
        row["seconds"] = seconds
        if own:
            row["amprt_report"] = own
        if amprt and cal_dir and label.startswith(("amprt --max-error", "onnxconverter-common auto")):
            try:
                if amprt_wants is None:
                    amprt_wants = amprt_outputs(amprt, path, cal_dir)
                row["rel_l2_amprt_calib"] = amprt_error(amprt, converted,
                                                        os.path.join(tmp, name + ".measured.onnx"),
                                                        cal_dir, amprt_wants)
            except Exception as e:  # noqa: BLE001
                row["amprt_run_error"] = short(e, 300)
        rows.append(row)
    out = {"model": name, "path": path, "batch": {k: list(v.shape) for k, v in feeds.items()},
           "rows": rows}
    if amprt and cal_dir:
        try:
            out["fp32_100_inferences_s"] = amprt_fp32_seconds(amprt, path, cal_dir)
        except Exception as e:  # noqa: BLE001
            out["fp32_100_inferences_error"] = short(e, 300)
    return out


# --------------------------------------------------------------------------------------------
# Output


def fmt_err(v):
    if v is None:
        return "–"
    if v != v:
        return "shape differs"
    return "inf/NaN" if v == float("inf") else f"{v:.2e}"


def markdown(result):
    shapes = ", ".join(f"{k} {v}" for k, v in result["batch"].items())
    lines = [f"### {result['model']} ({shapes})", "",
             "| variant | rel L2 ORT | rel L2 ref | casts | 16-bit FLOPs | ORT loads "
             "| param bytes | nodes | seconds |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['variant']} | conversion failed: {short(r['error'])} "
                         "| | | | | | | |")
            continue
        share = "?" if r["flops_16bit"] is None else f"{100 * r['flops_16bit']:.1f}%"
        loads = "yes" if r["ort_loads"] else f"no: {short(r.get('ort_error', ''), 60)}"
        lines.append(f"| {r['variant']} | {fmt_err(r['rel_l2_ort'])} | "
                     f"{fmt_err(r['rel_l2_ref'])} | {r['casts']} | {share} | {loads} | "
                     f"{r['param_bytes']:,} | {r['nodes']} | "
                     f"{'' if 'seconds' not in r else format(r['seconds'], '.2f')} |")
    return "\n".join(lines)


def summary(results, max_error):
    """One table over the models: the two error-targeted conversions side by side."""
    lines = ["| model | tool | amprt's report | amprt run calib | ORT calib | ORT test | ref test "
             "| 16-bit FLOPs | FP32 nodes | seconds | time / 100 FP32 inferences |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for res in results:
        t100 = res.get("fp32_100_inferences_s")
        for r in res["rows"]:
            if "max-error" not in r["variant"] and "auto_mixed" not in r["variant"]:
                continue
            tool = "amprt" if r["variant"].startswith("amprt") else "onnxconverter-common"
            if "error" in r:
                lines.append(f"| {res['model']} | {tool} | failed: {short(r['error'], 120)} | | | | | | | | |")
                continue
            own = r.get("amprt_report")
            share = "?" if r["flops_16bit"] is None else f"{100 * r['flops_16bit']:.1f}%"
            if r["flops_16bit"] is None and own:  # the file's shapes could not be found
                share = f"{100 * own['flops_16bit']:.1f}% (amprt's count)"
            ratio = f"{r['seconds'] / t100:.2f}" if t100 else "–"
            amprt_run = r.get("rel_l2_amprt_calib")
            amprt_run = fmt_err(amprt_run) if amprt_run is not None else \
                f"fails: {short(r.get('amprt_run_error', ''), 60)}"
            lines.append(f"| {res['model']} | {tool} | {fmt_err(own['error']) if own else '–'} | "
                         f"{amprt_run} | "
                         f"{fmt_err(r.get('rel_l2_calib_ort'))} | {fmt_err(r['rel_l2_ort'])} | "
                         f"{fmt_err(r['rel_l2_ref'])} | {share} | "
                         f"{'?' if r['fp32_nodes'] is None else r['fp32_nodes']} | {r['seconds']:.2f} | {ratio} |")
    return "\n".join(lines)


def model_paths(args):
    if not args:
        return sorted(glob.glob(os.path.join(REPO, "models", "*", "model.onnx")))
    out = []
    for a in args:
        out.append(os.path.join(a, "model.onnx") if os.path.isdir(a) else a)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help="model.onnx files or folders (default: models/*)")
    ap.add_argument("--amprt", default=os.path.join(REPO, "build-rel", "amprt"))
    ap.add_argument("--no-amprt", action="store_true", help="onnxconverter-common only")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON list instead")
    ap.add_argument("--max-error", type=float, help="also the error-targeted conversions")
    ap.add_argument("--calib-root", help="CALIB: CALIB/<model name>/ holds amprt's calibration sets")
    ap.add_argument("--summary", action="store_true",
                    help="with --max-error: only the error-targeted conversions, one table over the models")
    args = ap.parse_args()
    if args.summary and not (args.max_error and args.calib_root):
        print("--summary needs --max-error and --calib-root", file=sys.stderr)
        return 1

    paths = model_paths(args.models)
    if not paths:
        print("no models", file=sys.stderr)
        return 1
    amprt = None if args.no_amprt else os.path.abspath(args.amprt)
    if amprt and not os.access(amprt, os.X_OK):
        print(f"no amprt binary at {amprt} (or pass --no-amprt)", file=sys.stderr)
        return 1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in paths:
            results.append(compare_model(p, amprt, args.threads, tmp, args.max_error, args.calib_root,
                                         targeted_only=args.summary))
    if args.json:
        # strict JSON has no inf/NaN: an overflowed variant's error is written as "inf"
        def clean(v):
            if isinstance(v, float) and not np.isfinite(v):
                return str(v)
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v
        json.dump(clean(results), sys.stdout, indent=1, allow_nan=False)
        print()
    else:
        import onnxruntime as ort
        try:
            import onnxconverter_common
            occ = onnxconverter_common.__version__
        except ImportError:
            occ = "not installed"
        print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__} (CPU), "
              f"onnxconverter-common {occ}\n")
        if args.summary:
            print(summary(results, args.max_error))
        else:
            print("\n\n".join(markdown(r) for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
