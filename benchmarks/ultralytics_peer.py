"""The Ultralytics side of bench_vs_ultralytics.py, run in Ultralytics' own interpreter (a separate venv).

    REFVENV/bin/python benchmarks/ultralytics_peer.py make OUTDIR IMAGE
    REFVENV/bin/python benchmarks/ultralytics_peer.py export CHECKPOINT IMGSZ OUT.onnx
    REFVENV/bin/python benchmarks/ultralytics_peer.py serve
    REFVENV/bin/python benchmarks/ultralytics_peer.py time MODEL IMAGE CONF IOU FRAMES WARMUP IMGSZ [boxes]
    REFVENV/bin/python benchmarks/ultralytics_peer.py val CHECKPOINT DATA_YAML IMGSZ

Ultralytics is AGPL-3.0: this script is a benchmark peer only. It imports nothing of edgekit and edgekit
imports nothing of it; the two sides talk through files and JSON lines on stdin/stdout.

``make`` builds yolo26n and yolov9t from their yaml (random weights: nothing can be downloaded here),
gives BatchNorm non-trivial statistics and the class logits a spread (as a trained model's vary), shifts
the class biases so the image is a busy scene (a few hundred boxes kept at conf 0.25 after NMS),
saves each checkpoint the way ``strip_optimizer`` leaves one (fp16 model under ``model``) and exports
it with Ultralytics' own exporter to ONNX at 640 (one-to-many output + NMS; for yolo26n also the
end-to-end [1,300,6] output). ``export`` exports a checkpoint (one of those, or a trained one) to ONNX at
another size the same way (one-to-many output + NMS). ``serve`` answers ``{"model", "image", "conf", "iou",
"frames", "imgsz"}`` lines with per-frame wall times and Ultralytics' own stage split (``Results.speed``);
``time`` answers one such request from its arguments and exits. ``val`` (bench_val_decode.py,
bench_vs_ultralytics.py) runs Ultralytics' own val of a checkpoint or ONNX file (batch 1, CPU) and prints one
JSON line: its stage times per image (``speed``), the seconds from the call to its return, and mAP50-95.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import time
from pathlib import Path

MODELS = {"yolo26n": "yolo26n.yaml", "yolov9t": "yolov9t.yaml"}
BUSY_PAIRS = 1500  # (anchor, class) pairs above conf 0.25 on the image: a crowded scene


def _randomize(model, seed: int = 0) -> None:
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.8 + 0.4)
                m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.8 + 0.6)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        head = model.model[-1]
        if head.reg_max == 1:  # raw distances: random weights give inverted boxes, a trained head positive ones
            for branch in [head.cv2] + ([head.one2one_cv2] if getattr(head, "one2one_cv2", None) else []):
                for seq in branch:
                    seq[-1].weight.mul_(0.05)
                    seq[-1].bias.copy_(torch.rand(4, generator=g) * 2 + 0.5)


def _class_logits(model, x, one2one: bool):
    """Class logits less their biases [C, A] of one branch on input x (hooks on each branch's last conv)."""
    import torch

    head = model.model[-1]
    branch = head.one2one_cv3 if one2one else head.cv3
    outs = []
    hooks = [
        seq[-1].register_forward_hook(lambda m, i, o: outs.append((o - m.bias.view(1, -1, 1, 1)).flatten(2)))
        for seq in branch
    ]
    saved = head.end2end
    head.end2end = one2one
    with torch.no_grad():
        model(x)
    head.end2end = saved
    for h in hooks:
        h.remove()
    return torch.cat(outs, 2)[0]


def _spread_and_shift(model, x, seed: int = 0) -> None:
    """Logits that vary by a few units across anchors, shifted so BUSY_PAIRS pairs pass conf 0.25, shared
    among the classes as words share a text (Zipf: the busiest class holds about a fifth)."""
    import math

    import torch

    g = torch.Generator().manual_seed(seed)
    head = model.model[-1]
    branches = [(head.cv3, False)] + ([(head.one2one_cv3, True)] if getattr(head, "one2one_cv3", None) else [])
    with torch.no_grad():
        for branch, one2one in branches:
            raw = _class_logits(model, x, one2one)
            gain = 2.0 / raw.std(1).clamp_min(1e-6)  # every class: spread 2 across anchors, own prior
            bias = -gain * raw.mean(1) + torch.randn(head.nc, generator=g) * 0.5
            for seq in branch:
                seq[-1].weight.mul_(gain.view(-1, 1, 1, 1))
                seq[-1].bias.copy_(bias)
            logits = _class_logits(model, x, one2one) + bias[:, None]
            total = BUSY_PAIRS if not one2one else 60
            share = 1.0 / torch.arange(1, head.nc + 1)[torch.randperm(head.nc, generator=g)]  # Zipf over classes
            counts = (total * share / share.sum()).clamp_min(1)
            ranked = logits.sort(1, descending=True).values
            level = ranked.gather(1, counts.long().clamp_max(logits.shape[1] - 1).view(-1, 1))[:, 0]
            for seq in branch:
                seq[-1].bias.sub_(level - math.log(0.25 / 0.75))


def make(out: Path, image_path: Path) -> None:
    import cv2
    import numpy as np
    import torch
    from ultralytics import YOLO

    out.mkdir(parents=True, exist_ok=True)
    image = cv2.imread(str(image_path))
    h, w = image.shape[:2]
    r = min(640 / h, 640 / w)
    nw, nh = round(w * r), round(h * r)
    boxed = np.full((640, 640, 3), 114, np.uint8)
    top, left = (640 - nh) // 2, (640 - nw) // 2
    boxed[top : top + nh, left : left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(boxed[..., ::-1].transpose(2, 0, 1).copy()).float()[None] / 255
    for name, yaml in MODELS.items():
        torch.manual_seed(0)
        yolo = YOLO(yaml)
        model = yolo.model.eval()
        _randomize(model)
        _spread_and_shift(model, x)
        model.names = {i: f"class{i}" for i in range(model.model[-1].nc)}
        ckpt = {
            "date": "2026-01-14T00:00:00",
            "version": "8.4.0",
            "epoch": -1,
            "best_fitness": None,
            "model": copy.deepcopy(model).half(),
            "ema": None,
            "updates": None,
            "optimizer": None,
            "train_args": {"task": "detect", "model": yaml, "data": "coco.yaml", "imgsz": 640},
            "train_metrics": {},
            "train_results": None,
        }
        pt = out / f"{name}.pt"
        torch.save(ckpt, pt)
        variants = ([("-e2e", False)] if getattr(model.model[-1], "one2one_cv3", None) else []) + [("", None)]
        for suffix, nms in variants:
            exported = Path(YOLO(str(pt)).export(format="onnx", imgsz=640, nms=nms, simplify=True, verbose=False))
            shutil.move(str(exported), out / f"{name}{suffix}.onnx")
        print(json.dumps({"made": name}), flush=True)


def _rebuilt(checkpoint: Path, out: Path) -> None:
    """`checkpoint` saved again at `out` with its model rebuilt from its own yaml by Ultralytics and the weights
    loaded into it: a checkpoint written outside Ultralytics (edgekit's trained fixtures) may lack attributes
    that only its model builder sets and its exporter needs."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    old = ckpt.get("ema") or ckpt["model"]
    model = DetectionModel(copy.deepcopy(old.yaml), nc=len(old.names), verbose=False)
    model.load_state_dict(old.float().state_dict())
    model.names, model.args = old.names, getattr(old, "args", {})
    ckpt.update(model=model.half().eval(), ema=None)
    torch.save(ckpt, out)


def export(checkpoint: Path, imgsz: int, out: Path) -> None:
    """Ultralytics' own ONNX export of `checkpoint` at `imgsz` (one-to-many output + NMS, simplified), moved
    to `out`."""
    from ultralytics import YOLO

    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".export-{out.stem}"
    work.mkdir(exist_ok=True)
    local = work / checkpoint.name  # Ultralytics writes its export beside the checkpoint
    _rebuilt(checkpoint, local)
    exported = Path(YOLO(str(local)).export(format="onnx", imgsz=imgsz, simplify=True, verbose=False))
    shutil.move(str(exported), out)
    shutil.rmtree(work)
    print(json.dumps({"exported": str(out)}), file=replies, flush=True)


def time_once(argv: list[str]) -> None:
    """``time MODEL IMAGE CONF IOU FRAMES WARMUP IMGSZ [boxes]``: one measurement in this process, one JSON line
    out (the serve reply), then exit: bench_vs_ultralytics.py runs each side in turn in its own process."""
    model, image, conf, iou, frames, warmup, imgsz = argv[:7]
    request = {"model": model, "image": image, "conf": float(conf), "iou": float(iou), "frames": int(frames),
               "warmup": int(warmup), "imgsz": int(imgsz), "boxes": argv[7:8] == ["boxes"]}
    sys.stdin = iter([json.dumps(request) + "\n"])
    serve()


def serve() -> None:
    """Answer one JSON request per stdin line with per-frame timings of YOLO(model).predict(image)."""
    sys.stdout.flush()
    replies = os.fdopen(os.dup(1), "w")  # Ultralytics logs to stdout: everything on fd 1 goes to stderr instead
    os.dup2(2, 1)
    import cv2
    from ultralytics import YOLO

    models: dict[str, object] = {}
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("quit"):
            break
        model = models.get(req["model"])
        if model is None:
            model = models[req["model"]] = YOLO(req["model"], task="detect")
        image = cv2.imread(req["image"])
        args = dict(imgsz=req.get("imgsz", 640), conf=req["conf"], iou=req["iou"], max_det=300, verbose=False)
        for _ in range(req.get("warmup", 0)):
            model.predict(image, **args)
        walls, pre, infer, post, kept = [], [], [], [], 0
        for _ in range(req["frames"]):
            start = time.perf_counter()
            result = model.predict(image, **args)[0]
            walls.append((time.perf_counter() - start) * 1e3)
            pre.append(result.speed["preprocess"])
            infer.append(result.speed["inference"])
            post.append(result.speed["postprocess"])
            kept = len(result.boxes)
        reply = {"wall": walls, "pre": pre, "infer": infer, "post": post, "kept": kept}
        if req.get("boxes"):
            reply["xyxy"] = result.boxes.xyxy.tolist()
            reply["cls"] = result.boxes.cls.tolist()
            reply["score"] = result.boxes.conf.tolist()
        print(json.dumps(reply), file=replies, flush=True)


def val(checkpoint: str, data: str, imgsz: int) -> None:
    """Ultralytics' val of `checkpoint` on `data` as a user runs it: ``YOLO(checkpoint).val(batch=1, device='cpu')``."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    from ultralytics import YOLO

    start = time.perf_counter()
    metrics = YOLO(checkpoint).val(data=data, imgsz=imgsz, batch=1, device="cpu", plots=False, verbose=False)
    seconds = time.perf_counter() - start
    reply = {"speed": metrics.speed, "seconds": seconds, "map50_95": float(metrics.box.map)}
    print(json.dumps(reply), file=replies, flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["make"]:
        make(Path(sys.argv[2]), Path(sys.argv[3]))
    elif sys.argv[1:2] == ["export"] and len(sys.argv) == 5:
        export(Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
    elif sys.argv[1:2] == ["serve"]:
        serve()
    elif sys.argv[1:2] == ["time"]:
        time_once(sys.argv[2:])
    elif sys.argv[1:2] == ["val"] and len(sys.argv) == 5:
        val(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        raise SystemExit(__doc__)
