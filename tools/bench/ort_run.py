#!/usr/bin/env python3
"""Run onnxruntime on one ONNX backend-test-layout data set and compare with its expected outputs.

    ort_run.py MODEL.onnx DATASET_DIR [--tol 1e-4] [--threads N]

DATASET_DIR holds input_0.pb, input_1.pb, … and output_0.pb, … (onnx.TensorProto). Inputs are
bound to graph inputs by the tensor's name when every name matches a graph input, else by
position (input_K -> the K-th graph input that is not an initializer). Expected outputs are
matched to the session's outputs the same way.

For each output prints the relative L2 error ||got - expected|| / ||expected|| (the plain L2 of
the difference when the expected tensor is all zeros) and the max abs error. Integer and bool
outputs must match exactly. Exit status: 0 when every output is within --tol, 1 when any is not
(or has the wrong shape or dtype, or a NaN/inf where the expected has none), 2 on a usage or
load error.
"""

import argparse
import glob
import os
import re
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort


def load_tensors(folder, prefix):
    files = glob.glob(os.path.join(folder, f"{prefix}_*.pb"))
    indexed = []
    for f in files:
        m = re.fullmatch(rf"{prefix}_(\d+)\.pb", os.path.basename(f))
        if m:
            indexed.append((int(m.group(1)), f))
    indexed.sort()
    if [i for i, _ in indexed] != list(range(len(indexed))):
        raise ValueError(f"{folder}: {prefix}_K.pb files are not numbered 0..{len(indexed) - 1}")
    out = []
    for _, f in indexed:
        t = onnx.TensorProto()
        with open(f, "rb") as fh:
            t.ParseFromString(fh.read())
        # external data would be relative to the data set folder
        out.append((t.name, onnx.numpy_helper.to_array(t, base_dir=folder), os.path.basename(f)))
    return out


def bind(tensors, names, what):
    """Map loaded tensors to names: by tensor name when all match, else by position."""
    if len(tensors) != len(names):
        raise ValueError(f"{len(tensors)} {what} file(s) but the model has {len(names)} {what}(s)")
    tnames = [t[0] for t in tensors]
    if all(tnames) and sorted(tnames) == sorted(names):
        by = {t[0]: t for t in tensors}
        return [(n, by[n][1], by[n][2]) for n in names]
    return [(n, t[1], t[2]) for n, t in zip(names, tensors)]


def compare(got, exp):
    """Return (rel_l2, max_abs, problem-or-None)."""
    if got.shape != exp.shape:
        return float("inf"), float("inf"), f"shape {list(got.shape)} != expected {list(exp.shape)}"
    if got.dtype != exp.dtype:
        return float("inf"), float("inf"), f"dtype {got.dtype} != expected {exp.dtype}"
    if got.size == 0:
        return 0.0, 0.0, None
    if exp.dtype.kind in "biu" or exp.dtype == np.bool_:
        diff = got.astype(np.float64) - exp.astype(np.float64)
        mx = float(np.max(np.abs(diff)))
        den = float(np.linalg.norm(exp.astype(np.float64)))
        num = float(np.linalg.norm(diff))
        rel = num / den if den > 0 else num
        return rel, mx, (None if mx == 0 else "integer output differs")
    if exp.dtype.kind == "c":
        g, e = got.astype(np.complex128), exp.astype(np.complex128)
    elif exp.dtype.kind == "f":
        g, e = got.astype(np.float64), exp.astype(np.float64)
    else:
        return float("inf"), float("inf"), f"unsupported dtype {exp.dtype}"
    # non-finite values must appear at the same places with the same value
    gf, ef = np.isfinite(g), np.isfinite(e)
    if not np.array_equal(gf, ef):
        return (float("inf"), float("inf"),
                "NaN/inf where the expected output has none (or vice versa)")
    nonfinite = ~ef
    if nonfinite.any():
        ge, ee = g[nonfinite], e[nonfinite]
        same = (np.isnan(ge) & np.isnan(ee)) | (ge == ee)
        if not same.all():
            return float("inf"), float("inf"), "non-finite values differ"
    g, e = g[ef], e[ef]
    diff = g - e
    mx = float(np.max(np.abs(diff))) if diff.size else 0.0
    den = float(np.linalg.norm(e))
    num = float(np.linalg.norm(diff))
    rel = num / den if den > 0 else num
    return rel, mx, None


def main():
    ap = argparse.ArgumentParser(
        description="Run onnxruntime on a test_data_set folder and compare with expected outputs.")
    ap.add_argument("model", help="MODEL.onnx")
    ap.add_argument("dataset", help="test_data_set_N folder with input_K.pb and output_K.pb")
    ap.add_argument("--tol", type=float, default=1e-4,
                    help="largest relative L2 error accepted per output (default %(default)g)")
    ap.add_argument("--threads", type=int, default=1, help="ORT intra-op threads (default 1)")
    args = ap.parse_args()

    try:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
        in_names = [i.name for i in sess.get_inputs()]
        out_names = [o.name for o in sess.get_outputs()]
        inputs = bind(load_tensors(args.dataset, "input"), in_names, "input")
        expected = bind(load_tensors(args.dataset, "output"), out_names, "output")
    except Exception as e:  # noqa: BLE001 - any load failure is a usage error here
        print(f"ort_run: error: {e}", file=sys.stderr)
        return 2

    try:
        got = sess.run(out_names, {n: a for n, a, _ in inputs})
    except Exception as e:  # noqa: BLE001
        print(f"ort_run: onnxruntime failed: {e}", file=sys.stderr)
        return 1

    failed = 0
    for (name, exp, fname), g in zip(expected, got):
        g = np.asarray(g)
        rel, mx, problem = compare(g, exp)
        ok = problem is None and rel <= args.tol
        failed += not ok
        line = (f"{'ok  ' if ok else 'FAIL'} {fname} {name} {list(exp.shape)} {exp.dtype}: "
                f"rel L2 {rel:.3e}  max abs {mx:.3e}")
        if problem:
            line += f"  ({problem})"
        elif not ok:
            line += f"  (over --tol {args.tol:g})"
        print(line)
    print(f"{len(expected) - failed} of {len(expected)} outputs within rel L2 {args.tol:g}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
