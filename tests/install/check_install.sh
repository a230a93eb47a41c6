#!/usr/bin/env bash
# Installs amprt into a temporary prefix and builds examples/run_model.c against it twice:
# with find_package(amprt) and with pkg-config. Usage: check_install.sh BUILD_DIR
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "$1" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$root/examples" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/cm/run_model" "$root/models/mlp/model.onnx"
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib/x86_64-linux-gnu/pkgconfig"
cc -std=c11 -Wall -Werror "$root/examples/run_model.c" -o "$tmp/pc_run_model" $(pkg-config --cflags --libs amprt)
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/pc_run_model" "$root/models/lenet/model.onnx"
echo "install check: find_package and pkg-config builds ran"
