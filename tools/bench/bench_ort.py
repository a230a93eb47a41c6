#!/usr/bin/env python3
"""Benchmark `amprt bench` against onnxruntime (CPU) on the same models, in the same run.

For every model folder under --models (a folder holding model.onnx), this

1. makes one random-normal input per graph input (seeded; the symbolic batch dim set to --batch),
   writes it to a temporary .pb file,
2. runs onnxruntime on it: CPU execution provider, intra_op_num_threads = --threads,
   inter_op_num_threads = 1, sequential execution, graph optimisations at their default
   (ORT_ENABLE_ALL), inputs and outputs bound once with IOBinding; --warmup runs, then --runs
   timed runs; median, min and max wall time,
3. runs

       AMPRT bench MODEL --batch B --threads N --json --runs R --warmup W --backend cpu
             --input NAME=FILE.pb ...

   (the last three groups are left out with --minimal-amprt-args), which must print one JSON
   object on stdout with at least median_ms, min_ms, max_ms and arena_bytes, and
   preferably lower_bound_bytes (also accepted: lb_bytes, lower_bound) and runs,
4. prints one row per model: model, batch, amprt median ms, ORT median ms, amprt/ORT,
   arena bytes, lower-bound bytes, arena/LB.

--json FILE writes every number (and the machine and versions) as JSON; --markdown prints a
table ready to paste into docs/benchmarks.md. --ort-only times onnxruntime alone (no binary).

Exit status: 0 on success; 1 when amprt fails, times out or prints bad JSON; 2 on a usage error
(no binary at --amprt, no models).
"""

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LB_KEYS = ("lower_bound_bytes", "lb_bytes", "lower_bound")
REQUIRED_KEYS = ("median_ms", "min_ms", "max_ms", "arena_bytes")

ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Inputs


def make_inputs(sess, batch, seed):
    """One seeded random tensor per graph input; dim 0 (and any other symbolic dim) = batch."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in sess.get_inputs():
        shape = []
        for k, d in enumerate(i.shape):
            if isinstance(d, int) and d > 0:
                shape.append(d)
            elif k == 0:
                shape.append(batch)
            else:
                raise BenchError(f"input {i.name}: symbolic dim {d!r} at axis {k}; only the "
                                 "batch axis (0) may be symbolic")
        dt = ORT_DTYPES.get(i.type)
        if dt is None:
            raise BenchError(f"input {i.name}: unsupported type {i.type}")
        if np.issubdtype(dt, np.floating):
            a = rng.standard_normal(shape).astype(dt)
        elif dt == np.bool_:
            a = rng.integers(0, 2, shape).astype(dt)
        else:
            a = rng.integers(0, 10, shape).astype(dt)
        out[i.name] = a
    return out


def write_inputs(inputs, folder):
    paths = {}
    for k, (name, arr) in enumerate(inputs.items()):
        p = os.path.join(folder, f"input_{k}.pb")
        with open(p, "wb") as f:
            f.write(onnx.numpy_helper.from_array(arr, name).SerializeToString())
        paths[name] = p
    return paths


# --------------------------------------------------------------------------------------------
# onnxruntime


def ort_session(model_path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # graph_optimization_level left at its default, ORT_ENABLE_ALL
    return ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])


def time_ort(sess, inputs, warmup, runs):
    binding = sess.io_binding()
    for name, arr in inputs.items():
        binding.bind_cpu_input(name, arr)
    for o in sess.get_outputs():
        binding.bind_output(o.name, "cpu")
    for _ in range(warmup):
        sess.run_with_iobinding(binding)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        sess.run_with_iobinding(binding)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "runs": runs,
        "warmup": warmup,
    }


# --------------------------------------------------------------------------------------------
# amprt


def amprt_command(args, model_path, input_paths):
    cmd = [args.amprt, "bench", model_path, "--batch", str(args.batch),
           "--threads", str(args.threads), "--json"]
    if not args.minimal_amprt_args:
        cmd += ["--runs", str(args.runs), "--warmup", str(args.warmup),
                "--backend", args.backend]
        for name, p in input_paths.items():
            cmd += ["--input", f"{name}={p}"]
    cmd += shlex.split(args.amprt_args or "")
    return cmd


def parse_amprt_json(stdout):
    """The whole of stdout should be one JSON object; else accept the last line that is one."""
    text = stdout.strip()
    candidates = [text] + [ln.strip() for ln in reversed(text.splitlines())]
    for c in candidates:
        if not c.startswith("{"):
            continue
        try:
            obj = json.loads(c)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _excerpt(s, n=800):
    s = s.strip()
    if not s:
        return "(empty)"
    return s if len(s) <= n else "…" + s[-n:]


def run_amprt(args, model_path, input_paths):
    cmd = amprt_command(args, model_path, input_paths)
    shown = " ".join(shlex.quote(c) for c in cmd)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"amprt timed out after {args.timeout} s:\n  {shown}")
    except OSError as e:
        raise BenchError(f"cannot run amprt ({e}):\n  {shown}")
    if p.returncode != 0:
        hint = ""
        if not args.minimal_amprt_args and ("--runs" in p.stderr or "--input" in p.stderr
                                            or "--warmup" in p.stderr or "--backend" in p.stderr
                                            or "unknown" in p.stderr.lower()):
            hint = ("\n  (if this amprt does not take --runs/--warmup/--backend/--input, "
                    "try --minimal-amprt-args)")
        raise BenchError(f"amprt exited with status {p.returncode}:\n  {shown}\n"
                         f"  stderr: {_excerpt(p.stderr)}\n  stdout: {_excerpt(p.stdout)}{hint}")
    obj = parse_amprt_json(p.stdout)
    if obj is None:
        raise BenchError(f"amprt did not print a JSON object on stdout:\n  {shown}\n"
                         f"  stdout: {_excerpt(p.stdout)}\n  stderr: {_excerpt(p.stderr)}")
    bad = []
    for k in REQUIRED_KEYS:
        v = obj.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            bad.append(f"{k}={v!r}")
    if bad:
        raise BenchError(f"amprt JSON lacks or has bad {', '.join(bad)} (needs numbers "
                         f"{', '.join(REQUIRED_KEYS)}):\n  {shown}\n  stdout: {_excerpt(p.stdout)}")
    if not obj["min_ms"] <= obj["median_ms"] <= obj["max_ms"]:
        raise BenchError(f"amprt JSON has min_ms <= median_ms <= max_ms false: {obj}")
    lb = next((obj[k] for k in LB_KEYS if isinstance(obj.get(k), (int, float))), None)
    obj["_lower_bound_bytes"] = lb
    runs = obj.get("runs")
    if not args.minimal_amprt_args and isinstance(runs, int) and runs != args.runs:
        print(f"warning: amprt reports {runs} runs, ORT did {args.runs}", file=sys.stderr)
    obj["_command"] = shown
    return obj


# --------------------------------------------------------------------------------------------
# Output


def fmt_ms(v):
    return "-" if v is None else f"{v:.3f}"


def fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}"


def fmt_int(v):
    return "-" if v is None else f"{int(v)}"


def table_rows(results):
    rows = []
    for r in results:
        a = r.get("amprt") or {}
        rows.append([
            r["model"], str(r["batch"]), fmt_ms(a.get("median_ms")), fmt_ms(r["ort"]["median_ms"]),
            fmt_ratio(r.get("ratio")), fmt_int(a.get("arena_bytes")),
            fmt_int(r.get("lower_bound_bytes")), fmt_ratio(r.get("arena_over_lb")),
        ])
    return rows


HEADER = ["model", "batch", "amprt ms", "ORT ms", "amprt/ORT", "arena B", "LB B", "arena/LB"]


def print_plain(results):
    rows = [HEADER] + table_rows(results)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    for k, r in enumerate(rows):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                        enumerate(zip(r, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def print_markdown(results, meta):
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|")
    for r in table_rows(results):
        print("| " + " | ".join(r) + " |")
    print()
    who = ("onnxruntime alone (--ort-only)" if meta["amprt"] is None else
           f"amprt (--backend {meta['backend']}) and onnxruntime in the same script run")
    print(f"Median of {meta['runs']} runs after {meta['warmup']} warm-up runs, {who}, batch "
          f"{meta['batch']}, same seeded random-normal input; {meta['threads']} "
          f"thread(s); onnxruntime {meta['onnxruntime']} CPU EP (inter-op 1, ORT_ENABLE_ALL, "
          f"IOBinding); {meta['cpu']}; {meta['date']}. LB = the planner's lower bound "
          "(max over steps of live bytes).")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} logical CPUs"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs"


def find_models(path, only):
    if os.path.isfile(os.path.join(path, "model.onnx")):
        found = [(os.path.basename(os.path.normpath(path)), os.path.join(path, "model.onnx"))]
    elif os.path.isdir(path):
        found = [(d, os.path.join(path, d, "model.onnx")) for d in sorted(os.listdir(path))
                 if os.path.isfile(os.path.join(path, d, "model.onnx"))]
    else:
        found = []
    if only:
        want = [w for w in only.split(",") if w]
        missing = [w for w in want if w not in {n for n, _ in found}]
        if missing:
            raise BenchError(f"no model folder named {', '.join(missing)} under {path}")
        found = [(n, p) for n, p in found if n in want]
    return found


def main():
    ap = argparse.ArgumentParser(
        description="Compare `amprt bench` with onnxruntime (CPU) on the same models and inputs.",
        epilog="amprt contract: `amprt bench MODEL --batch B --threads N --json` prints one JSON "
               "object with median_ms, min_ms, max_ms, arena_bytes (and lower_bound_bytes).")
    ap.add_argument("--amprt", default=os.path.join(REPO, "build", "amprt"),
                    help="the amprt binary (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="threads for both (default 2)")
    ap.add_argument("--models", default=os.path.join(REPO, "models"),
                    help="folder of <name>/model.onnx, or one such folder (default: %(default)s)")
    ap.add_argument("--only", help="comma-separated model names to run (default: all)")
    ap.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    ap.add_argument("--runs", type=int, default=100, help="timed runs each (default 100)")
    ap.add_argument("--warmup", type=int, default=10, help="warm-up runs each (default 10)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random input (default 0)")
    ap.add_argument("--backend", default="cpu", help="amprt --backend (default cpu, as ORT's EP)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per amprt call")
    ap.add_argument("--minimal-amprt-args", action="store_true",
                    help="pass amprt only --batch, --threads and --json (no --runs, --warmup, "
                         "--backend, --input)")
    ap.add_argument("--amprt-args",
                    help="extra arguments for amprt bench (one shell-quoted string)")
    ap.add_argument("--ort-only", action="store_true", help="time onnxruntime alone")
    ap.add_argument("--json", metavar="FILE", help="write all results as JSON to FILE")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()

    if args.threads < 1 or args.batch < 1 or args.runs < 1 or args.warmup < 0:
        ap.error("--threads, --batch and --runs must be >= 1, --warmup >= 0")
    if not args.ort_only:
        if not os.path.exists(args.amprt):
            print(f"bench_ort: error: no amprt binary at {args.amprt}\n"
                  "  build it first (cmake --build build) or pass --amprt PATH; "
                  "--ort-only times onnxruntime alone", file=sys.stderr)
            return 2
        if not (os.path.isfile(args.amprt) and os.access(args.amprt, os.X_OK)):
            print(f"bench_ort: error: {args.amprt} is not an executable file", file=sys.stderr)
            return 2
        args.amprt = os.path.abspath(args.amprt)
    try:
        models = find_models(args.models, args.only)
    except BenchError as e:
        print(f"bench_ort: error: {e}", file=sys.stderr)
        return 2
    if not models:
        print(f"bench_ort: error: no <name>/model.onnx under {args.models} "
              "(run python3 models/generate.py)", file=sys.stderr)
        return 2

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_name(),
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "batch": args.batch,
        "runs": args.runs,
        "warmup": args.warmup,
        "seed": args.seed,
        "amprt": None if args.ort_only else args.amprt,
        "backend": args.backend,
    }
    results = []
    status = 0
    with tempfile.TemporaryDirectory(prefix="amprt-bench-") as tmp:
        for name, path in models:
            try:
                sess = ort_session(path, args.threads)
                inputs = make_inputs(sess, args.batch, args.seed)
                in_dir = os.path.join(tmp, name)
                os.makedirs(in_dir)
                input_paths = write_inputs(inputs, in_dir)
                r = {"model": name, "path": os.path.relpath(path, REPO), "batch": args.batch}
                # amprt first: ORT's intra-op threads spin for a while after a run, which
                # would steal cycles from a process started right after it.
                a = None if args.ort_only else run_amprt(args, os.path.abspath(path), input_paths)
                r["ort"] = time_ort(sess, inputs, args.warmup, args.runs)
                del sess
            except BenchError as e:
                print(f"bench_ort: {name}: error: {e}", file=sys.stderr)
                status = 1
                break
            if a is not None:
                lb = a.pop("_lower_bound_bytes")
                r["amprt"] = a
                r["ratio"] = a["median_ms"] / r["ort"]["median_ms"]
                r["lower_bound_bytes"] = lb
                r["arena_over_lb"] = (a["arena_bytes"] / lb) if lb else None
            results.append(r)

    if results:
        print_plain(results)
        if args.markdown:
            print()
            print_markdown(results, meta)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results, "ok": status == 0}, f, indent=2)
            f.write("\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
