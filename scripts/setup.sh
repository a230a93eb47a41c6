#!/usr/bin/env bash
# Installs everything amprt needs to build, test and benchmark (idempotent).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
pkgs="build-essential cmake pkg-config python3 python3-pip protobuf-c-compiler libprotobuf-c-dev \
libcriterion-dev libonnx-dev libonnx-testdata dataset-fashion-mnist libopenblas-dev libdnnl-dev zlib1g-dev valgrind clang"
missing=""
for p in $pkgs; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
# Python peers for checks and benchmarks (onnx.checker, onnxruntime)
if ! python3 -c "import onnx, onnxruntime, numpy" >/dev/null 2>&1; then
  python3 -m pip install -q onnx onnxruntime numpy || \
    python3 -m pip install -q --break-system-packages onnx onnxruntime numpy
fi
