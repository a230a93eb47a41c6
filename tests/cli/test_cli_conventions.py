#!/usr/bin/env python3
"""Conventions amprt shares with trtexec and polygraphy: bench's percentiles, --iterations and
--duration. Usage: test_cli_conventions.py PATH/TO/amprt"""
import json
import os
import sys
import tempfile

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


def main():
    with tempfile.TemporaryDirectory(prefix="amprt_cli_conventions_") as tmp:
        cases(tmp)
    print("".join(f"FAIL {f}\n" for f in common.failures), end="")
    print(f"{common.ran - len(common.failures)} of {common.ran} convention checks passed")
    return 1 if common.failures else 0


def cases(tmp):
    bench_cases()


if __name__ == "__main__":
    sys.exit(main())
