#!/usr/bin/env python3
"""Writes tests/data/autocast/tiny_consts/model.onnx: constants at the edges of the FP16 range
(tiny nonzero values that nearest-even would flush to zero, values beyond 65504) feeding
16-bit ops, for the conversion test of tests/test_autocast.c. Deterministic."""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "data", "tiny_consts")
os.makedirs(out, exist_ok=True)
w = np.array([[1e-9, -3e-10, 0.5, 1.0], [1e5, -2e6, 0.25, 2.0], [3e-8, 1.0, -1.0, 0.125],
              [-1e-12, 4.0, 8.0, 1e-30]], dtype=np.float32)
b = np.array([1e-12, -1e-9, 7e4, 1.0], dtype=np.float32)
g = helper.make_graph(
    [helper.make_node("MatMul", ["X", "W"], ["H"], name="mm"),
     helper.make_node("Add", ["H", "B"], ["Y"], name="add")],
    "tiny_consts",
    [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 4])],
    [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 4])],
    [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="amprt-tests")
m.ir_version = 8
onnx.checker.check_model(m, full_check=True)
onnx.save(m, os.path.join(out, "model.onnx"))
