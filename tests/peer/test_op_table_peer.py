#!/usr/bin/env python3
"""The op table's per-op facts against onnx's own schemas (pure onnx: no amprt run).

Parses the OP(...) lines of ir/ops.def and the family files it includes, and for every op of
the default domain checks against onnx.defs' schema history:

  - the bf16 column is the first since_version whose type constraints hold tensor(bfloat16)
    (0 when none does);
  - the TYPES rule (newest schema at or below the table's last opset): every input and output
    in its T masks has the type set of the first T input; an IN(k) output has input k's type
    set; a fixed output dtype is one the output allows; no mask bit names an input or output
    the schema lacks (variadic ones aside);
  - ops of other domains are TYPES_NONE (amprt's own, ai.amprt.training and ai.amprt.fused,
    have no onnx schema and no bf16 opset);
  - an op's GRAD(amp_grad_<family>) builder names the op in ir/ops/<family>_grad.c (the
    builders switch on the op; a builder that does not handle it would fail only at run time).

The same for the short lists of ops outside the table in passes/autocast.c (class, bf16).

usage: test_op_table_peer.py [--root DIR] [--verbose]; exit status 1 when anything failed.
"""

import argparse
import os
import re
import sys

import onnx
import onnx.defs

AMP_DTYPES = {
    "AMP_F32": "tensor(float)",
    "AMP_I64": "tensor(int64)",
    "AMP_I32": "tensor(int32)",
    "AMP_U8": "tensor(uint8)",
    "AMP_BOOL": "tensor(bool)",
}
ALL = 0xFFFFFFFF

OP_RE = re.compile(r'^OP\((\w+), "(\w+)", "([^"]*)", (\d+), (\d+), (\w+), (\d+), (.*), (GRAD\(\w+\)|NOGRAD), ([01]), (\w+), (\w+)\)$')


def def_files(root):
    """ir/ops.def and every family file it includes, in order."""
    out = [os.path.join(root, "ir/ops.def")]
    for line in open(out[0]):
        m = re.match(r'#include "(ir/[\w/]+\.def)"', line)
        if m:
            out.append(os.path.join(root, m.group(1)))
    return out


def mask(expr):
    """Evaluates a mask of the table (hex, AMP_TYPES_ALL, '& ~0x10u')."""
    e = expr.replace("AMP_TYPES_ALL", str(ALL)).replace("u", "")
    return eval(e, {"__builtins__": {}}) & ALL  # table text only: numbers and operators


def split_args(s):
    args, depth, cur = [], 0, ""
    for ch in s:
        if ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    args.append(cur.strip())
    return args


_HISTORY = {}


def schemas(name, domain):
    """Every version of an op's schema, oldest first."""
    if not _HISTORY:
        for s in onnx.defs.get_all_schemas_with_history():
            _HISTORY.setdefault((s.name, s.domain), []).append(s)
    return sorted(_HISTORY.get((name, domain), []), key=lambda s: s.since_version)


def first_bf16(hist):
    for s in hist:
        if any("tensor(bfloat16)" in tc.allowed_type_strs for tc in s.type_constraints):
            return s.since_version
    return 0


def type_set(schema, param):
    """Allowed type strings of a formal input/output."""
    for tc in schema.type_constraints:
        if tc.type_param_str == param.type_str:
            return frozenset(tc.allowed_type_strs)
    return frozenset([param.type_str])


def variadic(params):
    return bool(params) and params[-1].option == onnx.defs.OpSchema.FormalParameterOption.Variadic


def check_types(name, schema, rule, fail):
    """rule: ('all',) or (tin, tout, agnostic, [out rules])."""
    ins, outs = list(schema.inputs), list(schema.outputs)
    if rule[0] == "all":
        tin, tout, outr = ALL, ALL, []
    else:
        tin, tout, _, outr = rule
    def param(params, k):
        if k < len(params):
            return params[k]
        return params[-1] if variadic(params) else None
    for what, m, params in (("input", tin, ins), ("output", tout, outs)):
        if not m >> 31 & 1:  # bit 31 set: every input from there on, less the bits cleared
            top = max(k for k in range(32) if m >> k & 1) if m else -1
            if top >= len(params) and not variadic(params):
                fail(f"{name}: {what} {top} is in the T mask but the schema has {len(params)}")
    t_ins = [k for k in range(min(len(ins), 32)) if tin >> k & 1]
    t_outs = [k for k in range(min(len(outs), 8)) if tout >> k & 1]
    if t_ins or t_outs:
        ref = type_set(schema, ins[t_ins[0]]) if t_ins else type_set(schema, outs[t_outs[0]])
        for k in t_ins:
            if type_set(schema, ins[k]) != ref:
                fail(f"{name}: input {k} ({ins[k].name}) is not of the T of the rule")
        for k in t_outs:
            if type_set(schema, outs[k]) != ref:
                fail(f"{name}: output {k} ({outs[k].name}) is not of the T of the rule")
    for k, r in enumerate(outr):
        if r in ("0", ""):
            continue
        if k >= len(outs):
            fail(f"{name}: output rule {k} beyond the schema's {len(outs)} outputs")
            continue
        m = re.match(r"IN\((\d+)\)$", r)
        if m:
            src = int(m.group(1))
            p = param(ins, src)
            if p is None or type_set(schema, p) != type_set(schema, outs[k]):
                fail(f"{name}: output {k} does not share input {src}'s types")
        elif r in AMP_DTYPES:
            if AMP_DTYPES[r] not in type_set(schema, outs[k]):
                fail(f"{name}: output {k} cannot be {r}")
        else:
            fail(f"{name}: output rule {r!r} not understood")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    failures = []
    fail = failures.append
    n_ops = 0
    for f in def_files(args.root):
        for line in open(f):
            line = line.rstrip("\n")
            if not line.startswith("OP("):
                continue
            m = OP_RE.match(line)
            if not m:
                fail(f"{os.path.basename(f)}: cannot parse: {line}")
                continue
            ident, name, domain, lo, hi, cls, bf16, types, grad, _, _, _ = m.groups()
            lo, hi, bf16 = int(lo), int(hi), int(bf16)
            n_ops += 1
            g = re.match(r"GRAD\(amp_grad_(\w+)\)$", grad)
            if g:
                # the named family builder must dispatch on the op (a missing one fails to link)
                path = os.path.join(args.root, "ir/ops", g.group(1) + "_grad.c")
                if not os.path.exists(path) or not re.search(r"\bAMP_OP_%s\b" % ident, open(path).read()):
                    fail(f"{name}: amp_grad_{g.group(1)} ({os.path.relpath(path, args.root)}) does not handle AMP_OP_{ident}")
            if domain not in ("", "ai.onnx"):
                if types != "TYPES_NONE":
                    fail(f"{name} ({domain}): a type rule outside the default domain")
                if domain in ("ai.amprt.training", "ai.amprt.fused"):
                    # amprt's own domains (training ops, the fusion pass's ops): no onnx schema
                    if bf16 != 0:
                        fail(f"{name}: {domain} op with a bf16 opset")
                    continue
            elif types == "TYPES_NONE":
                fail(f"{name}: no type rule")
            hist = schemas(name, domain)
            if not hist:
                fail(f"{name} ({domain}): onnx has no schema")
                continue
            want = first_bf16(hist)
            if bf16 != want:
                fail(f"{name}: bf16 opset {bf16}, onnx gives tensor(bfloat16) from {want or 'never'}")
            if domain in ("", "ai.onnx"):
                cur = [s for s in hist if s.since_version <= hi]
                if not cur:
                    fail(f"{name}: no schema at or below opset {hi}")
                    continue
                schema = cur[-1]
                if types == "TYPES_ALL":
                    check_types(name, schema, ("all",), fail)
                elif types.startswith("TYPES("):
                    a = split_args(types[len("TYPES("):-1])
                    check_types(name, schema, (mask(a[0]), mask(a[1]), a[2], a[3:]), fail)
                elif not re.match(r"TYPES_FN\(amp_types_\w+\)$", types):
                    fail(f"{name}: types {types!r} not understood")
            if args.verbose:
                print(f"{ident}: ok" if not failures else f"{ident}: {failures[-1]}")
    # ops outside the table that autocast classifies: their bf16 opsets
    src = open(os.path.join(args.root, "passes/autocast.c")).read()
    outside = re.findall(r'\{"(\w+)", K_\w+, (\d+)\}', src)
    if not outside:
        fail("passes/autocast.c: no list of ops outside the table found")
    for name, bf16 in outside:
        hist = schemas(name, "")
        if not hist:
            fail(f"{name}: onnx has no schema")
        elif int(bf16) != first_bf16(hist):
            fail(f"{name} (autocast.c): bf16 opset {bf16}, onnx gives {first_bf16(hist) or 'never'}")
    for msg in failures:
        print("FAIL", msg)
    print(f"op table against onnx {onnx.__version__}: {n_ops} ops, {len(outside)} outside the table, "
          f"{len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
