#!/usr/bin/env bash
# Install, build and run every test: unit tests, conformance, bad input, peers, and the same
# suite under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
(cd build && ctest --output-on-failure -j2)
python3 tests/peer/test_peer.py build/amprt
python3 tests/peer/test_autocast_peer.py --amprt build/amprt
python3 tests/peer/test_train_peer.py --amprt build/amprt
if [ "${AMP_SKIP_SANITIZERS:-0}" != 1 ]; then
  scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DAMP_SANITIZE=ON -DAMP_CUDA=OFF
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2)
fi
echo "all tests passed"
