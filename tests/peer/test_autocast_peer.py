#!/usr/bin/env python3
"""Peer checks for `amprt convert --dtype fp16|bf16`.

For every model in models/ and every case in tests/data/autocast/ (AUTOCAST.md's cases), and
for both 16-bit types, with --keep-io-types:

  - amprt converts it (a conversion amprt reports as unsupported is a skip, with its message;
    any other failure fails), leaving no temporary file behind;
  - onnx.checker.check_model(full_check=True) accepts the result, and the graph inputs and
    outputs keep their FP32 types and shapes;
  - at least one MatMul/Gemm/Conv-class node runs in 16 bits where ONNX allows that type;
  - the converted model runs in a peer (onnxruntime for FP16; for BF16, whose kernels the CPU
    build of onnxruntime lacks, the onnx reference evaluator) and in `amprt run` when amprt has
    every op; the two agree (relative L2 ≤ 1e-2 for FP16, 3e-2 for BF16) and both match the FP32
    expected output within the same bounds;
  - each case's own expectation from AUTOCAST.md holds (no NaN, inf kept, no cast round trips,
    Resize roi/scales in FP32, constants kept, an FP16 model left alone, ...).

`models/overflow` is converted twice: without calibration (reported only: a static FP16 cast is
expected to overflow there) and with `--calibrate models/overflow/calib`, which must be accurate.

Then every ONNX node test listed in tests/conformance/node_pass.txt whose graph holds a
MatMul/Gemm/Conv-class op or only FP32 tensors is converted to FP16 (--keep-io-types) and must
pass onnx.checker, load in onnxruntime and match its expected outputs loosely.

One summary line per group; exit status 1 when anything failed.

usage: test_autocast_peer.py [--amprt PATH] [--only REGEX] [--no-node-tests] [--verbose]
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnx.numpy_helper as nh
from onnx import TensorProto as TP

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DTYPES = {"fp16": TP.FLOAT16, "bf16": TP.BFLOAT16}
SIXTEEN = {TP.FLOAT16, TP.BFLOAT16}
# converted model against its peer, and either against the FP32 expected outputs
TOL = {"fp16": 1e-2, "bf16": 3e-2}
NODE_TEST_TOL = 3e-2
ALLOW_OPS = {"MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum", "LSTM", "GRU", "RNN",
             "Attention", "MultiHeadAttention"}
SUBGRAPH_OPS = {"If", "Loop", "Scan"}
AMPRT_TIMEOUT_S = 60


# --------------------------------------------------------------------------------------------
# Data sets and comparisons


def read_tensor(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return t.name, nh.to_array(t)


def numbered(folder, prefix):
    found = []
    for f in glob.glob(os.path.join(folder, f"{prefix}_*.pb")):
        m = re.fullmatch(rf"{prefix}_(\d+)\.pb", os.path.basename(f))
        if m:
            found.append((int(m.group(1)), f))
    return [f for _, f in sorted(found)]


def graph_inputs(model):
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def bind(files, names):
    """[(name, array, path)]: by tensor name when every name matches, else by position."""
    loaded = [read_tensor(f) + (f,) for f in files]
    if len(loaded) != len(names):
        raise ValueError(f"{len(loaded)} tensor file(s) for {len(names)} name(s)")
    if all(t[0] for t in loaded) and sorted(t[0] for t in loaded) == sorted(names):
        by = {t[0]: t for t in loaded}
        return [(n, by[n][1], by[n][2]) for n in names]
    return [(n, t[1], t[2]) for n, t in zip(names, loaded)]


def load_data_set(model, ds):
    ins = bind(numbered(ds, "input"), graph_inputs(model))
    outs = bind(numbered(ds, "output"), [o.name for o in model.graph.output])
    return ins, outs


def compare(got, want):
    """Relative L2 over the positions where `want` is finite, or a reason string.

    Non-finite values must match exactly: the same ±inf, NaN only where `want` has NaN."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        return f"shape {list(got.shape)}, expected {list(want.shape)}"
    if want.dtype.kind in "biu":
        return None if np.array_equal(got, want) else "integer values differ"
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    fin = np.isfinite(w)
    if np.isnan(g).any() and not np.isnan(w).any():
        return f"{int(np.isnan(g).sum())} NaN, expected none"
    if not np.array_equal(np.isfinite(g), fin):
        bad = int((np.isfinite(g) != fin).sum())
        return f"{bad} value(s) finite on one side only"
    nf = ~fin
    if not (np.array_equal(np.isnan(g[nf]), np.isnan(w[nf]))
            and np.array_equal(g[nf & ~np.isnan(w)], w[nf & ~np.isnan(w)])):
        return "non-finite values differ"
    den = np.linalg.norm(w[fin])
    num = np.linalg.norm(g[fin] - w[fin])
    return float(num / den) if den > 0 else float(num)


def within(err, tol):
    return not isinstance(err, str) and err <= tol


def fmt(err):
    return err if isinstance(err, str) else f"{err:.2e}"


# --------------------------------------------------------------------------------------------
# Running amprt, onnxruntime and the reference evaluator


class Amprt:
    def __init__(self, path, backend="cpu"):
        self.path = path
        self.backend = backend
        self.convert_help = self._help("convert")
        self.run_help = self._help("run")

    def _help(self, cmd):
        try:
            r = subprocess.run([self.path, cmd, "--help"], capture_output=True, text=True,
                               timeout=AMPRT_TIMEOUT_S)
            return r.stdout + r.stderr
        except OSError as e:
            raise SystemExit(f"cannot run {self.path}: {e}")

    @property
    def has_16bit(self):
        return "fp16" in self.convert_help

    @property
    def has_json(self):
        return "--json" in self.convert_help

    @property
    def has_run_autocast(self):
        return "--autocast" in self.run_help

    def convert(self, src, dst, dtype, extra=()):
        """(ok, message, report): report is the --json dict when amprt prints one."""
        cmd = [self.path, "convert", src, dst, "--dtype", dtype, "--keep-io-types", *extra]
        if self.has_json:
            cmd.append("--json")
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=AMPRT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return False, f"timed out after {AMPRT_TIMEOUT_S} s", None
        if r.returncode < 0:
            return False, f"killed by signal {-r.returncode}: {r.stderr.strip()}", None
        if r.returncode != 0:
            return False, r.stderr.strip() or f"exit status {r.returncode}", None
        report = None
        if self.has_json:
            try:
                report = json.loads(r.stdout)
            except ValueError:
                return False, f"--json printed no JSON: {r.stdout.strip()[:200]!r}", None
        return True, "", report

    def run(self, model_path, inputs, out_dir, autocast=None):
        """(outputs by name, None) or (None, message)."""
        os.makedirs(out_dir, exist_ok=True)
        cmd = [self.path, "run", model_path, "--threads", "1", "--output-dir", out_dir, "--backend", self.backend]
        for name, _, path in inputs:
            cmd += ["--input", f"{name}={path}"]
        if autocast:
            cmd += ["--autocast", autocast]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=AMPRT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return None, f"timed out after {AMPRT_TIMEOUT_S} s"
        if r.returncode != 0:
            return None, (r.stderr.strip() or f"exit status {r.returncode}")
        outs = {}
        for f in numbered(out_dir, "output"):
            name, arr = read_tensor(f)
            outs[name] = arr
        return outs, None


def unsupported(message):
    return "UNSUPPORTED" in message or "unsupported" in message


def ort_session(path, optimize):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    if not optimize:
        # evaluate the converted graph as written
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    else:
        # onnxruntime 1.32's ORT_ENABLE_ALL level crashes the process (SIGSEGV while creating the
        # session) on the converted transformer encoder of models/encoder, which loads and runs
        # at every lower level; the extended level keeps all the graph fusions
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def ort_missing_kernel(exc):
    return type(exc).__name__ == "NotImplemented"


def peer_runs(path, model, feeds):
    """({peer name: outputs by name}, notes, problems).

    Two peers. onnxruntime is what users deploy on, but its CPU build runs ops that lack an FP16
    kernel (Add, Mul, MatMul, Softmax, ...) in FP32 behind inserted casts, with no FP16 rounding
    between consecutive such ops, so it never shows an overflow inside a 16-bit region; it has
    no BF16 kernels at all. The onnx reference evaluator rounds every op's output to its
    declared type (FP16; BF16 MatMul results come back as FP32 from ml_dtypes), so it runs the
    converted graph as written."""
    names = [o.name for o in model.graph.output]
    peers, notes, probs = {}, [], []
    try:
        outs = ort_session(path, optimize=False).run(None, feeds)
        peers["onnxruntime"] = dict(zip(names, outs))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own classes
        first = str(e).strip().split("\n")[0][:200]
        if ort_missing_kernel(e):
            notes.append(f"onnxruntime lacks a kernel: {first}")
        else:
            probs.append(f"onnxruntime: {first}")
    try:
        from onnx.reference import ReferenceEvaluator
        with np.errstate(all="ignore"):
            outs = ReferenceEvaluator(model).run(None, feeds)
        peers["onnx reference"] = dict(zip(names, outs))
    except Exception as e:  # noqa: BLE001
        notes.append(f"onnx reference evaluator: {str(e).strip()[:160]}")
    return peers, notes, probs


# --------------------------------------------------------------------------------------------
# Graph inspection


def elem_types(model):
    """Name -> elem_type for every typed value, after shape inference (strict when the model
    allows it)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception:  # noqa: BLE001 - the checker has reported the type error already
        inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {}
    for v in list(g.input) + list(g.output) + list(g.value_info):
        types[v.name] = v.type.tensor_type.elem_type
    for t in g.initializer:
        types[t.name] = t.data_type
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    types[n.output[0]] = a.t.data_type
    return types


def node_dtype(n, types):
    """The type a node computes in: its first typed floating input."""
    for i in n.input:
        t = types.get(i)
        if t in (TP.FLOAT, TP.FLOAT16, TP.BFLOAT16, TP.DOUBLE):
            return t
    return None


def opset_of(model):
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return None


def schema_accepts(op, opset, elem):
    try:
        s = onnx.defs.get_schema(op, opset)
    except Exception:  # noqa: BLE001
        return False
    name = f"tensor({onnx.helper.tensor_dtype_to_string(elem).split('.')[-1].lower()})"
    return any(name in tc.allowed_type_strs for tc in s.type_constraints)


def cast_chains(model):
    """[(to of the first Cast, to of the second)] for every Cast feeding a Cast."""
    cast_to = {}
    for n in model.graph.node:
        if n.op_type == "Cast":
            to = next(a.i for a in n.attribute if a.name == "to")
            cast_to[n.output[0]] = to
    out = []
    for n in model.graph.node:
        if n.op_type == "Cast" and n.input[0] in cast_to:
            out.append((cast_to[n.input[0]], next(a.i for a in n.attribute if a.name == "to")))
    return out


def scalar_constants(model):
    vals = []
    for t in model.graph.initializer:
        if int(np.prod(t.dims)) == 1:
            vals.append(float(nh.to_array(t).astype(np.float64).reshape(-1)[0]))
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and int(np.prod(a.t.dims)) == 1:
                    vals.append(float(nh.to_array(a.t).astype(np.float64).reshape(-1)[0]))
    return vals


def io_signature(model):
    sig = []
    for v in list(model.graph.input) + list(model.graph.output):
        tt = v.type.tensor_type
        sig.append((v.name, tt.elem_type,
                    tuple((d.dim_value, d.dim_param) for d in tt.shape.dim)))
    return sig


# --------------------------------------------------------------------------------------------
# Per-case expectations (AUTOCAST.md). Each returns a list of problems.


def expect_resize(orig, conv, types, outs, want, dtype):
    probs = []
    for n in conv.graph.node:
        if n.op_type == "Resize":
            for k in (1, 2, 3):
                if k < len(n.input) and n.input[k] and types.get(n.input[k]) != TP.FLOAT:
                    probs.append(f"Resize input {k} ({n.input[k]}) is "
                                 f"{onnx.helper.tensor_dtype_to_string(types.get(n.input[k], 0))}"
                                 ", not FP32")
    return probs


def expect_shared_init(orig, conv, types, outs, want, dtype):
    # W reaches the 16-bit MatMul in 16 bits and the FP32 Add/Exp in FP32
    probs = []
    for n in conv.graph.node:
        if n.op_type == "MatMul" and types.get(n.input[1]) not in SIXTEEN:
            probs.append("MatMul's W is not 16-bit")
        if n.op_type == "Add" and types.get(n.input[1]) != TP.FLOAT:
            probs.append("Add's W is not FP32")
    return probs


def expect_no_roundtrip(orig, conv, types, outs, want, dtype):
    chains = cast_chains(conv)
    return [f"Cast(to {a}) -> Cast(to {b}) chain left in the graph" for a, b in chains]


def expect_author_roundtrip(orig, conv, types, outs, want, dtype):
    probs = []
    # AUTOCAST.md keeps narrowing-then-widening pairs the author wrote. Folding the pair into
    # a 16-bit consumer's input cast is exact in IEEE terms, but onnxruntime's CPU build then
    # inserts FP16->FP32 casts of its own and drops the resulting FP32->FP16->FP32 pair as
    # redundant, so the saturation the author asked for disappears there.
    # For BF16 the widening Cast may be retargeted to BFLOAT16 (FP16 -> BF16 rounds exactly as
    # FP16 -> FP32 -> BF16 does); it may not disappear.
    x = orig.graph.input[0].name
    casts = [n for n in conv.graph.node if n.op_type == "Cast"]
    to = {n.output[0]: next(a.i for a in n.attribute if a.name == "to") for n in casts}
    narrow = [n.output[0] for n in casts if n.input[0] == x and to[n.output[0]] == TP.FLOAT16]
    if not narrow:
        probs.append("the author's Cast(FLOAT16) on X is gone")
    widen = [to[n.output[0]] for n in casts if n.input[0] in narrow]
    if narrow and not widen:
        probs.append("the author's Cast(FLOAT) after Cast(FLOAT16) is gone: the round trip "
                     "was folded into the MatMul's input")
    elif widen and dtype == "fp16" and TP.FLOAT not in widen:
        probs.append("the author's Cast(FLOAT) was retargeted")
    return probs


def expect_constants(orig, conv, types, outs, want, dtype):
    probs = []
    vals = scalar_constants(conv)
    if not any(abs(v - 1e-12) <= 1e-14 for v in vals):
        probs.append(f"no constant 1e-12 left (scalar constants: {sorted(set(vals))})")
    if not any(v == 2e4 for v in vals):
        probs.append("no constant 2e4 left")
    y = outs.get("Y")
    if y is not None and not np.all(np.asarray(y, dtype=np.float64)[3] == 0):
        probs.append(f"row 3 (all-zero input) gives {np.asarray(y)[3][:4]}..., not 0")
    return probs


def expect_keep_io(orig, conv, types, outs, want, dtype):
    # onnx.checker has already checked the order; say so explicitly for this case
    seen = {i.name for i in conv.graph.input} | {t.name for t in conv.graph.initializer}
    for n in conv.graph.node:
        for i in n.input:
            if i and i not in seen:
                return [f"node {n.name or n.op_type} reads {i} before it is produced"]
        seen.update(n.output)
    return []


def expect_already_fp16(orig, conv, types, outs, want, dtype):
    probs = []
    if sorted(n.op_type for n in conv.graph.node) != sorted(n.op_type for n in orig.graph.node):
        probs.append("nodes changed: " + ", ".join(n.op_type for n in conv.graph.node))
    if sorted((t.name, t.data_type) for t in conv.graph.initializer) != \
            sorted((t.name, t.data_type) for t in orig.graph.initializer):
        probs.append("initializers changed")
    return probs


CASE_EXPECT = {
    "resize": expect_resize,
    "shared_init": expect_shared_init,
    "no_roundtrip": expect_no_roundtrip,
    "author_roundtrip": expect_author_roundtrip,
    "constants": expect_constants,
    "keep_io": expect_keep_io,
    "keep_io_sorted": expect_keep_io,
    "already_fp16": expect_already_fp16,
}
# the cases whose converted graph must run a MatMul/Gemm/Conv-class node in 16 bits (where the
# opset allows the type); models/ always must. Other folders (a case may keep everything FP32
# on purpose, for its range) are only reported.
REQUIRE_16BIT = {"resize", "author_cast", "shared_init", "no_roundtrip", "author_roundtrip",
                 "reduce_mean_big", "layernorm", "layernorm_decomposed", "softmax_mask",
                 "constants", "keep_io", "keep_io_sorted", "dtype_attr", "dtype_attr_random"}


# --------------------------------------------------------------------------------------------
# One model, one dtype


class Result:
    def __init__(self, name):
        self.name = name
        self.problems = []
        self.notes = []
        self.skipped = None
        self.converted = False  # node tests: whether any node runs in 16 bits

    def status(self):
        if self.problems:
            return "FAIL"
        return "SKIP" if self.skipped else "PASS"

    def line(self):
        s = self.status()
        text = "; ".join(self.problems) if self.problems else (self.skipped or "")
        if self.notes:
            text = (text + "; " if text else "") + "; ".join(self.notes)
        return f"{s} {self.name}" + (f": {text}" if text else "")


def guarded(check, label, *args, **kw):
    """Runs one check; an exception in the harness or a library becomes a failure with its
    message instead of ending the whole run."""
    try:
        return check(*args, **kw)
    except Exception as e:  # noqa: BLE001
        res = Result(label)
        res.problems.append(f"{type(e).__name__}: {str(e).strip()[:300]}")
        return res


def check_conversion(amprt, name, src, case_dir, dtype, tmp, extra=(), strict=True,
                     expect=None, ds="test_data_set_0", require_16bit=True):
    res = Result(f"{name} {dtype}" + (" " + " ".join(extra) if extra else ""))
    orig = onnx.load(src)
    work = os.path.join(tmp, re.sub(r"[^A-Za-z0-9_.-]", "_", res.name))
    os.makedirs(work, exist_ok=True)
    dst = os.path.join(work, "model.onnx")
    ok, msg, report = amprt.convert(src, dst, dtype, extra)
    leftovers = sorted(set(os.listdir(work)) - {"model.onnx"})
    if leftovers:
        res.problems.append(f"files left next to the output: {leftovers}")
    if not ok:
        if os.path.exists(dst):
            res.problems.append("a failed conversion left an output file")
        if name == "already_fp16" and dtype == "bf16" and not res.problems:
            res.notes.append(f"refused: {msg}")
            return res
        if unsupported(msg) and "signal" not in msg:
            res.skipped = f"amprt cannot convert it: {msg}"
        else:
            res.problems.append(f"amprt convert failed: {msg}")
        return res
    if report is not None:
        keys = ("nodes_16bit", "nodes_fp32", "casts_inserted", "nodes_range_kept")
        res.notes.append(" ".join(f"{k}={report[k]}" for k in keys if k in report))

    conv = onnx.load(dst)
    try:
        onnx.checker.check_model(conv, full_check=True)
    except Exception as e:  # noqa: BLE001
        # reported, and the numeric checks still run: they tell whether amprt itself copes
        res.problems.append(f"onnx.checker: {str(e).strip().splitlines()[0][:300]}")
    if io_signature(conv) != io_signature(orig):
        res.problems.append("graph inputs/outputs changed type or shape under --keep-io-types")
    types = elem_types(conv)

    if expect is not expect_already_fp16:
        opset = opset_of(conv)
        allow = [n for n in conv.graph.node if n.op_type in ALLOW_OPS]
        possible = [n for n in allow if schema_accepts(n.op_type, opset, DTYPES[dtype])]
        done = [n for n in allow if node_dtype(n, types) in SIXTEEN]
        if possible and not done and require_16bit:
            res.problems.append(f"no MatMul/Gemm/Conv-class node runs in {dtype}")
        res.notes.append(f"{len(done)}/{len(allow)} allow-class nodes 16-bit")
    # every node given a 16-bit input must accept that type at the model's opset
    opset = opset_of(conv)
    bad_ops = sorted({n.op_type for n in conv.graph.node
                      if n.op_type != "Cast" and node_dtype(n, types) in SIXTEEN
                      and not schema_accepts(n.op_type, opset, node_dtype(n, types))})
    if bad_ops:
        res.problems.append(f"no {dtype} at opset {opset} in {', '.join(bad_ops)}")

    # onnxruntime must at least load an FP16 model with its default optimizations
    if dtype == "fp16":
        try:
            ort_session(dst, optimize=True)
        except Exception as e:  # noqa: BLE001
            if ort_missing_kernel(e):
                res.notes.append("onnxruntime CPU lacks an FP16 kernel: "
                                 + str(e).strip().split("\n")[0][:160])
            else:
                res.problems.append(f"onnxruntime cannot load it: {str(e).strip()[:300]}")

    if not os.path.isdir(os.path.join(case_dir, ds)):
        res.notes.append(f"no {ds}: conversion and graph checks only")
        return res
    ins, want = load_data_set(orig, os.path.join(case_dir, ds))
    feeds = {n: a for n, a, _ in ins}
    want_by = {n: a for n, a, _ in want}
    tol = TOL[dtype]

    peers, pnotes, pprobs = peer_runs(dst, conv, feeds)
    res.notes += pnotes
    res.problems += pprobs
    amp, amp_why = amprt.run(dst, ins, os.path.join(work, "amprt_out"))
    if amp is None:
        if unsupported(amp_why):
            res.notes.append(f"amprt run: {amp_why}")
        else:
            res.problems.append(f"amprt run failed: {amp_why}")

    # judged against the FP32 reference: what users run (onnxruntime) and amprt
    runs = [("onnxruntime", peers.get("onnxruntime")), ("amprt", amp)]
    if amprt.has_run_autocast and not extra:
        # `run --autocast` has no calibration data: only the plain conversion compares with it
        auto, auto_why = amprt.run(src, ins, os.path.join(work, "amprt_autocast"),
                                   autocast=dtype)
        if auto is None and not unsupported(auto_why):
            res.problems.append(f"amprt run --autocast {dtype} failed: {auto_why}")
        runs.append((f"amprt run --autocast {dtype}", auto))
    if not peers and amp is None:
        res.notes.append("no numeric check: neither a peer nor amprt ran it")

    for who, outs in runs:
        if outs is None:
            continue
        for oname, w in want_by.items():
            if oname not in outs:
                res.problems.append(f"{who}: no output {oname}")
                continue
            err = compare(outs[oname], w)
            if strict and not within(err, tol):
                res.problems.append(f"{who} vs FP32 reference, {oname}: rel L2 {fmt(err)} "
                                    f"(tol {tol:g})")
            elif not strict:
                res.notes.append(f"{who} vs FP32 {oname}: {fmt(err)}")
    # amprt runs the converted graph as a peer does: it must agree with at least one of them
    if peers and amp is not None:
        for oname in want_by:
            errs = {p: compare(amp.get(oname), o[oname]) if oname in amp else "missing"
                    for p, o in peers.items() if oname in o}
            if errs and not any(within(e, tol) for e in errs.values()):
                res.problems.append(f"amprt vs peers, {oname}: " + ", ".join(
                    f"{p} {fmt(e)}" for p, e in errs.items()) + f" (tol {tol:g})")
    if expect is not None:
        outs = amp if amp is not None else (peers.get("onnx reference") or {})
        res.problems += expect(orig, conv, types, outs, want_by, dtype)
    return res


# --------------------------------------------------------------------------------------------
# ONNX node tests


def node_test_selected(model):
    g = model.graph
    ops = {n.op_type for n in g.node}
    if ops & SUBGRAPH_OPS or any(n.domain not in ("", "ai.onnx") for n in g.node):
        return False
    if ops & ALLOW_OPS:
        return True
    try:
        types = elem_types(model)
    except Exception:  # noqa: BLE001
        return False
    vals = [v.name for v in list(g.input) + list(g.output)]
    vals += [o for n in g.node for o in n.output if o]
    return all(types.get(v) == TP.FLOAT for v in vals)


def check_node_test(amprt, case_dir, tmp):
    name = os.path.basename(case_dir)
    res = Result(name)
    src = os.path.join(case_dir, "model.onnx")
    dst = os.path.join(tmp, name + ".onnx")
    ok, msg, _ = amprt.convert(src, dst, "fp16")
    if not ok:
        if unsupported(msg) and "signal" not in msg:
            res.skipped = f"amprt cannot convert it: {msg}"
        else:
            res.problems.append(f"amprt convert failed: {msg}")
        return res
    conv = onnx.load(dst)
    orig = onnx.load(src)
    try:
        onnx.checker.check_model(conv, full_check=True)
    except Exception as e:  # noqa: BLE001
        try:
            onnx.checker.check_model(orig, full_check=True)
        except Exception:  # noqa: BLE001
            res.skipped = "onnx.checker rejects the source model as well"
            return res
        res.problems.append(f"onnx.checker: {str(e).strip().splitlines()[0][:200]}")
        return res
    types = elem_types(conv)
    res.converted = any(node_dtype(n, types) in SIXTEEN for n in conv.graph.node)
    try:
        sess = ort_session(dst, optimize=False)
    except Exception as e:  # noqa: BLE001
        if ort_missing_kernel(e):
            res.skipped = "onnxruntime CPU lacks a kernel: " + str(e).strip()[:120]
            return res
        try:
            ort_session(src, optimize=False)
        except Exception:  # noqa: BLE001
            res.skipped = "onnxruntime cannot load the source model either: " + str(e).strip()[:120]
            return res
        res.problems.append(f"onnxruntime cannot load it: {str(e).strip()[:200]}")
        return res
    src_sess = None
    for ds in sorted(glob.glob(os.path.join(case_dir, "test_data_set_*"))):
        ins, want = load_data_set(orig, ds)
        feed = {n: a for n, a, _ in ins}
        with np.errstate(all="ignore"):
            got = sess.run(None, feed)
        for k, ((oname, w, _), g) in enumerate(zip(want, got)):
            err = compare(g, w)
            if not within(err, NODE_TEST_TOL):
                # onnxruntime's own FP32 result may disagree with the test data (Resize with
                # align_corners and a fractional output length): then the case says nothing
                if src_sess is None:
                    src_sess = ort_session(src, optimize=False)
                with np.errstate(all="ignore"):
                    ref = src_sess.run(None, feed)[k]
                if not within(compare(ref, w), NODE_TEST_TOL):
                    res.skipped = f"onnxruntime's FP32 result differs from the test data too ({oname})"
                    continue
                res.problems.append(f"{os.path.basename(ds)} {oname}: rel L2 {fmt(err)}")
    os.remove(dst)
    return res


# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--amprt", default=os.path.join(ROOT, "build-rel", "amprt"))
    ap.add_argument("--models", default=os.path.join(ROOT, "models"))
    ap.add_argument("--cases", default=os.path.join(ROOT, "tests", "data", "autocast"))
    ap.add_argument("--node-dir", default="/usr/share/libonnx-testdata/data/node")
    ap.add_argument("--pass-list", default=os.path.join(ROOT, "tests/conformance/node_pass.txt"))
    ap.add_argument("--only", help="regex: run only the models/cases whose name matches")
    ap.add_argument("--backend", default="cpu", help="amprt --backend for every run (cpu-check: the checking backend)")
    ap.add_argument("--no-node-tests", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="print every result, not only "
                    "failures and skips")
    args = ap.parse_args()

    amprt = Amprt(os.path.abspath(args.amprt), args.backend)
    if not amprt.has_16bit:
        print(f"{args.amprt}: `convert --help` offers no --dtype fp16; nothing to test")
        return 1
    only = re.compile(args.only) if args.only else None
    groups = {}
    failed = False

    def report(group, res):
        nonlocal failed
        groups.setdefault(group, []).append(res)
        if res.status() == "FAIL":
            failed = True
        if args.verbose or res.status() != "PASS":
            print(f"  [{group}] {res.line()}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        models = sorted(d for d in glob.glob(os.path.join(args.models, "*"))
                        if os.path.isfile(os.path.join(d, "model.onnx")))
        cases = sorted(d for d in glob.glob(os.path.join(args.cases, "*"))
                       if os.path.isfile(os.path.join(d, "model.onnx")))
        for group, dirs in (("models", models), ("cases", cases)):
            for d in dirs:
                name = os.path.basename(d)
                if only and not only.search(name):
                    continue
                src = os.path.join(d, "model.onnx")
                calib = os.path.join(d, "calib")
                for dtype in DTYPES:
                    # a model with calibration data is meant to be converted with it; the plain
                    # FP16 conversion is shown, not judged
                    plain_strict = not (os.path.isdir(calib) and dtype == "fp16")
                    r = guarded(check_conversion, f"{name} {dtype}", amprt, name, src, d,
                                dtype, tmp, strict=plain_strict, expect=CASE_EXPECT.get(name),
                                require_16bit=group == "models" or name in REQUIRE_16BIT)
                    report(f"{group} {dtype}", r)
                    if os.path.isdir(calib):
                        r = guarded(check_conversion, f"{name} {dtype} --calibrate", amprt,
                                    name, src, d, dtype, tmp, extra=("--calibrate", calib))
                        report(f"{group} {dtype}", r)

        if not args.no_node_tests and os.path.isdir(args.node_dir) and not only:
            names = open(args.pass_list).read().split() if os.path.exists(args.pass_list) else []
            ntmp = os.path.join(tmp, "node")
            os.makedirs(ntmp)
            selected = 0
            converted = 0
            for n in names:
                d = os.path.join(args.node_dir, n)
                if not os.path.isfile(os.path.join(d, "model.onnx")):
                    continue
                if not node_test_selected(onnx.load(os.path.join(d, "model.onnx"))):
                    continue
                selected += 1
                r = guarded(check_node_test, n, amprt, d, ntmp)
                converted += r.converted
                report("node fp16", r)
            print(f"node tests: {selected} of {len(names)} listed cases selected "
                  "(MatMul/Gemm/Conv-class op, or FP32 tensors only); "
                  f"{converted} hold 16-bit nodes after conversion")

    for group, rs in groups.items():
        c = {s: sum(r.status() == s for r in rs) for s in ("PASS", "FAIL", "SKIP")}
        print(f"{group}: {c['PASS']} passed, {c['FAIL']} failed, {c['SKIP']} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
