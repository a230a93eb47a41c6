#!/usr/bin/env bash
# Installs amprt into a temporary prefix and builds examples/run_model.c against it four ways:
# find_package(amprt) with the shared and the static target, pkg-config plain and --static; runs
# each, and checks that neither the library nor the tool needs a CUDA library (the CUDA backend
# is a module opened at run time). Usage: check_install.sh BUILD_DIR
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "$1" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir="$tmp/prefix/lib"
[ -d "$libdir/x86_64-linux-gnu" ] && libdir="$libdir/x86_64-linux-gnu"
cmake -S "$root/examples" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/cm/run_model" "$root/models/mlp/model.onnx"
"$tmp/cm/run_model_static" "$root/models/mlp/model.onnx"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c11 -Wall -Werror "$root/examples/run_model.c" -o "$tmp/pc_run_model" $(pkg-config --cflags --libs amprt)
LD_LIBRARY_PATH="$libdir" "$tmp/pc_run_model" "$root/models/lenet/model.onnx"
cc -std=c11 -Wall -Werror -static-libgcc "$root/examples/run_model.c" -o "$tmp/pc_run_model_static" \
  $(pkg-config --cflags amprt) "$libdir/libamprt.a" $(pkg-config --static --libs-only-l --libs-only-L amprt | sed 's/-lamprt//')
"$tmp/pc_run_model_static" "$root/models/lenet/model.onnx"
# the static library exports the public API alone: every global symbol it defines is declared
# AMP_API in the header (no amp_* internals, no onnx__* protobuf code), and the .pc names no
# include folder but amprt's and no library twice
api="$(grep -oE 'AMP_API [^(]*\b(amp_[a-z0-9_]+)\(' "$root/include/amprt/amprt.h" | grep -oE 'amp_[a-z0-9_]+\($' | tr -d '(' | sort -u)"
extra="$(nm -g --defined-only "$libdir/libamprt.a" | awk 'NF == 3 && $2 ~ /[TDBR]/ {print $3}' | sort -u | comm -23 - <(echo "$api"))"
if [ -n "$extra" ]; then
  echo "install check: libamprt.a exports symbols outside the public API: $(echo "$extra" | head -5 | tr '\n' ' ')" >&2
  exit 1
fi
[ "$(nm -g --defined-only "$libdir/libamprt.a" | awk 'NF == 3 && $2 == "T"' | wc -l)" -ge 50 ] || {
  echo "install check: libamprt.a exports too few functions" >&2; exit 1; }
if pkg-config --cflags amprt | grep -q openblas; then
  echo "install check: the .pc passes OpenBLAS's include folder: $(pkg-config --cflags amprt)" >&2
  exit 1
fi
dups="$(pkg-config --static --libs amprt | tr ' ' '\n' | grep '^-l' | sort | uniq -d)"
[ -z "$dups" ] || { echo "install check: the .pc lists $dups twice" >&2; exit 1; }
for bin in "$libdir"/libamprt.so "$tmp/prefix/bin/amprt" "$tmp/cm/run_model_static"; do
  if ldd "$bin" | grep -E 'libcuda|libcudart|libcublas|libcudnn'; then
    echo "install check: $bin needs a CUDA library" >&2
    exit 1
  fi
done
echo "install check: find_package (shared, static) and pkg-config (plain, --static) builds ran; no CUDA dependency; libamprt.a exports the public API alone"
