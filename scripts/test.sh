#!/usr/bin/env bash
# Install, build and run every test: unit tests, conformance, bad input, peers, and the same
# suite under AddressSanitizer + UndefinedBehaviorSanitizer, the concurrency check under
# ThreadSanitizer, valgrind over the command line, and a bounded run of each fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
(cd build && ctest --output-on-failure -j2)
# the README's first command, as written, for one epoch
AMP_EPOCHS=1 scripts/main_job.sh
python3 tests/peer/test_op_table_peer.py
python3 tests/peer/test_peer.py build/amprt
python3 tests/peer/test_autocast_peer.py --amprt build/amprt
python3 tests/peer/test_train_peer.py --amprt build/amprt
# the same peer checks with every run on the checking backend (poisoned outputs, workspaces and
# dead arena bytes): training, resume, export and the converted models (node tests: conformance_node_check)
python3 tests/peer/test_train_peer.py --amprt build/amprt --backend cpu-check
python3 tests/peer/test_autocast_peer.py --amprt build/amprt --backend cpu-check --no-node-tests
scripts/valgrind.sh build
if [ "${AMP_SKIP_SANITIZERS:-0}" != 1 ]; then
  scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DAMP_SANITIZE=ON -DAMP_CUDA=OFF
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2)
fi
if [ "${AMP_SKIP_SANITIZERS:-0}" != 1 ]; then
  # ThreadSanitizer: one model shared by threads, each with its own session
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAMP_TSAN=ON -DAMP_CUDA=OFF >/dev/null
  cmake --build build-tsan -j"$(nproc)" --target tsan_shared_model
  (cd build-tsan && ctest --output-on-failure -R '^tsan_')
fi
if [ "${AMP_SKIP_FUZZ:-0}" != 1 ]; then
  # libFuzzer targets (model bytes, TensorProto files, IDX files), a bounded run each
  tools/fuzz.sh "${AMP_FUZZ_SECONDS:-30}"
fi
echo "all tests passed"
