#!/usr/bin/env python3
"""Conventions amprt shares with trtexec and polygraphy: bench's percentiles, --iterations and
--duration; --shapes for run and bench; .npy inputs (hostile ones too) and --seed; --quiet. Usage: test_cli_conventions.py PATH/TO/amprt"""
import json
import os
import re
import struct
import subprocess
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cli_bad as common  # noqa: E402  (run, check; reads sys.argv[1] too)
from test_cli_options import expect  # noqa: E402

LENET = common.LENET
run, check = common.run, common.check


def bench_json(name, args):
    """bench --json with args; the parsed object, or None after a failure is recorded."""
    rc, out, err = run(["bench", LENET, "--threads", "1", "--json"] + args)
    common.sanitized(name, err)
    try:
        r = json.loads(out) if rc == 0 else None
    except ValueError:
        r = None
    check(name, r is not None, f"exit {rc}, stdout {out[:300]!r}, stderr {err[-800:]}")
    return r


def ordered(r):
    return r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]


def bench_cases():
    r = bench_json("bench --iterations", ["--iterations", "7", "--warmup", "0"])
    if r:
        check("--iterations sets the runs", r["runs"] == 7, str(r))
        check("percentiles in order", ordered(r), str(r))
        check("p50 is the median", r["p50_ms"] == r["median_ms"], str(r))
    r = bench_json("bench --runs", ["--runs", "4", "--warmup", "0"])
    if r:
        check("--runs still sets the runs", r["runs"] == 4 and r["p50_ms"] == r["median_ms"], str(r))
    r = bench_json("bench --duration", ["--iterations", "2", "--warmup", "0", "--duration", "0.3"])
    if r:
        check("--duration fills the time", r["timed_s"] >= 0.3 and r["runs"] > 2, str(r))
        check("--duration percentiles in order", ordered(r), str(r))
    # --duration shorter than the runs asked: the runs win
    r = bench_json("bench --duration short", ["--iterations", "5", "--warmup", "0", "--duration", "0.000001"])
    if r:
        check("at least --iterations runs under --duration", r["runs"] >= 5, str(r))
    rc, out, err = run(["bench", LENET, "--threads", "1", "--iterations", "3", "--warmup", "0"])
    check("bench text names the percentiles", rc == 0 and "p50 " in out and "p90 " in out and "p99 " in out
          and "median " in out and "3 runs" in out, out + err[-500:])
    r = bench_json("bench --train percentiles", ["--train", "--batch", "2", "--iterations", "3", "--warmup", "0"])
    if r:
        check("bench --train --iterations", r["runs"] == 3 and ordered(r) and r["p50_ms"] == r["median_ms"], str(r))
    r = bench_json("bench --train --duration", ["--train", "--batch", "2", "--iterations", "1", "--warmup", "0",
                                                "--duration", "0.2"])
    if r:
        check("bench --train --duration fills the time", r["timed_s"] >= 0.2 and r["runs"] > 1, str(r))
    rc, out, err = run(["bench", LENET, "--train", "--batch", "2", "--iterations", "2", "--warmup", "0",
                        "--threads", "1"])
    check("bench --train text names the percentiles", rc == 0 and "p99 " in out and "2 steps" in out, out + err[-500:])
    for bad in ("0", "-1", "nan", "inf", "1e9", "x", ""):
        expect(f"--duration {bad!r} refused", ["bench", LENET, "--duration", bad], 2, "--duration expects seconds")
    expect("--iterations 0 refused", ["bench", LENET, "--iterations", "0"], 2, "--iterations expects an integer")
    expect("--duration needs a value", ["bench", LENET, "--duration"], 2, "needs a value")
    for cmd, pos in (("run", [LENET]), ("inspect", [LENET])):
        expect(f"{cmd} refuses --duration", [cmd] + pos + ["--duration", "1"], 2, f"{cmd} does not take --duration")
        expect(f"{cmd} refuses --iterations", [cmd] + pos + ["--iterations", "1"], 2,
               f"{cmd} does not take --iterations")


def shape_of(out, name):
    """The shape run prints for output name, as a list, or None."""
    for line in out.splitlines():
        if line.startswith(f"output {name} "):
            return [int(d) for d in line.split("[", 1)[1].split("]", 1)[0].split(",") if d]
    return None


def shapes_cases(tmp):
    add = common.save(common.model_of(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])]), f"{tmp}/add.onnx")
    free = common.save(common.model_of(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]), f"{tmp}/free.onnx")

    out, _ = expect("run --shapes", ["run", LENET, "--shapes", "input:3x1x28x28"], 0)
    check("run --shapes sets the batch", shape_of(out, "logits") == [3, 10], out)
    out, _ = expect("run --shapes binds the symbol for every input", ["run", add, "--shapes", "a:4x3"], 0)
    check("--shapes a:4x3 makes b 4x3 too", shape_of(out, "y") == [4, 3], out)
    out, _ = expect("run --shapes two inputs", ["run", add, "--shapes", "a:2x3,b:2x3"], 0)
    check("--shapes a:2x3,b:2x3", shape_of(out, "y") == [2, 3], out)
    out, _ = expect("run --shapes repeated", ["run", add, "--shapes", "a:5x3", "--shapes", "b:5x3"], 0)
    check("--shapes given twice accumulates", shape_of(out, "y") == [5, 3], out)
    out, _ = expect("run --shapes beats --batch", ["run", LENET, "--batch", "7", "--shapes", "input:2x1x28x28"], 0)
    check("--shapes over --batch", shape_of(out, "logits") == [2, 10], out)
    out, _ = expect("run --shapes on an undeclared shape", ["run", free, "--shapes", "x:2x5"], 0)
    check("an input without a declared shape takes --shapes", shape_of(out, "y") == [2, 5], out)
    expect("an undeclared shape without --shapes", ["run", free], 1, "has no declared shape", "--shapes")
    out, _ = expect("run --shapes with a zero dim", ["run", add, "--shapes", "a:0x3"], 0)
    check("--shapes a:0x3", shape_of(out, "y") == [0, 3], out)

    bad = {
        "unknown input": ("bogus:1x1x28x28", "'bogus': the model has no input of that name (its inputs: 'input')"),
        "rank": ("input:1x1x28", "gives 3 dims, but the model's input has 4"),
        "fixed dim": ("input:1x1x28x27", "dim 3 is 28 in the model, not 27"),
        "no colon": ("input", "--shapes expects NAME:D0xD1x..."),
        "no name": (":1x1x28x28", "--shapes expects NAME:D0xD1x..."),
        "no dims": ("input:", "--shapes expects NAME:D0xD1x..."),
        "empty": ("", "--shapes expects NAME:D0xD1x..."),
        "trailing comma": ("input:1x1x28x28,", "--shapes expects NAME:D0xD1x..."),
        "empty dim": ("input:1xx28x28", "with dims from 0 to"),
        "trailing x": ("input:1x1x28x28x", "with dims from 0 to"),
        "negative": ("input:-1x1x28x28", "with dims from 0 to"),
        "letters": ("input:Nx1x28x28", "with dims from 0 to"),
        "comma dims": ("input:[1,1,28,28]", "--shapes"),
        "huge dim": ("input:99999999999999999999x1x28x28", "with dims from 0 to"),
        "rank 9": ("input:" + "x".join(["1"] * 9), "more than 8 dims"),
        "twice": ("input:1x1x28x28,input:2x1x28x28", "gives input 'input' twice"),
    }
    for what, (spec, frag) in bad.items():
        expect(f"run --shapes {what}", ["run", LENET, "--shapes", spec], 2, frag)
        expect(f"bench --shapes {what}", ["bench", LENET, "--iterations", "1", "--warmup", "0", "--shapes", spec], 2,
               frag)
    expect("bench --train --shapes rank", ["bench", LENET, "--train", "--shapes", "input:1x28x28"], 2,
           "gives 3 dims")
    expect("--shapes conflicting for one symbol", ["run", add, "--shapes", "a:2x3,b:4x3"], 2,
           "dim 'N' is 2 in 'a' but 4 in 'b'")
    expect("--shapes against --dim", ["run", add, "--shapes", "a:2x3", "--dim", "N=5"], 2, "but --dim N=5")
    expect("--shapes needs a value", ["run", LENET, "--shapes"], 2, "needs a value")
    xpb = f"{tmp}/x.pb"
    open(xpb, "wb").write(numpy_helper.from_array(np.zeros((2, 1, 28, 28), np.float32), "input").SerializeToString())
    expect("--shapes against an --input file", ["run", LENET, "--input", f"input={xpb}", "--shapes",
                                                "input:3x1x28x28"], 2, "differs from the shape of its --input file")
    out, _ = expect("--shapes agreeing with an --input file", ["run", LENET, "--input", f"input={xpb}", "--shapes",
                                                               "input:2x1x28x28"], 0)
    check("--shapes with its --input file", shape_of(out, "logits") == [2, 10], out)
    # a declared size past the memory limit is refused by the plan, before it is allocated
    expect("--shapes too large to plan", ["run", LENET, "--shapes", "input:1000000000x1x28x28"], 1, "cannot plan")
    for cmd in ("inspect", "check", "convert"):
        pos = [LENET, f"{tmp}/c.onnx"] if cmd == "convert" else [LENET] if cmd == "inspect" else [tmp]
        expect(f"{cmd} refuses --shapes", [cmd] + pos + ["--shapes", "input:1x1x28x28"], 2,
               f"{cmd} does not take --shapes")

    r = bench_json("bench --shapes", ["--iterations", "2", "--warmup", "0", "--shapes", "input:3x1x28x28"])
    if r:
        check("bench --shapes sets the batch", r["batch"] == 3, str(r))
    r = bench_json("bench --train --shapes", ["--train", "--iterations", "1", "--warmup", "0", "--shapes",
                                              "input:2x1x28x28"])
    if r:
        check("bench --train --shapes sets the batch", r["batch"] == 2, str(r))


def npy_bytes(header, data=b"", version=(1, 0), magic=b"\x93NUMPY"):
    """A .npy file with the given header text (padded as numpy pads it) and data."""
    h = header.encode("latin1")
    pre = len(magic) + 2 + (2 if version[0] == 1 else 4)
    h += b" " * ((-(pre + len(h) + 1)) % 64) + b"\n"
    size = struct.pack("<H", len(h)) if version[0] == 1 else struct.pack("<I", len(h))
    return magic + bytes(version) + size + h + data


def identity(tmp, name, elem, shape):
    return common.save(common.model_of(
        [helper.make_node("Identity", ["x"], ["y"])], [helper.make_tensor_value_info("x", elem, shape)],
        [helper.make_tensor_value_info("y", elem, shape)]), f"{tmp}/{name}.onnx")


def printed_values(out):
    """The values run prints for its first output."""
    line = next((l for l in out.splitlines() if l.startswith("output ")), "")
    return [float(v) for v in line.split(":", 1)[-1].split() if v != "..."]


def npy_cases(tmp):
    kinds = [(np.float32, TensorProto.FLOAT), (np.float16, TensorProto.FLOAT16), (np.int64, TensorProto.INT64),
             (np.int32, TensorProto.INT32), (np.uint8, TensorProto.UINT8), (np.bool_, TensorProto.BOOL)]
    for dt, elem in kinds:
        name = np.dtype(dt).name
        m = identity(tmp, name, elem, [2, 3])
        a = (np.arange(6).reshape(2, 3) % (2 if dt is np.bool_ else 7)).astype(dt)
        for version in ((1, 0), (2, 0)):
            path = f"{tmp}/{name}_{version[0]}.npy"
            with open(path, "wb") as f:
                np.lib.format.write_array(f, a, version=version)
            out, _ = expect(f".npy {name} v{version[0]}", ["run", m, "--input", f"x={path}"], 0)
            check(f".npy {name} v{version[0]} values", shape_of(out, "y") == [2, 3] and
                  printed_values(out) == [float(v) for v in a.ravel()], out)
    # the same array from .npy and .pb gives the same outputs; the extension in any case
    x = np.random.default_rng(3).standard_normal((2, 1, 28, 28)).astype(np.float32)
    np.save(f"{tmp}/x.npy", x)
    np.save(f"{tmp}/X.NPY.npy", x)
    os.rename(f"{tmp}/X.NPY.npy", f"{tmp}/X.NPY")
    open(f"{tmp}/x.pb", "wb").write(numpy_helper.from_array(x, "input").SerializeToString())
    outs = {}
    for f in ("x.npy", "X.NPY", "x.pb"):
        out, _ = expect(f"run --input {f}", ["run", LENET, "--input", f"input={tmp}/{f}"], 0)
        outs[f] = [l for l in out.splitlines() if not l.startswith("time:")]
    check(".npy and .pb give the same outputs", outs["x.npy"] == outs["x.pb"] == outs["X.NPY"] and outs["x.pb"],
          str(outs))
    r = bench_json("bench --input .npy", ["--iterations", "1", "--warmup", "0", "--input", f"input={tmp}/x.npy"])
    if r:
        check("bench --input .npy sets the batch", r["batch"] == 2, str(r))
    scalar = common.save(common.model_of([helper.make_node("Identity", ["x"], ["y"])],
                                         [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
                                         [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])]),
                         f"{tmp}/scalar.onnx")
    np.save(f"{tmp}/s.npy", np.float32(2.5))
    out, _ = expect(".npy scalar", ["run", scalar, "--input", f"x={tmp}/s.npy"], 0)
    check(".npy scalar value", printed_values(out) == [2.5], out)

    f4 = np.arange(6, dtype="<f4").tobytes()
    hostile = {
        "empty file": (b"", "is not a NumPy .npy file"),
        "bad magic": (b"\x93NUMPZ\x01\x00" + b"\x00" * 40, "no \\x93NUMPY magic"),
        "a .pb named .npy": (numpy_helper.from_array(x, "input").SerializeToString(), "no \\x93NUMPY magic"),
        "magic only": (b"\x93NUMPY", "is not a NumPy .npy file"),
        "version 3.0": (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f4, (3, 0)),
                        "format version 3.0 is not supported"),
        "version 1.1": (b"\x93NUMPY\x01\x01" + b"\x00" * 10, "format version 1.1 is not supported"),
        "cut in the v2 length": (b"\x93NUMPY\x02\x00\x10\x00\x00", "ends inside its header length"),
        "header length past the end": (b"\x93NUMPY\x01\x00\xff\xff{'descr'", "the file ends before"),
        "v2 header of 4 GiB": (b"\x93NUMPY\x02\x00\xff\xff\xff\xff{", "at most 65536 are read"),
        "truncated data": (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f4[:-1]),
                           "needs 24 bytes of data, the file holds 23"),
        "no data": (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"),
                    "needs 24 bytes of data, the file holds 0"),
        "trailing data": (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f4 + b"\0"),
                          "needs 24 bytes of data, the file holds 25"),
        "huge shape": (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }",
                                 f4), "needs more than 9223372036854775807 bytes of data, the file holds 24"),
        "huge dims beside a 0": (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (9007199254740992, "
                                           "9007199254740992, 0), }", f4), "needs 0 bytes of data, the file holds 24"),
        "dim past 2^53": (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", f4),
                          "shape is not a tuple"),
        "negative dim": (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }", f4),
                         "shape is not a tuple"),
        "rank 9": (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,6), }", f4),
                   "shape is not a tuple"),
        "fortran order": (npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f4),
                          "Fortran-order .npy arrays are not supported"),
        "big-endian": (npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", f4),
                       "dtype '>f4' is not supported (big-endian"),
        "float64": (npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", f4),
                    "dtype '<f8' is not supported"),
        "structured": (npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", f4),
                       "structured dtypes"),
        "unknown key": (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", f4),
                        "a key other than"),
        "key twice": (npy_bytes("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", f4),
                      "or one twice"),
        "missing shape": (npy_bytes("{'descr': '<f4', 'fortran_order': False}", f4), "lacks descr, fortran_order"),
        "not a dict": (npy_bytes("['<f4', False, (6,)]", f4), "the header is not a dict"),
        "unclosed dict": (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (6,)", f4), "not closed"),
        "text after the dict": (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (6,)} x", f4),
                                "more than its dict"),
        "fortran_order 1": (npy_bytes("{'descr': '<f4', 'fortran_order': 1, 'shape': (6,)}", f4), "neither True"),
        "NUL in the header": (npy_bytes("{'descr': '<f4',\0 'fortran_order': False, 'shape': (6,)}", f4),
                              "malformed .npy header"),
        "unterminated string": (npy_bytes("{'descr: '<f4', 'fortran_order': False, 'shape': (6,)}", f4),
                                "malformed .npy header"),
    }
    m = identity(tmp, "f6", TensorProto.FLOAT, [6])
    for what, (data, frag) in hostile.items():
        path = f"{tmp}/hostile.npy"
        open(path, "wb").write(data)
        expect(f".npy {what}", ["run", m, "--input", f"x={path}"], 1, frag)
    os.mkdir(f"{tmp}/folder.npy")
    expect(".npy a folder", ["run", m, "--input", f"x={tmp}/folder.npy"], 1, "is a folder")
    expect(".npy missing", ["run", m, "--input", f"x={tmp}/missing.npy"], 1, "cannot read")
    os.mkfifo(f"{tmp}/fifo.npy")
    try:
        expect(".npy a FIFO", ["run", m, "--input", f"x={tmp}/fifo.npy"], 1, "is a FIFO")
    except subprocess.TimeoutExpired:
        check(".npy a FIFO", False, "waited on the FIFO")
    # a valid header whose data is the wrong dtype for the model is the run's error, not a crash
    np.save(f"{tmp}/i6.npy", np.arange(6, dtype=np.int64))
    rc, _, err = run(["run", m, "--input", f"x={tmp}/i6.npy"])
    common.sanitized(".npy of another dtype", err)
    check(".npy of another dtype fails cleanly", rc == 1 and "amprt:" in err, f"exit {rc}: {err[-500:]}")


def seed_cases():
    def outputs(args):
        rc, out, err = run(["run", LENET] + args)
        check(f"run {args}", rc == 0, err[-500:])
        return [l for l in out.splitlines() if not l.startswith("time:")]
    default, s42, s7, s7b = outputs([]), outputs(["--seed", "42"]), outputs(["--seed", "7"]), outputs(["--seed", "7"])
    check("--seed 42 is the default", default == s42 and default, str(default))
    check("--seed 7 gives other inputs", s7 != default, str(s7))
    check("--seed 7 twice gives the same", s7 == s7b, str(s7b))
    outputs(["--seed", "18446744073709551615"])
    r = bench_json("bench --seed", ["--iterations", "1", "--warmup", "0", "--seed", "3"])
    check("bench takes --seed", r is not None, "")
    for bad in ("-1", "+1", " 1", "1.5", "x", "", "18446744073709551616"):
        expect(f"--seed {bad!r} refused", ["run", LENET, "--seed", bad], 2, "--seed expects an integer")
    expect("inspect refuses --seed", ["inspect", LENET, "--seed", "1"], 2, "inspect does not take --seed")


def quiet_cases(tmp):
    from test_cli_options import relu_case
    data = common.data_dir(f"{tmp}/qdata", (28, 28), (28, 28))
    case = relu_case(f"{tmp}/qrelu")
    tr = ["train", LENET, "--data", data, "--epochs", "1", "--batch", "8", "--threads", "1", "--progress", "plain",
          "--max-steps", "3"]
    commands = {
        "run": ["run", LENET, "--threads", "1"],
        "bench": ["bench", LENET, "--threads", "1", "--iterations", "1", "--warmup", "0"],
        "bench --train": ["bench", LENET, "--train", "--threads", "1", "--iterations", "1", "--warmup", "0"],
        "check --verbose": ["check", case, "--verbose", "--threads", "1"],
        "convert --calibrate": ["convert", LENET, f"{tmp}/q.onnx", "--calibrate", os.path.join(common.SRC, "models", "lenet")],
        "evaluate": ["evaluate", LENET, "--data", data, "--threads", "1"],
        "train": tr + ["--out", f"{tmp}/qt.onnx"],
    }
    chatter = ("amprt: backend", "calibrating:", " step ", "wrote ", "stopped after")
    for name, args in commands.items():
        rc, out, err = run(args)
        rcq, outq, errq = run(args + ["--quiet"])
        rcq2, _, errq2 = run(args + ["-q"])
        common.sanitized(name + " --quiet", errq)
        told = [c for c in chatter if c in err]
        left = [c for c in chatter if c in errq]
        check(f"{name} says something without --quiet", rc == 0 and told, f"exit {rc}, stderr {err[-800:]}")
        check(f"{name} --quiet leaves it out", rcq == 0 and not left, f"exit {rcq}, kept {left}: {errq[-800:]}")
        check(f"{name} -q is --quiet", rcq2 == 0 and not [c for c in chatter if c in errq2], errq2[-800:])
        steady = lambda text: re.sub(r"[0-9][0-9.e+-]*", "#", text)  # noqa: E731  (times differ run to run)
        check(f"{name} --quiet keeps stdout", steady(out) == steady(outq), f"{out[-500:]}\n---\n{outq[-500:]}")
    # train keeps its epoch summary; warnings and errors stay
    expect("train --quiet keeps the epoch line", tr + ["--quiet"], 0, "epoch 1/1 done")
    log = common.save(common.model_of([helper.make_node("Log", ["x"], ["y"])],
                                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
                                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])]), f"{tmp}/log.onnx")
    expect("run --quiet keeps a warning", ["run", log, "--quiet"], 0, "amprt: warning: output y has")
    expect("run --quiet keeps an error", ["run", f"{tmp}/missing.onnx", "--quiet"], 1, "cannot load the model")
    for cmd, pos in (("inspect", [LENET]), ("ops", []), ("plot", [f"{tmp}/p.svg", f"{tmp}/none.jsonl"])):
        expect(f"{cmd} refuses --quiet", [cmd] + pos + ["--quiet"], 2, f"{cmd} does not take --quiet")


def main():
    return common.finish("convention", cases)


def cases(tmp):
    bench_cases()
    shapes_cases(tmp)
    npy_cases(tmp)
    seed_cases()
    quiet_cases(tmp)


if __name__ == "__main__":
    sys.exit(main())
