#!/usr/bin/env bash
# The thin runtime on aarch64: install numpy, onnxruntime, ai-edge-litert, ncnn, opencv-python-headless, tqdm
# and edgekit itself (no torch) into an emulated Debian bookworm arm64 userland (scripts/arm64_userland.sh),
# run `edgekit predict` and `edgekit profile` there on ONNX, TFLite and NCNN models converted on this machine,
# and check that the detections equal the x86 run's. Timings under emulation say nothing about a real Pi; answers and installability do.
# With WITH_EXECUTORCH=1, also an ExecuTorch .pte (FP32 and INT8) in a second site that adds torch, executorch and
# torchao (ExecuTorch's Python runtime links libtorch: what a device running .pte files from Python needs). PyPI's
# aarch64 torch 2.13.0 is a CUDA build that does not import without the CUDA 13 packages it requires, so those
# come too (about 4 GB in all); on a real device, take torch's CPU build from PyTorch's index instead
# (docs/convert/executorch.md), which this machine cannot reach.
#
#   sudo apt-get install -y qemu-user-static debootstrap     # once
#   scripts/arm64_check.sh [WORKDIR]                          # default /tmp/edgekit-arm64; ~10 min the first time
#   WITH_EXECUTORCH=1 scripts/arm64_check.sh                  # + the .pte check (about 4 GB more; torch's import
#                                                             #   alone takes minutes under emulation)
#
# Recipe and pitfalls: docs/contributing/aarch64.md.
set -euo pipefail
# the userland (sourced: it sets REPO, WORK, ROOTFS, SITE, PYTHON and enters the repository)
. "$(dirname "$0")/arm64_userland.sh" "${1:-/tmp/edgekit-arm64}"
MODELS=$WORK/models
export QEMU_CPU=${QEMU_CPU:-cortex-a76}   # Pi 5; cortex-a72 for a Pi 4 ("max" exposes SVE: spurious numpy warnings)
mkdir -p "$MODELS"

echo "== models, converted here"
cp edgekit/assets/shapes.onnx "$MODELS/shapes.onnx"
[ -f "$MODELS/shapes.tflite" ] || "$PYTHON" -m edgekit.cli convert edgekit/assets/shapes.pt --imgsz 320 --to tflite \
    --out "$MODELS" >/dev/null
[ -d "$MODELS/shapes_ncnn" ] || "$PYTHON" -m edgekit.cli convert edgekit/assets/shapes.pt --imgsz 320 --to ncnn \
    --out "$MODELS" >/dev/null
IMAGE=$REPO/edgekit/assets/shapes.jpg

arm() { PYTHONPATH=${ARM_PATH:-$SITE} qemu-aarch64-static -L "$ROOTFS" "$ROOTFS/usr/bin/python3.11" "$@"; }
echo "== machine under emulation: $(arm -c 'import platform; print(platform.machine(), platform.python_version())')"
status=0
same_detections() {  # same_detections MODEL: edgekit predict here and under emulation, the detections compared
    local model=$1
    "$PYTHON" -m edgekit.cli predict "$MODELS/$model" "$IMAGE" --json 2>/dev/null > "$WORK/x86-$model.json"
    arm -m edgekit.cli predict "$MODELS/$model" "$IMAGE" --json 2>"$WORK/arm64-$model.err" > "$WORK/arm64-$model.json"
    compare_detections "$model"
}
compare_detections() {  # compare_detections MODEL: the x86 and aarch64 detections of MODEL (JSON files in WORK)
    "$PYTHON" - "$WORK/x86-$1.json" "$WORK/arm64-$1.json" "$1" <<'PY'
import json, sys
import numpy as np
from edgekit.converters.verify import matched_f1
from edgekit.detections import Detections
name = sys.argv[3]
try:
    x86, arm = (json.loads(open(p).read())["detections"] for p in sys.argv[1:3])
except (ValueError, KeyError):
    print(f"   predict {name}: no detections printed; stderr in {sys.argv[2][:-5]}.err")
    sys.exit(1)
if "-int8." in name:
    # XNNPACK's int8 kernels requantize and accumulate differently on Arm and x86, so one INT8 program's scores
    # differ by a quantization step or so between them: near-tied detections may cross the threshold or swap
    # classes. Agreement by detections: F1 of the one-to-one matches (same class, IoU >= 0.5) at least 0.9.
    sets = [Detections(np.array([d["xyxy"] for d in found], np.float32).reshape(-1, 4),
                       [d["confidence"] for d in found], [d["class_id"] for d in found]) for found in (x86, arm)]
    matched, n_x86, n_arm = matched_f1(*sets)
    f1 = 2 * matched / (n_x86 + n_arm) if n_x86 + n_arm else 1.0
    same = f1 >= 0.9
    print(f"   predict {name}: x86 {n_x86} detections, arm64 {n_arm}; {matched} matched by class at IoU >= 0.5: "
          f"F1 {f1:.2f} (INT8 rule: >= 0.9): {'ok' if same else 'DIFFERENT'}")
    sys.exit(0 if same else 1)
# each x86 detection against the arm64 one of its class nearest to it (near-tied scores may swap places)
box_gap = score_gap = 0.0
unmatched = list(arm)
for a in x86:
    same_class = [b for b in unmatched if b["label"] == a["label"]]
    if not same_class:
        box_gap = float("inf")
        break
    b = min(same_class, key=lambda b: max(abs(u - v) for u, v in zip(a["xyxy"], b["xyxy"])))
    unmatched.remove(b)
    box_gap = max(box_gap, max(abs(u - v) for u, v in zip(a["xyxy"], b["xyxy"])))
    score_gap = max(score_gap, abs(a["confidence"] - b["confidence"]))
same = len(x86) == len(arm) and box_gap <= 0.5 and score_gap <= 5e-3
print(f"   predict {name}: x86 {len(x86)} detections, arm64 {len(arm)}; matched by class and box: boxes within "
      f"{box_gap:.2g} px, scores within {score_gap:.2g}: {'ok' if same else 'DIFFERENT'}")
sys.exit(0 if same else 1)
PY
}
for model in shapes.onnx shapes.tflite shapes_ncnn; do
    same_detections "$model" || status=1
    echo "   profile $model under emulation (timings are qemu's, not a Pi's):"
    arm -m edgekit.cli profile "$MODELS/$model" --runs 5 --warmup 1 --no-sweep --quiet | sed 's/^/     /'
done

if [ "${WITH_EXECUTORCH:-0}" = 1 ]; then
    ET_SITE=$WORK/site-executorch
    if [ ! -d "$ET_SITE/executorch" ]; then
        echo "== aarch64 wheels of torch, executorch, torchao and what executorch.runtime imports into $ET_SITE"
        mkdir -p "$WHEELS/executorch"
        "$PYTHON" -m pip download --quiet --no-deps "${WHEEL_FLAGS[@]}" -d "$WHEELS/executorch" torch==2.13.0 \
            "executorch==1.5.1" "torchao==0.18.0" flatbuffers pydot pyparsing ruamel.yaml tabulate colorama opt_einsum \
            filelock jinja2 markupsafe mpmath networkx sympy typing_extensions fsspec onnx protobuf ml_dtypes
        # what PyPI's aarch64 torch wheel requires (its Requires-Dist, less triton)
        "$PYTHON" -m pip download --quiet "${WHEEL_FLAGS[@]}" -d "$WHEELS/executorch" \
            "cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.3" \
            "nvidia-cudnn-cu13==9.20.0.48" "nvidia-cusparselt-cu13==0.8.1" "nvidia-nccl-cu13==2.29.7" \
            "nvidia-nvshmem-cu13==3.4.5"
        "$PYTHON" -m pip install --quiet --no-deps "${WHEEL_FLAGS[@]}" --target "$ET_SITE" "$WHEELS/executorch"/*.whl
        du -sm "$ET_SITE" | awk '{print "   installed: " $1 " MB beside the thin runtime"}'
    fi
    [ -f "$MODELS/calib/data.yaml" ] || "$PYTHON" -c "import sys; from pathlib import Path
from edgekit.eval.procedural import write_dataset; write_dataset(Path(sys.argv[1]), {'train': 64}, seed=7)" "$MODELS/calib"
    for precision in fp32 int8; do
        name=shapes$([ "$precision" = int8 ] && echo -int8 || true).pte
        [ -f "$MODELS/$name" ] || "$PYTHON" -m edgekit.cli convert edgekit/assets/shapes.pt --imgsz 320 --to executorch \
            --precision "$precision" --calib "$MODELS/calib/data.yaml" --out "$MODELS" >/dev/null
        ARM_PATH=$ET_SITE:$SITE same_detections "$name" || status=1
    done
fi
exit $status
