"""YOLO26: numpy top-k decode time, and per-frame latency of the three output modes on ONNX Runtime.

    python benchmarks/bench_yolo26.py [--imgsz 640] [--repeat 500] [--frames 30]

1. NMS-free decode of a one-to-one [8400, 4] + [8400, 80] output (a few high scores per object, the
   rest low, as the one-to-one head gives): edgekit's decode_topk at conf 0.25 against a plain numpy
   port of the reference selection (best score per anchor, top-k, gather, top-k over k x nc, then the
   threshold); both must keep the same detections. Target: <= 0.3 ms median.
2. End-to-end frame time (preprocess + inference + decode, the bundled 640x480 photo) of a yolo26n at
   640 exported three ways from the same weights: top-k in the graph (detections [1,300,6]), top-k in
   the runtime (boxes + scores), and the one-to-many branch with NMS.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the Ultralytics-layout writer
import edgekit
from edgekit import assets
from edgekit.converters.convert import convert
from edgekit.images import read_image
from edgekit.runtimes.decode import decode_topk
from edgekit.runtimes.engine import backend_for

from checkpoints import random_ultralytics, write_ultralytics_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import add_load_argument, busy_workers, regime_label, regimes

TARGET_TOPK_MS = 0.3


def one_to_one_output(objects: int = 20, anchors: int = 8400, classes: int = 80, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, 1, (anchors, 2))
    boxes = np.concatenate([centers - 0.02, centers + 0.02], 1).astype(np.float32)
    logits = rng.normal(-7.0, 1.5, (anchors, classes))
    for _ in range(objects):
        members = rng.choice(anchors, rng.integers(1, 4), replace=False)
        logits[members, rng.integers(classes)] = rng.normal(1.5, 1.0, len(members))
    return boxes, (1 / (1 + np.exp(-logits))).astype(np.float32)


def reference_port(boxes, scores, conf, k=300):
    """The reference selection written plainly in numpy, thresholded afterwards."""
    k = min(k, len(scores))
    best = scores.max(1)
    anchors = np.argpartition(-best, k - 1)[:k]
    pairs = scores[anchors].reshape(-1)
    top = np.argpartition(-pairs, k - 1)[:k]
    top = top[np.argsort(-pairs[top], kind="stable")]
    rows, cls = np.divmod(top, scores.shape[1])
    keep = pairs[top] > conf
    return boxes[anchors[rows[keep]]], pairs[top][keep], cls[keep]


@torch.no_grad()
def calibrate_scores(model, image, imgsz: int, one_to_one: int = 40, one_to_many: int = 400) -> None:
    """Shift class biases so that, on this image, about as many pairs pass conf 0.25 as a trained model's
    do (a few per object for the one-to-one branch, clusters for the one-to-many one)."""
    from edgekit.meta import InputSpec
    from edgekit.runtimes.preprocess import preprocess

    x = torch.from_numpy(preprocess(image, InputSpec(), (imgsz, imgsz))[0])
    head = model.head
    threshold = float(np.log(0.25 / 0.75))
    for mode, branch, count in (("o2o", head.one2one_cv3, one_to_one), ("o2m", head.cv3, one_to_many)):
        head.mode = mode
        scores = model(x)[1].clamp(1e-7, 1 - 1e-7)
        logits = torch.log(scores / (1 - scores)).flatten()
        shift = float(torch.quantile(logits, 1 - count / logits.numel())) - threshold
        for seq in branch:
            seq[-1].bias.sub_(shift)
    head.mode = "reference"


def timed(fn, repeat: int) -> tuple[float, float]:
    for _ in range(20):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return float(np.median(samples)), float(np.percentile(samples, 90))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--smoke", action="store_true", help="CI: input 160, 5 repetitions, 2 frames")
    add_load_argument(parser)
    args = parser.parse_args()
    if args.smoke:
        args.imgsz, args.repeat, args.frames = 160, 5, 2
    print(f"machine: {os.cpu_count()} cpus, numpy {np.__version__}, torch {torch.__version__}")

    boxes, scores = one_to_one_output()
    ours = decode_topk(boxes, scores, conf=0.25)
    _, ref_scores, ref_cls = reference_port(boxes, scores, 0.25)
    same = np.array_equal(np.sort(ours.confidence), np.sort(ref_scores)) and sorted(ours.class_id.tolist()) == sorted(
        ref_cls.tolist()
    )
    t_ours = timed(lambda: decode_topk(boxes, scores, conf=0.25), args.repeat)
    t_ref = timed(lambda: reference_port(boxes, scores, 0.25), args.repeat)
    print(f"\nNMS-free top-k decode, [8400,4] + [8400,80], conf 0.25, {len(ours.confidence)} kept")
    print(f"{'edgekit decode_topk':<34} {t_ours[0]:.3f} / {t_ours[1]:.3f} ms (p50 / p90)")
    print(
        f"{'numpy port of the reference':<34} {t_ref[0]:.3f} / {t_ref[1]:.3f} ms   same detections: "
        f"{'yes' if same else 'NO'}"
    )
    print(f"target <= {TARGET_TOPK_MS} ms: {'met' if t_ours[0] <= TARGET_TOPK_MS else 'MISSED'}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = random_ultralytics("yolo26n")
        image = read_image(assets.shapes_image())
        calibrate_scores(model, image, args.imgsz)
        ckpt = write_ultralytics_checkpoint(model, tmp / "yolo26n.pt")
        modes = {
            "top-k in graph (detections)": {},
            "top-k in runtime (boxes+scores)": {"topk": "runtime"},
            "one-to-many + NMS": {"nms": True},
        }
        paths = {label: convert(ckpt, imgsz=args.imgsz, out_dir=tmp, **options).path
                 for label, options in modes.items()}
        for workers in regimes(args.load):
            print(
                f"\nper-frame latency, yolo26n at {args.imgsz}, ONNX Runtime {os.cpu_count()} threads, "
                f"median of {args.frames} frames (pre / infer / post / total ms); {regime_label(workers)}"
            )
            with busy_workers(workers):
                for label, path in paths.items():
                    detector = edgekit.load(path, backend=backend_for(path))
                    for _ in range(3):
                        detector(image)
                    stages = []
                    for _ in range(args.frames):
                        found = detector(image)
                        t = detector.timings
                        stages.append((t.pre, t.infer, t.post, t.total))
                    del detector  # one engine alive at a time
                    pre, infer, post, total = np.median(np.asarray(stages), 0)
                    print(f"{label:<34} {pre:6.2f} {infer:7.2f} {post:6.2f} {total:8.2f}   ({len(found)} detections)")
    return 0 if args.smoke or (same and t_ours[0] <= TARGET_TOPK_MS) else 1


if __name__ == "__main__":
    raise SystemExit(main())
