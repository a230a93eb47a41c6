#!/usr/bin/env bash
# The main job: build amprt and run the seed's LeNet (trained LeNet and mixed precision come
# with the training and autocast work).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
backend=cpu
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then backend=auto; fi
./build/amprt inspect models/lenet/model.onnx
./build/amprt run models/lenet/model.onnx --backend "$backend" \
  --input input=models/lenet/test_data_set_0/input_0.pb
./build/amprt check models/lenet models/mlp models/mlp_decomposed
./build/amprt bench models/lenet/model.onnx --batch 64 --threads "$(nproc)"
