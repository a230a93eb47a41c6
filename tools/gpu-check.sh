#!/usr/bin/env bash
# One prepared run of amprt's CUDA checks on a lent GPU machine (docs/gpu-log.md records each).
#
#   tools/gpu-check.sh --build    here: build with nvcc (build-gpu/) and pack the bundle into
#                                 gpu-bundle/bundle.tar.xz (programs, the CUDA module, the test runners,
#                                 the libraries they need that the GPU machine lacks, LeNet and
#                                 a slice of Fashion-MNIST), small enough to travel
#   tools/gpu-check.sh --run      there: every stage, a deadline, a summary; files under $OUT
#   tools/gpu-check.sh --dry-run  here: the same stages; with no GPU each says SKIP (CI runs it)
#
# The GPU machine has no package registry, protobuf-c, OpenBLAS or Criterion, so nothing is
# configured there: the bundle carries what the programs need beyond the system's libraries, and
# the CUDA libraries come from the machine's own Python environment (its nvidia-* packages).
# Stages: 1 environment (nvidia-smi, library versions, the device's cuDNN property JSON);
# 2 parity of each op family against the CPU (one process each: a sticky CUDA error kills a
# context); 3 compute-sanitizer memcheck, racecheck and synccheck on small shapes; 4 LeNet AMP
# training on CUDA beside the CPU, CUDA graphs on and off; 5 the other models on CUDA beside the
# CPU; 6 benchmarks beside PyTorch on the same card. Each stage has its own time limit and skips
# itself when the global deadline is too near; no set -e: a failed stage does not stop the run.
# The summary is written as the run goes and printed last; at most 8 files come back.
set -u
here="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:---dry-run}"
packed="$here/gpu-bundle"              # what travels: bundle.tar.xz
bundle="$here/build-gpu/bundle"        # built here, unpacked there
OUT="${OUT:-$here/gpu-check-out}"
deadline_s="${AMP_GPU_DEADLINE:-450}" # the whole run, under the 8 minutes GPU.md allows
start=$(date +%s)

build_bundle() {
  set -e
  cmake -S "$here" -B "$here/build-gpu" -DCMAKE_BUILD_TYPE=Release -DAMP_CUDA=ON -DAMP_CUDA_EMU=OFF >/dev/null
  cmake --build "$here/build-gpu" -j"$(nproc)" --target amprt_cli amprt_cuda \
    $(cd "$here/build-gpu" && make help 2>/dev/null | sed -n 's/^\.\.\. \(gpu_test_[a-z0-9_]*\)$/\1/p')
  rm -rf "$bundle"
  mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/data" "$bundle/models"
  cp "$here/build-gpu/amprt" "$here/build-gpu/libamprt_cuda.so" "$bundle/bin/"
  cp "$here"/build-gpu/gpu_test_* "$bundle/bin/" 2>/dev/null || true
  # the shared libraries the programs need beyond glibc's and the CUDA ones the machine has
  for f in "$bundle"/bin/*; do
    ldd "$f" | awk '/=> \//{print $3}'
  done | sort -u | grep -v -E '/(libc|libm|libdl|libpthread|librt|ld-linux|libstdc\+\+|libgcc_s)[.-]' |
    grep -v -E 'libcublas|libcudnn|libcudart|libcuda\.' | while read -r lib; do cp -L "$lib" "$bundle/lib/"; done
  cp -r "$here/models/lenet" "$bundle/models/"
  # a slice of Fashion-MNIST: 12800 training images, 2000 test images (IDX headers rewritten)
  python3 - "$bundle/data" <<'EOF'
import gzip, struct, sys
src = "/usr/share/datasets/fashion-mnist"
for name, n in (("train", 12800), ("t10k", 2000)):
    with gzip.open(f"{src}/{name}-images-idx3-ubyte.gz") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        body = f.read(n * rows * cols)
    with gzip.open(f"{sys.argv[1]}/{name}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", magic, n, rows, cols) + body)
    with gzip.open(f"{src}/{name}-labels-idx1-ubyte.gz") as f:
        magic, count = struct.unpack(">II", f.read(8))
        body = f.read(n)
    with gzip.open(f"{sys.argv[1]}/{name}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", magic, n) + body)
EOF
  cp "$here/tools/bench/gpu_bench.py" "$here/backends/cuda/emu/h100-device-properties.json" "$bundle/"
  # what travels is one xz archive (85 MiB of programs and libraries become about 18)
  mkdir -p "$packed"
  rm -f "$packed/bundle.tar.xz"
  tar -C "$bundle" -cf - . | xz -T0 -6 >"$packed/bundle.tar.xz.tmp" && mv "$packed/bundle.tar.xz.tmp" "$packed/bundle.tar.xz"
  echo "$(du -sh "$bundle" | cut -f1) packed into $(du -sh "$packed/bundle.tar.xz" | cut -f1)"
  echo "bundle ready: carry gpu-bundle (it is git-ignored)"
}

if [ "$mode" = "--build" ]; then
  build_bundle
  exit $?
fi
if [ "$mode" != "--run" ] && [ "$mode" != "--dry-run" ]; then
  echo "usage: tools/gpu-check.sh --build | --run | --dry-run" >&2
  exit 2
fi

mkdir -p "$OUT/logs"
# a carried bundle is unpacked into a scratch folder (the dry run checks the one just built)
if [ -f "$packed/bundle.tar.xz" ]; then
  bundle="${TMPDIR:-/tmp}/amprt-gpu-bundle.$$"
  rm -rf "$bundle"
  mkdir -p "$bundle"
  trap 'rm -rf "$bundle"' EXIT
  xz -dc "$packed/bundle.tar.xz" | tar -C "$bundle" -xf - || echo "FAIL bundle: cannot unpack $packed/bundle.tar.xz"
fi
summary="$OUT/summary.txt"
parity="$OUT/parity.txt"
: >"$summary"
: >"$parity"
say() { echo "$*" | tee -a "$summary"; }
left() { echo $((deadline_s - ($(date +%s) - start))); }

have_gpu=0
if [ "$mode" = "--run" ] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  have_gpu=1
fi
bin="$bundle/bin"

# stage NAME LIMIT_S COMMAND...: runs COMMAND with a time limit, logs it, records the result
stage() {
  local name="$1" limit="$2"
  shift 2
  if [ "$have_gpu" != 1 ]; then
    say "SKIP $name (no GPU)"
    return 0
  fi
  if [ "$(left)" -lt "$((limit + 5))" ]; then
    say "SKIP $name (deadline: $(left) s left, needs $limit)"
    return 0
  fi
  local t0 rc
  t0=$(date +%s)
  timeout -k 5 "$limit" "$@" >"$OUT/logs/$name.log" 2>&1
  rc=$?
  if [ $rc = 0 ]; then
    say "PASS $name ($(($(date +%s) - t0)) s)"
  elif [ $rc = 77 ]; then
    say "SKIP $name (the program found no device)"
  elif [ $rc = 124 ] || [ $rc = 137 ]; then
    say "FAIL $name (over its limit of $limit s)"
  else
    say "FAIL $name (exit $rc)"
  fi
  grep -E '^(PASS|FAIL|SKIP) ' "$OUT/logs/$name.log" | sed "s/^/$name: /" >>"$parity" || true
  return 0
}

say "amprt gpu-check $(cd "$here" && git rev-parse --short HEAD 2>/dev/null || echo '?') $mode $(date -u +%FT%TZ)"

# ---- the bundle: everything the stages call, and every library its programs need -----------
# (a dry run here checks a bundle just built, so a GPU lease is never spent on a missing file)
check_bundle() {
  local missing=0 f
  for f in bin/amprt bin/libamprt_cuda.so bin/gpu_test_device bin/gpu_test_kernels bin/gpu_test_reduce_optim \
    bin/gpu_test_lenet models/lenet/model.onnx data/train-images-idx3-ubyte.gz data/t10k-labels-idx1-ubyte.gz \
    gpu_bench.py h100-device-properties.json; do
    if [ ! -e "$bundle/$f" ]; then
      echo "missing: $f"
      missing=1
    fi
  done
  # libraries not found beyond the CUDA ones the GPU machine brings
  for f in "$bundle"/bin/*; do
    LD_LIBRARY_PATH="$bundle/lib" ldd "$f" 2>/dev/null | grep 'not found' |
      grep -v -E 'libcublas|libcudnn|libcudart|libcuda\.|libnvrtc' | sed "s|^|$(basename "$f"): |"
  done | grep . && missing=1
  return $missing
}
if [ -d "$bundle/bin" ]; then
  if check_bundle >"$OUT/bundle.txt" 2>&1; then
    say "PASS bundle ($(du -sm "$bundle" | cut -f1) MiB)"
  else
    say "FAIL bundle: $(tr '\n' ' ' <"$OUT/bundle.txt")"
    have_gpu=0
  fi
elif [ "$mode" = "--dry-run" ]; then
  say "SKIP bundle (none built: tools/gpu-check.sh --build)"
fi

# ---- the machine's CUDA libraries: its Python environment's nvidia-* packages ----------------
if [ "$have_gpu" = 1 ]; then
  if [ ! -d "$bundle/bin" ]; then
    say "FAIL bundle (gpu-bundle/bundle.tar.xz was not carried: run tools/gpu-check.sh --build here first)"
    have_gpu=0
  fi
  if [ "$have_gpu" = 1 ]; then
    libs="$bundle/lib"
    for d in $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, x, "lib") for p in nvidia.__path__ for x in os.listdir(p)))' 2>/dev/null); do
      [ -d "$d" ] && libs="$libs:$d"
    done
    export LD_LIBRARY_PATH="$libs:${LD_LIBRARY_PATH:-}"
    export AMPRT_CUDA_MODULE="$bin/libamprt_cuda.so"
  fi
fi

# ---- 1. environment --------------------------------------------------------------------------
env_stage() {
  nvidia-smi
  echo "--- libraries found"
  for l in libcudart.so libcublasLt.so libcudnn.so libcudnn_graph.so libnccl.so; do
    echo "$l: $(echo "$LD_LIBRARY_PATH" | tr ':' '\n' | while read -r d; do ls "$d"/$l* 2>/dev/null; done | head -3 | tr '\n' ' ')"
  done
  # the real card's description as cuDNN builds it (checked against cudaGetDeviceProperties),
  # and how it differs from the one the emulator plans from
  AMP_DEVICE_JSON="$OUT/device-properties.json" "$bin/gpu_test_device" || return 1
  python3 - "$OUT/device-properties.json" "$bundle/h100-device-properties.json" <<'EOF2'
import json, sys
real, ours = (json.load(open(p)) for p in sys.argv[1:3])
for k in sorted(set(real) | set(ours)):
    if real.get(k) != ours.get(k):
        print(f"device property {k}: this card {real.get(k)}, committed {ours.get(k)}")
EOF2
}
stage environment 60 env_stage

# ---- 2. parity per op family, one process each ----------------------------------------------
for t in "$bin"/gpu_test_*; do
  [ -x "$t" ] || continue
  name="$(basename "$t")"
  [ "$name" = gpu_test_device ] && continue
  stage "parity_${name#gpu_test_}" 90 "$t"
done
[ "$have_gpu" = 1 ] || say "SKIP parity (no GPU)"

# ---- 3. compute-sanitizer on small shapes ----------------------------------------------------
if [ "$have_gpu" = 1 ] && command -v compute-sanitizer >/dev/null 2>&1; then
  # (case filters: gpu_test_X NAME runs the cases whose names contain NAME; the planted-bug
  # cases are left out, since they break rules on purpose)
  stage sanitizer_memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 1 "$bin/gpu_test_kernels" sce
  stage sanitizer_memcheck_pool 90 compute-sanitizer --tool memcheck --error-exitcode 1 "$bin/gpu_test_kernels" max_pool
  stage sanitizer_racecheck 90 compute-sanitizer --tool racecheck --error-exitcode 1 "$bin/gpu_test_reduce_optim" reduce_channels
  stage sanitizer_synccheck 60 compute-sanitizer --tool synccheck --error-exitcode 1 "$bin/gpu_test_reduce_optim" reduce_orders
else
  say "SKIP sanitizer (no GPU or no compute-sanitizer)"
fi

# ---- 4. LeNet AMP training on CUDA beside the CPU, graphs on and off -------------------------
lenet() {
  local d="$bundle/data" m="$bundle/models/lenet/model.onnx" rc=0
  for amp in fp16 bf16 off; do
    "$bin/amprt" train "$m" --data "$d" --epochs 1 --max-steps 300 --limit-test 2000 --amp "$amp" \
      --momentum 0.9 --backend cpu --threads 16 --out "$OUT/logs/lenet_cpu_$amp.onnx" \
      --json-log "$OUT/logs/lenet_cpu_$amp.jsonl" --progress plain || rc=1
    for graphs in 1 0; do
      AMPRT_CUDA_GRAPHS=$graphs "$bin/amprt" train "$m" --data "$d" --epochs 1 --max-steps 300 --limit-test 2000 \
        --amp "$amp" --momentum 0.9 --backend cuda --out "$OUT/logs/lenet_cuda_${amp}_g$graphs.onnx" \
        --json-log "$OUT/logs/lenet_cuda_${amp}_g$graphs.jsonl" --progress plain || rc=1
    done
    if cmp -s "$OUT/logs/lenet_cuda_${amp}_g1.onnx" "$OUT/logs/lenet_cuda_${amp}_g0.onnx"; then
      echo "PASS lenet_${amp}_graphs_bit_identical"
    else
      echo "FAIL lenet_${amp}_graphs_bit_identical"
      rc=1
    fi
  done
  return $rc
}
stage lenet_training 180 lenet

# ---- 5. the other models on CUDA beside the CPU ----------------------------------------------
models() {
  local rc=0
  for m in "$here"/models/*/model.onnx; do
    local name
    name="$(basename "$(dirname "$m")")"
    if "$bin/amprt" run "$m" --backend cuda --output-dir "$OUT/logs/run_$name" >"$OUT/logs/run_$name.txt" 2>&1; then
      echo "PASS run_$name"
    else
      echo "SKIP run_$name: $(tail -1 "$OUT/logs/run_$name.txt")"
    fi
  done
  return $rc
}
stage models 60 models

# ---- 6. benchmarks beside PyTorch on the same card -------------------------------------------
bench() {
  # amprt on CUDA beside PyTorch eager and torch.compile on this card: one table (gpu_bench.py)
  python3 "$bundle/gpu_bench.py" --amprt "$bin/amprt" --lenet "$bundle/models/lenet/model.onnx" \
    --workdir "$OUT/logs/bench" --json "$OUT/bench.json"
}
stage benchmarks 300 bench

# ---- the log archive and the summary ----------------------------------------------------------
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs 2>/dev/null && rm -rf "$OUT/logs"
say "done in $(($(date +%s) - start)) s"
echo "=== summary"
cat "$summary"
exit 0
