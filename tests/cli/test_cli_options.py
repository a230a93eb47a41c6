#!/usr/bin/env python3
"""The options each amprt command takes: every command refuses an option it does not read
(exit 2, a message naming the command and the option and pointing at its --help), --precision
gives what the older spelling (--autocast, --dtype, --amp) gives, enum values are checked when
parsed, and every command that takes --threads states its default in --help. Usage:
test_cli_options.py PATH/TO/amprt"""
import json
import os
import subprocess
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper, save

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cli_bad as common  # noqa: E402  (run, check and the IDX data set; reads sys.argv[1] too)

LENET = common.LENET
run, check = common.run, common.check


def expect(name, args, status, *fragments):
    """amprt args exits with status and its stderr holds every fragment; returns (stdout, stderr)."""
    try:
        rc, out, err = run(args)
    except subprocess.TimeoutExpired:
        check(name, False, "no answer in time")
        return "", ""
    missing = [f for f in fragments if f not in err]
    check(name, rc == status and not missing, f"exit {rc} (want {status}), stderr lacks {missing}:\n{err[-1500:]}")
    return out, err


def relu_case(root):
    """One backend-test case: Relu on [2,3]."""
    os.makedirs(f"{root}/test_data_set_0")
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), f"{root}/model.onnx")
    x = np.array([[-1.5, 0.25, 2.0], [3.0, -0.5, 1.0]], np.float32)
    open(f"{root}/test_data_set_0/input_0.pb", "wb").write(numpy_helper.from_array(x, "x").SerializeToString())
    open(f"{root}/test_data_set_0/output_0.pb", "wb").write(
        numpy_helper.from_array(np.maximum(x, 0), "y").SerializeToString())
    return root


def without_times(text):
    return [l for l in text.splitlines() if not l.startswith("time:")]


def cases(tmp):
    data = common.data_dir(f"{tmp}/data", (28, 28), (28, 28))
    case = relu_case(f"{tmp}/relu")
    log = f"{tmp}/log.jsonl"
    open(log, "w").write('{"epoch":1,"train_loss":1.0,"test_accuracy":0.5,"precision":"fp16"}\n')

    # every command refuses an option it does not read, naming both and its --help
    foreign = {
        "inspect": ([LENET], "--fusion", ["on"]),
        "run": ([LENET], "--train", []),
        "check": ([case], "--dim", ["N=1"]),
        "bench": ([LENET], "--output-dir", [tmp]),
        "convert": ([LENET, f"{tmp}/c.onnx"], "--threads", ["2"]),
        "train": ([LENET, "--data", data], "--dim", ["N=1"]),
        "evaluate": ([LENET, "--data", data], "--lr", ["0.1"]),
        "plot": ([f"{tmp}/p.svg", log], "--json", []),
        "ops": ([], "--threads", ["2"]),
    }
    for cmd, (pos, opt, val) in foreign.items():
        expect(f"{cmd} {opt} refused", [cmd] + pos + [opt] + val, 2, f"{cmd} does not take {opt}",
               f"'amprt {cmd} --help'")
    expect("evaluate --dot refused", ["evaluate", LENET, "--data", data, "--dot", f"{tmp}/e.dot"], 2,
           "evaluate does not take --dot")
    expect("bench --calibrate alone refused", ["bench", LENET, "--calibrate", tmp], 2,
           "--calibrate applies only to a conversion")
    expect("convert --precision fp32 --block refused", ["convert", LENET, f"{tmp}/c.onnx", "--precision", "fp32",
                                                        "--block", "Conv"], 2, "--block applies only to a conversion")
    expect("inspect --backend without --train", ["inspect", LENET, "--backend", "cpu"], 2,
           "--backend applies only to the training step")
    expect("an unknown option", ["run", LENET, "--bogus"], 2, "run: unknown option '--bogus'", "'amprt run --help'")
    expect("plot --title without a value", ["plot", f"{tmp}/p.svg", log, "--title"], 2, "--title needs a value")

    # enum values are checked when parsed
    for name, args, frag in (
            ("run --precision fp8", ["run", LENET, "--precision", "fp8"], "--precision expects fp16, bf16 or fp32"),
            ("check --autocast int8", ["check", case, "--autocast", "int8"], "--autocast expects fp16, bf16 or fp32"),
            ("convert --dtype fp64", ["convert", LENET, f"{tmp}/c.onnx", "--dtype", "fp64"], "--dtype expects"),
            ("evaluate --precision fp8", ["evaluate", LENET, "--data", data, "--precision", "fp8"], "--precision expects"),
            ("train --precision fp64", ["train", LENET, "--data", data, "--precision", "fp64"],
             "--precision expects fp16, bf16, fp32 (or off) or fp16-pure"),
            ("train --amp none", ["train", LENET, "--data", data, "--amp", "none"], "--amp expects"),
            ("train --progress none", ["train", LENET, "--data", data, "--progress", "none"],
             "--progress expects auto, tty or plain"),
            ("train --out-dtype fp8", ["train", LENET, "--data", data, "--out-dtype", "fp8"], "--out-dtype expects"),
            ("run --round up", ["run", LENET, "--precision", "fp16", "--round", "up"], "--round expects nearest or zero"),
            ("bench --fusion maybe", ["bench", LENET, "--fusion", "maybe"], "--fusion expects auto, on or off"),
            ("run --backend gpu", ["run", LENET, "--backend", "gpu"], "--backend expects one of")):
        expect(name, args, 2, frag)

    # --precision is what the older spelling was
    a, _ = expect("inspect --autocast fp16", ["inspect", LENET, "--autocast", "fp16"], 0)
    b, _ = expect("inspect --precision fp16", ["inspect", LENET, "--precision", "fp16"], 0)
    check("inspect: --precision fp16 == --autocast fp16", a == b and "16 bits" in a, f"{a}\n----\n{b}")
    a, _ = expect("inspect", ["inspect", LENET, "--json"], 0)
    b, _ = expect("inspect --precision fp32", ["inspect", LENET, "--json", "--precision", "fp32"], 0)
    check("inspect: --precision fp32 is the model as it is", a == b, f"{a}\n----\n{b}")
    a, _ = expect("run --autocast bf16", ["run", LENET, "--autocast", "bf16", "--threads", "1"], 0)
    b, _ = expect("run --precision bf16", ["run", LENET, "--precision", "bf16", "--threads", "1"], 0)
    check("run: --precision bf16 == --autocast bf16", without_times(a) == without_times(b) and a, f"{a}\n----\n{b}")
    a, _ = expect("check --autocast fp16", ["check", case, "--autocast", "fp16"], 0)
    b, _ = expect("check --precision fp16", ["check", case, "--precision", "fp16"], 0)
    check("check: --precision fp16 == --autocast fp16", a == b and "1 passed" in a, f"{a}\n----\n{b}")
    bench = ["bench", LENET, "--runs", "1", "--warmup", "0", "--json"]
    a, _ = expect("bench --autocast fp16", bench + ["--autocast", "fp16"], 0)
    b, _ = expect("bench --precision fp16", bench + ["--precision", "fp16"], 0)
    try:
        ja, jb = json.loads(a), json.loads(b)
        same = ja["memory"] == jb["memory"] and ja["autocast"] == jb["autocast"] == "fp16"
    except (ValueError, KeyError):
        same = False
    check("bench: --precision fp16 == --autocast fp16", same, f"{a}\n----\n{b}")
    expect("convert --dtype bf16", ["convert", LENET, f"{tmp}/old.onnx", "--dtype", "bf16"], 0)
    expect("convert --precision bf16", ["convert", LENET, f"{tmp}/new.onnx", "--precision", "bf16"], 0)
    expect("convert (default)", ["convert", LENET, f"{tmp}/default.onnx"], 0)
    expect("convert --precision fp16", ["convert", LENET, f"{tmp}/fp16.onnx", "--precision", "fp16"], 0)
    read = lambda p: open(p, "rb").read() if os.path.exists(p) else None
    check("convert: --precision bf16 == --dtype bf16", read(f"{tmp}/old.onnx") == read(f"{tmp}/new.onnx") is not None,
          "the files differ")
    check("convert: the default is still fp16", read(f"{tmp}/default.onnx") == read(f"{tmp}/fp16.onnx") is not None,
          "the files differ")
    ev = ["evaluate", LENET, "--data", data, "--threads", "1"]
    a, _ = expect("evaluate --autocast fp16", ev + ["--autocast", "fp16"], 0)
    b, _ = expect("evaluate --precision fp16", ev + ["--precision", "fp16"], 0)
    acc = lambda s: s.split(" (")[0]
    check("evaluate: --precision fp16 == --autocast fp16", acc(a) == acc(b) and "accuracy" in a, f"{a}\n----\n{b}")
    tr = ["train", LENET, "--data", data, "--epochs", "1", "--batch", "8", "--threads", "1", "--progress", "plain"]
    expect("train --amp off", tr + ["--amp", "off", "--out", f"{tmp}/off.onnx"], 0, "wrote")
    expect("train --precision fp32", tr + ["--precision", "fp32", "--out", f"{tmp}/fp32.onnx"], 0, "wrote")
    check("train: --precision fp32 == --amp off", read(f"{tmp}/off.onnx") == read(f"{tmp}/fp32.onnx") is not None,
          "the trained models differ")
    expect("train --amp fp16-pure", tr + ["--amp", "fp16-pure", "--out", f"{tmp}/pure_a.onnx"], 0, "wrote")
    expect("train --precision fp16-pure", tr + ["--precision", "fp16-pure", "--out", f"{tmp}/pure_b.onnx"], 0, "wrote")
    check("train: --precision fp16-pure == --amp fp16-pure",
          read(f"{tmp}/pure_a.onnx") == read(f"{tmp}/pure_b.onnx") is not None, "the trained models differ")

    # one --threads default, stated by every command that takes --threads and by the main help
    for cmd in ("inspect", "run", "check", "bench", "train", "evaluate"):
        rc, out, _ = run([cmd, "--help"])
        check(f"{cmd} --help states the --threads default", rc == 0 and "default: all cores" in out, out[-800:])
    rc, out, _ = run(["--help"])
    check("amprt --help states the --threads default", rc == 0 and "default: all cores, everywhere" in out, out)
    rc, out, _ = run(["bench", LENET, "--runs", "1", "--warmup", "0", "--json"])
    try:
        threads = json.loads(out)["threads"]
    except (ValueError, KeyError):
        threads = None
    check("bench runs on all cores by default", threads == os.sysconf("SC_NPROCESSORS_ONLN"), f"threads {threads}")


def main():
    return common.finish("option", cases)


if __name__ == "__main__":
    sys.exit(main())
