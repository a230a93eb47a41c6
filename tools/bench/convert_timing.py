#!/usr/bin/env python3
"""Wall time of the error-targeted conversion, amprt builds against onnxconverter-common,
alternating in one loop so that the machine's load falls on all of them alike.

Per model, ROUNDS rounds of: each amprt binary given (`amprt convert MODEL OUT --dtype fp16
--keep-io-types --calibrate CALIB/NAME --max-error E -q`, the process's wall time: start,
loading and writing included), then onnxconverter-common's auto_convert_mixed_precision on the
same sets concatenated (the call's wall time, in this process, onnxruntime imported; with
--fork-peer in a forked child, as tools/bench/convert_compare.py runs it, which survives
onnxruntime's crash on lstm_tagger).
Prints one line per model: median and minimum seconds of each.

Usage: convert_timing.py --amprt LABEL=PATH [--amprt LABEL=PATH ...] --calib-root CALIB
                         [--max-error E] [--rounds N] [--fork-peer] [MODEL_NAME ...]
(default: every model of models/)"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_compare as cc  # noqa: E402

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--amprt", action="append", required=True, help="LABEL=PATH of an amprt binary")
    ap.add_argument("--calib-root", required=True)
    ap.add_argument("--max-error", type=float, default=1e-2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--fork-peer", action="store_true",
                    help="run the peer in a forked child (onnxruntime 1.32 dies of SIGSEGV on lstm_tagger)")
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    tools = dict(x.split("=", 1) for x in a.amprt)
    names = a.models or sorted(d for d in os.listdir(os.path.join(SRC, "models"))
                               if os.path.isfile(os.path.join(SRC, "models", d, "model.onnx")))
    out = os.path.join(a.calib_root, "convert_timing.onnx")
    for name in names:
        path = os.path.join(SRC, "models", name, "model.onnx")
        calib = os.path.join(a.calib_root, name)
        model = onnx.load(path)
        _, feed = cc.calib_sets(calib, cc.graph_inputs(model))
        t = {k: [] for k in list(tools) + ["onnxconverter-common"]}
        for _ in range(a.rounds):
            for label, binary in tools.items():
                t0 = time.perf_counter()
                subprocess.run([binary, "convert", path, out, "--dtype", "fp16", "--keep-io-types", "--calibrate", calib,
                                "--max-error", repr(a.max_error), "-q"], check=True, capture_output=True)
                t[label].append(time.perf_counter() - t0)
            conv = lambda: cc.occ_auto(model, feed, a.max_error)  # noqa: E731
            try:
                _, s = cc.timed_apart(conv, a.calib_root) if a.fork_peer else cc.timed(conv)
                t["onnxconverter-common"].append(s)
            except Exception:  # noqa: BLE001  (it fails on encoder and lstm_tagger)
                pass
        print(name, "  ".join(f"{k}: median {statistics.median(v):.3f} min {min(v):.3f}" if v else f"{k}: failed"
                              for k, v in t.items()), flush=True)
    if os.path.exists(out):
        os.remove(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
