"""Decode + NMS at validation settings (eval.settings.VAL) on a trained model's real outputs.

    python benchmarks/bench_val_decode.py [--model fixtures/yolo26n.pt] [--images 40] [--repeat 50]

At conf 0.001 nearly every anchor of a trained detector is a candidate, which is where NMS gets slow. The
model is the trained YOLO26n fixture's one-to-many (NMS) branch converted to ONNX at 640 ([1,8400,4] boxes +
[1,8400,6] scores), run on the fixture's val images; each output is decoded by edgekit and by the same
candidate selection followed by OpenCV's cv2.dnn.NMSBoxesBatched (the baseline), single-label on both
sides (OpenCV's NMS keeps one class per box). Target: edgekit's median at most 5 ms per image; the kept boxes
must be the same.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import add_load_argument, busy_workers, machine_line, regime_label, regimes

import edgekit
from edgekit.eval.settings import VAL
from edgekit.runtimes.decode import candidates, decode_nms

from bench_runtime import opencv_decode, timed

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fixtures = ROOT / "tests" / "fixtures" / "families"
    parser.add_argument("--model", default=str(fixtures / "yolo26n.pt"), help="trained checkpoint")
    parser.add_argument("--data", default=str(fixtures / "scenes" / "data.yaml"), help="its val images")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--smoke", action="store_true", help="CI: 2 images, 3 repetitions")
    add_load_argument(parser)
    args = parser.parse_args()
    if args.smoke:
        args.images, args.repeat = 2, 3
    print(f"{machine_line()}\nnumpy {np.__version__}, opencv {cv2.__version__}")
    from edgekit.converters.convert import convert
    from edgekit.eval.datasets import load_dataset

    with tempfile.TemporaryDirectory() as tmp:
        result = convert(args.model, "onnx", 640, out_dir=tmp, nms=True)
        detector = edgekit.load(result.path)
        outputs = []
        for item in load_dataset(args.data, "val").items[: args.images]:
            tensor = detector._frame_preprocessor()(cv2.imread(str(item.image)))[0]
            raw = detector.engine.infer({detector.input.name: tensor})
            outputs.append((np.asarray(raw["boxes"])[0].copy(), np.asarray(raw["scores"])[0].copy()))
    boxes0, scores0 = outputs[0]
    shapes = f"boxes {list(boxes0.shape)}, scores {list(scores0.shape)}"
    print(f"\n{Path(args.model).name} one-to-many branch at 640: {shapes}")
    print(f"decode + NMS at conf {VAL.conf}, IoU {VAL.iou}, max {VAL.max_det}, over {len(outputs)} val images")
    met = True
    for workers in regimes(args.load):
        with busy_workers(workers):
            print(f"\n== {regime_label(workers)}")
            met &= measure(outputs, args.repeat)
    return 0 if met or args.smoke else 1


def measure(outputs: list[tuple[np.ndarray, np.ndarray]], repeat: int) -> bool:
    """Time edgekit's decode and the OpenCV baseline on every output; True when the target is met and the kept
    boxes agree on every image."""
    ours_ms, cv_ms, same, cands = [], [], 0, []
    settings = (VAL.conf, VAL.iou, VAL.max_det)
    for boxes, scores in outputs:
        ours = decode_nms(boxes, scores, *settings)
        theirs = opencv_decode(boxes, scores, *settings)
        same += sorted(map(tuple, ours.xyxy.tolist())) == sorted(map(tuple, theirs[0].tolist()))
        cands.append(len(candidates(scores, VAL.conf)[0]))
        ours_ms.append(timed(lambda b=boxes, s=scores: decode_nms(b, s, *settings), repeat, 3)[0])
        cv_ms.append(timed(lambda b=boxes, s=scores: opencv_decode(b, s, *settings), repeat, 3)[0])
    p50_ours, p50_cv = float(np.median(ours_ms)), float(np.median(cv_ms))
    print(f"candidates per image: median {int(np.median(cands))}, max {max(cands)}")
    print(f"{'decoder':<34} {'median ms':>10} {'p90 ms':>8}")
    print(f"{'edgekit decode_nms':<34} {p50_ours:>10.3f} {np.percentile(ours_ms, 90):>8.3f}")
    print(f"{'candidates + cv2.dnn.NMSBoxesBatched':<34} {p50_cv:>10.3f} {np.percentile(cv_ms, 90):>8.3f}")
    print(f"same kept boxes on {same}/{len(outputs)} images; edgekit {p50_cv / p50_ours:.2f}x the baseline's speed")
    met = p50_ours <= TARGET_MS
    print(f"target: median {p50_ours:.3f} ms <= {TARGET_MS} ms: {'met' if met else 'MISSED'}")
    return met and same == len(outputs)


if __name__ == "__main__":
    sys.exit(main())
