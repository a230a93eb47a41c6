#!/usr/bin/env bash
# Runs `amprt check` over the ONNX backend node tests, in FP32 and converted to FP16 and BF16
# (`--autocast`), and fails when a case on the committed list of passing cases no longer passes
# in any of the three. Usage: tools/conformance.sh AMPRT PASS_LIST [DIR]
# AMP_CONFORMANCE_BACKEND picks the backend (default cpu; CTest also runs cpu-check, the
# checking backend that poisons every kernel's outputs, workspace and dead arena bytes).
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
rc=0
for mode in fp32 fp16 bf16; do
  extra=(--backend "${AMP_CONFORMANCE_BACKEND:-cpu}")
  [ "$mode" != fp32 ] && extra+=(--autocast "$mode")
  "$amprt" check "$dir" "${extra[@]}" --list-passing "$out.pass" >"$out" 2>&1
  echo "$mode (${AMP_CONFORMANCE_BACKEND:-cpu}): $(tail -n 1 "$out")"
  missing=$(comm -23 <(sort "$list") <(sort "$out.pass"))
  if [ -n "$missing" ]; then
    echo "conformance ($mode): these cases passed before and fail now:"
    for c in $missing; do grep -E "^(FAIL|SKIP) $c:" "$out" || echo "  $c"; done
    rc=1
  elif [ "$mode" = fp32 ]; then
    new=$(comm -13 <(sort "$list") <(sort "$out.pass") | wc -l)
    echo "conformance: all $(wc -l <"$list") listed cases pass; $new more pass than listed"
  fi
done
exit $rc
