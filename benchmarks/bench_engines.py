"""Per-frame latency of model files on each engine that opens them, with idle engine threads spinning (the
device default) and sleeping (``--shared``), on the machine as it is and under competing load.

    python benchmarks/bench_engines.py MODEL [MODEL ...] [--backends onnxruntime,openvino] [--load 2]
        [--frames 30] [--rounds 4] [--threads N]
    python benchmarks/bench_engines.py --smoke

Every (file, engine, setting) is one process that loads the file with ``edgekit.load``, warms up, then times
``--frames`` frames of the Detector on the bundled sample image (wall clock of the whole call, and the
engine's own inference time); processes take turns, one alive at a time, for ``--rounds`` rounds in rotating
order, and a row reports the median of the per-process medians. An .onnx file runs on ONNX Runtime and on
OpenVINO (which reads ONNX directly); other files on their own engine. ``--load N`` repeats everything with N
busy worker processes competing for the cores. ``--smoke``: the bundled shapes model, 3 frames, 1 round
(CI: tests/test_benchmarks.py).

The engine defaults edgekit ships (docs/benchmarks.md, Engine settings) are what wins here on a machine
with nothing else running, the device case; ``--shared`` is what wins under load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _load


def child(args: argparse.Namespace) -> None:
    """One measurement, in its own process: prints medians of wall / pre / infer / post (ms) as JSON."""
    import edgekit
    from edgekit import assets
    from edgekit.images import read_image
    from edgekit.runtimes.settings import EngineSettings

    detector = edgekit.load(args.child, backend=args.backend, settings=EngineSettings(args.threads, args.shared))
    image = read_image(assets.sample_image())
    for _ in range(args.warmup):
        detector(image)
    wall, stages = [], {"pre": [], "infer": [], "post": []}
    kept = 0
    for _ in range(args.frames):
        start = time.perf_counter()
        kept = len(detector(image))
        wall.append((time.perf_counter() - start) * 1e3)
        for key, value in detector.timings.as_dict().items():
            if key in stages:
                stages[key].append(value)
    _load.print_json_line({"wall": statistics.median(wall), "kept": kept,
                     **{k: statistics.median(v) for k, v in stages.items()}})


def engines_for(path: Path, wanted: list[str] | None) -> list[str]:
    from edgekit.runtimes.engine import backend_for

    found = ["onnxruntime", "openvino"] if path.suffix.lower() == ".onnx" else [backend_for(path)]
    return [b for b in found if wanted is None or b in wanted]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("models", nargs="*", type=Path, help="model files (artifacts) to time")
    parser.add_argument("--backends", help="only these engines, comma-separated (default: every engine that opens "
                                           "the file)")
    parser.add_argument("--frames", type=int, default=30, help="timed frames per process (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed frames first (default 5)")
    parser.add_argument("--rounds", type=int, default=4, help="turns per (file, engine, setting)")
    parser.add_argument("--threads", type=int, default=None, help="engine threads (default: the engine's)")
    parser.add_argument("--smoke", action="store_true", help="CI: the bundled shapes model, 3 frames, 1 round")
    _load.add_load_argument(parser)
    _load.add_child_arguments(parser)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    if args.smoke:
        from edgekit import assets

        args.models, args.frames, args.warmup, args.rounds = [assets.shapes_model()], 3, 1, 1
    if not args.models:
        parser.error("give model files to time (or --smoke)")
    wanted = args.backends.split(",") if args.backends else None
    from edgekit.errors import EdgekitError
    from edgekit.runtimes.engine import existing_model

    for path in args.models:  # checked before any process runs
        try:
            if not engines_for(existing_model(path), wanted):
                parser.error(f"{path}: none of --backends {args.backends} opens it")
        except EdgekitError as exc:
            parser.error(str(exc))
    print(_load.machine_line())
    print(f"{args.frames} frames per process after {args.warmup} warm-up, {args.rounds} rounds in turns; "
          f"threads {args.threads or 'engine default'}; ms: median of the per-process medians")
    names = [path.name for path in args.models]
    shown = {path: path.name if names.count(path.name) == 1 else f"{path.parent.name}/{path.name}"
             for path in args.models}  # files of the same name in different folders stay apart
    commands = {}
    for path in args.models:
        for backend in engines_for(path, wanted):
            for shared in (False, True):
                command = [sys.executable, __file__, "--child", str(path), "--backend", backend,
                           "--frames", str(args.frames), "--warmup", str(args.warmup)]
                if args.threads:
                    command += ["--threads", str(args.threads)]
                commands[(str(path), backend, shared)] = command + (["--shared"] if shared else ["--no-shared"])
    failed: dict[tuple[str, str, bool, int], str] = {}
    for workers in _load.regimes(args.load):
        with _load.busy_workers(workers):
            results = _load.in_turns(commands, args.rounds)
        print(f"\n{_load.regime_label(workers)}")
        print(f"{'model':<34} {'engine':<12} {'spinning: wall / infer':>23} {'--shared: wall / infer':>23} "
              f"{'kept':>4}  faster")
        for path in args.models:
            for backend in engines_for(path, wanted):
                spin, sleep = (_load.medians(results[(str(path), backend, shared)], ("wall", "infer", "kept"))
                               for shared in (False, True))
                for shared in (False, True):
                    errors = [r["error"] for r in results[(str(path), backend, shared)] if "error" in r]
                    if errors:  # (also one that failed after good rounds: its row keeps their medians)
                        failed[(str(path), backend, shared, workers)] = errors[-1]
                cells = [f"{m['wall']:>12.2f} / {m['infer']:<8.2f}" if isinstance(m, dict) else f"{'failed':>23}"
                         for m in (spin, sleep)]
                timed = [m for m in (spin, sleep) if isinstance(m, dict)]
                kept = f"{timed[0]['kept']:>4.0f}" if timed else "   -"
                faster = ""
                if len(timed) == 2:
                    ratio = max(spin["wall"], sleep["wall"]) / min(spin["wall"], sleep["wall"])
                    faster = f"{'spinning' if spin['wall'] < sleep['wall'] else '--shared'} ({ratio:.2f}x)"
                print(f"{shown[path][-34:]:<34} {backend:<12} {cells[0]} {cells[1]} {kept}  {faster}")
    for (path, backend, shared, workers), why in failed.items():
        print(f"FAILED {path} on {backend}{', --shared' if shared else ''}"
              f"{f', {workers} busy workers' if workers else ''}: {why}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
