"""DAMO-YOLO: ONNX Runtime latency of the training form (RepConv and BatchNorm unfused) vs the deploy form.

    python benchmarks/bench_damo.py [--arch damoyolo-t] [--imgsz 640] [--runs 20]

Both are exported from the same seeded weights in the same run: the training form as the reference's
own ONNX export would see it without `switch_to_deploy` (every RepConv still two branches), the deploy
form as `edgekit convert` writes it (RepConv collapsed, BatchNorm, Scale and the x255 input folded).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the DAMO-YOLO checkpoint writer
from edgekit.converters.convert import convert
from edgekit.runtimes.ort import OnnxRuntimeEngine

from checkpoints import random_damo, write_damo_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import add_load_argument, busy_workers, regime_label, regimes


def latency(path: Path, imgsz: int, runs: int) -> float:
    engine = OnnxRuntimeEngine(path, threads=os.cpu_count())
    name = engine.inputs[0].name
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, imgsz, imgsz)).astype(np.float32)
    for _ in range(3):
        engine.run({name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        engine.run({name: x})
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="damoyolo-t")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="CI: input 160, 2 runs")
    add_load_argument(parser)
    args = parser.parse_args()
    if args.smoke:
        args.imgsz, args.runs = 160, 2
    print(f"machine: {os.cpu_count()} cpus, torch {torch.__version__}, {args.arch} at {args.imgsz}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = random_damo(args.arch)
        ckpt = write_damo_checkpoint(model, tmp / f"{args.arch}.pth")
        start = time.perf_counter()
        result = convert(ckpt, imgsz=args.imgsz, out_dir=tmp)
        seconds = time.perf_counter() - start
        training = tmp / "training.onnx"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), (torch.zeros(1, 3, args.imgsz, args.imgsz),), str(training),
                              input_names=["images"], opset_version=17, dynamo=False)
        print(f"conversion {seconds:.1f} s; verification boxes {result.verification.max_abs['boxes']:.2e}, "
              f"scores {result.verification.max_abs['scores']:.2e}")
        ratios = []
        for workers in regimes(args.load):
            with busy_workers(workers):
                t_train = latency(training, args.imgsz, args.runs)
                t_deploy = latency(result.path, args.imgsz, args.runs)
            print(f"\nONNX Runtime, batch 1, {os.cpu_count()} threads, median of {args.runs}; {regime_label(workers)}")
            print(f"{'training form (RepConv unfused)':<34} {t_train:8.1f} ms  {training.stat().st_size / 1e6:6.1f} MB")
            print(f"{'deploy form (edgekit)':<34} {t_deploy:8.1f} ms  {result.size_mb:6.1f} MB")
            ratios.append(t_train / t_deploy)
            print(f"deploy form is {ratios[-1]:.2f}x faster: {'met' if ratios[-1] > 1 else 'MISSED'}")
    return 0 if min(ratios) > 1 or args.smoke else 1


if __name__ == "__main__":
    raise SystemExit(main())
