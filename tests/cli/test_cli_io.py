#!/usr/bin/env python3
"""What goes into and out of the amprt tool: convert's FP32 I/O default (and --io-16bit), models
through stdin and stdout (`-`), raw input files, one JSON object from run, check, evaluate and
train, train's summary on stdout, and the DOT drawing without the nodes the plan folds.
Usage: test_cli_io.py PATH/TO/amprt"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cli_bad as common  # noqa: E402  (run, check; reads sys.argv[1] too)
from test_cli_options import expect, relu_case  # noqa: E402

LENET = common.LENET
GPT = os.path.join(common.SRC, "models", "gpt_block", "model.onnx")
run, check = common.run, common.check


def run_bytes(args, stdin=b"", timeout=120):
    """amprt args with stdin bytes: (exit status, stdout bytes, stderr text)."""
    p = subprocess.run([common.AMPRT] + args, input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def io_types(path):
    m = onnx.load(path)
    return ([i.type.tensor_type.elem_type for i in m.graph.input if i.name not in {t.name for t in m.graph.initializer}],
            [o.type.tensor_type.elem_type for o in m.graph.output])


def lenet_input(tmp, n=2):
    x = np.random.default_rng(5).standard_normal((n, 1, 28, 28)).astype(np.float32)
    t = numpy_helper.from_array(x, "input")
    path = f"{tmp}/x{n}.pb"
    with open(path, "wb") as f:
        f.write(t.SerializeToString())
    return x, path


def run_json(name, args, stdin=None):
    """amprt args (with --json) whose stdout must be one JSON object; the object or None."""
    if stdin is None:
        rc, out, err = run(args)
    else:
        rc, outb, err = run_bytes(args, stdin)
        out = outb.decode(errors="replace")
    common.sanitized(name, err)
    try:
        r = json.loads(out) if rc == 0 else None
    except ValueError:
        r = None
    check(name, isinstance(r, dict), f"exit {rc}, stdout {out[:400]!r}, stderr {err[-800:]}")
    return r if isinstance(r, dict) else None


def io_default_cases(tmp):
    # convert keeps FP32 inputs and outputs unless asked: the converted model takes what the
    # original took (the failure the old default gave: run converted.onnx --input x=fp32.pb)
    x, xpb = lenet_input(tmp)
    expect("convert (default)", ["convert", LENET, f"{tmp}/c16.onnx"], 0)
    ins, outs = io_types(f"{tmp}/c16.onnx")
    check("convert keeps FP32 I/O by default", ins == [TensorProto.FLOAT] and outs == [TensorProto.FLOAT], f"{ins} {outs}")
    rc, out, err = run(["run", f"{tmp}/c16.onnx", "--input", f"input={xpb}", "--quiet"])
    check("the converted model runs on the FP32 input", rc == 0 and "output logits float32 [2,10]" in out,
          f"exit {rc}: {out[-300:]} {err[-500:]}")
    for dt, want in (("fp16", TensorProto.FLOAT16), ("bf16", TensorProto.BFLOAT16)):
        expect(f"convert --io-16bit {dt}", ["convert", LENET, f"{tmp}/io_{dt}.onnx", "--precision", dt, "--io-16bit"], 0)
        ins, outs = io_types(f"{tmp}/io_{dt}.onnx")
        check(f"--io-16bit makes the I/O {dt}", ins == [want] and outs == [want], f"{ins} {outs}")
    expect("--keep-io-types still spells the default", ["convert", LENET, f"{tmp}/k.onnx", "--keep-io-types"], 0)
    check("--keep-io-types gives FP32 I/O", io_types(f"{tmp}/k.onnx") == ([TensorProto.FLOAT], [TensorProto.FLOAT]), "")
    expect("--io-16bit with --keep-io-types refused", ["convert", LENET, f"{tmp}/z.onnx", "--io-16bit", "--keep-io-types"],
           2, "opposite")
    check("nothing written after the refusal", not os.path.exists(f"{tmp}/z.onnx"), "")
    expect("run refuses --io-16bit", ["run", LENET, "--io-16bit"], 2, "run does not take --io-16bit")


def stdio_cases(tmp):
    lenet = open(LENET, "rb").read()
    rc, out, err = run_bytes(["run", "-", "--quiet"], lenet)
    rc2, out2, _ = run_bytes(["run", LENET, "--quiet"])
    first = lambda b: b.decode().splitlines()[0]  # noqa: E731  (the output line; times differ)
    check("run - reads the model from stdin", rc == 0 and rc2 == 0 and first(out) == first(out2),
          f"exit {rc}: {out[-300:]!r} {err[-500:]}")
    rc, model, err = run_bytes(["convert", LENET, "-", "--quiet"])
    check("convert to - writes the model to stdout", rc == 0 and len(model) > 100000 and b"logits" in model, err[-500:])
    check("convert to - puts the report on stderr", "nodes in 16 bits" in err and b"nodes in 16 bits" not in model,
          err[-500:])
    with open(f"{tmp}/piped.onnx", "wb") as f:
        f.write(model)
    try:
        m = onnx.load(f"{tmp}/piped.onnx")
        onnx.checker.check_model(m)
        ok = True
    except Exception as e:  # noqa: BLE001  (any failure to read is the finding)
        ok, why = False, str(e)
    check("the piped model is valid ONNX", ok, "" if ok else why)
    rc, out, err = run_bytes(["run", "-", "--quiet"], model)
    check("convert - | run - round trip", rc == 0 and b"output logits" in out, err[-500:])
    rc, out, err = run_bytes(["convert", "-", f"{tmp}/from_stdin.onnx"], lenet)
    check("convert - OUT reads stdin", rc == 0 and os.path.getsize(f"{tmp}/from_stdin.onnx") > 100000, err[-500:])
    rc, out, err = run_bytes(["inspect", "-"], lenet)
    check("inspect - reads stdin", rc == 0 and b"input      input float32" in out, err[-500:])
    # bad bytes: a clear error, nothing on stdout
    rc, out, err = run_bytes(["convert", "-", "-"], b"not a model at all")
    check("convert of junk from stdin fails cleanly", rc == 1 and out == b"" and "cannot load the model" in err,
          f"exit {rc}, {len(out)} bytes out, {err[-300:]}")
    rc, out, err = run_bytes(["run", "-"], b"")
    check("run of an empty stdin fails cleanly", rc == 1 and "cannot load the model" in err, f"exit {rc}: {err[-300:]}")
    rc, out, err = run_bytes(["convert", f"{tmp}/missing.onnx", "-"])
    check("a failed convert writes nothing to stdout", rc == 1 and out == b"", f"exit {rc}, {len(out)} bytes")


def raw_cases(tmp):
    x, xpb = lenet_input(tmp, 3)
    x.tofile(f"{tmp}/x.raw")
    x.tofile(f"{tmp}/x.BIN")
    np.save(f"{tmp}/x.npy", x)
    outs = {}
    for name in ("x.raw", "x.BIN", "x.npy", "x3.pb"):
        r = run_json(f"run --input {name}", ["run", LENET, "--input", f"input={tmp}/{name}", "--json", "--quiet"])
        outs[name] = r["outputs"][0]["values"] if r else None
    check("raw, .bin, .npy and .pb give the same outputs", outs["x.raw"] is not None and
          outs["x.raw"] == outs["x.BIN"] == outs["x.npy"] == outs["x3.pb"] and len(outs["x.raw"]) == 30, str(outs)[:500])
    # the free batch dim comes from the size; --batch or --shapes fix it and the size must agree
    r = run_json("raw with --shapes", ["run", LENET, "--input", f"input={tmp}/x.raw", "--shapes", "input:3x1x28x28",
                                       "--json", "--quiet"])
    check("raw with --shapes", r and r["outputs"][0]["shape"] == [3, 10], str(r)[:300])
    expect("raw of the wrong size for --batch", ["run", LENET, "--input", f"input={tmp}/x.raw", "--batch", "2"], 1,
           "needs 6272 bytes, the file holds 9408")
    with open(f"{tmp}/short.raw", "wb") as f:
        f.write(x.tobytes()[:1000])
    expect("raw not a whole number of rows", ["run", LENET, "--input", f"input={tmp}/short.raw"], 1,
           "not a whole number of 'input' rows of 3136 bytes")
    open(f"{tmp}/empty.raw", "wb").close()
    expect("empty raw file", ["run", LENET, "--input", f"input={tmp}/empty.raw"], 1, "empty.raw' is empty")
    os.mkdir(f"{tmp}/dir.raw")
    expect("raw folder refused", ["run", LENET, "--input", f"input={tmp}/dir.raw"], 1, "a folder")
    # an integer input: the model's dtype decides how the bytes are read
    g = helper.make_graph([helper.make_node("Identity", ["i"], ["o"])], "g",
                          [helper.make_tensor_value_info("i", TensorProto.INT64, [2, 3])],
                          [helper.make_tensor_value_info("o", TensorProto.INT64, [2, 3])])
    common.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), f"{tmp}/i64.onnx")
    np.arange(6, dtype=np.int64).tofile(f"{tmp}/i.raw")
    r = run_json("raw int64", ["run", f"{tmp}/i64.onnx", "--input", f"i={tmp}/i.raw", "--json", "--quiet"])
    check("raw int64 values", r and r["outputs"][0]["values"] == [0, 1, 2, 3, 4, 5], str(r)[:300])


def json_cases(tmp):
    x, xpb = lenet_input(tmp)
    r = run_json("run --json", ["run", LENET, "--input", f"input={xpb}", "--json", "--quiet"])
    if r:
        o = r["outputs"][0]
        vals = np.array(o["values"], np.float64).reshape(o["shape"])
        check("run --json schema", o["name"] == "logits" and o["dtype"] == "float32" and o["shape"] == [2, 10]
              and o["truncated"] is False and o["nan"] == 0 and o["inf"] == 0 and r["precision"] is None
              and r["backend"] == "cpu" and r["arena_bytes"] > 0 and r["first_run_ms"] > 0, str(r)[:500])
        check("run --json argmax, min and max agree with the values",
              o["argmax"] == list(vals.argmax(axis=1)) and o["min"] == vals.min() and o["max"] == vals.max(), str(o)[:500])
        # the values are the run's outputs: against onnxruntime on the same input
        try:
            import onnxruntime as ort
            ref = ort.InferenceSession(LENET, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
            err = np.linalg.norm(vals - ref) / np.linalg.norm(ref)
            check("run --json values match onnxruntime", err < 1e-5, f"rel L2 {err}")
        except ImportError:
            pass
    r = run_json("run --json --precision fp16", ["run", LENET, "--input", f"input={xpb}", "--json", "--quiet",
                                                 "--precision", "fp16"])
    check("run --json names the conversion", r and r["precision"] == "fp16", str(r)[:300])
    log = common.save(common.model_of([helper.make_node("Log", ["x"], ["y"])],
                                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])]), f"{tmp}/log.onnx")
    xin = numpy_helper.from_array(np.array([[1, 0, -1], [np.e, 2, 4]], np.float32), "x")
    with open(f"{tmp}/lx.pb", "wb") as f:
        f.write(xin.SerializeToString())
    r = run_json("run --json with non-finite values", ["run", log, "--input", f"x={tmp}/lx.pb", "--json", "--quiet"])
    if r:
        o = r["outputs"][0]
        check("non-finite values are null and counted", o["values"][1] is None and o["values"][2] is None
              and o["nan"] == 1 and o["inf"] == 1 and abs(o["values"][3] - 1.0) < 1e-6 and o["max"] == o["values"][5],
              str(o))
    # check --json: each case and the totals
    case = relu_case(f"{tmp}/jrelu")
    rc, out, err = run(["check", case, f"{tmp}/nothing_here", "--json", "--quiet"])
    try:
        r = json.loads(out)
    except ValueError:
        r = None
    check("check --json schema (a missing folder fails, exit 1)", rc == 1 and r and r["passed"] == 1 and r["failed"] == 1 and r["skipped"] == 0
          and len(r["cases"]) == 1 and r["cases"][0]["result"] == "pass" and r["cases"][0]["name"] == "jrelu", str(r))
    want = f"{case}/test_data_set_0/output_0.pb"
    t = onnx.TensorProto()
    t.ParseFromString(open(want, "rb").read())
    t.float_data[:] = [v + 1 for v in t.float_data] if t.float_data else []
    if not t.float_data:
        a = numpy_helper.to_array(t) + 1
        t = numpy_helper.from_array(a.astype(np.float32), t.name)
    with open(want, "wb") as f:
        f.write(t.SerializeToString())
    rc, out, err = run(["check", case, "--json", "--quiet"])
    try:
        r = json.loads(out)
    except ValueError:
        r = None
    check("check --json reports a failure (exit 1)", rc == 1 and r and r["failed"] == 1
          and r["cases"][0]["result"] == "fail" and "output 0" in r["cases"][0]["why"], f"exit {rc}: {out[:500]}")
    # evaluate and train --json on a small data set
    data = common.data_dir(f"{tmp}/jdata", (28, 28), (28, 28))
    r = run_json("evaluate --json", ["evaluate", LENET, "--data", data, "--threads", "1", "--json", "--quiet"])
    check("evaluate --json schema", r and r["images"] == 32 and 0 <= r["accuracy"] <= 1 and r["precision"] is None
          and r["backend"] == "cpu", str(r))
    tr = ["train", LENET, "--data", data, "--epochs", "2", "--batch", "8", "--threads", "1", "--progress", "plain",
          "--out", f"{tmp}/jt.onnx", "--json-log", f"{tmp}/jt.jsonl"]
    r = run_json("train --json", tr + ["--json", "--quiet"])
    if r:
        logs = [json.loads(line) for line in open(f"{tmp}/jt.jsonl")]
        check("train --json agrees with the epoch log", r["epochs"] == 2 and r["steps"] == 8 and len(logs) == 2
              and abs(r["train_loss"] - logs[-1]["train_loss"]) < 1e-5 * abs(logs[-1]["train_loss"])
              and abs(r["test_accuracy"] - logs[-1]["test_accuracy"]) < 1e-9
              and r["best_accuracy"] == max(e["test_accuracy"] for e in logs) and r["out"] == f"{tmp}/jt.onnx"
              and r["precision"] == "fp16", f"{r}\n{logs}")
    rc, out, err = run(tr + ["--quiet"])
    lines = out.strip().splitlines()
    check("train prints one summary line on stdout", rc == 0 and len(lines) == 1 and "epoch 2 of 2, 8 steps" in lines[0]
          and "test accuracy" in lines[0] and f"wrote {tmp}/jt.onnx" in lines[0], f"exit {rc}: {out!r}")
    check("train's epochs stay on stderr", "epoch 1/2" in err and "epoch 1/2" not in out, err[-500:])


def dot_cases(tmp):
    rc, out, err = run(["inspect", GPT, "--dot", f"{tmp}/g.dot"])
    rc2, _, err2 = run(["inspect", GPT, "--dot", f"{tmp}/gall.dot", "--dot-all"])
    folded = int(next((w for line in out.splitlines() if " folded" in line for w in
                       [line.split(" folded")[0].split()[-1]]), "-1"))

    def nodes(path):
        return [line for line in open(path) if line.startswith("  n") and "[shape=" in line]
    check("inspect --dot", rc == 0 and rc2 == 0, err[-300:] + err2[-300:])
    if rc == 0 and rc2 == 0:
        few, every = nodes(f"{tmp}/g.dot"), nodes(f"{tmp}/gall.dot")
        check("--dot leaves the folded nodes out", folded > 0 and len(every) - len(few) == folded,
              f"{len(every)} drawn with --dot-all, {len(few)} without, {folded} folded")
        check("--dot says how many it left out", f"{folded} nodes folded at plan time" in open(f"{tmp}/g.dot").read(), "")
        check("--dot-all draws every node", not any("Shape" in line for line in few)
              and any("Shape" in line for line in every), "")
        drawn = {line.split()[0] for line in few}
        dangling = [line for line in open(f"{tmp}/g.dot") if " -> " in line
                    and line.split(" -> ")[0].strip().startswith("n") and line.split(" -> ")[0].strip() not in drawn]
        check("no edge from a node left out", not dangling, str(dangling[:3]))
    expect("run refuses --dot-all", ["run", LENET, "--dot-all"], 2, "run does not take --dot-all")


def main():
    return common.finish("I/O", all_cases)


def all_cases(tmp):
    io_default_cases(tmp)
    stdio_cases(tmp)
    raw_cases(tmp)
    json_cases(tmp)
    dot_cases(tmp)


if __name__ == "__main__":
    sys.exit(main())
