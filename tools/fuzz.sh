#!/usr/bin/env bash
# Build the libFuzzer targets (clang) and run each for SECONDS with seed corpora from models/,
# the ONNX node tests and small IDX files. Findings (crash-*, leak-*, timeout-*) land in
# build-fuzz/findings/<target>/ and make the script fail. fuzz_model runs each model that loads
# and plans once on small random inputs and mutates with the ONNX dictionary tests/fuzz/onnx.dict.
# Usage: tools/fuzz.sh [SECONDS=30] [JOBS_PER_TARGET=1]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
b=build-fuzz
CC=clang cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAMP_FUZZ=ON -DAMP_TESTS=OFF -DAMP_CUDA=OFF >/dev/null
cmake --build "$b" -j"$(nproc)" --target fuzz_model fuzz_tensor fuzz_idx >/dev/null
node=/usr/share/libonnx-testdata/data/node
mkdir -p "$b/seeds/model" "$b/seeds/tensor" "$b/seeds/idx"
for d in "$node"/*/; do
  n=$(basename "$d")
  cp "$d/model.onnx" "$b/seeds/model/$n.onnx" 2>/dev/null || true
  cp "$d/test_data_set_0/input_0.pb" "$b/seeds/tensor/$n.pb" 2>/dev/null || true
done
cp models/mlp/model.onnx "$b/seeds/model/mlp.onnx"
cp models/mlp_decomposed/model.onnx "$b/seeds/model/mlp_decomposed.onnx"
python3 - "$b/seeds/idx" <<'PY'
import gzip, os, struct, sys
out = sys.argv[1]
def idx(kind, dims, payload):
    return bytes([0, 0, kind, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload
files = {
    "labels.idx": idx(0x08, [4], bytes([1, 0, 9, 3])),
    "images.idx": idx(0x08, [2, 2, 3], bytes(range(12))),
    "i16.idx": idx(0x0B, [3], struct.pack(">3h", -2, 7, 300)),
    "f32.idx": idx(0x0D, [2], struct.pack(">2f", 1.5, -2.0)),
}
for name, data in files.items():
    open(os.path.join(out, name), "wb").write(data)
    open(os.path.join(out, name + ".gz"), "wb").write(gzip.compress(data, mtime=0))
PY
# an UndefinedBehaviorSanitizer report is a finding too: stop and write the input
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
fail=0
for t in model tensor idx; do
  mkdir -p "$b/corpus/$t" "$b/findings/$t"
  log="$b/fuzz_$t.log"
  dict=()
  if [ "$t" = model ]; then dict=(-dict=tests/fuzz/onnx.dict); fi
  set +e
  "$b/fuzz_$t" "$b/corpus/$t" "$b/seeds/$t" "${dict[@]}" -max_total_time="$secs" -max_len=131072 -timeout=20 \
    -rss_limit_mb=2048 -artifact_prefix="$b/findings/$t/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  echo "fuzz_$t: ${secs}s, $execs executions ($rate/s, $((rate * 3600)) per hour), exit $rc"
  if [ "$rc" != 0 ] || ls "$b/findings/$t"/* >/dev/null 2>&1; then
    echo "fuzz_$t: findings in $b/findings/$t (log $log):"; tail -n 30 "$log"; fail=1
  fi
done
exit $fail
