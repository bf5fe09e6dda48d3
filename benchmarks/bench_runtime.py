"""Runtime hot paths on this machine: decode + NMS and letterboxing, each against a named baseline.

    python benchmarks/bench_runtime.py [--repeat 500] [--load 2] [--smoke]

Decode: a [1,8400,4] + [1,8400,80] output shaped like a real detector's (low background scores, a
cluster of overlapping high-scoring boxes per object), decoded at conf 0.25 / IoU 0.45 by edgekit and by
the same candidate selection followed by OpenCV's cv2.dnn.NMSBoxesBatched; the kept boxes must match.
Letterbox: a 1920x1080 frame to 640x640 (pad 114), alone and with the tensor conversion (a new tensor,
and the Detector's Preprocessor writing in place into a reused one), against the usual resize /
copyMakeBorder / transpose / astype pipeline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edgekit.meta import InputSpec
from edgekit.runtimes.decode import candidates, decode_nms
from edgekit.runtimes.preprocess import Preprocessor, letterbox, preprocess

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import add_load_argument, busy_workers, machine_line, regime_label, regimes

TARGET_DECODE_MS = 0.5
TARGET_LETTERBOX_MS = 2.0


def detector_like_output(objects: int, seed: int = 0, anchors: int = 8400, classes: int = 80):
    """Boxes normalized xyxy [A,4] and probabilities [A,C] resembling a trained detector's output."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, 1, (anchors, 2))
    sizes = rng.uniform(0.01, 0.1, (anchors, 2))
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], 1)
    logits = rng.normal(-7.0, 1.5, (anchors, classes))
    for _ in range(objects):
        c, s, k = rng.uniform(0.1, 0.9, 2), rng.uniform(0.05, 0.4, 2), rng.integers(classes)
        members = rng.choice(anchors, 20, replace=False)
        boxes[members] = np.concatenate([c - s / 2, c + s / 2]) + rng.normal(0, 0.01, (20, 4))
        logits[members, k] = rng.normal(1.5, 1.2, 20)
    scores = 1 / (1 + np.exp(-logits))
    return boxes.astype(np.float32), scores.astype(np.float32)


def timed(fn, repeat: int, warmup: int = 20) -> tuple[float, float]:
    """Median and 90th percentile wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return float(np.median(samples)), float(np.percentile(samples, 90))


def opencv_decode(boxes, scores, conf, iou, max_det):
    """The baseline: the same candidate selection, then OpenCV's batched (class-aware) NMS."""
    anchor, cls, score = candidates(scores, conf)
    b = boxes[anchor]
    xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1)
    keep = np.asarray(cv2.dnn.NMSBoxesBatched(xywh.tolist(), score.tolist(), cls.tolist(), conf, iou), np.int64)
    keep = keep.reshape(-1)[:max_det]
    return b[keep], score[keep], cls[keep]


def typical_preprocess(frame: np.ndarray, size: int = 640) -> np.ndarray:
    """The letterbox + tensor code most deployment scripts carry."""
    h, w = frame.shape[:2]
    r = min(size / h, size / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    img = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dw, dh = (size - nw) / 2, (size - nh) / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    img = img[..., ::-1].transpose(2, 0, 1)
    img = np.ascontiguousarray(img).astype(np.float32) / 255.0
    return img[None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--smoke", action="store_true", help="CI: 5 repetitions")
    add_load_argument(parser)
    args = parser.parse_args()
    if args.smoke:
        args.repeat = 5
    print(f"{machine_line()}\nnumpy {np.__version__}, opencv {cv2.__version__}, cv2 threads {cv2.getNumThreads()}")
    ok = True
    for workers in regimes(args.load):
        with busy_workers(workers):
            print(f"\n== {regime_label(workers)}")
            ok &= measure(args.repeat)
    return 0 if ok or args.smoke else 1


def measure(repeat: int) -> bool:
    """Print the decode, letterbox and target tables; True when the kept boxes match OpenCV's."""
    ok = True

    print("\ndecode + NMS, [1,8400,4] + [1,8400,80], conf 0.25, iou 0.45")
    print(
        f"{'scene':<10} {'cands':>5} {'kept':>4} {'edgekit ms (p50/p90)':>22} {'opencv ms (p50/p90)':>21} "
        f"{'speedup':>7}  same"
    )
    for objects in (5, 20, 60):
        boxes, scores = detector_like_output(objects)
        n_cand = len(candidates(scores, 0.25)[0])
        ours = decode_nms(boxes, scores, 0.25, 0.45, 300)
        theirs = opencv_decode(boxes, scores, 0.25, 0.45, 300)
        same = sorted(map(tuple, ours.xyxy.tolist())) == sorted(map(tuple, theirs[0].tolist()))
        t_ours = timed(lambda b=boxes, s=scores: decode_nms(b, s, 0.25, 0.45, 300), repeat)
        t_cv = timed(lambda b=boxes, s=scores: opencv_decode(b, s, 0.25, 0.45, 300), repeat)
        print(
            f"{objects:>3} objects {n_cand:>5} {len(ours.confidence):>4} {t_ours[0]:>12.3f} / {t_ours[1]:<7.3f} "
            f"{t_cv[0]:>11.3f} / {t_cv[1]:<7.3f} {t_cv[0] / t_ours[0]:>6.2f}x  {'yes' if same else 'NO'}"
        )
        ok &= same
        if objects == 20:
            decode_ms = t_ours[0]

    frame = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    spec = InputSpec()
    np.testing.assert_allclose(preprocess(frame, spec, (640, 640))[0], typical_preprocess(frame), atol=1e-6)
    t_lb = timed(lambda: letterbox(frame, (640, 640)), repeat)
    t_pre = timed(lambda: preprocess(frame, spec, (640, 640)), repeat)
    t_typ = timed(lambda: typical_preprocess(frame), repeat)
    in_place = Preprocessor(spec, (640, 640))
    np.testing.assert_array_equal(in_place(frame)[0], preprocess(frame, spec, (640, 640))[0])
    t_in = timed(lambda: in_place(frame), repeat)
    print("\n1920x1080 frame -> 640x640")
    print(f"{'step':<32} {'ms (p50/p90)':>16}")
    print(f"{'edgekit letterbox':<32} {t_lb[0]:>8.3f} / {t_lb[1]:<7.3f}")
    print(f"{'edgekit letterbox + tensor':<32} {t_pre[0]:>8.3f} / {t_pre[1]:<7.3f}")
    print(f"{'edgekit Preprocessor (in place)':<32} {t_in[0]:>8.3f} / {t_in[1]:<7.3f}")
    print(
        f"{'typical numpy pipeline (same)':<32} {t_typ[0]:>8.3f} / {t_typ[1]:<7.3f}  "
        f"(edgekit {t_typ[0] / t_pre[0]:.2f}x faster)"
    )

    print("\ntargets")
    print(
        f"decode+NMS (20 objects) {decode_ms:.3f} ms <= {TARGET_DECODE_MS} ms: "
        f"{'met' if decode_ms <= TARGET_DECODE_MS else 'MISSED'}"
    )
    print(
        f"letterbox 1920x1080->640 {t_lb[0]:.3f} ms <= {TARGET_LETTERBOX_MS} ms: "
        f"{'met' if t_lb[0] <= TARGET_LETTERBOX_MS else 'MISSED'}"
    )
    print(f"same kept boxes as OpenCV: {'yes' if ok else 'NO'}")
    return ok


if __name__ == "__main__":
    raise SystemExit(main())
