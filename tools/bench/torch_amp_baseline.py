#!/usr/bin/env python3
"""PyTorch AMP baselines on one GPU, for docs/gpu-log.md: training-step time (torch.autocast fp16 +
GradScaler, and fp32), inference latency at batch 1 (fp16 eager), peak memory of a training step,
and energy per step (NVML total-energy counter, when pynvml is importable).
Models: the seed's LeNet (batch 64) and a transformer encoder (d=512, 8 heads, 6 layers,
sequence 128, batch 32). Prints one JSON object per measurement and a table last."""
import json
import statistics
import sys

import torch
import torch.nn as nn


def lenet():
    return nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))


class Encoder(nn.Module):
    def __init__(self, vocab=8192, d=512, heads=8, layers=6):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, activation="gelu")
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)

    def forward(self, x):
        return self.head(self.enc(self.emb(x)))


def energy_counter():
    try:
        import pynvml
        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        return lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(h)  # millijoules
    except Exception:  # noqa: BLE001 - NVML is optional
        return None


def time_cuda(fn, warmup=10, iters=50):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def train_step_bench(name, model, make_batch, loss_fn, amp):
    dev = "cuda"
    model = model.to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    x, y = make_batch()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    ms = time_cuda(step)
    peak = torch.cuda.max_memory_allocated()
    energy = energy_counter()
    mj = None
    if energy:
        torch.cuda.synchronize()
        e0 = energy()
        for _ in range(100):
            step()
        torch.cuda.synchronize()
        mj = (energy() - e0) / 100.0
    return {"model": name, "what": "train_step", "amp": "fp16" if amp else "fp32", "median_ms": round(ms, 4),
            "peak_bytes": peak, "energy_mj_per_step": mj}


def infer_bench(name, model, x):
    model = model.cuda().half().eval()
    with torch.no_grad():
        ms = time_cuda(lambda: model(x), warmup=20, iters=200)
    return {"model": name, "what": "inference_b1", "amp": "fp16-eager", "median_ms": round(ms, 4)}


def main():
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device")
        return 0
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    ce = nn.CrossEntropyLoss()
    rows = []
    lb = lambda: (torch.randn(64, 1, 28, 28, device="cuda"), torch.randint(0, 10, (64,), device="cuda"))
    tb = lambda: (torch.randint(0, 8192, (32, 128), device="cuda"), torch.randint(0, 8192, (32, 128), device="cuda"))
    tl = lambda out, y: ce(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    for amp in (True, False):
        rows.append(train_step_bench("lenet", lenet(), lb, ce, amp))
        rows.append(train_step_bench("encoder", Encoder(), tb, tl, amp))
    rows.append(infer_bench("lenet", lenet(), torch.randn(1, 1, 28, 28, device="cuda").half()))
    rows.append(infer_bench("encoder", Encoder(), torch.randint(0, 8192, (1, 128), device="cuda")))
    for r in rows:
        print(json.dumps(r))
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print("| model | what | precision | median ms | peak MiB | energy mJ/step |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        peak = f"{r['peak_bytes'] / 2**20:.1f}" if r.get("peak_bytes") else "-"
        e = f"{r['energy_mj_per_step']:.1f}" if r.get("energy_mj_per_step") else "-"
        print(f"| {r['model']} | {r['what']} | {r['amp']} | {r['median_ms']} | {peak} | {e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
