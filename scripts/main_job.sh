#!/usr/bin/env bash
# The main job: build amprt, train the seed's LeNet on Fashion-MNIST in mixed precision (FP16
# autocast, FP32 master weights, dynamic loss scaling), save it, convert the trained model to
# mixed-precision ONNX and run both on the test set. Outputs land in out/.
# The backend is the default, auto: CUDA when a device is present and every node has a kernel
# there (LeNet's do), else the CPU; each command says on stderr which one it took.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
data=/usr/share/datasets/fashion-mnist
epochs="${AMP_EPOCHS:-3}"
mkdir -p out
./build/amprt train models/lenet/model.onnx --data "$data" --epochs "$epochs" --batch 64 --precision fp16 \
  --optimizer sgd --lr 0.01 --momentum 0.9 --schedule cosine --total-steps $((epochs * 937)) \
  --out out/lenet_trained.onnx --plot out/lenet_fp16.svg --json-log out/lenet_fp16.jsonl \
  --checkpoint out/lenet.ckpt
./build/amprt convert out/lenet_trained.onnx out/lenet_trained_fp16.onnx --precision fp16
./build/amprt inspect out/lenet_trained_fp16.onnx --dot out/lenet_trained_fp16.dot
./build/amprt evaluate out/lenet_trained.onnx --data "$data"
./build/amprt evaluate out/lenet_trained_fp16.onnx --data "$data"
./build/amprt bench out/lenet_trained_fp16.onnx --batch 64 --threads "$(nproc)"
