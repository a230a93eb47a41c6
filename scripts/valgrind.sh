#!/usr/bin/env bash
# valgrind memcheck over the command line's main paths (load, check, convert, train a few steps,
# evaluate): zero errors and zero definite or indirect leaks, or the script fails.
# Usage: scripts/valgrind.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
b="${1:-build}"
vg=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
data=/usr/share/datasets/fashion-mnist
# "auto" (the default backend) would dlopen the CUDA module, and the CUDA runtime linked into it
# is not valgrind-clean (nor is ld.so's loading of it, by valgrind's own account); a module path
# that does not exist sends auto down its CPU fallback, which is amprt's code and is checked
export AMPRT_CUDA_MODULE="$tmp/no-cuda-module.so"
# oneDNN's JIT kernels use masked vector loads that valgrind models as full-width reads (32-byte
# "invalid reads" just past oneDNN's own buffers); the reference kernels are checked here, and
# amprt's oneDNN glue (backends/cpu/dnnl.c) under AddressSanitizer, with oneDNN on
export AMPRT_CPU_DNNL=0
"${vg[@]}" "$b/amprt" check models/lenet models/mlp_decomposed models/encoder tests/data/autocast/softmax_mask >/dev/null
"${vg[@]}" "$b/amprt" check models/lenet models/encoder tests/data/autocast/layernorm --autocast fp16 >/dev/null
# one node test of each newer op family, and the recurrent and U-Net models
node=/usr/share/libonnx-testdata/data/node
"${vg[@]}" "$b/amprt" check models/lstm_tagger "$node/test_resize_upsample_scales_cubic" "$node/test_einsum_batch_diagonal" \
  "$node/test_lstm_with_peepholes" "$node/test_gru_seq_length" "$node/test_gridsample_bicubic" "$node/test_roialign_aligned_true" \
  "$node/test_top_k" "$node/test_scatternd_add" "$node/test_qlinearconv" "$node/test_lrn" "$node/test_det_nd" \
  "$node/test_adam" >/dev/null
"${vg[@]}" "$b/amprt" convert models/mlp_decomposed/model.onnx "$tmp/m16.onnx" --precision fp16 >/dev/null
"${vg[@]}" "$b/amprt" convert models/overflow/model.onnx "$tmp/o16.onnx" --calibrate models/overflow/calib >/dev/null
"${vg[@]}" "$b/amprt" train models/lenet/model.onnx --data "$data" --epochs 1 --max-steps 3 --batch 16 \
  --limit-test 64 --amp fp16 --optimizer adamw --out "$tmp/t.onnx" --checkpoint "$tmp/ck" --progress plain \
  --threads 1 >/dev/null 2>&1
"${vg[@]}" "$b/amprt" evaluate "$tmp/t.onnx" --data "$data" --limit-test 64 --threads 1 >/dev/null
echo "valgrind: no errors, no leaks"
