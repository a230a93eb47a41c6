#!/usr/bin/env python3
"""Hostile command lines for the amprt tool: each case checks the exit status and a fragment of
the message, and that nothing hangs (a FIFO) or is left behind (a diverged model, a stale
temporary). Usage: test_cli_bad.py PATH/TO/amprt (CTest passes the build's binary, so the
ASan build runs the same cases against its own amprt)."""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

AMPRT = os.path.abspath(sys.argv[1])
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LENET = os.path.join(SRC, "models", "lenet", "model.onnx")
FMNIST = "/usr/share/datasets/fashion-mnist"
failures = []
ran = 0


def run(args, timeout=120):
    p = subprocess.run([AMPRT] + args, capture_output=True, text=True, errors="replace", timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def case(name, args, status, fragment, where="stderr", timeout=120):
    """Run amprt with args; the exit status must be status and fragment must be in stderr (or stdout)."""
    global ran
    ran += 1
    try:
        rc, out, err = run(args, timeout)
    except subprocess.TimeoutExpired:
        failures.append(f"{name}: no answer within {timeout} s")
        return "", ""
    text = err if where == "stderr" else out
    if rc != status or fragment not in text:
        failures.append(f"{name}: exit {rc} (want {status}), {where} lacks {fragment!r}:\n{err[-1500:]}")
    if rc < 0 or rc >= 128:
        failures.append(f"{name}: killed by signal")
    sanitized(name, err)
    return out, err


def sanitized(name, err):
    """Under the ASan/UBSan build a report fails the case whatever the exit status."""
    for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        if mark in err:
            failures.append(f"{name}: {mark}\n{err[-3000:]}")


def check(name, ok, why):
    global ran
    ran += 1
    if not ok:
        failures.append(f"{name}: {why}")


def save(model, path):
    onnx.save(model, path)
    return path


def model_of(nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def image_input(name="x"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 1, 28, 28])


def const_output(shape):
    """A model with an image input whose output is a constant of the given shape."""
    c = numpy_helper.from_array(np.zeros(shape, np.float32), "c")
    return model_of([helper.make_node("Identity", ["c"], ["y"])], [image_input()],
                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))], [c])


def idx(path, arr, images):
    """Write an IDX file (gzip): ubyte images [n,h,w] or labels [n]."""
    head = struct.pack(">HBB", 0, 8, 3 if images else 1) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + arr.astype(np.uint8).tobytes())


def data_dir(root, train_hw, test_hw, n=32):
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, (h, w) in (("train", train_hw), ("t10k", test_hw)):
        idx(f"{root}/{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, h, w)), True)
        idx(f"{root}/{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)), False)
    return root


def finish(name, cases):
    """The main of a command-line test file: cases(tmp) in a fresh temporary folder, then each
    failure and the count of checks ("N of M <name> checks passed"); the exit status."""
    with tempfile.TemporaryDirectory(prefix="amprt_cli_" + "".join(c for c in name if c.isalnum()) + "_") as tmp:
        cases(tmp)
    print("".join(f"FAIL {f}\n" for f in failures), end="")
    print(f"{ran - len(failures)} of {ran} {name} checks passed")
    return 1 if failures else 0


def main():
    tmp = tempfile.mkdtemp(prefix="amprt_cli_bad_")
    try:
        cases(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print("FAIL", f)
    print(f"{ran - len(failures)} of {ran} command-line checks passed")
    return 1 if failures else 0


def cases(tmp):
    # the version: both spellings, the library's version and its build, and --help names them
    out, _ = case("--version", ["--version"], 0, "amprt 0.", where="stdout")
    check("--version gives the build", "compiler: " in out and "CUDA: " in out, out)
    case("-V", ["-V"], 0, "BLAS: ", where="stdout")
    case("--help names --version", ["--help"], 0, "--version", where="stdout")

    # run warns about NaN and infinite outputs, even past the values it prints
    vals = np.ones((2, 10), np.float32)
    vals[1, 9] = -1.0
    vals[0, 3] = 0.0
    c = numpy_helper.from_array(vals, "c")
    nonfinite = save(model_of([helper.make_node("Log", ["c"], ["y"])], [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 10])], [c]),
                     f"{tmp}/nonfinite.onnx")
    case("run warns on non-finite outputs", ["run", nonfinite], 0, "output y has 1 NaN and 1 infinite values of 20")
    # --fusion: values checked; a fused graph whose shapes do not fit plans unfused, with the
    # same answer (a 1-D MatMul input: FusedGemm wants rows)
    case("--fusion value", ["run", LENET, "--fusion", "maybe"], 2, "--fusion expects auto, on or off")
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 7, "w")
    b = numpy_helper.from_array(np.array([0.5, -1.0, 2.0], np.float32), "b")
    vec = save(model_of([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["z"]),
                         helper.make_node("Relu", ["z"], ["y"])],
                        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])], [w, b]), f"{tmp}/vec.onnx")
    xin = f"{tmp}/vec_x.pb"
    with open(xin, "wb") as f:
        f.write(numpy_helper.from_array(np.array([1.0, -2.0, 0.25, 3.0], np.float32), "x").SerializeToString())
    outs = {}
    for mode in ("off", "on"):
        out, _ = case(f"--fusion {mode} on a 1-D MatMul", ["run", vec, "--input", f"x={xin}", "--fusion", mode,
                                                          "--backend", "cpu"], 0, "output y", where="stdout")
        outs[mode] = [l for l in out.splitlines() if l.startswith("output y")]
    check("a fused graph that does not plan runs unfused", outs["on"] == outs["off"] and outs["on"], str(outs))
    case("convert shows calibration progress",
         ["convert", LENET, f"{tmp}/calibrated.onnx", "--calibrate", os.path.join(SRC, "models", "lenet")], 0,
         "calibrating: 1 of 1 runs")
    _, err = case("run is quiet on finite outputs", ["run", LENET], 0, "")
    check("no warning on finite outputs", "warning" not in err, err[-500:])
    small = data_dir(f"{tmp}/small", (28, 28), (28, 28))
    t = lambda *a: ["train", LENET, "--data", small, "--threads", "1", "--progress", "plain", *a]

    # numbers: strict parsing and ranges
    for opt, val, frag in (("--epochs", "3e9", "--epochs expects an integer"), ("--epochs", "0.5", "--epochs expects an integer"),
                           ("--epochs", "0", "--epochs expects an integer"), ("--lr", "1e300", "--lr expects a number"),
                           ("--lr", "nan", "--lr expects a number"), ("--lr", "-1", "--lr expects a number"),
                           ("--batch", "-3", "--batch expects an integer"), ("--seed", "1.5", "--seed expects an integer"),
                           ("--max-steps", "", "--max-steps expects an integer")):
        case(f"train {opt} {val}", t(opt, val), 2, frag)
    case("train --lr without a value", t("--lr"), 2, "--lr needs a value")
    case("run --threads 40000", ["run", LENET, "--threads", "40000"], 2, "--threads expects an integer from 1 to")
    case("run --rtol inf", ["check", small, "--rtol", "inf"], 2, "--rtol expects a finite number")
    # more than 130 arguments reach the parser (the last one is wrong)
    case("train with 150 arguments", t(*(["--freeze", "nothing*"] * 75), "--epochs", "0.5"), 2, "--epochs expects an integer")
    case("train without --data", ["train", LENET], 2, "train needs --data")
    case("train --progress bogus", t("--progress", "bogus"), 2, "--progress expects auto, tty or plain")

    # paths checked before any work
    case("train --out in a missing folder", t("--out", f"{tmp}/no/such/m.onnx"), 1, "cannot be written")
    case("train --checkpoint a folder", t("--checkpoint", tmp), 1, "is a folder")
    case("train --json-log in a missing folder", t("--json-log", f"{tmp}/no/log.jsonl"), 1, "cannot be written")
    case("convert to a missing folder", ["convert", LENET, f"{tmp}/no/m.onnx"], 1, "cannot be written")

    # a stale temporary of a killed run goes; one of a live process stays
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, live = f"{tmp}/conv.onnx.tmp.{dead.pid}", f"{tmp}/conv.onnx.tmp.{os.getpid()}"
    for p in (stale, live):
        open(p, "w").write("partial")
    case("convert cleans a stale temporary", ["convert", LENET, f"{tmp}/conv.onnx", "--dtype", "fp32"], 0, "left by a run")
    check("stale temporary removed", not os.path.exists(stale), f"{stale} is still there")
    check("live temporary kept", os.path.exists(live), f"{live} was removed")

    # FIFOs are refused at once instead of blocking
    fifo = f"{tmp}/fifo"
    os.mkfifo(fifo)
    case("run a FIFO model", ["run", fifo], 1, "is a FIFO", timeout=20)
    case("inspect a FIFO model", ["inspect", fifo], 1, "is a FIFO", timeout=20)
    case("run a FIFO input", ["run", LENET, "--input", f"input={fifo}"], 1, "is a FIFO", timeout=20)
    fdata = f"{tmp}/fifodata"
    shutil.copytree(small, fdata)
    os.remove(f"{fdata}/t10k-images-idx3-ubyte.gz")
    os.mkfifo(f"{fdata}/t10k-images-idx3-ubyte.gz")
    case("evaluate FIFO data", ["evaluate", LENET, "--data", fdata], 1, "is a FIFO", timeout=20)
    case("train --resume a FIFO", t("--resume", fifo), 1, "is a FIFO", timeout=20)

    # --input names
    x = numpy_helper.from_array(np.zeros((1, 1, 28, 28), np.float32), "input")
    xpb = f"{tmp}/x.pb"
    open(xpb, "wb").write(x.SerializeToString())
    case("--input twice", ["run", LENET, "--input", f"input={xpb}", "--input", f"input={xpb}"], 2, "given twice")
    case("--input of another name", ["run", LENET, "--input", f"bogus={xpb}"], 1, "--input 'bogus': the model has no input")

    # a declared size over --max-memory is refused when planning, before random inputs exist
    big = os.path.join(SRC, "tests", "bad", "declared_big_input.onnx")
    case("run over --max-memory", ["run", big, "--max-memory", "64M"], 1, "over the memory limit of 67108864")
    case("--max-memory 12x", ["run", LENET, "--max-memory", "12x"], 2, "--max-memory expects bytes")
    case("run under --max-memory", ["run", LENET, "--max-memory", "64M"], 0, "argmax per row", where="stdout")

    # more than 64 inputs and outputs (the CLI's and the session's arrays follow the model)
    n = 70
    ins = [helper.make_tensor_value_info(f"i{k}", TensorProto.FLOAT, [2]) for k in range(n)]
    total = model_of([helper.make_node("Sum", [f"i{k}" for k in range(n)], ["s"])], ins,
                     [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2])])
    spath = save(total, f"{tmp}/sum70.onnx")
    ipb = f"{tmp}/i69.pb"
    open(ipb, "wb").write(numpy_helper.from_array(np.array([7, 8], np.float32), "i69").SerializeToString())
    case("run 70 inputs", ["run", spath, "--input", f"i69={ipb}"], 0, "output s float32 [2]", where="stdout")
    case("bench 70 inputs", ["bench", spath, "--runs", "2", "--warmup", "0"], 0, "median", where="stdout")
    many = model_of([helper.make_node("Identity", [f"i{k}"], [f"o{k}"]) for k in range(n)], ins,
                    [helper.make_tensor_value_info(f"o{k}", TensorProto.FLOAT, [2]) for k in range(n)])
    case("run 70 outputs", ["run", save(many, f"{tmp}/many.onnx")], 0, "output o69 float32 [2]", where="stdout")

    # check: more than 64 case folders, and a model with no outputs beside output_0.pb
    cases_dir = f"{tmp}/cases"
    ident = model_of([helper.make_node("Identity", ["a"], ["b"])], [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])],
                     [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])])
    for k in range(70):
        d = f"{cases_dir}/case_{k:02d}"
        os.makedirs(f"{d}/test_data_set_0")
        save(ident, f"{d}/model.onnx")
        v = np.array([k, -k], np.float32)
        open(f"{d}/test_data_set_0/input_0.pb", "wb").write(numpy_helper.from_array(v, "a").SerializeToString())
        open(f"{d}/test_data_set_0/output_0.pb", "wb").write(numpy_helper.from_array(v, "b").SerializeToString())
    case("check 70 case folders", ["check", cases_dir], 0, "70 passed, 0 failed", where="stdout")
    args = ["check"] + [f"{cases_dir}/case_{k:02d}" for k in range(70)]
    case("check 70 case arguments", args, 0, "70 passed, 0 failed", where="stdout")
    nout = f"{tmp}/noout"
    os.makedirs(f"{nout}/test_data_set_0")
    save(model_of([helper.make_node("Identity", ["a"], ["b"])],
                  [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])], []), f"{nout}/model.onnx")
    shutil.copy(f"{cases_dir}/case_01/test_data_set_0/input_0.pb", f"{nout}/test_data_set_0/")
    shutil.copy(f"{cases_dir}/case_01/test_data_set_0/output_0.pb", f"{nout}/test_data_set_0/")
    case("check a model without outputs", ["check", nout], 1, "FAIL noout", where="stdout")

    # inspect --json with a name that is not UTF-8
    m = model_of([helper.make_node("Identity", ["inp\u00e9X"], ["out"])],
                 [helper.make_tensor_value_info("inp\u00e9X", TensorProto.FLOAT, [2])],
                 [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])])
    raw = m.SerializeToString().replace(b"inp\xc3\xa9X", b"inp\xff\xfeX")
    bad = f"{tmp}/badutf8.onnx"
    open(bad, "wb").write(raw)
    rc, out, err = run(["inspect", bad, "--json"])
    sanitized("inspect --json invalid UTF-8", err)
    try:
        doc = json.loads(out)
        check("inspect --json invalid UTF-8", rc == 0 and doc["inputs"][0]["name"] == "inp\ufffd\ufffdX", f"exit {rc}: {out[:300]}")
    except ValueError as e:
        check("inspect --json invalid UTF-8", False, f"exit {rc}, not JSON ({e}): {out[:300]} {err[-300:]}")

    # evaluate: the model's interface, checked before any argmax
    noin = model_of([helper.make_node("Constant", [], ["y"], value=numpy_helper.from_array(np.zeros((1, 10), np.float32)))],
                    [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])])
    case("evaluate a model without inputs", ["evaluate", save(noin, f"{tmp}/noin.onnx"), "--data", small], 1, "has 0 inputs")
    case("evaluate output [1,200000]", ["evaluate", save(const_output((1, 200000)), f"{tmp}/wide.onnx"), "--data", small],
         1, "output 'y' is float32 [1,200000]")
    case("evaluate output [28,28]", ["evaluate", save(const_output((28, 28)), f"{tmp}/square.onnx"), "--data", small],
         1, "output 'y' is float32 [28,28]")
    w = numpy_helper.from_array(np.zeros((784, 5), np.float32), "w")
    five = model_of([helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])],
                    [image_input()], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], [w])
    case("evaluate labels above the classes", ["evaluate", save(five, f"{tmp}/five.onnx"), "--data", small], 1, "label")
    case("evaluate a rank-3 output", ["evaluate", save(const_output((1, 2, 3)), f"{tmp}/r3.onnx"), "--data", small],
         1, "a classifier gives scores [batch, classes]")

    # data of another image size
    odd = data_dir(f"{tmp}/odd", (28, 28), (16, 16))
    case("train with 16x16 test images", ["train", LENET, "--data", odd, "--threads", "1"], 1, "test images are 16x16")
    case("evaluate 16x16 images", ["evaluate", LENET, "--data", odd], 1, "test images are 16x16, but the model's input")

    # training that never lies: divergence stops the run and writes nothing
    nan_out = f"{tmp}/nan.onnx"
    case("train --lr 1e5 diverges", t("--lr", "1e5", "--amp", "off", "--batch", "8", "--out", nan_out,
                                      "--checkpoint", f"{tmp}/nan.ckpt"), 1, "training diverged")
    check("diverged run wrote no model", not os.path.exists(nan_out), f"{nan_out} was written")
    check("diverged run wrote no checkpoint", not os.path.exists(f"{tmp}/nan.ckpt"), "a checkpoint was written")

    # --max-steps + --checkpoint, then --resume: exactly the missing steps, bit for bit
    if os.path.exists(f"{FMNIST}/train-images-idx3-ubyte.gz"):
        base = ["train", LENET, "--data", FMNIST, "--epochs", "2", "--batch", "16", "--limit-train", "256", "--limit-test",
                "32", "--threads", "1", "--progress", "plain", "--amp", "off"]
        case("train uninterrupted", base + ["--out", f"{tmp}/full.onnx", "--json-log", f"{tmp}/full.jsonl"], 0, "wrote")
        ck, log = f"{tmp}/ck", f"{tmp}/resumed.jsonl"
        case("train 3 steps", base + ["--max-steps", "3", "--checkpoint", ck, "--json-log", log], 0,
             "stopped after 3 steps at epoch 1, batch 3 of 16")
        case("resume with another --batch", base[:7] + ["8"] + base[8:] + ["--resume", ck], 1, "resume with --batch 16")
        case("resume", base + ["--resume", ck, "--out", f"{tmp}/resumed.onnx", "--json-log", log], 0,
             "resumed from " + ck + " at epoch 1, batch 3")
        steps = lambda p: [json.loads(line)["steps"] for line in open(p)]
        check("resumed run trains exactly the missing steps", steps(log) == [16, 32] == steps(f"{tmp}/full.jsonl"),
              f"steps per epoch {steps(log)}, uninterrupted {steps(f'{tmp}/full.jsonl')}")
        same = open(f"{tmp}/full.onnx", "rb").read() == open(f"{tmp}/resumed.onnx", "rb").read()
        check("max-steps + resume equals an uninterrupted run", same, "the models differ")
    else:
        print(f"SKIP resume cases: {FMNIST} not installed")


if __name__ == "__main__":
    sys.exit(main())
