#!/usr/bin/env python3
"""Writes tests/data/bn_net, dropout_net, loss_net and linear_loss (model.onnx each).

bn_net: Conv -> BatchNormalization -> Relu -> Flatten -> Gemm,
exported by torch in eval mode at opset 17 (BatchNormalization with training_mode 0), for the
trainer's batch-statistics test in tests/test_trainer.c. Fixed seed; deterministic."""
import io
import os
import warnings

import torch
import torch.nn as nn

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "data", "bn_net")
os.makedirs(out, exist_ok=True)
torch.manual_seed(7)
model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()
with torch.no_grad():
    # non-trivial running statistics, so a kernel ignoring them is caught
    model[1].running_mean.copy_(0.1 * torch.randn(4))
    model[1].running_var.copy_(1.0 + 0.2 * torch.rand(4))
buf = io.BytesIO()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torch.onnx.export(model, (torch.randn(2, 1, 8, 8),), buf, dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=False)
with open(os.path.join(out, "model.onnx"), "wb") as f:
    f.write(buf.getvalue())

# dropout_net: Gemm -> Relu -> Dropout(ratio 0.3, no training_mode input: inference as
# exported) -> Gemm, written with onnx.helper (torch drops Dropout from eval exports)
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper



def write(g, name):
    """Save graph g as tests/data/NAME/model.onnx (opset 17, IR 8), checked by onnx.checker."""
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="amprt-tests")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    d = os.path.join(here, "..", "data", name)
    os.makedirs(d, exist_ok=True)
    onnx.save(m, os.path.join(d, "model.onnx"))


rng = np.random.default_rng(8)
w1 = (rng.standard_normal((16, 32)) * 0.3).astype(np.float32)
w2 = (rng.standard_normal((32, 10)) * 0.3).astype(np.float32)
g = helper.make_graph(
    [helper.make_node("MatMul", ["input", "w1"], ["h"], name="fc1"),
     helper.make_node("Relu", ["h"], ["r"], name="relu"),
     helper.make_node("Dropout", ["r", "ratio"], ["d"], name="drop"),
     helper.make_node("MatMul", ["d", "w2"], ["logits"], name="fc2")],
    "dropout_net",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 16])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
    [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
     numpy_helper.from_array(np.array(0.3, dtype=np.float32), "ratio")])
write(g, "dropout_net")

# loss_net: a model that computes its own loss: MatMul -> SoftmaxCrossEntropyLoss(labels), the
# loss as the graph output (the trainer's AMP_LOSS_MODEL)
w = (rng.standard_normal((16, 10)) * 0.3).astype(np.float32)
g = helper.make_graph(
    [helper.make_node("MatMul", ["input", "w"], ["scores"], name="fc"),
     helper.make_node("SoftmaxCrossEntropyLoss", ["scores", "target"], ["loss"], name="sce", reduction="mean")],
    "loss_net",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 16]),
     helper.make_tensor_value_info("target", TensorProto.INT64, ["N"])],
    [helper.make_tensor_value_info("loss", TensorProto.FLOAT, [])],
    [numpy_helper.from_array(w, "w")])
write(g, "loss_net")

# linear_loss: loss = sum(x * w) over four elements, so the gradient of w is the input x itself
# and optimizer steps can be computed by hand (tests/test_trainer.c, options whose 0 is valid)
g = helper.make_graph(
    [helper.make_node("Mul", ["x", "w"], ["p"], name="mul"),
     helper.make_node("ReduceSum", ["p"], ["loss"], name="sum", keepdims=0)],
    "linear_loss",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
    [helper.make_tensor_value_info("loss", TensorProto.FLOAT, [])],
    [numpy_helper.from_array(np.array([0.5, -0.25, 1.0, -2.0], dtype=np.float32), "w")])
write(g, "linear_loss")
