#!/usr/bin/env python3
"""Seeded calibration sets for a model: OUT/set_K/input_I.pb, K = 0..SETS-1, each input drawn
with the model's own shape (symbolic dims set to --batch). Float inputs are standard normal;
integer inputs index the first Gather table they feed (token ids), else 0..9.

    python3 tools/bench/make_calib.py models/resnet/model.onnx /tmp/calib/resnet --sets 4
"""
import argparse
import os

import numpy as np
import onnx
from onnx import numpy_helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--sets", type=int, default=4)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    m = onnx.load(a.model)
    inits = {t.name: t for t in m.graph.initializer}
    rng = np.random.default_rng(a.seed)
    for k in range(a.sets):
        d = os.path.join(a.out, "set_%d" % k)
        os.makedirs(d, exist_ok=True)
        for i, inp in enumerate(x for x in m.graph.input if x.name not in inits):
            tt = inp.type.tensor_type
            shape = [dim.dim_value if dim.dim_value > 0 else a.batch for dim in tt.shape.dim]
            dt = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
            if np.issubdtype(dt, np.floating):
                x = rng.standard_normal(shape).astype(dt)
            else:
                hi = 10
                for n in m.graph.node:
                    if n.op_type == "Gather" and len(n.input) > 1 and n.input[1] == inp.name and n.input[0] in inits:
                        hi = inits[n.input[0]].dims[0]
                        break
                x = rng.integers(0, hi, shape).astype(dt)
            t = numpy_helper.from_array(x, inp.name)
            with open(os.path.join(d, "input_%d.pb" % i), "wb") as f:
                f.write(t.SerializeToString())


if __name__ == "__main__":
    main()
