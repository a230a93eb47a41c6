#!/usr/bin/env python3
"""tools/bench/bench_cpu_peers.py without timing anything against a limit: --help and --list name
every contender and every model of models/; with openvino made unimportable its contenders are
skipped with the reason (not failed); a tiny real run (mlp at batch 1, LeNet's training step at
batch 4, one round of two runs) gives numbers for the others, amprt's BF16 output within rel L2
1e-2 of its FP32 output but not equal to it, and FP32 within 1e-4 of onnxruntime; an amprt that
fails is reported as failed with its exit status while onnxruntime's numbers still come.
Usage: test_cli_bench_peers.py PATH/TO/amprt"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_cli_bad as common  # noqa: E402  (check and finish; reads sys.argv[1] too)

check = common.check
SCRIPT = os.path.join(common.SRC, "tools", "bench", "bench_cpu_peers.py")
INFER = ("amprt-fp32", "amprt-bf16", "ort-fp32", "ov-default", "ov-fp32")
TRAIN = ("amprt-fp32", "amprt-bf16", "amprt-fp16", "torch-fp32", "torch-bf16")
TINY = ["--only", "mlp", "--batches", "1", "--train-models", "lenet", "--train-batch", "4", "--rounds", "1",
        "--runs", "2", "--warmup", "0", "--train-runs", "2", "--train-warmup", "0"]


def bench(args, env=None, timeout=300):
    p = subprocess.run([sys.executable, SCRIPT] + args, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout, p.stderr


def timed(res, name):
    return "median_ms" in res and 0 < res["min_ms"] <= res["median_ms"]


def no_openvino(tmp):
    """A PYTHONPATH whose `openvino` package fails to import, as when it is not installed."""
    shim = os.path.join(tmp, "shim", "openvino")
    os.makedirs(shim)
    with open(os.path.join(shim, "__init__.py"), "w") as f:
        f.write("raise ImportError('No module named openvino (test shim)')\n")
    return {"PYTHONPATH": os.path.dirname(shim)}


def cases(tmp):
    rc, out, err = bench(["--help"])
    check("--help", rc == 0 and all(c in out for c in INFER + TRAIN), f"rc {rc}, stdout {out[-600:]}")

    models = sorted(d for d in os.listdir(os.path.join(common.SRC, "models"))
                    if os.path.isfile(os.path.join(common.SRC, "models", d, "model.onnx")))
    rc, out, err = bench(["--amprt", common.AMPRT, "--list"])
    lines = out.splitlines()
    want = [f"infer {m} b{b}" for m in models for b in (1, 8)] + ["train lenet b64", "train encoder b64"]
    missing = [w for w in want if w not in lines]
    check("--list: every model at b1 and b8, the two training models", rc == 0 and not missing,
          f"rc {rc}, missing {missing}, stderr {err[-600:]}")
    named = [c for c in INFER if f"infer contender {c}" in out] + [c for c in TRAIN if f"train contender {c}" in out]
    check("--list: every contender", len(named) == len(INFER) + len(TRAIN), f"named {named}")

    env = no_openvino(tmp)
    rc, out, err = bench(["--amprt", common.AMPRT, "--list"], env)
    check("--list without openvino: its contenders skipped with the reason",
          rc == 0 and "infer contender ov-default: skipped: openvino is not importable" in out
          and "infer contender ov-fp32: skipped" in out and "ort-fp32: skipped" not in out, out[-800:])

    js = os.path.join(tmp, "tiny.json")
    rc, out, err = bench(["--amprt", common.AMPRT, "--json", js, "--markdown"] + TINY, env)
    check("tiny run without openvino: exit 0", rc == 0, f"rc {rc}, stderr {err[-1500:]}")
    check("tiny run: says openvino is missing", "openvino is not importable" in err, err[-600:])
    if not os.path.exists(js):
        check("tiny run: --json written", False, "no file")
        return
    with open(js) as f:
        d = json.load(f)
    inf = d["inference"][0]["results"] if d["inference"] else {}
    for c in ("amprt-fp32", "amprt-bf16", "ort-fp32"):
        check(f"tiny run: mlp b1 {c} timed", timed(inf.get(c, {}), c), str(inf.get(c)))
    for c in ("ov-default", "ov-fp32"):
        check(f"tiny run: {c} skipped, not failed", "skipped" in inf.get(c, {}) and "error" not in inf.get(c, {}),
              str(inf.get(c)))
    acc = d["inference"][0]["accuracy"] if d["inference"] else {}
    b = acc.get("bf16_vs_fp32")
    check("tiny run: BF16 within rel L2 1e-2 of FP32, not equal", b is not None and 0 < b < 1e-2, str(acc))
    f32 = acc.get("fp32_vs_ort")
    check("tiny run: FP32 within rel L2 1e-4 of onnxruntime", f32 is not None and f32 < 1e-4, str(acc))
    tr = d["training"][0]["results"] if d["training"] else {}
    for c in TRAIN:
        r = tr.get(c, {})
        ok = timed(r, c) or (c.startswith("torch") and "skipped" in r)
        check(f"tiny run: lenet b4 train {c}", ok, str(r))
    verdicts = {g["verdict"] for g in d["targets"]}
    check("tiny run: every target has a verdict", len(d["targets"]) == 9 and
          verdicts <= {"met", "not met", "not measured", "not measured (some not run)"}, str(d["targets"]))
    check("tiny run: tables printed", "| mlp | 1 |" in out and "| lenet | 4 |" in out and "| target |" in out,
          out[-1500:])

    fake = os.path.join(tmp, "failing-amprt")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\necho 'amprt: simulated failure' >&2\nexit 3\n")
    os.chmod(fake, 0o755)
    js2 = os.path.join(tmp, "fail.json")
    rc, out, err = bench(["--amprt", fake, "--json", js2, "--parts", "infer", "--contenders",
                          "amprt-fp32,ort-fp32"] + TINY, env)
    check("failing amprt: exit 1, not a crash", rc == 1 and "Traceback" not in err, f"rc {rc}, {err[-1500:]}")
    if os.path.exists(js2):
        with open(js2) as f:
            inf = json.load(f)["inference"][0]["results"]
        a = inf.get("amprt-fp32", {})
        check("failing amprt: reported with the status and message",
              "status 3" in a.get("error", "") and "simulated failure" in a.get("error", ""), str(a))
        check("failing amprt: onnxruntime still timed", timed(inf.get("ort-fp32", {}), "ort"), str(inf))
        check("failing amprt: contenders left out are absent", set(inf) == {"amprt-fp32", "ort-fp32"}, str(inf))
        check("failing amprt: in the printed failures", "mlp b1 amprt-fp32: amprt exited with status 3" in out,
              out[-800:])
    else:
        check("failing amprt: --json written", False, "no file")


if __name__ == "__main__":
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("SKIP: onnxruntime is not installed")
        sys.exit(77)
    sys.exit(common.finish("bench_cpu_peers", cases))
