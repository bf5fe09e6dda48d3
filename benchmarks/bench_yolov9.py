"""YOLOv9 conversion time and the deploy form's speed-up, measured on this machine.

    python benchmarks/bench_yolov9.py [--arch yolov9-c] [--imgsz 640] [--runs 20]

1. Conversion: writes a seeded random checkpoint in the official pickled layout (fp16, model + ema),
   then times `edgekit convert` on it end to end (safe load, PGI strip, re-parameterization, export,
   onnxslim, verification, atomic write). Target for yolov9-c at 640: <= 60 s.
2. Latency on ONNX Runtime at the same size: the training form as users export it without converting
   (both heads computed, RepConvN unfused) against the deploy form edgekit writes; the deploy form must
   be faster. Both are exported from the same weights in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the official-layout writer
from edgekit.converters.convert import convert
from edgekit.runtimes.ort import OnnxRuntimeEngine

from checkpoints import random_yolov9, write_yolov9_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import add_load_argument, busy_workers, regime_label, regimes

TARGET_SECONDS = 60.0


class TrainingForm(torch.nn.Module):
    """The unconverted model as the reference exporter emits it: every head, nothing fused."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        return tuple(out) if isinstance(out, list) else out


def latency(path: Path, imgsz: int, runs: int, threads: int) -> tuple[float, float]:
    engine = OnnxRuntimeEngine(path, threads=threads)
    name = engine.inputs[0].name
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, imgsz, imgsz)).astype(np.float32)
    for _ in range(3):
        engine.run({name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        engine.run({name: x})
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)), float(np.percentile(times, 90))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="yolov9-c")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--smoke", action="store_true", help="CI: yolov9-t at 160, 2 runs")
    add_load_argument(parser)
    args = parser.parse_args()
    if args.smoke:
        args.arch, args.imgsz, args.runs = "yolov9-t", 160, 2
    print(f"machine: {os.cpu_count()} cpus, torch {torch.__version__}, {args.arch} at {args.imgsz}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = random_yolov9(args.arch)
        ckpt = write_yolov9_checkpoint(model, tmp / f"{args.arch}.pt")
        print(f"checkpoint: {ckpt.stat().st_size / 1e6:.1f} MB (official layout, fp16, model + ema)")

        start = time.perf_counter()
        result = convert(ckpt, imgsz=args.imgsz, out_dir=tmp)
        seconds = time.perf_counter() - start
        print(
            f"\nconversion: {seconds:.1f} s end to end (target <= {TARGET_SECONDS:.0f} s): "
            f"{'met' if seconds <= TARGET_SECONDS else 'MISSED'}; "
            f"boxes max|diff| {result.verification.max_abs['boxes']:.2e}, "
            f"scores {result.verification.max_abs['scores']:.2e}"
        )

        training = tmp / "training.onnx"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                TrainingForm(model.float().eval()),
                (torch.zeros(1, 3, args.imgsz, args.imgsz),),
                str(training),
                input_names=["images"],
                opset_version=17,
                dynamo=False,
            )

        ratios = []
        for workers in regimes(args.load):
            with busy_workers(workers):
                t_train = latency(training, args.imgsz, args.runs, args.threads)
                t_deploy = latency(result.path, args.imgsz, args.runs, args.threads)
            print(
                f"\nONNX Runtime latency, {args.imgsz}x{args.imgsz}, batch 1, {args.threads} threads, "
                f"median / p90 of {args.runs}; {regime_label(workers)}"
            )
            print(
                f"{'training form (unconverted)':<30} {t_train[0]:8.1f} / {t_train[1]:.1f} ms  "
                f"{training.stat().st_size / 1e6:6.1f} MB"
            )
            print(f"{'deploy form (edgekit)':<30} {t_deploy[0]:8.1f} / {t_deploy[1]:.1f} ms  {result.size_mb:6.1f} MB")
            ratios.append(t_train[0] / t_deploy[0])
            print(f"deploy form is {ratios[-1]:.2f}x faster: {'met' if ratios[-1] > 1 else 'MISSED'}")
    return 0 if args.smoke or (seconds <= TARGET_SECONDS and min(ratios) > 1) else 1


if __name__ == "__main__":
    raise SystemExit(main())
