#!/usr/bin/env python3
"""amprt on CUDA beside PyTorch on the same card, one table (docs/benchmarks.md reads it).

    gpu_bench.py --amprt BIN --lenet models/lenet/model.onnx [--workdir DIR] [--json FILE]
    gpu_bench.py --dry-run ...   # this machine: amprt on the CPU, tiny sizes, no GPU columns

Benchmarks (the CUDA-part-2 targets in brackets, amprt / PyTorch):
  - training step, FP16 AMP: the seed's LeNet at batch 64 [<= 0.5 x eager] and a transformer
    encoder (d 512, 8 heads, 6 layers, sequence 128, batch 32, vocabulary 8192) [<= 0.9 x eager];
    PyTorch with torch.autocast + GradScaler, eager and torch.compile; SGD with momentum on both;
  - batch-1 inference latency, FP16 (amprt: the model converted by autocast, FP32 I/O; PyTorch:
    .half() eager and compiled) [<= 0.5 x eager];
  - peak device memory of a training step: amprt's planned arena + persistent block against
    torch.cuda.max_memory_allocated [<= 0.8 x];
  - energy per training step from NVML's total-energy counter (both sides);
  - the encoder step's largest GEMM (4096 x 512 x 8192, FP16, FP32 accumulation) [>= 0.7 x
    cuBLAS through torch.matmul]. amprt's rate comes from differences: a model of 1 + 2P chained
    GEMMs (512 -> 8192 -> 512 ...) timed against one of a single GEMM with the same inputs and
    output, so uploads and downloads cancel.

Each row also gives the floor: the time the card's peak rates allow for the step's FLOPs and
bytes (FLOPs: matmul/conv FLOPs of the forward from `amprt inspect`, x3 for a training step;
bytes: the state read and written once, the activations written and read once), so a result can
be read against the hardware, not only against PyTorch. Peak rates by card are below.

The same PyTorch encoder class is exported to ONNX for amprt (seeded weights, opset 17; its
output is transposed to N x V x S so that both sides take cross entropy over the vocabulary)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# dense FP16/BF16 tensor-core rate (FLOP/s) and memory bandwidth (bytes/s), from the vendor's sheets
PEAKS = {
    "H100 SXM": (989.4e12, 3.35e12),
    "H100 PCIe": (756.5e12, 2.0e12),
    "H200": (989.4e12, 4.8e12),
}


def peaks_of(name):
    if "H200" in name:
        return "H200", PEAKS["H200"]
    if "PCIe" in name or "PCIE" in name:
        return "H100 PCIe", PEAKS["H100 PCIe"]
    return "H100 SXM", PEAKS["H100 SXM"]


def run_amprt(args, cmd, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    p = subprocess.run([args.amprt] + cmd, capture_output=True, text=True, env=env, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"amprt {' '.join(cmd)}: rc {p.returncode}: {p.stderr[-600:]}")
    return p.stdout


def amprt_json(args, cmd):
    out = run_amprt(args, cmd + ["--json"])
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


# ---- models -------------------------------------------------------------------------------------

def torch_models(torch, cfg):
    nn = torch.nn

    def lenet():
        return nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(cfg["vocab"], cfg["d"])
            layer = nn.TransformerEncoderLayer(cfg["d"], cfg["heads"], 4 * cfg["d"], dropout=0.0, batch_first=True,
                                               activation="gelu")
            self.enc = nn.TransformerEncoder(layer, cfg["layers"], enable_nested_tensor=False)
            self.head = nn.Linear(cfg["d"], cfg["vocab"])

        def forward(self, x):
            return self.head(self.enc(self.emb(x))).transpose(1, 2)  # N x V x S

    return lenet, Encoder


def export_encoder(torch, Encoder, cfg, path):
    import warnings
    torch.manual_seed(0)
    m = Encoder().eval()
    x = torch.randint(0, cfg["vocab"], (1, cfg["seq"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x,), path, dynamo=False, opset_version=17, input_names=["tokens"],
                          output_names=["logits"], dynamic_axes={"tokens": {0: "N"}, "logits": {0: "N"}})


def gemm_chain_model(path, m, k, n, pairs):
    """y = x . W1 (m x k -> m x n), then `pairs` times (. W2 (n -> k), . W1 (k -> n)): 1 + 2 pairs GEMMs, FP16."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(7)
    w1 = numpy_helper.from_array((rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float16), "w1")
    w2 = numpy_helper.from_array((rng.standard_normal((n, k)) / np.sqrt(n)).astype(np.float16), "w2")
    nodes, cur = [helper.make_node("MatMul", ["x", "w1"], ["h0"])], "h0"
    for i in range(pairs):
        nodes.append(helper.make_node("MatMul", [cur, "w2"], [f"g{i}"]))
        nodes.append(helper.make_node("MatMul", [f"g{i}", "w1"], [f"h{i + 1}"]))
        cur = f"h{i + 1}"
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    g = helper.make_graph(nodes, "gemm_chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [m, k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [m, n])], initializer=[w1, w2])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


# ---- PyTorch side ---------------------------------------------------------------------------------

def nvml_energy():
    try:
        import pynvml
        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        return lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(h)  # millijoules
    except Exception:  # noqa: BLE001 - NVML is optional
        return None


def cuda_time(torch, fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def torch_train(torch, make, batch, compiled, runs):
    """Median step ms (wall clock, synchronised per step like amprt's loop), peak bytes, mJ per step."""
    torch.manual_seed(0)
    model = make().cuda()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda")
    x, y = batch()
    ce = torch.nn.CrossEntropyLoss()
    fwd = torch.compile(model) if compiled else model

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16):
            loss = ce(fwd(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    ms = cuda_time(torch, step, 5, runs)
    peak = torch.cuda.max_memory_allocated()
    energy, mj = nvml_energy(), None
    if energy:
        e0 = energy()
        for _ in range(runs):
            step()
        torch.cuda.synchronize()
        mj = (energy() - e0) / runs
    return ms, peak, mj


def torch_infer(torch, make, x, compiled, runs):
    torch.manual_seed(0)
    model = make().cuda().half().eval()
    fwd = torch.compile(model) if compiled else model
    with torch.no_grad():
        return cuda_time(torch, lambda: fwd(x), 20, runs)


def torch_gemm_tflops(torch, m, k, n, runs):
    a = torch.randn(m, k, device="cuda", dtype=torch.float16)
    w1 = torch.randn(k, n, device="cuda", dtype=torch.float16) / k ** 0.5
    w2 = torch.randn(n, k, device="cuda", dtype=torch.float16) / n ** 0.5
    h = torch.matmul(a, w1)
    for _ in range(3):
        torch.matmul(torch.matmul(h, w2), w1)
    torch.cuda.synchronize()
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
    ev[0].record()
    for _ in range(runs):
        torch.matmul(torch.matmul(h, w2), w1)
    ev[1].record()
    ev[1].synchronize()
    per_gemm = ev[0].elapsed_time(ev[1]) / (2 * runs) * 1e-3
    return 2.0 * m * k * n / per_gemm / 1e12


# ---- the run ------------------------------------------------------------------------------------

def floor_ms(flops, nbytes, peaks):
    return 1e3 * max(flops / peaks[0], nbytes / peaks[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--amprt", required=True)
    ap.add_argument("--lenet", required=True)
    ap.add_argument("--workdir", default="/tmp/amprt_gpu_bench")
    ap.add_argument("--json", help="write the rows here too")
    ap.add_argument("--dry-run", action="store_true", help="amprt on the CPU, tiny sizes; no PyTorch GPU columns")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    dry = args.dry_run
    cfg = (dict(vocab=256, d=64, heads=2, layers=2, seq=16, batch=2) if dry else
           dict(vocab=8192, d=512, heads=8, layers=6, seq=128, batch=32))
    backend = "cpu" if dry else "cuda"
    runs = 3 if dry else 50
    try:
        import torch
        have_cuda = torch.cuda.is_available()
    except ImportError:
        torch, have_cuda = None, False
    if not dry and not have_cuda:
        print("SKIP: no CUDA device for PyTorch")
        return 77
    device = torch.cuda.get_device_name() if have_cuda else "none (dry run)"
    card, peaks = peaks_of(device)
    rows = []

    # the encoder as ONNX: exported from the PyTorch class (or, without PyTorch, the repo's small one)
    enc_path = os.path.join(args.workdir, "encoder_bench.onnx")
    Encoder = lenet_t = None
    if torch is not None:
        lenet_t, Encoder = torch_models(torch, cfg)
        export_encoder(torch, Encoder, cfg, enc_path)
    else:
        enc_path = os.path.join(os.path.dirname(os.path.abspath(args.lenet)), "..", "encoder", "model.onnx")
    models = [("lenet", args.lenet, 4 if dry else 64, lenet_t), ("encoder", enc_path, cfg["batch"], Encoder)]

    for name, path, batch, make in models:
        info = amprt_json(args, ["inspect", path, "--batch", str(batch)])
        fwd_flops = info["autocast"]["matmul_conv_flops"]
        tr = amprt_json(args, ["bench", path, "--train", "--autocast", "fp16", "--backend", backend, "--batch",
                               str(batch), "--runs", str(runs), "--warmup", "5"])
        # state read and written once (weights, masters, moments), activations written and read once
        nbytes = 2 * tr["persistent_bytes"] + 2 * tr["lower_bound_bytes"]
        row = {"bench": f"{name} train step b{batch}", "amprt_ms": tr["median_ms"],
               "floor_ms": floor_ms(3 * fwd_flops, nbytes, peaks), "amprt_device_bytes": tr["device_bytes"],
               "amprt_energy_mj": tr.get("energy_mj_per_step"), "target": 0.5 if name == "lenet" else 0.9}
        if have_cuda and make is not None:
            if name == "lenet":
                data = lambda: (torch.randn(batch, 1, 28, 28, device="cuda"), torch.randint(0, 10, (batch,), device="cuda"))
            else:
                data = lambda: (torch.randint(0, cfg["vocab"], (batch, cfg["seq"]), device="cuda"),
                                torch.randint(0, cfg["vocab"], (batch, cfg["seq"]), device="cuda"))
            row["torch_eager_ms"], row["torch_peak_bytes"], row["torch_energy_mj"] = torch_train(torch, make, data,
                                                                                                 False, runs)
            row["torch_compile_ms"] = torch_train(torch, make, data, True, runs)[0]
        rows.append(row)
        # batch-1 inference, FP16
        inf = amprt_json(args, ["bench", path, "--autocast", "fp16", "--backend", backend, "--batch", "1", "--runs",
                                str(10 * runs), "--warmup", "20"])
        info1 = amprt_json(args, ["inspect", path, "--batch", "1"])
        row = {"bench": f"{name} inference b1", "amprt_ms": inf["median_ms"], "target": 0.5,
               "floor_ms": floor_ms(info1["autocast"]["matmul_conv_flops"],
                                    inf["parameter_bytes"] + 2 * inf["lower_bound_bytes"], peaks)}
        if have_cuda and make is not None:
            x1 = (torch.randn(1, 1, 28, 28, device="cuda").half() if name == "lenet" else
                  torch.randint(0, cfg["vocab"], (1, cfg["seq"]), device="cuda"))
            row["torch_eager_ms"] = torch_infer(torch, make, x1, False, 10 * runs)
            row["torch_compile_ms"] = torch_infer(torch, make, x1, True, 10 * runs)
        rows.append(row)

    # the largest GEMM of the encoder's step
    m, k, n = cfg["batch"] * cfg["seq"], cfg["d"], cfg["vocab"]
    pairs = 2 if dry else 8
    one, many = os.path.join(args.workdir, "gemm_1.onnx"), os.path.join(args.workdir, "gemm_many.onnx")
    gemm_chain_model(one, m, k, n, 0)
    gemm_chain_model(many, m, k, n, pairs)
    t1 = amprt_json(args, ["bench", one, "--backend", backend, "--runs", str(runs), "--warmup", "5"])["median_ms"]
    tm = amprt_json(args, ["bench", many, "--backend", backend, "--runs", str(runs), "--warmup", "5"])["median_ms"]
    per = max(tm - t1, 1e-9) / (2 * pairs) * 1e-3
    row = {"bench": f"GEMM {m}x{k}x{n} fp16", "amprt_tflops": 2.0 * m * k * n / per / 1e12, "target": 0.7,
           "floor_ms": floor_ms(2.0 * m * k * n, 2 * (m * k + k * n + m * n), peaks)}
    if have_cuda:
        row["cublas_tflops"] = torch_gemm_tflops(torch, m, k, n, runs)
    rows.append(row)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "peaks_for": card, "rows": rows}, f, indent=1)
    for r in rows:
        print(json.dumps(r))
    print(f"\ndevice: {device}; floors from {card} peaks ({peaks[0] / 1e12:.0f} TFLOP/s, {peaks[1] / 1e12:.2f} TB/s)"
          + ("; DRY RUN: amprt on the CPU, tiny sizes, no PyTorch" if dry else ""))
    print("| benchmark | amprt | PyTorch eager | torch.compile | amprt / eager | target | floor |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    fmt = lambda v, u="ms": f"{v:.3f} {u}" if isinstance(v, (int, float)) else "-"
    for r in rows:
        if "amprt_tflops" in r:
            ratio = r["amprt_tflops"] / r["cublas_tflops"] if r.get("cublas_tflops") else None
            print(f"| {r['bench']} | {fmt(r['amprt_tflops'], 'TFLOP/s')} | cuBLAS {fmt(r.get('cublas_tflops'), 'TFLOP/s')} "
                  f"| - | {fmt(ratio, '')} | >= {r['target']} | {fmt(r['floor_ms'])} |")
            continue
        ratio = r["amprt_ms"] / r["torch_eager_ms"] if r.get("torch_eager_ms") else None
        print(f"| {r['bench']} | {fmt(r['amprt_ms'])} | {fmt(r.get('torch_eager_ms'))} | {fmt(r.get('torch_compile_ms'))} "
              f"| {fmt(ratio, '')} | <= {r['target']} | {fmt(r['floor_ms'])} |")
    for r in rows:
        if "amprt_device_bytes" in r:
            ratio = r["amprt_device_bytes"] / r["torch_peak_bytes"] if r.get("torch_peak_bytes") else None
            e = r.get("amprt_energy_mj"), r.get("torch_energy_mj")
            print(f"| {r['bench']}: peak memory | {r['amprt_device_bytes'] / 2**20:.1f} MiB | "
                  f"{fmt(r.get('torch_peak_bytes') and r['torch_peak_bytes'] / 2**20, 'MiB')} | - | {fmt(ratio, '')} "
                  f"| <= 0.8 | - |")
            print(f"| {r['bench']}: energy | {fmt(e[0], 'mJ')} | {fmt(e[1], 'mJ')} | - | "
                  f"{fmt(e[0] / e[1] if e[0] and e[1] else None, '')} | - | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
