"""Validation speed: decode + NMS at validation settings (eval.settings.VAL) on a trained model's real outputs,
and `edgekit val CHECKPOINT` per image side by side with Ultralytics' own val of the same checkpoint.

    python benchmarks/bench_val_decode.py [--model fixtures/yolo26n.pt] [--images 40] [--repeat 50]
        [--part decode|val|all] [--ultralytics-python REFVENV/bin/python] [--val-images 100] [--imgsz 640]
        [--rounds 3] [--training-form] [--threads N]

1. Decode (``--part decode``).
At conf 0.001 nearly every anchor of a trained detector is a candidate, which is where NMS gets slow. The
model is the trained YOLO26n fixture's one-to-many (NMS) branch converted to ONNX at 640 ([1,8400,4] boxes +
[1,8400,6] scores), run on the fixture's val images; each output is decoded by edgekit and by the same
candidate selection followed by OpenCV's cv2.dnn.NMSBoxesBatched (the baseline), single-label on both
sides (OpenCV's NMS keeps one class per box). Target: edgekit's median at most 5 ms per image; the kept boxes
must be the same.

2. Checkpoint val (``--part val``; needs Ultralytics in its own interpreter, ``--ultralytics-python`` or
$EDGEKIT_ULTRALYTICS_PYTHON, run through benchmarks/ultralytics_peer.py; skipped with a message without it).
The first ``--val-images`` val scenes of the fixture are copied with their labels to a temporary folder with
a data.yaml in Ultralytics' format (Ultralytics writes a label cache beside them), then `python -m edgekit.cli
val CHECKPOINT --imgsz S` and Ultralytics' ``YOLO(CHECKPOINT).val(imgsz=S, batch=1, device='cpu')`` run on it
in turn, each in a fresh process, ``--rounds`` times alternately, so other jobs' load falls on both sides
alike; ``--threads N`` adds `edgekit val --threads N` to the rotation, ``--training-form`` the training
form's val (edgekit's reference before it ran the deploy form, torch's threads spin-waiting as then).
Per side: the median over rounds of its own stage times per image (pre + inference + post;
Ultralytics' ``speed``, its loss stage included, 0 in val), of the whole process's wall seconds (imports,
model loading and metrics included), and the load average before each run. Target: edgekit's median per
image at most 1.2x Ultralytics'.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import add_load_argument, busy_workers, machine_line, regime_label, regimes

import edgekit
from edgekit.eval.settings import VAL
from edgekit.runtimes.decode import candidates, decode_nms

from bench_runtime import opencv_decode, timed
from bench_vs_ultralytics import PEER, peer_python

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 5.0
TARGET_VAL_RATIO = 1.2
TRAINING_FORM = """
import json, sys
from edgekit.converters.source_detector import open_source_detector
from edgekit.eval.datasets import load_dataset
from edgekit.eval.val import validate
checkpoint, data, imgsz = sys.argv[1], sys.argv[2], int(sys.argv[3])
detector = open_source_detector(checkpoint, imgsz, form="training")
print(json.dumps(validate(detector, load_dataset(data, "val"), progress=False).as_dict()))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fixtures = ROOT / "tests" / "fixtures" / "families"
    parser.add_argument("--model", default=str(fixtures / "yolo26n.pt"), help="trained checkpoint")
    parser.add_argument("--data", default=str(fixtures / "scenes" / "data.yaml"), help="its val images")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--smoke", action="store_true", help="CI: the decode part on 2 images, 3 repetitions")
    add_load_argument(parser)
    parser.add_argument("--part", choices=("decode", "val", "all"), default="all")
    parser.add_argument("--ultralytics-python", help="an interpreter that imports ultralytics (part 2)")
    parser.add_argument("--val-images", type=int, default=100, help="val scenes for part 2")
    parser.add_argument("--imgsz", type=int, default=640, help="part 2's image size, on both sides")
    parser.add_argument("--rounds", type=int, default=3, help="part 2: runs per side, alternating")
    parser.add_argument("--training-form", action="store_true", help="part 2: also the training form's val")
    parser.add_argument("--threads", type=int, help="part 2: also edgekit val with --threads N")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.repeat, args.part = 2, 3, "decode"
    print(f"{machine_line()}\nnumpy {np.__version__}, opencv {cv2.__version__}")
    ok = True
    if args.part in ("decode", "all"):
        ok = decode_part(args)
    if args.part in ("val", "all"):
        ok = checkpoint_val(args) and ok
    return 0 if ok or args.smoke else 1


def decode_part(args) -> bool:
    """Part 1: edgekit's decode + NMS against OpenCV's on the fixture's real outputs, in each load regime; True
    when the target is met with the same kept boxes."""
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
    return met


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


def ultralytics_dataset(data: Path, count: int, folder: Path) -> Path:
    """The first `count` val images of a YOLO data.yaml and their labels, copied to `folder` with a data.yaml
    in Ultralytics' format (absolute ``path``, the fixture's class names, and ``train``, a key Ultralytics
    requires, naming the same images); returns the yaml."""
    from edgekit.eval.datasets import load_dataset

    dataset = load_dataset(data, "val")
    for sub in ("images", "labels"):
        (folder / sub / "val").mkdir(parents=True)
    for item in dataset.items[:count]:
        shutil.copy(item.image, folder / "images" / "val" / item.image.name)
        label = item.image.parents[2] / "labels" / "val" / f"{item.image.stem}.txt"
        if label.exists():
            shutil.copy(label, folder / "labels" / "val" / label.name)
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(dataset.names))
    yaml = folder / "data.yaml"
    yaml.write_text(f"path: {folder}\ntrain: images/val\nval: images/val\nnames:\n{names}")
    return yaml


def timed_run(command: list[str]) -> tuple[dict, float, float]:
    """Run `command` (which prints one JSON document on stdout) in a fresh process: its document, its wall
    seconds and the 1-minute load average before it started."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(command[:4])}... failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout[proc.stdout.index("{"):]), seconds, load


def checkpoint_val(args) -> bool:
    """Part 2: `edgekit val CHECKPOINT` per image against Ultralytics' val of it; True when within the target
    (or skipped without Ultralytics)."""
    python = peer_python(args.ultralytics_python)
    if python is None:
        print("\n2. checkpoint val: skipped (no Ultralytics: pass --ultralytics-python REFVENV/bin/python)")
        return True
    with tempfile.TemporaryDirectory(prefix="bench-val-") as tmp:
        yaml = ultralytics_dataset(Path(args.data), args.val_images, Path(tmp))
        size = str(args.imgsz)
        sides = {
            "Ultralytics val (batch 1, cpu)": [python, str(PEER), "val", args.model, str(yaml), size],
            "edgekit val (deploy form)": [
                sys.executable, "-m", "edgekit.cli", "val", args.model, "--data", str(yaml), "--imgsz", size,
                "--json", "--quiet",
            ],
        }
        if args.threads:
            sides[f"edgekit val --threads {args.threads}"] = sides["edgekit val (deploy form)"] + [
                "--threads", str(args.threads)
            ]
        if args.training_form:
            before = [sys.executable, "-c", TRAINING_FORM, args.model, str(yaml), size]
            sides["edgekit, training form (before)"] = before
        runs: dict[str, list[tuple[float, float, float, float]]] = {side: [] for side in sides}
        for _ in range(args.rounds):
            for side, command in sides.items():
                doc, seconds, load = timed_run(command)
                stages = doc["speed"] if "speed" in doc else doc["ms_per_image"]
                runs[side].append((sum(stages.values()), seconds, load, doc["map50_95"]))
    print(f"\n2. val of {Path(args.model).name} at {size}, batch 1, on {args.val_images} val scenes: "
          f"{args.rounds} rounds, the sides alternating, each run a fresh process")
    print(f"{'side':<34} {'ms/image':>9} {'per round':>24} {'wall s':>7} {'load':>13} {'mAP50-95':>9}")
    medians = {}
    for side, rows in runs.items():
        per_image = [r[0] for r in rows]
        medians[side] = statistics.median(per_image)
        rounds = " ".join(f"{v:.0f}" for v in per_image)
        loads = " ".join(f"{r[2]:.1f}" for r in rows)
        print(f"{side:<34} {medians[side]:>9.1f} {rounds:>24} {statistics.median(r[1] for r in rows):>7.1f} "
              f"{loads:>13} {rows[0][3]:>9.4f}")
    ultralytics, ours = medians["Ultralytics val (batch 1, cpu)"], medians["edgekit val (deploy form)"]
    ratio = ours / ultralytics
    met = ratio <= TARGET_VAL_RATIO
    print(f"ms/image: each side's own stage times (pre + inference + post), median over rounds; wall: the whole "
          f"process; load: 1-minute load average before each run ({os.cpu_count()} cpus)")
    print(f"target: edgekit {ratio:.2f}x Ultralytics' time per image <= {TARGET_VAL_RATIO}x: "
          f"{'met' if met else 'MISSED'}")
    return met


if __name__ == "__main__":
    sys.exit(main())
