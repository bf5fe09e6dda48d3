#!/usr/bin/env bash
# Fuzz one of edgekit's own readers: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]
# Targets: onnx tflite ncnn yaml metadata labels coco checkpoint (tests/fuzzing/targets.py); `all` runs each
# for SECONDS. Needs the fuzz extra (pip install -e ".[fuzz]"). Work folder (seeds, grown corpus, findings):
# $EDGEKIT_FUZZ_DIR, default /tmp/edgekit-fuzz. Exit status non-zero when a finding was written.
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
for t in "${targets[@]}"; do
    python -m fuzzing "$t" "$seconds" --work "$work" "$@" 2>&1 | tee "$work-$t.log" | grep -E "^fuzzing|DONE|stat::|ERROR|Finding|Error|crash-|timeout-|==" || true
    status=${PIPESTATUS[0]}
    [ "$status" -eq 0 ] || { echo "fuzz target $t: finding (exit $status), see $work/findings/$t and $work-$t.log"; exit "$status"; }
done
