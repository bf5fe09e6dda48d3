"""Per-frame latency side by side with Ultralytics' predict, and the decode figures against named baselines.

    python benchmarks/bench_vs_ultralytics.py [--ultralytics-python REFVENV/bin/python] [--frames 30]
        [--rounds 4] [--load 2] [--models yolo26n,yolov9t] [--imgsz 320,640]
        [--fixtures yolo26n.pt,yolov9-t.pt,damoyolo-t.pth] [--formats onnx,openvino] [--max-drop 0.5]
        [--work DIR]
    python benchmarks/bench_vs_ultralytics.py --smoke [--fixtures yolo26n.pt]

Ultralytics (AGPL-3.0) is a benchmark-only peer: it runs in its own interpreter (``--ultralytics-python``,
or this one when it can import ``ultralytics``) through benchmarks/ultralytics_peer.py; edgekit never
imports it. Without it the side-by-side part is skipped with a message; the decode figures and the edgekit
rows of part 3 still print.

1. Decode figures (no Ultralytics needed): decode + class-aware NMS of a [1,8400,4]+[1,8400,80] output with
   300 boxes kept, against the previous NMS (one vectorized round per box kept in the busiest class, the
   named baseline) and the same candidate selection followed by ``cv2.dnn.NMSBoxesBatched``; both must keep
   the same boxes. Targets: <= 1 ms median; threshold-only decode of a [1,300,6] output <= 0.3 ms.
2. Side by side on the same file: the peer builds yolo26n and yolov9t (random weights with BatchNorm statistics
   and class logits spread so the bundled shapes.jpg, a 640x480 picture of coloured shapes, is a busy scene),
   saves each checkpoint and exports it with Ultralytics' exporter to ONNX at each ``--imgsz`` (one-to-many
   output + NMS). On that picture, each runner times ``--frames`` frames after warm-up in a process of its own,
   and the runners take turns, one process alive at a time, for ``--rounds`` rounds (a spinning engine never
   slows another's frames): Ultralytics' predict on that file; edgekit's Detector on the same file with its
   defaults (the engine this machine's profile names for ONNX files; idle workers spinning unless other processes
   keep half a core busy as the engine opens, then sleeping), with ``--shared`` and ``--no-shared`` forced, and
   with ``--backend onnxruntime`` (the engine Ultralytics' predict runs the file on). Busy scene: conf 0.25
   (about 300 boxes kept); quiet scene: the same frame at a conf that keeps about three boxes. Targets: edgekit's
   default at least 1.1x Ultralytics on the machine as it is (run it on a quiet one), and no slower with ``--load
   N`` busy workers competing.
3. Trained fixtures (tests/fixtures/families, 320): edgekit's FP32 and ``--max-drop`` INT8 artifacts in each
   of ``--formats`` (calibrated on 300 procedural train scenes, seed 0), and for yolo26n Ultralytics' own
   ONNX export of the same checkpoint run by its predict and by edgekit; every row with its mAP50-95 on the
   200 val scenes (Ultralytics' own val for its row) beside its per-frame time on one val scene, in turns as
   in part 2. Target: the fastest INT8 within the budget of its format's FP32 at least 2.5x the first row
   (Ultralytics' predict where it runs the fixture, else edgekit's ONNX FP32).
``--smoke`` (CI): decode figures with 5 repetitions, then part 2 on the bundled shapes model without a
peer or conversions, 3 frames, 1 round, and part 3 only for the ``--fixtures`` given (ONNX FP32 and INT8, 8
calibration and 4 val scenes); it reports targets but always exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import edgekit
from edgekit import assets
from edgekit.detections import box_iou
from edgekit.images import read_image
from edgekit.runtimes import decode, nms
from edgekit.runtimes.preprocess import LetterboxInfo, preprocess

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import (
    add_child_arguments,
    add_load_argument,
    busy_workers,
    in_turns,
    machine_line,
    medians,
    print_json_line,
    regimes,
    run_child,
)

from bench_runtime import detector_like_output, timed

PEER = Path(__file__).resolve().parent / "ultralytics_peer.py"
PEER_MODELS = {"yolo26n", "yolov9t"}  # what the peer builds and exports
TARGET_NMS_MS = 1.0
TARGET_E2E_MS = 0.3
TARGET_SAME_FILE = 1.1
TARGET_INT8 = 2.5
STAGES = ("wall", "pre", "infer", "post", "kept")  # what a timed process reports, per frame
WARMUP = 3  # untimed frames at the start of every process
IOU = 0.7


def previous_nms(boxes, scores, iou, class_id):
    """The named baseline: edgekit's NMS before this change, one vectorized round per kept box of the busiest
    class (kept here, verbatim in effect, as nms._greedy_rounds without a round limit)."""
    order = np.argsort(-scores, kind="stable")
    kept, _ = nms._greedy_rounds(np.asarray(boxes, np.float64)[order], class_id[order], iou)
    return order[np.flatnonzero(kept)]


def opencv_nms(boxes, scores, cls, conf, iou):
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).astype(np.float64)
    keep = cv2.dnn.NMSBoxesBatched(xywh, scores.astype(np.float32), cls.astype(np.int32), conf, iou)
    return np.asarray(keep, np.int64).reshape(-1)


def decode_figures(repeat: int, real: dict[str, np.ndarray]) -> list[tuple[str, float, float, bool]]:
    """Print decode + NMS timings against the previous NMS and OpenCV; returns (case, ms, target, same)."""
    print("\n1. decode + class-aware NMS, conf 0.25, max_det 300 (ms: median / p90)")
    print(f"{'output':<44} {'cands':>5} {'kept':>4} {'edgekit':>15} {'previous NMS':>15} {'+ NMSBoxesBatched':>17}"
          "  same")
    checks = []
    cases = [(f"synthetic [8400,4]+[8400,80], {n} objects", *detector_like_output(n), 0.45) for n in (20, 300)]
    for name, packed in real.items():
        xyxy = decode.cxcywh_to_xyxy(packed[:4].T)
        cases.append((f"{name} busy photo, as [8400,4]+[8400,80]", xyxy, np.ascontiguousarray(packed[4:].T), 0.7))
    for label, boxes, scores, iou in cases:
        anchor, cls, score = decode.candidates(scores, 0.25)
        ours = decode.decode_nms(boxes, scores, 0.25, iou, 300)
        b = boxes[anchor]
        prev = previous_nms(b, score, iou, cls)[:300]
        cv = opencv_nms(b, score, cls, 0.25, iou)[:300]
        same = sorted(map(tuple, ours.xyxy.tolist())) == sorted(map(tuple, b[prev].tolist()))
        same_cv = sorted(map(tuple, ours.xyxy.tolist())) == sorted(map(tuple, b[cv].tolist()))

        def old(b=boxes, s=scores, iou=iou):
            a, c, sc = decode.candidates(s, 0.25)
            return previous_nms(b[a], sc, iou, c)[:300]

        def cvf(b=boxes, s=scores, iou=iou):
            a, c, sc = decode.candidates(s, 0.25)
            return opencv_nms(b[a], sc, c, 0.25, iou)[:300]

        t = timed(lambda b=boxes, s=scores, iou=iou: decode.decode_nms(b, s, 0.25, iou, 300), repeat)
        t_old, t_cv = timed(old, repeat), timed(cvf, repeat)
        print(f"{label:<44} {len(score):>5} {len(ours.confidence):>4} {t[0]:>7.3f} / {t[1]:<5.2f} "
              f"{t_old[0]:>7.3f} / {t_old[1]:<5.2f} {t_cv[0]:>9.3f} / {t_cv[1]:<5.2f}  "
              f"{'yes' if same else 'NO'}{'' if same_cv else ' (OpenCV differs)'}")
        if len(ours.confidence) >= 290:
            checks.append((f"decode+NMS, {label}", t[0], TARGET_NMS_MS, same))
    return checks


def e2e_figure(repeat: int, detections: np.ndarray | None) -> list[tuple[str, float, float, bool]]:
    """Threshold-only decode of a [1,300,6] output, through the whole decode_outputs path (into pixels)."""
    if detections is None:
        rng = np.random.default_rng(0)
        xy = rng.uniform(0, 600, (300, 2))
        detections = np.concatenate([xy, xy + 40, rng.uniform(0, 1, (300, 1)), rng.integers(0, 80, (300, 1))], 1)
        detections = detections[None].astype(np.float32)
    from edgekit.meta import ModelMeta, OutputSpec

    meta = ModelMeta("ultralytics", "yolo26n", [f"c{i}" for i in range(80)], (640, 640),
                     outputs=OutputSpec(kind="detections", names=["output0"], normalized=False))
    info = LetterboxInfo(1.0, (0, 80), (480, 640), (640, 640))
    run = lambda: decode.decode_outputs(meta, {"output0": detections}, [info], conf=0.25, iou=0.7, max_det=300)  # noqa: E731
    kept = len(run()[0])
    t = timed(run, repeat)
    plain = timed(lambda: _plain_threshold(detections[0], 0.25), repeat)
    print(f"\nthreshold-only decode of [1,300,6] ({kept} kept, into source pixels): {t[0]:.3f} / {t[1]:.3f} ms; "
          f"a plain numpy mask + sort + scale: {plain[0]:.3f} ms")
    return [("end-to-end [1,300,6] decode", t[0], TARGET_E2E_MS, True)]


def _plain_threshold(rows: np.ndarray, conf: float) -> np.ndarray:
    rows = rows[rows[:, 4] > conf]
    rows = rows[np.argsort(-rows[:, 4])]
    out = rows[:, :4].copy()
    out[:, [1, 3]] -= 80
    return out


def peer_python(arg: str | None) -> str | None:
    """The interpreter that runs Ultralytics: `arg`, else $EDGEKIT_ULTRALYTICS_PYTHON, else this one where it
    imports ultralytics, else None. One given is tried first: SystemExit with one line where it cannot import
    what the peer needs."""
    given = "--ultralytics-python" if arg else "$EDGEKIT_ULTRALYTICS_PYTHON"
    arg = arg or os.environ.get("EDGEKIT_ULTRALYTICS_PYTHON")
    if arg:
        try:
            done = subprocess.run([arg, "-c", "import ultralytics, torch, cv2"], capture_output=True, text=True,
                                  timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SystemExit(f"{given} {arg}: not an interpreter that runs here ({exc})") from None
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise SystemExit(f"{given} {arg}: cannot import ultralytics, torch and cv2 ({said})")
        return arg
    return sys.executable if importlib.util.find_spec("ultralytics") else None


def agreement(ref: edgekit.Detections, other: edgekit.Detections) -> float:
    """Share of `ref`'s boxes that `other` has too: same class and IoU >= 0.5, or every coordinate within a
    pixel (random weights put some boxes in the padding, clipped to zero area); 1.0 when both are empty."""
    if not len(ref):
        return 1.0 if not len(other) else 0.0
    if not len(other):
        return 0.0
    iou = box_iou(ref.xyxy, other.xyxy)
    close = (np.abs(ref.xyxy[:, None] - other.xyxy[None]) <= 1.0).all(-1)
    same = ref.class_id[:, None] == other.class_id[None]
    return float((((iou >= 0.5) | close) & same).any(1).mean())


def edgekit_command(path: Path, conf: float, frames: int, warmup: int, backend: str | None = None,
                    shared: bool | None = None, boxes: bool = False, image: Path | None = None) -> list[str]:
    """The command that times edgekit's Detector on `path` in a process of its own (see :func:`child`)."""
    command = [sys.executable, __file__, "--child", str(path), "--conf", str(conf), "--frames", str(frames),
               "--warmup", str(warmup), "--image", str(image or assets.shapes_image())]
    switch = {True: ["--shared"], False: ["--no-shared"], None: []}[shared]
    return command + (["--backend", backend] if backend else []) + switch + (["--boxes"] if boxes else [])


def peer_command(python: str, path: Path, conf: float, frames: int, warmup: int, imgsz: int, boxes: bool = False,
                 image: Path | None = None) -> list[str]:
    """The command that times Ultralytics' predict on `path` (an ONNX file made at `imgsz`) in a process of its
    own."""
    return [python, str(PEER), "time", str(path), str(image or assets.shapes_image()), str(conf), str(IOU),
            str(frames), str(warmup), str(imgsz)] + (["boxes"] if boxes else [])


def child(args) -> None:
    """One edgekit measurement in its own process: per-frame wall and stage times (ms) of the Detector on the
    image, as the peer reports Ultralytics' (one JSON line), and the engine `edgekit.load` chose."""
    from edgekit.runtimes.settings import EngineSettings

    detector = edgekit.load(args.child, backend=args.backend, settings=EngineSettings(shared=args.shared))
    image = read_image(args.image)
    for _ in range(args.warmup):
        detector(image, conf=args.conf, iou=IOU)
    engine = detector.engine.backend + (", shared" if detector.engine.settings.shared else "")
    reply = {"wall": [], "pre": [], "infer": [], "post": [], "kept": 0, "engine": engine}
    for _ in range(args.frames):
        start = time.perf_counter()
        found = detector(image, conf=args.conf, iou=IOU)
        reply["wall"].append((time.perf_counter() - start) * 1e3)
        for key, value in detector.timings.as_dict().items():
            if key in reply:
                reply[key].append(value)
        reply["kept"] = len(found)
    if args.boxes:
        reply.update(xyxy=found.xyxy.tolist(), cls=found.class_id.tolist(), score=found.confidence.tolist())
    print_json_line(reply)


def detections_of(reply: dict, names) -> edgekit.Detections:
    return edgekit.Detections(np.asarray(reply["xyxy"], np.float32).reshape(-1, 4),
                              np.asarray(reply["score"], np.float32), np.asarray(reply["cls"], np.int64), names)


def quiet_conf(path: Path) -> float:
    """A conf that keeps about three boxes of the busy frame (the quiet scene), found in a process of its own."""
    reply = run_child(edgekit_command(path, 0.25, 1, 0, boxes=True))
    scores = np.sort(np.asarray(reply["score"]))[::-1]
    return float((scores[2] + scores[3]) / 2) if len(scores) > 3 else 0.5


def peer_file(python: str, models: Path, name: str, imgsz: int) -> Path:
    """Ultralytics' ONNX export of the peer model `name` at `imgsz` (``make`` writes the 640 ones; other sizes are
    exported from the same checkpoint once and kept)."""
    path = models / (f"{name}.onnx" if imgsz == 640 else f"{name}-{imgsz}.onnx")
    if not path.exists():
        subprocess.run([python, str(PEER), "export", str(models / f"{name}.pt"), str(imgsz), str(path)], check=True,
                       stdout=subprocess.DEVNULL)
    return path


def side_by_side(args, python: str | None, work: Path) -> list[tuple[str, float, float, bool]]:
    """Part 2 for every model and size: Ultralytics' predict (with a peer) and edgekit on the same file, each
    in its own process, in turns."""
    checks = []
    for name in args.models.split(","):
        for imgsz in args.imgsz:
            if name == "shapes":  # the smoke model: edgekit's bundled ONNX (320), no peer
                checks += compare(args, None, "shapes", assets.shapes_model(), imgsz)
            else:
                checks += compare(args, python, name, peer_file(python, work / "models", name, imgsz), imgsz)
    return checks


def compare(args, python: str | None, name: str, same: Path, imgsz: int):
    """Time Ultralytics' predict on `same` (with a peer) and edgekit on the same file (its defaults, --shared,
    --no-shared, and on ONNX Runtime as Ultralytics runs it): one process per runner, in turns, quiet and
    under --load."""
    rows, checks = [], []
    for scene, conf in (("busy", 0.25), ("quiet", quiet_conf(same))):
        runners = {"edgekit, same file": edgekit_command(same, conf, args.frames, WARMUP),
                   "edgekit, same file, --shared": edgekit_command(same, conf, args.frames, WARMUP, shared=True),
                   "edgekit, same file, --no-shared": edgekit_command(same, conf, args.frames, WARMUP, shared=False),
                   "edgekit, same file on ONNX Runtime": edgekit_command(same, conf, args.frames, WARMUP,
                                                                         "onnxruntime")}
        if python is not None:
            runners = {"Ultralytics predict": peer_command(python, same, conf, args.frames, WARMUP, imgsz),
                       **runners}
        note = ""
        if python is not None:
            theirs = run_child(peer_command(python, same, conf, 1, 1, imgsz, boxes=True))
            ours = run_child(edgekit_command(same, conf, 1, 1, boxes=True))
            a, b = detections_of(theirs, None), detections_of(ours, None)
            note = f"boxes agree with Ultralytics': {agreement(a, b):.2f} / {agreement(b, a):.2f}"
        for workers in regimes(args.load):
            summary = measured(runners, args.rounds, workers)
            base_label = next(iter(runners))
            if not isinstance(summary[base_label], dict):
                raise SystemExit(f"{base_label} failed: {summary[base_label]}")
            base = summary[base_label]["wall"]
            for label, med in summary.items():
                if not isinstance(med, dict):
                    print(f"  {name} {scene}: {label} FAILED: {med}")
                    continue
                rows.append((scene, conf, workers, shown(label, med), int(med["kept"]), med, base / med["wall"],
                             note if label == "edgekit, same file" else ""))
                if python is not None and label == "edgekit, same file":
                    target = TARGET_SAME_FILE if workers == 0 else 1.0
                    checks.append((f"{name} {imgsz} {scene}, {workers} busy: same file vs Ultralytics",
                                   base / med["wall"], target, True))
    against = "Ultralytics' wall" if python is not None else "edgekit default's wall"
    print(f"\n2. {name} at {imgsz} ({same.name}) on the bundled shapes.jpg (640x480), iou {IOU}, {args.frames} "
          f"frames x {args.rounds} processes per row, in turns (ms, medians; speedup = {against} / this row's wall)")
    print_rows(rows)
    return checks


def measured(runners: dict[str, list[str]], rounds: int, workers: int) -> dict[str, dict | str]:
    """Each runner's stage medians after `rounds` turns with `workers` busy workers competing, with the engine
    an edgekit runner reported (``engine``; None for the peer); a string says why a runner failed."""
    with busy_workers(workers):
        results = in_turns(runners, rounds)
    summary: dict[str, dict | str] = {}
    for label, runs in results.items():
        med = medians(runs, STAGES)
        if isinstance(med, dict):
            med["engine"] = next((r["engine"] for r in runs if "engine" in r), None)
            med["processes"] = [statistics.median(r["wall"]) if isinstance(r["wall"], list) else r["wall"]
                                for r in runs if "error" not in r]  # each process's own median: how they spread
        summary[label] = med
    return summary


def shown(label: str, med: dict) -> str:
    """A row's runner, with the engine edgekit's load chose where it reported one."""
    return f"{label} ({med['engine']})" if med.get("engine") else label


def print_rows(rows: list[tuple]) -> None:
    print(f"{'scene':<6} {'conf':>6} {'load':>4} {'runner':<58} {'kept':>4} {'wall':>7} {'pre':>6} {'infer':>7} "
          f"{'post':>6} {'speedup':>7}  note")
    for scene, conf, workers, label, k, med, speedup, note in rows:
        spread = "processes " + " / ".join(f"{w:.1f}" for w in med.get("processes", []))
        print(f"{scene:<6} {conf:>6.4f} {workers:>4} {label[:58]:<58} {k:>4} {med['wall']:>7.1f} {med['pre']:>6.2f} "
              f"{med['infer']:>7.1f} {med['post']:>6.2f} {speedup:>6.2f}x  {spread}{'; ' + note if note else ''}")


def fixtures_part(args, python: str | None, work: Path) -> list[tuple[str, float, float, bool]]:
    """Part 3: the trained fixtures at their training size (320), FP32 and INT8 with ``--max-drop``, each row
    with its mAP50-95 on the fixtures' val scenes beside its per-frame time on one val scene; yolo26n also as
    Ultralytics exports and runs it. Target: edgekit's fastest INT8 within the budget of its format's FP32 at
    least 2.5x the first row (Ultralytics' predict where it runs the fixture, else edgekit's ONNX FP32)."""
    from bench_accuracy import FIXTURES, IMGSZ
    from bench_val_decode import ultralytics_dataset

    from edgekit.converters.convert import convert_many
    from edgekit.eval.datasets import load_dataset
    from edgekit.eval.procedural import write_dataset
    from edgekit.eval.val import validate

    data_yaml = FIXTURES / "scenes" / "data.yaml"
    data = load_dataset(data_yaml, "val")
    data.items = data.items[: args.val_images]
    image = data.items[0].image
    calib = work / "fixture-calib" / "data.yaml"
    if not calib.exists():
        calib = write_dataset(work / "fixture-calib", {"train": args.calib_images}, seed=0)
    checks = []
    for fixture in args.fixtures.split(","):
        name = fixture.rsplit(".", 1)[0]
        out = work / "fixtures" / name
        source = {"topk": "runtime"} if name.startswith("yolo26") else {}
        files: dict[str, Path] = {}
        for label, kwargs in (("fp32", {"precisions": "fp32"}),
                              ("int8", {"precisions": "int8", "max_drop": args.max_drop})):
            folder = out / label
            done = folder / "done.json"  # the artifacts converted so far, by "format precision"
            made = json.loads(done.read_text()) if done.exists() else {}
            missing = [f for f in args.formats.split(",") if f"{f} {label}" not in made]
            if missing:
                results = convert_many(FIXTURES / fixture, ",".join(missing), kwargs["precisions"], IMGSZ, folder,
                                       calib=str(calib), val_data=str(data_yaml), max_drop=kwargs.get("max_drop"),
                                       **source)
                for r in results:
                    if not r.ok:
                        print(f"  {name} {r.format} {r.precision} FAILED: {r.error[:200]}")
                made.update({f"{r.format} {label}": str(r.path) for r in results if r.ok})
                done.write_text(json.dumps(made))
            files.update({k: Path(v) for k, v in made.items() if k.split()[0] in args.formats.split(",")})
        runners, maps = {}, {}
        peer = None
        if python is not None and name.startswith("yolo26"):
            peer = out / f"{name}-ultralytics.onnx"
            if not peer.exists():
                subprocess.run([python, str(PEER), "export", str(FIXTURES / fixture), str(IMGSZ), str(peer)],
                               check=True, stdout=subprocess.DEVNULL)
            runners["Ultralytics predict (its ONNX)"] = peer_command(python, peer, 0.25, args.frames, WARMUP, IMGSZ,
                                                                     image=image)
            theirs = work / "fixture-val" / "data.yaml"  # the same val scenes in Ultralytics' dataset layout
            if not theirs.exists():
                ultralytics_dataset(data_yaml, len(data.items), theirs.parent)
            reply = run_child([python, str(PEER), "val", str(peer), str(theirs), str(IMGSZ)])
            maps["Ultralytics predict (its ONNX)"] = 100 * reply["map50_95"]
            runners["edgekit, same file"] = edgekit_command(peer, 0.25, args.frames, WARMUP, image=image)
            maps["edgekit, same file"] = 100 * validate(edgekit.load(peer), data, progress=False).map50_95
        for key, path in files.items():
            label = f"edgekit {key}" + (f" --max-drop {args.max_drop:g}" if key.endswith("int8") else "")
            runners[label] = edgekit_command(path, 0.25, args.frames, WARMUP, image=image)
            maps[label] = 100 * validate(edgekit.load(path), data, progress=False).map50_95
        if not runners:
            continue
        rows = []
        base_label = next(iter(runners))
        for workers in regimes(args.load):
            summary = measured(runners, args.rounds, workers)
            if not isinstance(summary[base_label], dict):
                print(f"  {name}: {base_label} FAILED: {summary[base_label]}")
                continue
            base = summary[base_label]["wall"]
            for label, med in summary.items():
                if not isinstance(med, dict):
                    print(f"  {name}: {label} FAILED: {med}")
                    continue
                rows.append(("val0", 0.25, workers, shown(label, med), int(med["kept"]), med, base / med["wall"],
                             f"mAP50-95 {maps[label]:.2f} ({maps[label] - maps[base_label]:+.2f})"))
            int8 = [(base / summary[lb]["wall"], lb) for lb in summary  # within the budget of its format's FP32
                    if lb.endswith(f"--max-drop {args.max_drop:g}") and isinstance(summary[lb], dict)
                    and maps.get(f"edgekit {lb.split()[1]} fp32", -1.0) - maps[lb] <= args.max_drop + 1e-9]
            if int8:
                speedup, label = max(int8)
                checks.append((f"{name} {IMGSZ}, {workers} busy: {label.split()[1]} INT8 vs {base_label.split()[0]}",
                               speedup, TARGET_INT8, True))
            else:
                checks.append((f"{name} {IMGSZ}, {workers} busy: INT8 within {args.max_drop:g} of FP32", 0.0,
                               TARGET_INT8, True))
        print(f"\n3. trained fixture {name} at {IMGSZ} on {Path(image).name} (a val scene), conf 0.25; mAP50-95 on "
              f"{len(data.items)} val scenes; speedup = {base_label}'s wall / this row's wall")
        print_rows(rows)
    return checks


def raw_output(path: Path) -> np.ndarray:
    """The first output of `path` on the bundled photo (the engine closed again before anything is timed)."""
    detector = edgekit.load(path)
    tensor, _ = preprocess(read_image(assets.shapes_image()), detector.meta.input, detector.meta.imgsz)
    out = detector.engine.run({detector.input.name: tensor})[detector.meta.outputs.names[0]]
    del detector
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Parts: 1. decode + NMS against "
                                     "named baselines; 2. side by side with Ultralytics on the same ONNX (--models, "
                                     "--imgsz); 3. the trained fixtures, INT8 beside its mAP (--fixtures, "
                                     "--formats). Tables and commands: docs/benchmarks.md.")
    parser.add_argument("--ultralytics-python", help="an interpreter that imports ultralytics (its own venv)")
    parser.add_argument("--frames", type=int, default=30, help="timed frames per process (default 30)")
    parser.add_argument("--rounds", type=int, default=4, help="processes per runner, taking turns (default 4)")
    parser.add_argument("--repeat", type=int, default=300, help="repetitions of each decode timing (default 300)")
    parser.add_argument("--models", default="yolo26n,yolov9t", help="peer models of part 2, side by side "
                        "(default yolo26n,yolov9t; empty: none)")
    parser.add_argument("--imgsz", default="320,640", help="input sizes of part 2, comma-separated (default 320,640)")
    parser.add_argument("--fixtures", default=None, help="trained fixtures of part 3 (default: yolo26n.pt,"
                        "yolov9-t.pt,damoyolo-t.pth; --smoke: none; empty: none)")
    parser.add_argument("--formats", default="onnx,openvino", help="edgekit's formats in part 3 (FP32 and INT8 "
                        "with --max-drop of each; default onnx,openvino)")
    parser.add_argument("--max-drop", type=float, default=0.5, help="part 3's accuracy budget "
                        "(mAP50-95 points, default 0.5)")
    parser.add_argument("--calib-images", type=int, default=300, help="part 3's calibration scenes (default 300)")
    parser.add_argument("--work", help="folder kept between runs for the models and artifacts (default: temporary)")
    parser.add_argument("--smoke", action="store_true", help="CI: decode figures with few repeats, then part 2 on "
                        "the bundled shapes model (no peer), 3 frames, 1 round; part 3 only for --fixtures given "
                        "(ONNX, 8 calibration and 4 val scenes)")
    parser.add_argument("--val-images", type=int, default=None, help=argparse.SUPPRESS)
    add_load_argument(parser)
    add_child_arguments(parser)
    parser.add_argument("--conf", type=float, default=0.25, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=WARMUP, help=argparse.SUPPRESS)
    parser.add_argument("--boxes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    try:
        args.imgsz = [int(v) for v in args.imgsz.split(",") if v]
    except ValueError:
        parser.error(f"argument --imgsz: sizes are whole numbers, comma-separated, not {args.imgsz!r}")
    if args.smoke:
        args.models, args.imgsz, args.frames, args.rounds, args.repeat = "shapes", [320], 3, 1, 5
        args.fixtures = args.fixtures or ""
        args.formats, args.calib_images, args.val_images = "onnx", 8, 4
    elif args.fixtures is None:
        args.fixtures = "yolo26n.pt,yolov9-t.pt,damoyolo-t.pth"
    from bench_accuracy import FIXTURES

    missing = [f for f in args.fixtures.split(",") if f and not (FIXTURES / f).is_file()]
    if missing:
        parser.error(f"argument --fixtures: no {', '.join(missing)} in {FIXTURES} (there: "
                     f"{', '.join(sorted(p.name for p in FIXTURES.glob('*.pt*')))})")
    import onnxruntime
    import openvino

    print(f"{machine_line()}\nnumpy {np.__version__}, opencv {cv2.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"openvino {openvino.__version__}")
    python = None if args.smoke else peer_python(args.ultralytics_python)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        models = work / "models"
        peer_models = [m for m in args.models.split(",") if m in PEER_MODELS]
        unknown = [m for m in args.models.split(",") if m and m not in PEER_MODELS and m != "shapes"]
        if unknown:
            parser.error(f"argument --models: unknown {', '.join(unknown)} (the peer makes "
                         f"{', '.join(sorted(PEER_MODELS))})")
        if python and not all((models / f"{m}.onnx").exists() for m in peer_models):
            print(f"\nbuilding and exporting {', '.join(sorted(PEER_MODELS))} with Ultralytics ({python}) ...",
                  flush=True)
            subprocess.run([python, str(PEER), "make", str(models), str(assets.shapes_image())], check=True,
                           stdout=subprocess.DEVNULL)
        real = {name: raw_output(models / f"{name}.onnx")[0] for name in peer_models if python}
        checks = decode_figures(args.repeat, real)
        e2e_file = models / "yolo26n-e2e.onnx"
        checks += e2e_figure(args.repeat, raw_output(e2e_file) if python and e2e_file.exists() else None)
        if python is None and not args.smoke:
            print("\n2. side by side with Ultralytics: SKIPPED (ultralytics is not importable here; give its "
                  "interpreter with --ultralytics-python, e.g. a venv with torch, torchvision and ultralytics)")
        elif args.models:
            checks += side_by_side(args, python, work)
        if args.fixtures:
            checks += fixtures_part(args, python, work)
    print("\ntargets")
    missed = 0
    for label, value, target, same in checks:
        is_ms = label.startswith(("decode", "end-to-end"))
        ok = same and (value <= target if is_ms else value >= target)
        missed += not ok
        shown = f"{value:.3f} ms <= {target} ms" if is_ms else f"{value:.3f}x >= {target}x"
        print(f"  {label:<62} {shown:<22} {'met' if ok else 'MISSED'}{'' if same else ' (kept boxes differ)'}")
    return 0 if args.smoke else (1 if missed else 0)


if __name__ == "__main__":
    raise SystemExit(main())
