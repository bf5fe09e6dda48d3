#!/usr/bin/env bash
# Fuzz one of edgekit's own readers: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]
# Targets: onnx tflite ncnn yaml metadata labels coco checkpoint (tests/fuzzing/targets.py); `all` runs each
# for SECONDS. Needs the fuzz extra (pip install -e ".[fuzz]"). Work folder (seeds, grown corpus, findings):
# $EDGEKIT_FUZZ_DIR, default /tmp/edgekit-fuzz (one log per target there). Exits non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET SECONDS}
seconds=${2:-60}
shift $(( $# < 2 ? $# : 2 ))
work=${EDGEKIT_FUZZ_DIR:-/tmp/edgekit-fuzz}
export MALLOC_ARENA_MAX=2  # glibc's per-thread arenas would read as memory growth
export PYTHONPATH="$PWD/tests:$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ "$target" = all ]; then
    targets=(onnx tflite ncnn yaml metadata labels coco checkpoint)
else
    targets=("$target")
fi
mkdir -p "$work"
for t in "${targets[@]}"; do
    status=0
    python -m fuzzing "$t" "$seconds" --work "$work" "$@" >"$work/$t.log" 2>&1 || status=$?
    grep -E "^fuzzing|DONE|number_of_executed_units|new_units_added|Uncaught|Error|Finding|Test unit written" "$work/$t.log" | head -20 || true
    latest=$(ls -t "$work/findings/$t" 2>/dev/null | head -1)
    if [ "$status" -ne 0 ] && [[ "$latest" == timeout-* ]] \
        && python -m fuzzing "$t" --work "$work" --replay "$work/findings/$t/$latest"; then
        echo "fuzz target $t: the timeout did not recur on a rerun (a stalled machine, not the input)"
        status=0
    fi
    if [ "$status" -ne 0 ]; then
        echo "fuzz target $t: finding (exit $status); input in $work/findings/$t, log $work/$t.log"
        exit "$status"
    fi
done
