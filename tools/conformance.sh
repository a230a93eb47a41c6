#!/usr/bin/env bash
# Runs `amprt check` over the ONNX backend node tests and fails when a case on the committed
# list of passing cases no longer passes. Usage: tools/conformance.sh AMPRT PASS_LIST [DIR]
set -uo pipefail
amprt="$1"
list="$2"
dir="${3:-/usr/share/libonnx-testdata/data/node}"
if [ ! -d "$dir" ]; then
  echo "conformance: $dir is missing (install libonnx-testdata)"
  exit 1
fi
out=$(mktemp)
trap 'rm -f "$out" "$out.pass"' EXIT
"$amprt" check "$dir" --list-passing "$out.pass" >"$out" 2>&1
tail -n 1 "$out"
missing=$(comm -23 <(sort "$list") <(sort "$out.pass"))
if [ -n "$missing" ]; then
  echo "conformance: these cases passed before and fail now:"
  for c in $missing; do grep -E "^(FAIL|SKIP) $c:" "$out" || echo "  $c"; done
  exit 1
fi
new=$(comm -13 <(sort "$list") <(sort "$out.pass") | wc -l)
echo "conformance: all $(wc -l <"$list") listed cases pass; $new more pass than listed"
exit 0
