#!/usr/bin/env bash
# The one prepared GPU check (see docs/gpu-log.md): build with CUDA for sm_90, run the test suite
# (GPU tests print SKIP where no device exists), check the CUDA probe, then record PyTorch AMP
# baselines. Logs go to $OUT when set. Finishes well under 8 minutes on one H100/H200.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/amprt-gpu-check}"
mkdir -p "$out"
summary="$out/summary.txt"
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

note "date: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
note "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none)"

if cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DAMP_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DAMP_WERROR=ON >"$out/configure.log" 2>&1 &&
   cmake --build build-gpu -j"$(nproc)" >"$out/build.log" 2>&1; then
  note "build (CUDA, sm_90): ok"
else
  note "build (CUDA, sm_90): FAILED (see build.log)"
  tail -30 "$out/build.log"
fi
if [ -x build-gpu/amprt ]; then
  (cd build-gpu && ctest -j4 --output-on-failure >"$out/ctest.log" 2>&1)
  note "ctest: $(grep -E 'tests passed|tests failed' "$out/ctest.log" | tail -1)"
  ./build-gpu/amprt run models/lenet/model.onnx --backend cuda \
    --input input=models/lenet/test_data_set_0/input_0.pb >"$out/cuda_probe.log" 2>&1
  note "amprt --backend cuda: $(tail -1 "$out/cuda_probe.log")"
  ./build-gpu/amprt bench models/lenet/model.onnx --batch 64 --threads "$(nproc)" --json >"$out/cpu_bench.json" 2>&1
  note "cpu bench lenet b64: $(cat "$out/cpu_bench.json")"
fi
if python3 -c "import torch" >/dev/null 2>&1; then
  timeout 300 python3 tools/bench/torch_amp_baseline.py >"$out/torch_baseline.log" 2>&1
  note "pytorch AMP baselines:"
  grep -E '^\||^device' "$out/torch_baseline.log" | tee -a "$summary"
else
  note "pytorch: not installed, no baselines"
fi
echo "--- summary ($summary)"
cat "$summary"
