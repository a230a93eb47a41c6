#!/usr/bin/env python3
"""Which dtypes each op runs in, per backend, measured: the dtype column of `amprt ops`.

Every single-node ONNX backend node test (libonnx-testdata) is run by `amprt check` as shipped,
and each one whose op reads FP32 tensors is also run retyped: every FP32 tensor of the model
(inputs, outputs, initializers, Constant values) made FP16, BF16 and FP64, with the inputs
rounded to that type. The expected outputs of a retyped case are onnxruntime's FP32 outputs on
the rounded inputs, rounded to the type, and must be matched elementwise within the type's
tolerance (TOL below). An op is listed in a dtype on a backend when at least one of its cases in
that dtype passes there; the dtype of a case is its node's first input's (first output's when it
has no input). Ops without a single-node node test (amprt's own domains, and a few ONNX ops)
are not probed and listed as such.

    probe_dtypes.py AMPRT --write tools/amprt/op_dtypes.def   # regenerate the table
    probe_dtypes.py AMPRT --check tools/amprt/op_dtypes.def   # fail when the table is stale

The CUDA column is probed when AMPRT_CUDA_MODULE names a CUDA module (the emulator's in CTest);
$AMP_NODE_TESTS overrides the node tests' folder."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

NODE = os.environ.get("AMP_NODE_TESTS", "/usr/share/libonnx-testdata/data/node")
NAMES = {TensorProto.FLOAT: "f32", TensorProto.FLOAT16: "f16", TensorProto.BFLOAT16: "bf16",
         TensorProto.DOUBLE: "f64", TensorProto.INT8: "i8", TensorProto.UINT8: "u8",
         TensorProto.INT16: "i16", TensorProto.UINT16: "u16", TensorProto.INT32: "i32",
         TensorProto.UINT32: "u32", TensorProto.INT64: "i64", TensorProto.UINT64: "u64",
         TensorProto.BOOL: "bool", TensorProto.STRING: "string"}
ORDER = ["f32", "f16", "bf16", "f64", "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "bool", "string"]
RETYPE = {"f32": TensorProto.FLOAT, "f16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16,
          "f64": TensorProto.DOUBLE, "i32": TensorProto.INT32, "i64": TensorProto.INT64}
INT_NP = {"i32": np.int32, "i64": np.int64}
INTS = {TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32,
        TensorProto.UINT32, TensorProto.INT64, TensorProto.UINT64}
# rtol, atol per retyped dtype: a few units in the last place of the type (f64 is compared with
# onnxruntime's FP32, so it gets FP32's tolerance)
TOL = {"f32": (1e-5, 1e-6), "f16": (4e-3, 1e-4), "bf16": (3e-2, 1e-3), "f64": (1e-5, 1e-6),
       "i32": (1e-5, 1e-6), "i64": (1e-5, 1e-6)}
NOT_RETYPED = {"Cast", "CastLike"}  # their dtypes are attributes too: the shipped cases cover them


def bf16_round(a):
    """f32 array -> (the bf16 bit patterns as uint16, the rounded values as f32), nearest-even."""
    b = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = np.isnan(a)
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    r[nan] = 0x7FC0
    return r, (r.astype(np.uint32) << 16).view(np.float32)


def rounded(a, dt):
    """a's values in dt, as f32 (as integers for i32 and i64, rounded to nearest and clipped)."""
    if dt in INT_NP:
        info = np.iinfo(INT_NP[dt])
        return np.clip(np.rint(np.asarray(a, dtype=np.float64)), info.min, info.max).astype(INT_NP[dt])
    a = np.asarray(a, dtype=np.float32)
    if dt == "f16":
        with np.errstate(over="ignore"):  # beyond FP16's range is inf, as in FP16
            return a.astype(np.float16).astype(np.float32)
    if dt == "bf16":
        return bf16_round(a)[1]
    return a


def tensor_as(t, dt, name=None):
    """A TensorProto of f32 values t in dtype dt (values already rounded)."""
    if dt == "bf16":
        p = TensorProto(name=name or "", data_type=TensorProto.BFLOAT16, dims=list(t.shape))
        p.raw_data = bf16_round(t)[0].tobytes()
        return p
    a = t.astype(INT_NP.get(dt) or (np.float16 if dt == "f16" else np.float64 if dt == "f64" else np.float32))
    return numpy_helper.from_array(a, name or "")


ONNX_TYPE = {"f32": "tensor(float)", "f16": "tensor(float16)", "bf16": "tensor(bfloat16)",
             "f64": "tensor(double)", "i32": "tensor(int32)", "i64": "tensor(int64)"}


HISTORY = {}
for _s in onnx.defs.get_all_schemas_with_history():
    HISTORY.setdefault((_s.name, _s.domain), []).append(_s)


def t_names(model):
    """The values of the node bound to the op's type parameter that its first input has (its
    first output's when it has none), the types the schema allows it at the model's opset and
    at any opset; None where the schema is not onnx's or the parameter is a fixed type."""
    n = model.graph.node[0]
    dom = n.domain if n.domain not in ("", "ai.onnx") else ""
    opset = next((o.version for o in model.opset_import if o.domain == dom), None)
    try:
        sch = onnx.defs.get_schema(n.op_type, opset, dom)
    except Exception:
        return None
    def bound(formals, actual):
        out = []
        for i, name in enumerate(actual):
            f = formals[min(i, len(formals) - 1)] if formals else None
            if f is not None and i >= len(formals) and f.option != onnx.defs.OpSchema.FormalParameterOption.Variadic:
                f = None
            out.append((name, f.type_str if f is not None else None))
        return out
    ins, outs = bound(sch.inputs, n.input), bound(sch.outputs, n.output)
    def allowed_in(s, param):
        return {t for tc in s.type_constraints if tc.type_param_str == param for t in tc.allowed_type_strs}
    bound_ins = [(nm, ts) for nm, ts in ins if nm and ts]
    first = next(((nm, ts) for nm, ts in bound_ins if len(allowed_in(sch, ts)) > 1), None)
    first = first or (bound_ins[0] if bound_ins else outs[0] if outs else None)
    if first is None or first[1] is None or first[1].startswith("tensor("):
        return None
    param = first[1]
    ever = set()
    for s in HISTORY.get((n.op_type, dom), []):
        ever |= allowed_in(s, param)
    names = {nm for nm, ts in ins + outs if nm and ts == param}
    return names, allowed_in(sch, param), ever, first[0]


def retyped(t, src_type, dt):
    """A TensorProto in dt holding t's values rounded to dt (t of src_type), and the rounded
    values in the twin's type (twin()) for the reference run."""
    r = rounded(numpy_helper.to_array(t).astype(np.float64 if dt in INT_NP else np.float32), dt)
    return tensor_as(r, dt, t.name), tensor_as(r, twin(dt), t.name)


def twin(dt):
    """The type onnxruntime computes a dt case's reference in: FP32 for the floats (the FP32
    result on inputs rounded to dt, rounded to dt), the type itself for the integers."""
    return dt if dt in INT_NP else "f32"


def valid(model, full):
    try:
        onnx.checker.check_model(model, full_check=full)
        return True
    except Exception:
        return False


def make_variant(model, tn, strict, src_type, dt):
    """(model retyped to dt, its FP32 twin for onnxruntime, the names retyped) or None: the
    values of the op's first type parameter (tn, t_names') become dt, the twin holds them in
    FP32 rounded to dt. None when the schema does not allow dt there or the retyped model fails
    onnx's checker (with shape inference where the shipped case passes it: strict)."""
    if tn is None or ONNX_TYPE[dt] not in tn[2] or ONNX_TYPE[twin(dt)] not in tn[1]:
        return None
    names = tn[0]
    new, ref = onnx.ModelProto(), onnx.ModelProto()
    new.CopyFrom(model)
    ref.CopyFrom(model)
    for m, to in ((new, RETYPE[dt]), (ref, RETYPE[twin(dt)])):
        for vi in list(m.graph.input) + list(m.graph.output):
            if vi.name in names and vi.type.tensor_type.elem_type == src_type:
                vi.type.tensor_type.elem_type = to
        del m.graph.value_info[:]
    for i, t in enumerate(model.graph.initializer):
        if t.name in names and t.data_type == src_type:
            a, b = retyped(t, src_type, dt)
            new.graph.initializer[i].CopyFrom(a)
            ref.graph.initializer[i].CopyFrom(b)
    # the twin, and the variant where the schema allows dt at this opset, must be as valid as
    # the shipped case (onnx's strict inference fails a few shipped function ops on its own)
    if not valid(ref, strict) or (ONNX_TYPE[dt] in tn[1] and not valid(new, strict)):
        return None
    return new, ref, names


def case_dtype(model):
    """(The case's dtype, its node, t_names()): the dtype is that of the node's first input of a
    type parameter with a choice of types (Where's X, not its condition); the first input's or
    output's where none has one."""
    n = model.graph.node[0]
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info)
             if v.type.HasField("tensor_type")}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    tn = t_names(model)
    name = tn[3] if tn else next((x for x in n.input if x), n.output[0] if n.output else None)
    return types.get(name), n, tn


def write_variant(src, dst, model, ref, names, src_type, dt):
    """dst/model.onnx and dst/test_data_set_k/{input,output}_i.pb for each of src's sets, the
    retyped inputs rounded to dt, the outputs onnxruntime's on them (those retyped rounded to
    dt); False when a set is missing an input or onnxruntime cannot run the FP32 twin."""
    import onnxruntime as ort
    try:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 4
        sess = ort.InferenceSession(ref.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception:
        return False
    sets = sorted(d for d in os.listdir(src) if d.startswith("test_data_set_"))
    inits = {t.name for t in model.graph.initializer}
    in_names = [i.name for i in model.graph.input if i.name not in inits]
    written = {}
    for s in sets:
        feeds, files = {}, {}
        for k, name in enumerate(in_names):
            p = os.path.join(src, s, f"input_{k}.pb")
            if not os.path.exists(p):
                return False
            t = onnx.load_tensor(p)
            if name in names and t.data_type == src_type:
                files[f"input_{k}.pb"], f32 = retyped(t, src_type, dt)
                feeds[name] = numpy_helper.to_array(f32)
            else:
                feeds[name], files[f"input_{k}.pb"] = numpy_helper.to_array(t), t
        try:
            outs = sess.run(None, feeds)
        except Exception:
            return False
        for k, (o, info) in enumerate(zip(outs, model.graph.output)):
            o = np.asarray(o)
            if info.name in names and o.dtype == np.float32 and dt not in INT_NP:
                files[f"output_{k}.pb"] = tensor_as(rounded(o, dt), dt, info.name)
            else:
                files[f"output_{k}.pb"] = numpy_helper.from_array(o, info.name)
        written[s] = files
    for s, files in written.items():
        os.makedirs(os.path.join(dst, s), exist_ok=True)
        for f, t in files.items():
            with open(os.path.join(dst, s, f), "wb") as fh:
                fh.write(t.SerializeToString())
    onnx.save(model, os.path.join(dst, "model.onnx"))
    return True


# ONNX ops newer than the node tests of libonnx-testdata 1.12: single-node cases made here,
# (name, op, opset, attributes, inputs as (name, dtype, shape)), outputs from onnxruntime
SYNTH = [
    ("gelu", "Gelu", 20, {}, [("X", TensorProto.FLOAT, (3, 5))]),
    ("gelu_tanh", "Gelu", 20, {"approximate": "tanh"}, [("X", TensorProto.FLOAT, (2, 7))]),
    ("mish", "Mish", 18, {}, [("X", TensorProto.FLOAT, (4, 6))]),
    ("group_normalization", "GroupNormalization", 21, {"num_groups": 2},
     [("X", TensorProto.FLOAT, (2, 4, 3, 3)), ("scale", TensorProto.FLOAT, (4,)), ("bias", TensorProto.FLOAT, (4,))]),
    ("affine_grid", "AffineGrid", 20, {"align_corners": 0},
     [("theta", TensorProto.FLOAT, (2, 2, 3)), ("size", TensorProto.INT64, None)]),
    ("bitwise_and", "BitwiseAnd", 18, {}, [("A", TensorProto.INT32, (3, 4)), ("B", TensorProto.INT32, (3, 4))]),
    ("bitwise_or", "BitwiseOr", 18, {}, [("A", TensorProto.INT32, (3, 4)), ("B", TensorProto.INT32, (3, 4))]),
    ("bitwise_xor", "BitwiseXor", 18, {}, [("A", TensorProto.INT32, (3, 4)), ("B", TensorProto.INT32, (3, 4))]),
    ("bitwise_not", "BitwiseNot", 18, {}, [("X", TensorProto.INT32, (3, 4))]),
]


def synthesize(folder):
    """SYNTH's cases in the node-test layout under folder (seeded values; AffineGrid's size is
    [2, 1, 4, 5]); the names of the cases written."""
    import onnxruntime as ort
    from onnx import helper
    rng = np.random.default_rng(20261207)
    done = []
    for name, op, opset, attrs, ins in SYNTH:
        feeds, vis = {}, []
        for iname, dt, shape in ins:
            if shape is None:
                a = np.array([2, 1, 4, 5], dtype=np.int64)
            elif dt == TensorProto.FLOAT:
                a = rng.uniform(-3, 3, size=shape).astype(np.float32)
            else:
                a = rng.integers(-1000, 1000, size=shape).astype(np.int32)
            feeds[iname] = a
            vis.append(helper.make_tensor_value_info(iname, dt, list(a.shape)))
        node = helper.make_node(op, [i[0] for i in ins], ["Y"], name=name, **attrs)
        out = helper.make_tensor_value_info("Y", ins[0][1], None)
        m = helper.make_model(helper.make_graph([node], name, vis, [out]),
                              opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
        try:
            y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        except Exception:
            continue  # this onnxruntime lacks the op: not probed
        m.graph.output[0].CopyFrom(helper.make_tensor_value_info("Y", ins[0][1], list(y.shape)))
        d = os.path.join(folder, "test_" + name)
        os.makedirs(os.path.join(d, "test_data_set_0"))
        onnx.save(m, os.path.join(d, "model.onnx"))
        for k, (iname, _, _) in enumerate(ins):
            onnx.save_tensor(numpy_helper.from_array(feeds[iname], iname), os.path.join(d, "test_data_set_0", f"input_{k}.pb"))
        onnx.save_tensor(numpy_helper.from_array(y, "Y"), os.path.join(d, "test_data_set_0", "output_0.pb"))
        done.append(d)
    return done


def build_tree(work):
    """Variants under work/<dt>/; returns {case folder: (op key, dtype)}."""
    cases = {}
    shipped = [os.path.join(NODE, name) for name in sorted(os.listdir(NODE))]
    for src in shipped + synthesize(os.path.join(work, "synth")):
        name = os.path.basename(src)
        path = os.path.join(src, "model.onnx")
        if not os.path.exists(path):
            continue
        try:
            m = onnx.load(path)
        except Exception:
            continue
        if len(m.graph.node) != 1:
            continue
        src_type, n, tn = case_dtype(m)
        key = (n.op_type, n.domain or "ai.onnx")
        if src_type not in NAMES:
            continue
        cases[os.path.realpath(src)] = (key, NAMES[src_type])
        if n.op_type in NOT_RETYPED or src_type not in INTS | set(RETYPE.values()):
            continue
        strict = valid(m, True)
        for rt in RETYPE:
            if RETYPE[rt] == src_type:
                continue
            v = make_variant(m, tn, strict, src_type, rt)
            dst = os.path.join(work, rt, name)
            if v and write_variant(src, dst, v[0], v[1], v[2], src_type, rt):
                cases[os.path.realpath(dst)] = (key, rt)
    return cases


def run_check(amprt, folders, tol, backend):
    cmd = [amprt, "check", *folders, "--json", "--threads", "1", "--backend", backend]
    if tol:
        cmd += ["--rtol", str(tol[0]), "--atol", str(tol[1])]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3000)
    if p.returncode not in (0, 1):
        sys.exit(f"probe_dtypes: {' '.join(cmd[:3])} ... exit {p.returncode}: {p.stderr[-500:]}")
    return {os.path.realpath(c["dir"]): c["result"] for c in json.loads(p.stdout)["cases"]}


def probe(amprt, backends):
    work = tempfile.mkdtemp(prefix="amprt-dtypes-")
    keep = os.environ.get("AMP_PROBE_KEEP")  # a folder to keep the retyped cases in
    try:
        cases = build_tree(work)
        found = {}
        for be in backends:
            native = [c for c in cases if not any(c.startswith(os.path.join(work, dt) + os.sep) for dt in RETYPE)]
            res = run_check(amprt, native, None, be)
            for dt in RETYPE:
                folder = os.path.join(work, dt)
                if os.path.isdir(folder):
                    res.update(run_check(amprt, [folder], TOL[dt], be))
            for c, r in res.items():
                if r == "pass" and c in cases:
                    key, dt = cases[c]
                    found.setdefault(key, {}).setdefault(be, set()).add(dt)
        return found, {k for k, _ in cases.values()}
    finally:
        if keep:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.move(work, keep)
        shutil.rmtree(work, ignore_errors=True)


def amprt_ops(amprt):
    """[(name, domain, on CUDA)] of `amprt ops --json`, in the op table's order. A case can pass
    on CUDA without a CUDA kernel where the plan folds the node (Constant), which is not
    running it there, so the CUDA column keeps the ops CUDA has."""
    p = subprocess.run([amprt, "ops", "--json"], capture_output=True, text=True, timeout=120)
    if p.returncode:
        sys.exit(f"probe_dtypes: amprt ops --json: exit {p.returncode}: {p.stderr[-300:]}")
    return [(o["name"], o["domain"], o["cuda"]) for o in json.loads(p.stdout)["ops"]]


def render(found, probed, backends, ops):
    lines = ["/* Generated by tools/probe_dtypes.py: the dtypes each op ran in on each backend, measured on",
             " * single-node ONNX node tests (as shipped, and retyped to FP32, FP16, BF16 and FP64 against",
             " * onnxruntime); do not edit. CTest op_dtypes fails when it is stale. OP_DTYPES(name, domain,",
             " * probed, cpu, cuda): probed is 0 for an op with no such case (amprt's own domains); the",
             " * lists are space-separated dtype names, empty where no case passed. */"]
    for name, dom, on_cuda in ops:
        key = (name, dom)
        got = found.get(key, {})
        cols = [" ".join(d for d in ORDER if d in got.get(be, ())) for be in ("cpu", "cuda")]
        if "cuda" not in backends or not on_cuda:
            cols[1] = ""
        lines.append(f'OP_DTYPES("{name}", "{dom}", {1 if key in probed else 0}, "{cols[0]}", "{cols[1]}")')
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("amprt")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write")
    g.add_argument("--check")
    a = ap.parse_args()
    backends = ["cpu"] + (["cuda"] if os.environ.get("AMPRT_CUDA_MODULE") else [])
    found, probed = probe(os.path.abspath(a.amprt), backends)
    text = render(found, probed, backends, amprt_ops(os.path.abspath(a.amprt)))
    if a.write:
        tmp = a.write + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, a.write)
        print(f"probe_dtypes: wrote {a.write}: {len(probed)} ops probed")
        return 0
    old = open(a.check).read()
    if "cuda" not in backends:  # no CUDA module here: compare the CPU column alone
        old = re.sub(r', "[^"]*"\)$', ', "")', old, flags=re.M)
    if old != text:
        import difflib
        diff = list(difflib.unified_diff(old.splitlines(), text.splitlines(), "committed", "probed", lineterm="", n=0))
        print("\n".join(diff[:60]))
        print(f"FAIL {a.check} is stale: regenerate it with AMPRT_CUDA_MODULE=build/libamprt_cuda_emu.so "
              f"python3 tools/probe_dtypes.py build/amprt --write {a.check}")
        return 1
    print(f"probe_dtypes: {a.check} matches the probe ({len(probed)} ops probed on {', '.join(backends)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
