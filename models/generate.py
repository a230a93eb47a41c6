#!/usr/bin/env python3
"""Generate amprt's test models and their reference data, deterministically.

For each model this writes, under the output folder (default: the folder holding this script):

    <name>/model.onnx
    <name>/test_data_set_0/input_0.pb ...   (onnx.TensorProto, name = graph input name)
    <name>/test_data_set_0/output_0.pb ...  (onnx.TensorProto, name = graph output name)
    <name>/calib/set_K/input_0.pb           (calibration inputs, for the models that have them)

which is the ONNX backend-test layout that `amprt check` reads. Expected outputs come from torch
(the module that was exported) and are checked here against onnxruntime.

Models (opset 17, exported with the TorchScript exporter, batch dimension symbolic and named N):

    lenet           Caffe's LeNet: conv 1->20 5x5, max-pool 2, conv 20->50 5x5, max-pool 2,
                    flatten, fc 800->500, ReLU, fc 500->10.  input [N,1,28,28] -> logits [N,10]
    mlp             64->128, GELU (erf), LayerNorm(128), 128->64, GELU, LayerNorm(64), 64->10,
                    exported with the fused LayerNormalization op.  input [N,64] -> logits [N,10]
    mlp_decomposed  the same MLP (same weights) with LayerNorm written out by hand, so the graph
                    holds ReduceMean/Sub/Pow/Add/Sqrt/Div/Mul.  input [N,64] -> logits [N,10]
    overflow        h = x @ W1 (|h| up to a few hundred), h * h (up to ~1e5, beyond FP16's
                    65504), @ W2: FP32 is fine, a plain FP16 cast overflows.  Also writes four
                    calibration sets (batch 8) for `amprt convert --calibrate`.
                    input [N,64] -> logits [N,10]
    encoder         2-layer transformer encoder over token ids, mean pooling, linear head.
                    input int64 [N,16] -> logits [N,10]
    resnet          reduced-width ResNet (16/32/64 channels, BatchNorm folded by the exporter).
                    input [N,3,32,32] -> logits [N,10]
    mobilenetv2     reduced MobileNetV2 (inverted residuals, depthwise convs, ReLU6).
                    input [N,3,32,32] -> logits [N,10]
    gpt_block       one GPT-style causal decoder block and LM head over token ids.
                    input int64 [N,16] -> logits [N,16,100]
    unet            tiny 2-level U-Net: conv 3x3 -> GroupNorm(4) -> SiLU blocks (16, 32), stride-2
                    conv down, bilinear and nearest x2 upsampling (Resize), skip Concat, 1x1 head.
                    input [N,3,32,32] -> logits [N,3,32,32]
    lstm_tagger     token ids -> Embedding(100, 32) -> 2-layer bidirectional LSTM (hidden 24,
                    batch_first) -> Linear to 10 tags per position.
                    input int64 [N,12] -> logits [N,12,10]
    detector        DB-style text detector: HardSwish backbone with a HardSigmoid squeeze-excite,
                    feature pyramid (1x1 laterals, nearest x2 Resize top-down adds), ConvTranspose
                    x2 head to a Sigmoid probability map.  input [N,3,64,64] -> logits [N,1,64,64]

Everything is seeded; running the script twice gives byte-identical files
(`--check-determinism` proves it by generating twice in fresh processes and comparing sha256).

Usage:
    python3 models/generate.py                    # write models/<name>/...
    python3 models/generate.py --out DIR          # write elsewhere
    python3 models/generate.py --only detector    # write one model (repeatable)
    python3 models/generate.py --check-determinism
"""

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import torch
import torch.nn as nn

OPSET = 17
MAX_MODEL_BYTES = 2 * 1024 * 1024
# torch and onnxruntime compute in f32 with different summation orders; this is far above
# their expected difference (~1e-7) and far below any real bug.
ORT_REL_L2_TOL = 1e-5

HERE = os.path.dirname(os.path.abspath(__file__))


# --------------------------------------------------------------------------------------------
# Modules


class LeNet(nn.Module):
    """Caffe's LeNet (no activation after the convolutions)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, kernel_size=5)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten(1)  # exports as a single ONNX Flatten(axis=1)
        self.fc1 = nn.Linear(800, 500)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        x = self.flatten(x)
        return self.fc2(self.relu(self.fc1(x)))


class HandLayerNorm(nn.Module):
    """LayerNorm over the last dimension written out op by op.

    Same parameters (weight, bias) and eps as nn.LayerNorm, so state dicts are interchangeable.
    Biased variance, as nn.LayerNorm uses.
    """

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        d = x - mean
        var = d.pow(2).mean(dim=-1, keepdim=True)
        return d / torch.sqrt(var + self.eps) * self.weight + self.bias


class MLP(nn.Module):
    def __init__(self, decomposed=False):
        super().__init__()
        norm = (lambda n: HandLayerNorm(n)) if decomposed else (lambda n: nn.LayerNorm(n))
        self.fc1 = nn.Linear(64, 128)
        self.act1 = nn.GELU(approximate="none")  # exact erf form
        self.ln1 = norm(128)
        self.fc2 = nn.Linear(128, 64)
        self.act2 = nn.GELU(approximate="none")
        self.ln2 = norm(64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.ln1(self.act1(self.fc1(x)))
        x = self.ln2(self.act2(self.fc2(x)))
        return self.fc3(x)


class Overflow(nn.Module):
    """Two matrix products around an elementwise square whose values exceed FP16's range."""

    def __init__(self, gen):
        super().__init__()
        # x ~ U(-1,1) gives h = x @ W1 a standard deviation of ~4.6 * OVERFLOW_W1_SCALE, so |h|
        # reaches a few hundred and h * h about 1e5.
        self.w1 = nn.Parameter(OVERFLOW_W1_SCALE * torch.randn(64, 64, generator=gen))
        self.w2 = nn.Parameter(torch.randn(64, 10, generator=gen) / 8.0)  # N(0, 1/64)

    def forward(self, x):
        h = torch.matmul(x, self.w1)
        return torch.matmul(h * h, self.w2)


OVERFLOW_W1_SCALE = 25.0
OVERFLOW_CALIB_SETS = 4
OVERFLOW_CALIB_BATCH = 8


def _uniform_input(gen, batch):
    return torch.rand(batch, 64, generator=gen) * 2.0 - 1.0


def _seeded(seed):
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed + 1)


def _randomize_norms(module, gen):
    # nn.LayerNorm starts at weight 1, bias 0, which would hide a kernel that ignores them.
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.LayerNorm, HandLayerNorm)):
                m.weight.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


class TinyEncoder(nn.Module):
    """A 2-layer transformer encoder over token ids: embedding plus learned positions, 4 heads,
    GELU feed-forward, mean pooling, a linear head. Sequence length 16, d_model 64."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 64)
        self.pos = nn.Parameter(torch.randn(16, 64) * 0.1)
        layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, dropout=0.0,
                                           batch_first=True, activation="gelu")
        self.enc = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        h = self.emb(x) + self.pos
        h = self.enc(h)
        return self.head(h.mean(dim=1))


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.b2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))

class ResNetMini(nn.Module):
    """A reduced-width ResNet: 3x3 stem, max pool, three stages of two basic blocks (16, 32,
    64 channels; 1x1 projection shortcuts where the shape changes), global average pool, linear."""
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.l1 = nn.Sequential(Basic(16, 16, 1), Basic(16, 16, 1))
        self.l2 = nn.Sequential(Basic(16, 32, 2), Basic(32, 32, 1))
        self.l3 = nn.Sequential(Basic(32, 64, 2), Basic(64, 64, 1))
        self.fc = nn.Linear(64, 10)
    def forward(self, x):
        x = self.pool(self.stem(x))
        x = self.l3(self.l2(self.l1(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

class InvRes(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        h = cin * t
        self.use_res = stride == 1 and cin == cout
        layers = []
        if t != 1: layers += [nn.Conv2d(cin, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6()]
        layers += [nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                   nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)

class MobileNetV2Mini(nn.Module):
    """A reduced MobileNetV2: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 project,
    ReLU6), residual adds where shapes allow, global average pool, linear."""
    def __init__(self):
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 1, 2)]
        layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6()]
        cin = 16
        for t, c, n, s in cfg:
            for i in range(n):
                layers.append(InvRes(cin, c, s if i == 0 else 1, t)); cin = c
        layers += [nn.Conv2d(cin, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(128, 10)
    def forward(self, x):
        x = self.features(x)
        return self.fc(x.mean([2, 3]))

class GPTBlock(nn.Module):
    """One GPT-style decoder block over token ids: embedding and positions, pre-LayerNorm causal
    self-attention (4 heads, mask from a triangular buffer filled with -inf), GELU MLP, final
    LayerNorm, language-model head over the 100-token vocabulary."""
    def __init__(self, vocab=100, d=64, heads=4, seq=16):
        super().__init__()
        self.emb = nn.Embedding(vocab, d); self.pos = nn.Parameter(torch.randn(seq, d) * 0.1)
        self.ln1 = nn.LayerNorm(d); self.qkv = nn.Linear(d, 3 * d); self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d); self.fc1 = nn.Linear(d, 4 * d); self.fc2 = nn.Linear(4 * d, d)
        self.lnf = nn.LayerNorm(d); self.head = nn.Linear(d, vocab)
        self.h = heads; self.d = d
        self.register_buffer("mask", torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1))
    def forward(self, idx):
        B, T = idx.shape
        x = self.emb(idx) + self.pos[:T]
        q, k, v = self.qkv(self.ln1(x)).split(self.d, dim=2)
        q = q.view(B, T, self.h, -1).transpose(1, 2); k = k.view(B, T, self.h, -1).transpose(1, 2); v = v.view(B, T, self.h, -1).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / (self.d // self.h) ** 0.5
        att = att.masked_fill(self.mask[:T, :T], float("-inf"))
        y = torch.softmax(att, dim=-1) @ v
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, self.d))
        x = x + self.fc2(nn.functional.gelu(self.fc1(self.ln2(x))))
        return self.head(self.lnf(x))

class ConvGNSiLU(nn.Module):
    """conv 3x3 (padding 1, optional stride) -> GroupNorm(4 groups) -> SiLU."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1)
        self.norm = nn.GroupNorm(4, cout)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class UNetMini(nn.Module):
    """A tiny 2-level U-Net on 32x32 images. Encoder: two conv-GroupNorm-SiLU blocks at 16
    channels (32x32), a stride-2 conv block down to 32 channels (16x16) and a second one down to
    8x8 (the bottleneck). Decoder: bilinear x2 up (align_corners=False) to 16x16, Concat with the
    16x16 skip, a block to 32 channels; nearest x2 up to 32x32, Concat with the 32x32 skip, a
    block to 16 channels; a 1x1 conv head to 3 channels."""

    def __init__(self):
        super().__init__()
        self.enc1 = nn.Sequential(ConvGNSiLU(3, 16), ConvGNSiLU(16, 16))
        self.down1 = ConvGNSiLU(16, 32, stride=2)
        self.enc2 = ConvGNSiLU(32, 32)
        self.down2 = ConvGNSiLU(32, 32, stride=2)
        self.dec2 = ConvGNSiLU(64, 32)
        self.dec1 = ConvGNSiLU(48, 16)
        self.head = nn.Conv2d(16, 3, 1)

    def forward(self, x):
        s1 = self.enc1(x)                       # [N,16,32,32]
        s2 = self.enc2(self.down1(s1))          # [N,32,16,16]
        b = self.down2(s2)                      # [N,32,8,8]
        u2 = nn.functional.interpolate(b, scale_factor=2, mode="bilinear", align_corners=False)
        d2 = self.dec2(torch.cat([u2, s2], dim=1))   # [N,32,16,16]
        u1 = nn.functional.interpolate(d2, scale_factor=2, mode="nearest")
        d1 = self.dec1(torch.cat([u1, s1], dim=1))   # [N,16,32,32]
        return self.head(d1)


class LSTMTagger(nn.Module):
    """A sequence tagger over token ids: Embedding(100, 32), a 2-layer bidirectional LSTM
    (hidden 24, batch_first), a linear layer to 10 tags at every position."""

    def __init__(self, vocab=100, emb=32, hidden=24, tags=10):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(2 * hidden, tags)

    def forward(self, idx):
        h, _ = self.lstm(self.emb(idx))
        return self.fc(h)


class ConvBNAct(nn.Module):
    """conv (padding k//2, optional stride and groups) -> BatchNorm -> activation (a module)."""

    def __init__(self, cin, cout, k, stride, act, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """MobileNetV3's squeeze-excite: global average pool, 1x1 reduce, ReLU, 1x1 expand,
    HardSigmoid gate multiplied into the input."""

    def __init__(self, c, r=4):
        super().__init__()
        self.reduce = nn.Conv2d(c, c // r, 1)
        self.expand = nn.Conv2d(c // r, c, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.expand(torch.relu(self.reduce(s))))


class Detector(nn.Module):
    """A DB-style text detector in miniature. Backbone: a stride-2 HardSwish stem, then three
    stages (each a stride-2 depthwise-separable conv with HardSwish) giving C2 24ch at 1/4, C3
    40ch at 1/8 (with a squeeze-excite block) and C4 64ch at 1/16. Feature pyramid: 1x1
    lateral convs to 32 channels, top-down nearest x2 upsampling (Resize) added into the lower
    level, 3x3 smoothing convs; the three levels are brought to 1/4 by nearest upsampling and
    concatenated. Head: conv 3x3 -> BN -> ReLU -> ConvTranspose x2 -> BN -> ReLU ->
    ConvTranspose x2 to one channel -> Sigmoid, a probability map at the input's size."""

    def __init__(self):
        super().__init__()
        hs = nn.Hardswish
        self.stem = ConvBNAct(3, 16, 3, 2, hs())                            # 1/2
        self.s2 = nn.Sequential(ConvBNAct(16, 16, 3, 2, hs(), groups=16),   # 1/4
                                ConvBNAct(16, 24, 1, 1, hs()))
        self.s3 = nn.Sequential(ConvBNAct(24, 24, 3, 2, hs(), groups=24),   # 1/8
                                ConvBNAct(24, 40, 1, 1, hs()), SqueezeExcite(40))
        self.s4 = nn.Sequential(ConvBNAct(40, 40, 3, 2, hs(), groups=40),   # 1/16
                                ConvBNAct(40, 64, 1, 1, hs()))
        self.lat2 = nn.Conv2d(24, 32, 1)
        self.lat3 = nn.Conv2d(40, 32, 1)
        self.lat4 = nn.Conv2d(64, 32, 1)
        self.smooth2 = nn.Conv2d(32, 16, 3, 1, 1)
        self.smooth3 = nn.Conv2d(32, 16, 3, 1, 1)
        self.smooth4 = nn.Conv2d(32, 16, 3, 1, 1)
        self.head = nn.Sequential(
            nn.Conv2d(48, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.ConvTranspose2d(16, 16, 2, 2), nn.BatchNorm2d(16), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 2, 2))

    def forward(self, x):
        up = nn.functional.interpolate
        c2 = self.s2(self.stem(x))
        c3 = self.s3(c2)
        c4 = self.s4(c3)
        p4 = self.lat4(c4)
        p3 = self.lat3(c3) + up(p4, scale_factor=2, mode="nearest")
        p2 = self.lat2(c2) + up(p3, scale_factor=2, mode="nearest")
        f = torch.cat([self.smooth2(p2),
                       up(self.smooth3(p3), scale_factor=2, mode="nearest"),
                       up(self.smooth4(p4), scale_factor=4, mode="nearest")], dim=1)
        return torch.sigmoid(self.head(f))


def _randomize_gn(model, gen):
    # GroupNorm starts at weight 1, bias 0, which would hide a kernel that ignores them.
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.GroupNorm):
                mod.weight.copy_(1 + 0.1 * torch.randn(mod.weight.shape, generator=gen))
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))


def _randomize_bn(model, gen):
    # BatchNorm starts at identity statistics; random ones catch a kernel that ignores them
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.copy_(1 + 0.1 * torch.randn(mod.weight.shape, generator=gen))
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))
                mod.running_mean.copy_(0.1 * torch.randn(mod.running_mean.shape, generator=gen))
                mod.running_var.copy_(1 + 0.2 * torch.rand(mod.running_var.shape, generator=gen))


def build_resnet():
    gen = _seeded(5)
    model = ResNetMini().eval()
    _randomize_bn(model, gen)
    return model, torch.randn(2, 3, 32, 32, generator=gen)


def build_mobilenetv2():
    gen = _seeded(6)
    model = MobileNetV2Mini().eval()
    _randomize_bn(model, gen)
    return model, torch.randn(2, 3, 32, 32, generator=gen)


def build_gpt_block():
    gen = _seeded(7)
    model = GPTBlock().eval()
    return model, torch.randint(0, 100, (2, 16), generator=gen)


def build_unet():
    gen = _seeded(8)
    model = UNetMini().eval()
    _randomize_gn(model, gen)
    return model, torch.randn(2, 3, 32, 32, generator=gen)


def build_lstm_tagger():
    gen = _seeded(9)
    model = LSTMTagger().eval()
    return model, torch.randint(0, 100, (2, 12), generator=gen)


def build_detector():
    gen = _seeded(10)
    model = Detector().eval()
    # He-normal convolution weights keep the activations at unit scale through the depth (torch's
    # default init shrinks them by about 3x per layer, which would leave a flat 0.5 map)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(mod.weight, nonlinearity="relu", generator=gen)
    _randomize_bn(model, gen)
    return model, torch.randn(2, 3, 64, 64, generator=gen)


def build_encoder():
    gen = _seeded(4)
    model = TinyEncoder().eval()
    x = torch.randint(0, 100, (2, 16), generator=gen)
    return model, x


def build_lenet():
    gen = _seeded(1)
    model = LeNet().eval()
    x = torch.randn(2, 1, 28, 28, generator=gen)
    return model, x


def _build_mlp(decomposed):
    gen = _seeded(2)
    model = MLP(decomposed=False).eval()
    _randomize_norms(model, gen)
    if decomposed:
        # Same weights as `mlp`, so both models give (nearly) the same outputs.
        hand = MLP(decomposed=True).eval()
        hand.load_state_dict(model.state_dict())
        model = hand
    x = torch.randn(3, 64, generator=gen)
    return model, x


def build_overflow():
    gen = _seeded(3)
    model = Overflow(gen).eval()
    x = _uniform_input(gen, 4)
    return model, x


def overflow_calib():
    """Calibration inputs for `overflow`: other seeds than test_data_set_0, batch 8."""
    sets = []
    for k in range(OVERFLOW_CALIB_SETS):
        gen = torch.Generator().manual_seed(300 + k)
        sets.append(_uniform_input(gen, OVERFLOW_CALIB_BATCH))
    return sets


MODELS = {
    "lenet": build_lenet,
    "mlp": lambda: _build_mlp(False),
    "mlp_decomposed": lambda: _build_mlp(True),
    "overflow": build_overflow,
    "encoder": build_encoder,
    "resnet": build_resnet,
    "mobilenetv2": build_mobilenetv2,
    "gpt_block": build_gpt_block,
    "unet": build_unet,
    "lstm_tagger": build_lstm_tagger,
    "detector": build_detector,
}

# Models with calibration input sets, written to <name>/calib/set_K/input_0.pb.
CALIB = {
    "overflow": overflow_calib,
}


# --------------------------------------------------------------------------------------------
# Export and check


def export(model, x):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model,
            (x,),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            do_constant_folding=True,
            export_params=True,
        )
    return buf.getvalue()


def rel_l2(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    den = np.linalg.norm(b)
    num = np.linalg.norm(a - b)
    return float(num / den) if den > 0 else float(num)


def check_model(name, data, x, expected):
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto, full_check=True)
    if len(data) > MAX_MODEL_BYTES:
        raise SystemExit(f"{name}: model is {len(data)} bytes, over {MAX_MODEL_BYTES}")
    # the batch dimension must be symbolic and named N on input and output
    for vi in list(proto.graph.input) + list(proto.graph.output):
        d0 = vi.type.tensor_type.shape.dim[0]
        if d0.dim_param != "N":
            raise SystemExit(f"{name}: {vi.name} dim 0 is {d0}, expected symbolic N")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"input": x})
    err = rel_l2(got, expected)
    if not (err <= ORT_REL_L2_TOL):
        raise SystemExit(f"{name}: onnxruntime differs from torch, rel L2 {err:.3g}")
    # a second batch size through the symbolic dimension
    x5 = np.concatenate([x, x, x, x, x])[:5]
    (got5,) = sess.run(None, {"input": x5})
    if got5.shape[0] != 5:
        raise SystemExit(f"{name}: batch 5 gave shape {got5.shape}")
    return proto, err


def op_counts(proto):
    counts = {}
    for node in proto.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def write_tensor(path, array, name):
    t = onnx.numpy_helper.from_array(np.ascontiguousarray(array), name)
    with open(path, "wb") as f:
        f.write(t.SerializeToString())


def generate(out_dir, quiet=False, only=None):
    torch.set_num_threads(1)  # fixed reduction order for the reference outputs
    torch.use_deterministic_algorithms(True)
    rows = []
    for name, build in MODELS.items():
        if only and name not in only:
            continue
        model, x = build()
        with torch.no_grad():
            y = model(x)
        data = export(model, x)
        x_np = x.numpy()
        y_np = y.numpy()
        proto, err = check_model(name, data, x_np, y_np)

        mdir = os.path.join(out_dir, name)
        ddir = os.path.join(mdir, "test_data_set_0")
        os.makedirs(ddir, exist_ok=True)
        with open(os.path.join(mdir, "model.onnx"), "wb") as f:
            f.write(data)
        write_tensor(os.path.join(ddir, "input_0.pb"), x_np, proto.graph.input[0].name)
        write_tensor(os.path.join(ddir, "output_0.pb"), y_np, proto.graph.output[0].name)
        for k, xc in enumerate(CALIB[name]() if name in CALIB else []):
            cdir = os.path.join(mdir, "calib", f"set_{k}")
            os.makedirs(cdir, exist_ok=True)
            write_tensor(os.path.join(cdir, "input_0.pb"), xc.numpy(), proto.graph.input[0].name)

        params = sum(int(np.prod(i.dims)) for i in proto.graph.initializer)
        rows.append((name, len(data), params, len(proto.graph.node), err, op_counts(proto),
                     list(x_np.shape), list(y_np.shape),
                     hashlib.sha256(data).hexdigest()[:16]))

    if not quiet:
        print(f"torch {torch.__version__}, onnx {onnx.__version__}, "
              f"onnxruntime {ort.__version__}, opset {OPSET}")
        for name, size, params, nodes, err, ops, xs, ys, sha in rows:
            print(f"\n{name}: {size} bytes, {params} parameters, {nodes} nodes, sha256 {sha}…")
            print(f"  test_data_set_0: input {xs} -> output {ys}; "
                  f"onnxruntime vs torch rel L2 {err:.2e}")
            print("  ops: " + ", ".join(f"{k}×{v}" for k, v in ops.items()))
    return rows


# --------------------------------------------------------------------------------------------
# Determinism check


def tree_hashes(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for fn in files:
            p = os.path.join(dirpath, fn)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def check_determinism():
    with tempfile.TemporaryDirectory() as tmp:
        trees = []
        for i in range(2):
            d = os.path.join(tmp, f"run{i}")
            subprocess.run([sys.executable, os.path.abspath(__file__), "--out", d, "--quiet"],
                           check=True)
            trees.append(tree_hashes(d))
    a, b = trees
    bad = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    for k in sorted(a):
        print(f"{a[k][:16]}  {k}" + ("   DIFFERS" if k in bad else ""))
    if bad:
        print(f"NOT deterministic: {len(bad)} file(s) differ between two runs")
        return 1
    print(f"deterministic: {len(a)} files byte-identical across two runs")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=HERE, help="output folder (default: %(default)s)")
    ap.add_argument("--quiet", action="store_true", help="print nothing on success")
    ap.add_argument("--check-determinism", action="store_true",
                    help="generate twice into temporary folders and compare sha256")
    ap.add_argument("--only", action="append", metavar="NAME", choices=sorted(MODELS),
                    help="write only this model (repeatable; default: all)")
    args = ap.parse_args()
    if args.check_determinism:
        return check_determinism()
    generate(args.out, quiet=args.quiet, only=args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
