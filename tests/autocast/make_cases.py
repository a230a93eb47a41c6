#!/usr/bin/env python3
"""Generate the autocast test cases (AUTOCAST.md, "Cases every autocast must pass").

Each case is a small FP32 ONNX model built with onnx.helper (opset 17, IR version 8) and one
input set in the ONNX backend-test layout:

    tests/data/autocast/<case>/model.onnx
    tests/data/autocast/<case>/test_data_set_0/input_K.pb    (TensorProto, name = graph input)
    tests/data/autocast/<case>/test_data_set_0/output_K.pb   (TensorProto, name = graph output)

Expected outputs are what onnxruntime computes on the FP32 model (one thread, graph
optimizations off so the graph runs as written); each is also checked here against an
independent numpy computation of the same graph. tests/autocast/README.md says what each case
checks.

Seeds are fixed and the models are written without timestamps, so two runs give byte-identical
files (`--check-determinism` proves it).

Usage:
    python3 tests/autocast/make_cases.py                 # writes tests/data/autocast/
    python3 tests/autocast/make_cases.py --out DIR
    python3 tests/autocast/make_cases.py --check-determinism
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnx.numpy_helper as nh
import onnxruntime as ort
from onnx import TensorProto as TP
from onnx import helper as oh

OPSET = 17
IR_VERSION = 8
MAX_FILE_BYTES = 100 * 1024
# onnxruntime against numpy in float64: far above f32 rounding, far below a wrong graph.
NUMPY_REL_L2_TOL = 1e-5
F32_MIN = float(np.finfo(np.float32).min)  # -3.4028235e38

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_OUT = os.path.join(ROOT, "tests", "data", "autocast")


# --------------------------------------------------------------------------------------------
# Small builders


def away_from_zero(rng, shape, lo=0.5, hi=1.5):
    """Random values with |v| in [lo, hi] and random sign: no value near zero, where a relative
    error measure would be meaningless."""
    mag = rng.uniform(lo, hi, size=shape)
    sign = np.where(rng.random(size=shape) < 0.5, -1.0, 1.0)
    return (mag * sign).astype(np.float32)


def c_order(array):
    # np.ascontiguousarray would turn a rank-0 array into shape [1]
    return np.asarray(array, order="C")


def init(name, array):
    return nh.from_array(c_order(array), name)


def vi(name, elem, shape):
    return oh.make_tensor_value_info(name, elem, shape)


def node(op, inputs, outputs, name, **attrs):
    return oh.make_node(op, inputs, outputs, name=name, **attrs)


def model(name, nodes, inputs, outputs, inits):
    g = oh.make_graph(nodes, name, inputs, outputs, inits)
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", OPSET)],
                      producer_name="amprt-autocast-cases")
    m.ir_version = IR_VERSION
    return m


def scalar(name, value):
    return init(name, np.array(value, dtype=np.float32))


def const_node(name, out, value):
    """A Constant node holding a rank-0 f32 tensor, as torch's exporter writes literals."""
    t = nh.from_array(np.array(value, dtype=np.float32), out)
    return node("Constant", [], [out], name, value=t)


# --------------------------------------------------------------------------------------------
# numpy references (float64), independent of onnxruntime


def np_conv2d(x, w, b, pad):
    n, c, hh, ww = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh_, ow_ = hh + 2 * pad - kh + 1, ww + 2 * pad - kw + 1
    y = np.zeros((n, o, oh_, ow_))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + oh_, j:j + ow_]          # n c h w
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return y + b.reshape(1, -1, 1, 1)


def np_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=-1, keepdims=True)


def np_layernorm(h, scale, bias, eps):
    mu = h.mean(axis=-1, keepdims=True)
    var = ((h - mu) ** 2).mean(axis=-1, keepdims=True)
    return (h - mu) / np.sqrt(var + eps) * scale + bias


def f64(a):
    return np.asarray(a, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Cases. Each returns (model, {input name: array}, [numpy reference per output] or None).


def case_resize():
    rng = np.random.default_rng(101)
    x = away_from_zero(rng, (1, 3, 8, 8))
    w1 = (rng.normal(size=(4, 3, 3, 3)) / np.sqrt(27)).astype(np.float32)
    b1 = (0.1 * rng.normal(size=4)).astype(np.float32)
    w2 = (rng.normal(size=(2, 4, 3, 3)) / np.sqrt(36)).astype(np.float32)
    b2 = (0.1 * rng.normal(size=2)).astype(np.float32)
    roi = np.zeros((0,), dtype=np.float32)
    scales = np.array([1, 1, 2, 2], dtype=np.float32)
    nodes = [
        node("Conv", ["X", "W1", "B1"], ["C1"], "conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("Resize", ["C1", "roi", "scales"], ["R"], "resize", mode="nearest"),
        node("Conv", ["R", "W2", "B2"], ["Y"], "conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    ]
    m = model("resize", nodes, [vi("X", TP.FLOAT, [1, 3, 8, 8])],
              [vi("Y", TP.FLOAT, [1, 2, 16, 16])],
              [init("W1", w1), init("B1", b1), init("roi", roi), init("scales", scales),
               init("W2", w2), init("B2", b2)])
    c1 = np_conv2d(f64(x), f64(w1), f64(b1), 1)
    # nearest, half_pixel, round_prefer_floor at scale 2: source index = floor(i / 2)
    r = c1.repeat(2, axis=2).repeat(2, axis=3)
    y = np_conv2d(r, f64(w2), f64(b2), 1)
    return m, {"X": x}, [y]


def case_author_cast():
    rng = np.random.default_rng(102)
    x = away_from_zero(rng, (2, 16))
    w1 = (rng.normal(size=(16, 16)) / 4).astype(np.float32)
    w2 = (rng.normal(size=(16, 8)) / 4).astype(np.float32)
    nodes = [
        node("MatMul", ["X", "W1"], ["H"], "matmul1"),
        node("Cast", ["H"], ["Hc"], "author_cast", to=TP.FLOAT),
        node("MatMul", ["Hc", "W2"], ["Y"], "matmul2"),
    ]
    m = model("author_cast", nodes, [vi("X", TP.FLOAT, [2, 16])], [vi("Y", TP.FLOAT, [2, 8])],
              [init("W1", w1), init("W2", w2)])
    return m, {"X": x}, [f64(x) @ f64(w1) @ f64(w2)]


def case_shared_init():
    rng = np.random.default_rng(103)
    x = away_from_zero(rng, (16, 16))
    w = rng.uniform(-1, 1, size=(16, 16)).astype(np.float32)
    nodes = [
        node("MatMul", ["X", "W"], ["A"], "matmul"),
        node("Add", ["X", "W"], ["S"], "add"),
        node("Exp", ["S"], ["B"], "exp"),
    ]
    m = model("shared_init", nodes, [vi("X", TP.FLOAT, [16, 16])],
              [vi("A", TP.FLOAT, [16, 16]), vi("B", TP.FLOAT, [16, 16])], [init("W", w)])
    return m, {"X": x}, [f64(x) @ f64(w), np.exp(f64(x) + f64(w))]


def case_no_roundtrip():
    rng = np.random.default_rng(104)
    x = away_from_zero(rng, (4, 16))
    w = (rng.normal(size=(16, 16)) / 4).astype(np.float32)
    nodes = [
        node("MatMul", ["X", "W"], ["H"], "matmul"),
        node("Softmax", ["H"], ["P"], "softmax", axis=-1),
        node("Relu", ["P"], ["R"], "relu"),
        node("Log", ["R"], ["Y"], "log"),
    ]
    m = model("no_roundtrip", nodes, [vi("X", TP.FLOAT, [4, 16])], [vi("Y", TP.FLOAT, [4, 16])],
              [init("W", w)])
    return m, {"X": x}, [np.log(np.maximum(np_softmax(f64(x) @ f64(w)), 0))]


def case_author_roundtrip():
    rng = np.random.default_rng(105)
    x = rng.uniform(-1000, 1000, size=(4, 8)).astype(np.float32)
    # One out-of-range value per row at most, so a row holds a single ±inf after the round trip
    # and every product with W stays ±inf (two infinities of opposite sign would give NaN).
    x[0, 2] = 1.0e5        # above 65504: FP16 inf, so Y row 0 is ±inf everywhere
    x[1, 5] = -8.0e4       # below -65504: -inf
    x[2, 1] = 65510.0      # rounds to 65504 in FP16: finite, but not 65510 any more
    x[3, 6] = 40000.75     # FP16 spacing is 32 here: becomes 40000
    mag = rng.uniform(0.05, 0.15, size=(8, 8))
    w = (mag * np.where(rng.random(size=(8, 8)) < 0.5, -1, 1)).astype(np.float32)
    nodes = [
        node("Cast", ["X"], ["Xh"], "author_to_fp16", to=TP.FLOAT16),
        node("Cast", ["Xh"], ["Xf"], "author_to_fp32", to=TP.FLOAT),
        node("MatMul", ["Xf", "W"], ["Y"], "matmul"),
    ]
    m = model("author_roundtrip", nodes, [vi("X", TP.FLOAT, [4, 8])],
              [vi("Y", TP.FLOAT, [4, 8])], [init("W", w)])
    with np.errstate(over="ignore", invalid="ignore"):
        xr = x.astype(np.float16).astype(np.float64)
        y = xr @ f64(w)
    return m, {"X": x}, [y]


def case_reduce_mean_big():
    # 90,000 reduced elements (> 65504) near 1, so an FP16 sum would reach 9e4 and overflow.
    # The big tensor is a MatMul product of two thin operands so the files stay small: X[300,16]
    # times W[16,300] (each ~1/16, small noise) gives H[300,300] with every element ~ the mean of
    # a row of X, in [0.5, 1.5].
    rng = np.random.default_rng(106)
    x = rng.uniform(0.5, 1.5, size=(300, 16)).astype(np.float32)
    w = ((1.0 + 0.05 * rng.normal(size=(16, 300))) / 16).astype(np.float32)
    nodes = [
        node("MatMul", ["X", "W"], ["H"], "matmul"),
        node("ReduceMean", ["H"], ["Y"], "reduce_mean", keepdims=0),
    ]
    m = model("reduce_mean_big", nodes, [vi("X", TP.FLOAT, [300, 16])], [vi("Y", TP.FLOAT, [])],
              [init("W", w)])
    return m, {"X": x}, [np.array((f64(x) @ f64(w)).mean())]


def _layernorm_data():
    rng = np.random.default_rng(107)
    x = away_from_zero(rng, (4, 64), 2.5e4, 3.5e4)
    w = (np.eye(64) + 0.002 * rng.normal(size=(64, 64))).astype(np.float32)
    scale = (1.0 + 0.1 * rng.normal(size=64)).astype(np.float32)
    bias = (0.1 * rng.normal(size=64)).astype(np.float32)
    w2 = (rng.normal(size=(64, 16)) / 8).astype(np.float32)
    h = f64(x) @ f64(w)
    y = np_layernorm(h, f64(scale), f64(bias), float(np.float32(1e-5))) @ f64(w2)
    return x, w, scale, bias, w2, y


def case_layernorm():
    x, w, scale, bias, w2, y = _layernorm_data()
    nodes = [
        node("MatMul", ["X", "W"], ["H"], "matmul1"),
        node("LayerNormalization", ["H", "scale", "bias"], ["N"], "layernorm",
             axis=-1, epsilon=1e-5),
        node("MatMul", ["N", "W2"], ["Y"], "matmul2"),
    ]
    m = model("layernorm", nodes, [vi("X", TP.FLOAT, [4, 64])], [vi("Y", TP.FLOAT, [4, 16])],
              [init("W", w), init("scale", scale), init("bias", bias), init("W2", w2)])
    return m, {"X": x}, [y]


def case_layernorm_decomposed():
    x, w, scale, bias, w2, y = _layernorm_data()
    nodes = [
        node("MatMul", ["X", "W"], ["H"], "matmul1"),
        node("ReduceMean", ["H"], ["mean"], "ln/mean", axes=[-1], keepdims=1),
        node("Sub", ["H", "mean"], ["d"], "ln/sub"),
        const_node("ln/two", "two", 2.0),
        node("Pow", ["d", "two"], ["d2"], "ln/pow"),
        node("ReduceMean", ["d2"], ["var"], "ln/var", axes=[-1], keepdims=1),
        const_node("ln/eps", "eps", 1e-5),
        node("Add", ["var", "eps"], ["ve"], "ln/add_eps"),
        node("Sqrt", ["ve"], ["std"], "ln/sqrt"),
        node("Div", ["d", "std"], ["n"], "ln/div"),
        node("Mul", ["n", "scale"], ["ns"], "ln/mul"),
        node("Add", ["ns", "bias"], ["N"], "ln/add_bias"),
        node("MatMul", ["N", "W2"], ["Y"], "matmul2"),
    ]
    m = model("layernorm_decomposed", nodes, [vi("X", TP.FLOAT, [4, 64])],
              [vi("Y", TP.FLOAT, [4, 16])],
              [init("W", w), init("scale", scale), init("bias", bias), init("W2", w2)])
    return m, {"X": x}, [y]


def case_softmax_mask():
    rng = np.random.default_rng(108)
    # |q|,|k| <= 1 keeps |S| <= 8: a mask clamped to -65504 plus S then still rounds to -65504
    # in FP16 instead of overflowing, so only an unclamped mask (-1e9 -> -inf) can make NaN.
    q = away_from_zero(rng, (2, 4, 8), 0.3, 1.0)
    k = away_from_zero(rng, (2, 4, 8), 0.3, 1.0)
    v = away_from_zero(rng, (2, 4, 8), 0.3, 1.0)
    big = -1e9
    mask = np.array([
        [[0, big, big, big],          # causal mask with -1e9
         [0, 0, big, big],
         [0, 0, 0, big],
         [0, 0, 0, 0]],
        [[0, F32_MIN, 0, F32_MIN],    # the FP32 minimum, mixed with -1e9
         [0, 0, big, F32_MIN],
         [F32_MIN, 0, 0, big],
         [F32_MIN, F32_MIN, F32_MIN, F32_MIN]],  # fully masked query row: uniform weights
    ], dtype=np.float32)
    nodes = [
        node("Transpose", ["K"], ["Kt"], "transpose", perm=[0, 2, 1]),
        node("MatMul", ["Q", "Kt"], ["S"], "scores"),
        node("Add", ["S", "M"], ["S2"], "mask"),
        node("Softmax", ["S2"], ["P"], "softmax", axis=-1),
        node("MatMul", ["P", "V"], ["Y"], "context"),
    ]
    m = model("softmax_mask", nodes,
              [vi("Q", TP.FLOAT, [2, 4, 8]), vi("K", TP.FLOAT, [2, 4, 8]),
               vi("V", TP.FLOAT, [2, 4, 8])],
              [vi("Y", TP.FLOAT, [2, 4, 8])], [init("M", mask)])
    # f32 addition, as the model does it: S + F32_MIN rounds to F32_MIN exactly, and the f32
    # softmax then sees equal scores in the fully masked row.
    s = (q.astype(np.float32) @ k.transpose(0, 2, 1)).astype(np.float32) + mask
    y = np_softmax(f64(s)) @ f64(v)
    return m, {"Q": q, "K": k, "V": v}, [y]


def case_constants():
    rng = np.random.default_rng(109)
    x = away_from_zero(rng, (4, 16))
    # Row 0: one dominant entry, so |H / rms(H)| reaches ~3.9 and the product with 2e4 reaches
    # ~7.8e4, beyond FP16's 65504. Row 3: all zeros on purpose, the one exception to inputs
    # away from zero: its mean square is 0 and only eps = 1e-12 under the Sqrt keeps 0/0 (NaN)
    # away; an eps flushed to FP16 zero gives NaN there.
    x[0, 3] = 10.0
    x[3, :] = 0.0
    w = (np.eye(16) + 0.02 * rng.normal(size=(16, 16))).astype(np.float32)
    nodes = [
        node("MatMul", ["X", "W"], ["H"], "matmul"),
        node("Mul", ["H", "H"], ["H2"], "square"),
        node("ReduceMean", ["H2"], ["V"], "mean_square", axes=[-1], keepdims=1),
        node("Add", ["V", "eps"], ["Ve"], "add_eps"),
        node("Sqrt", ["Ve"], ["D"], "sqrt"),
        node("Div", ["H", "D"], ["Q"], "div"),
        node("Mul", ["Q", "c"], ["Qc"], "mul_c"),
        node("Mul", ["Qc", "c_inv"], ["Y"], "mul_c_inv"),
    ]
    m = model("constants", nodes, [vi("X", TP.FLOAT, [4, 16])], [vi("Y", TP.FLOAT, [4, 16])],
              [init("W", w), scalar("eps", 1e-12), scalar("c", 2e4), scalar("c_inv", 1 / 2e4)])
    h = f64(x) @ f64(w)
    d = np.sqrt((h * h).mean(axis=-1, keepdims=True) + float(np.float32(1e-12)))
    y = h / d * float(np.float32(2e4)) * float(np.float32(1 / 2e4))
    return m, {"X": x}, [y]


def _keep_io(sorted_nodes):
    rng = np.random.default_rng(110)
    a = away_from_zero(rng, (4, 8))
    b = away_from_zero(rng, (8, 4))
    w = (rng.normal(size=(8, 8)) / np.sqrt(8)).astype(np.float32)
    nodes = [
        node("Transpose", ["B"], ["Bt"], "transpose", perm=[1, 0]),
        node("Add", ["A", "Bt"], ["S"], "add"),
        node("MatMul", ["S", "W"], ["H"], "matmul1"),
        node("Relu", ["H"], ["R"], "relu"),
        node("Softmax", ["R"], ["Y1"], "softmax", axis=-1),
        node("MatMul", ["R", "B"], ["Y2"], "matmul2"),
    ]
    if not sorted_nodes:
        nodes = nodes[::-1]  # every consumer before its producer
    name = "keep_io_sorted" if sorted_nodes else "keep_io"
    m = model(name, nodes, [vi("A", TP.FLOAT, [4, 8]), vi("B", TP.FLOAT, [8, 4])],
              [vi("Y1", TP.FLOAT, [4, 8]), vi("Y2", TP.FLOAT, [4, 4])], [init("W", w)])
    r = np.maximum((f64(a) + f64(b).T) @ f64(w), 0)
    return m, {"A": a, "B": b}, [np_softmax(r), r @ f64(b)]


def case_dtype_attr():
    rng = np.random.default_rng(111)
    x = away_from_zero(rng, (8, 8))
    w = (rng.normal(size=(8, 8)) / np.sqrt(8)).astype(np.float32)
    nodes = [
        node("MatMul", ["X", "W"], ["A"], "matmul"),
        node("EyeLike", ["A"], ["E"], "eyelike"),
        node("Add", ["A", "E"], ["Y1"], "add"),
        node("Relu", ["A"], ["R"], "relu"),
        node("Cast", ["R"], ["Y2"], "cast", to=TP.FLOAT),
    ]
    m = model("dtype_attr", nodes, [vi("X", TP.FLOAT, [8, 8])],
              [vi("Y1", TP.FLOAT, [8, 8]), vi("Y2", TP.FLOAT, [8, 8])], [init("W", w)])
    a = f64(x) @ f64(w)
    return m, {"X": x}, [a + np.eye(8), np.maximum(a, 0)]


def case_dtype_attr_random():
    rng = np.random.default_rng(112)
    x = away_from_zero(rng, (8, 8))
    w = (rng.normal(size=(8, 8)) / np.sqrt(8)).astype(np.float32)
    nodes = [
        node("MatMul", ["X", "W"], ["A"], "matmul"),
        node("RandomNormalLike", ["A"], ["N"], "random", seed=7.0),
        node("Mul", ["N", "zero"], ["Z"], "mul_zero"),
        node("Add", ["A", "Z"], ["Y"], "add"),
    ]
    m = model("dtype_attr_random", nodes, [vi("X", TP.FLOAT, [8, 8])],
              [vi("Y", TP.FLOAT, [8, 8])], [init("W", w), scalar("zero", 0.0)])
    return m, {"X": x}, [f64(x) @ f64(w)]


def case_already_fp16():
    rng = np.random.default_rng(113)
    x = away_from_zero(rng, (4, 16)).astype(np.float16)
    w = (rng.normal(size=(16, 16)) / 4).astype(np.float16)
    nodes = [
        node("MatMul", ["X", "W"], ["H"], "matmul"),
        node("Relu", ["H"], ["Y"], "relu"),
    ]
    m = model("already_fp16", nodes, [vi("X", TP.FLOAT16, [4, 16])],
              [vi("Y", TP.FLOAT16, [4, 16])], [init("W", w)])
    return m, {"X": x}, [np.maximum(f64(x) @ f64(w), 0)]


CASES = {
    "resize": case_resize,
    "author_cast": case_author_cast,
    "shared_init": case_shared_init,
    "no_roundtrip": case_no_roundtrip,
    "author_roundtrip": case_author_roundtrip,
    "reduce_mean_big": case_reduce_mean_big,
    "layernorm": case_layernorm,
    "layernorm_decomposed": case_layernorm_decomposed,
    "softmax_mask": case_softmax_mask,
    "constants": case_constants,
    "keep_io": lambda: _keep_io(False),
    "keep_io_sorted": lambda: _keep_io(True),
    "dtype_attr": case_dtype_attr,
    "dtype_attr_random": case_dtype_attr_random,
    "already_fp16": case_already_fp16,
}

# keep_io is deliberately not topologically sorted; onnx.checker rejects that, onnxruntime
# sorts it itself. keep_io_sorted is the same graph in order, for the checker.
UNSORTED = {"keep_io"}


# --------------------------------------------------------------------------------------------
# Checks and writing


def rel_l2_finite(got, want):
    """Relative L2 over the positions where the reference is finite; the non-finite positions
    must match exactly (same inf and sign, NaN only where NaN)."""
    got = f64(got)
    want = f64(want)
    fin = np.isfinite(want)
    if not np.array_equal(np.isfinite(got), fin):
        return float("inf")
    nf = ~fin
    if not np.array_equal(np.isnan(got[nf]), np.isnan(want[nf])):
        return float("inf")
    both_inf = nf & ~np.isnan(want)
    if not np.array_equal(got[both_inf], want[both_inf]):
        return float("inf")
    g, w = got[fin], want[fin]
    den = np.linalg.norm(w)
    num = np.linalg.norm(g - w)
    return float(num / den) if den > 0 else float(num)


def run_ort(m, feeds):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    # Run the graph as written: the reference for author_roundtrip must keep the author's
    # FP32->FP16->FP32 casts, which a graph optimizer is free to fold away.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def write_tensor(path, array, name):
    with open(path, "wb") as f:
        f.write(nh.from_array(c_order(array), name).SerializeToString())


def generate(out_dir, quiet=False):
    rows = []
    for name, build in CASES.items():
        m, feeds, refs = build()
        if name not in UNSORTED:
            onnx.checker.check_model(m, full_check=True)
        else:
            try:
                onnx.checker.check_model(m, full_check=True)
            except onnx.checker.ValidationError as e:
                if "topologically sorted" not in str(e):
                    raise
            else:
                raise SystemExit(f"{name}: meant to be unsorted, but onnx.checker accepts it")
        with np.errstate(all="ignore"):
            outs = run_ort(m, feeds)
        for i, (got, ref) in enumerate(zip(outs, refs)):
            tol = 2e-3 if got.dtype == np.float16 else NUMPY_REL_L2_TOL
            err = rel_l2_finite(got, ref)
            if not (err <= tol):
                raise SystemExit(f"{name}: output {i}: onnxruntime and numpy differ, "
                                 f"rel L2 {err:.3g}")
            if np.isnan(f64(got)).any():
                raise SystemExit(f"{name}: output {i}: reference holds NaN")

        cdir = os.path.join(out_dir, name)
        ddir = os.path.join(cdir, "test_data_set_0")
        if os.path.isdir(cdir):
            shutil.rmtree(cdir)
        os.makedirs(ddir)
        data = m.SerializeToString()
        with open(os.path.join(cdir, "model.onnx"), "wb") as f:
            f.write(data)
        for i, gi in enumerate(m.graph.input):
            write_tensor(os.path.join(ddir, f"input_{i}.pb"), feeds[gi.name], gi.name)
        for i, (go, y) in enumerate(zip(m.graph.output, outs)):
            write_tensor(os.path.join(ddir, f"output_{i}.pb"), y, go.name)
        for dirpath, _, files in os.walk(cdir):
            for fn in files:
                p = os.path.join(dirpath, fn)
                if os.path.getsize(p) > MAX_FILE_BYTES:
                    raise SystemExit(f"{p}: {os.path.getsize(p)} bytes, over {MAX_FILE_BYTES}")
        ninf = sum(int(np.isinf(o.astype(np.float64)).sum()) for o in outs)
        rows.append((name, len(data), len(m.graph.node),
                     " ".join(str(list(o.shape)) for o in outs), ninf))
    if not quiet:
        print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, opset {OPSET}")
        for name, size, nodes, shapes, ninf in rows:
            extra = f", {ninf} inf in the reference" if ninf else ""
            print(f"{name:22s} {size:6d} bytes, {nodes:2d} nodes, outputs {shapes}{extra}")
    return rows


def tree_hashes(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for fn in files:
            p = os.path.join(dirpath, fn)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def check_determinism():
    with tempfile.TemporaryDirectory() as tmp:
        trees = []
        for i in range(2):
            d = os.path.join(tmp, f"run{i}")
            subprocess.run([sys.executable, os.path.abspath(__file__), "--out", d, "--quiet"],
                           check=True)
            trees.append(tree_hashes(d))
    a, b = trees
    bad = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if bad:
        print(f"NOT deterministic: {len(bad)} file(s) differ: {', '.join(bad)}")
        return 1
    print(f"deterministic: {len(a)} files byte-identical across two runs")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    ap.add_argument("--quiet", action="store_true", help="print nothing on success")
    ap.add_argument("--check-determinism", action="store_true",
                    help="generate twice into temporary folders and compare sha256")
    args = ap.parse_args()
    if args.check_determinism:
        return check_determinism()
    generate(args.out, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
