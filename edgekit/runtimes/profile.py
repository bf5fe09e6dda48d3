"""Profiling a model file where it runs: latency percentiles and FPS, the pre / infer / post split, a threads
sweep, per-operator times where the engine offers them (ONNX Runtime profiling, OpenVINO performance
counters), model load time, peak memory, and the device's temperature, clock and throttling during the run.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.detections import Detections
from edgekit.devices.profiles import detect_device
from edgekit.devices.telemetry import TelemetrySampler, vcgencmd_throttled
from edgekit.errors import EdgekitError, require
from edgekit.images import read_image
from edgekit.runtimes.detector import Detector, load
from edgekit.runtimes.settings import EngineSettings, engine_settings

logger = logging.getLogger(__name__)

# progress(stage, done, total): called as work advances, so a command line can show bars
Progress = Callable[[str, int, int], None]


@dataclass
class Latency:
    """Summary of per-frame times in milliseconds."""

    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    min: float
    max: float
    fps: float  # 1000 / mean

    @classmethod
    def of(cls, ms: Sequence[float]) -> Latency:
        """Percentiles, mean, spread and frame rate of a list of millisecond times."""
        a = np.asarray(ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        mean = float(a.mean())
        return cls(*(round(float(v), 3) for v in (p50, p90, p99, mean, a.std(), a.min(), a.max())),
                   round(1000.0 / mean, 2) if mean > 0 else 0.0)


@dataclass
class Operator:
    """Time spent in one operator type per inference, as the engine reports it."""

    op: str
    ms: float
    count: int
    share: float  # of the summed operator time


@dataclass
class ProfileReport:
    """Everything `edgekit profile` measured; `runs` holds one row per timed frame."""

    model: str
    backend: str
    precision: str
    imgsz: tuple[int, int]
    threads: int | None
    shared: bool
    image: str
    device: str | None
    load_ms: float
    rss_after_load_mb: float
    peak_rss_mb: float
    warmup: int
    latency: Latency
    stages: dict[str, float]  # mean ms of pre, infer, post, and their sum
    runs: list[dict[str, float]] = field(default_factory=list)
    sweep: list[dict[str, Any]] = field(default_factory=list)  # per thread count x shared off / on
    engines: list[dict[str, Any]] = field(default_factory=list)  # per engine that opens the file
    operators: list[Operator] = field(default_factory=list)
    operators_note: str = ""
    telemetry: list[dict[str, Any]] = field(default_factory=list)
    telemetry_summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (JSON-ready)."""
        data = asdict(self)
        data["imgsz"] = list(self.imgsz)
        return data

    def to_json(self) -> str:
        """The report as a JSON document."""
        return json.dumps(self.to_dict(), indent=2)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (VmHWM on Linux; ru_maxrss elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource  # Unix only
    except ImportError:
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    """Resident memory of this process now, in MB (0 where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _timed_runs(detector: Detector, image: np.ndarray, n: int, stage: str, progress: Progress | None,
                clock_start: float) -> list[dict[str, float]]:
    rows = []
    for i in range(n):
        t0 = time.perf_counter()
        detector(image)
        t1 = time.perf_counter()
        t = detector.timings
        rows.append({"run": i, "t_s": round(t0 - clock_start, 4), "frame_ms": round((t1 - t0) * 1e3, 4),
                     "pre_ms": round(t.pre, 4), "infer_ms": round(t.infer, 4), "post_ms": round(t.post, 4)})
        if progress:
            progress(stage, i + 1, n)
    return rows


def default_sweep(cores: int | None = None) -> list[int]:
    """Thread counts worth trying: 1, 2, 4, ... up to the core count, and the core count itself."""
    cores = cores or os.cpu_count() or 1
    counts = {cores}
    t = 1
    while t < cores:
        counts.add(t)
        t *= 2
    return sorted(counts)


def operator_times(detector: Detector, image: np.ndarray, runs: int = 10) -> tuple[list[Operator], str]:
    """Per-operator-type times per inference from the engine's own profiler; ([], why) where there is none."""
    backend = detector.engine.backend
    from edgekit.runtimes.preprocess import preprocess

    tensor, _ = preprocess(image, detector.meta.input, detector.meta.imgsz)
    feeds = {detector.input.name: tensor}
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    if backend == "onnxruntime":
        ort = require("onnxruntime", "onnxruntime")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if detector.engine.threads:
            options.intra_op_num_threads = int(detector.engine.threads)
        with tempfile.TemporaryDirectory() as tmp:
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(tmp) / "ort")
            session = ort.InferenceSession(str(detector.engine.path), options, providers=["CPUExecutionProvider"])
            session.run(None, feeds)  # warm-up, excluded below by counting only the last `runs` calls
            for _ in range(runs):
                session.run(None, feeds)
            events = json.loads(Path(session.end_profiling()).read_text())
        runs_seen = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
        first_timed = runs_seen[-runs]["ts"] if len(runs_seen) >= runs else 0
        for e in events:
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= first_timed:
                op = e.get("args", {}).get("op_name", "?")
                totals[op] += e["dur"] / 1e3 / runs
                counts[op] += 1
        counts = {k: v // runs for k, v in counts.items()}
    elif backend == "openvino":
        ov = require("openvino", "openvino")
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True}
        if detector.engine.threads:
            config["INFERENCE_NUM_THREADS"] = int(detector.engine.threads)
        compiled = ov.Core().compile_model(detector.engine.model, "CPU", config)
        request = compiled.create_infer_request()
        request.infer([tensor])
        for _ in range(runs):
            request.infer([tensor])
            for info in request.profiling_info:
                if str(info.status).endswith("EXECUTED"):
                    totals[info.node_type] += info.real_time.total_seconds() * 1e3 / runs
                    counts[info.node_type] += 1
        counts = {k: v // runs for k, v in counts.items()}
    else:
        return [], f"{backend} offers no per-operator timings through its Python API"
    total = sum(totals.values()) or 1.0
    ops = [Operator(op, round(ms, 4), counts[op], round(ms / total, 4))
           for op, ms in sorted(totals.items(), key=lambda kv: -kv[1])]
    return ops, f"{backend} profiler, mean of {runs} inferences"


def profile_model(
    model: str | Path,
    *,
    image: str | Path | np.ndarray | None = None,
    runs: int = 100,
    warmup: int = 10,
    threads: int | None = None,
    settings: EngineSettings | None = None,
    device: str | None = None,
    backend: str | None = None,
    sweep: Sequence[int] | None = (),
    sweep_runs: int = 20,
    operators: bool = True,
    engines: bool = True,
    telemetry_root: str | Path = "/",
    throttled: Callable[[], int | None] = vcgencmd_throttled,
    interval: float = 0.25,
    progress: Progress | None = None,
) -> ProfileReport:
    """Profile a model file on one image (default: the bundled sample).

    `settings` (and `threads`, which wins over its count) are the engine's for the main runs. `sweep` lists
    thread counts to compare (None: `default_sweep()`; empty: no sweep), each with ``shared`` off and on
    (idle engine threads spinning, or sleeping as they should where other busy processes share the machine),
    so the report shows which setting this device wants. With `engines`, a file more than one installed engine
    opens (an .onnx file: ONNX Runtime and OpenVINO) is timed on each the same way, with the largest difference
    of its raw outputs from the file's own engine's on the image, so the report shows which engine runs it
    fastest here (`backend` then picks it). Telemetry is
    sampled every `interval` seconds during the timed runs from `telemetry_root` (tests pass copies of a
    Raspberry Pi's files).
    """
    if runs < 1 or warmup < 0:
        raise EdgekitError(f"runs must be at least 1 and warm-up not negative (got {runs}, {warmup})")
    from edgekit.assets import sample_image

    if image is None:
        image = sample_image()
    name = Path(image).name if not isinstance(image, np.ndarray) else "array"
    pixels = image if isinstance(image, np.ndarray) else read_image(image)
    t0 = time.perf_counter()
    settings = engine_settings(settings, threads)
    detector = load(model, backend=backend, settings=settings, device=device)
    load_ms = (time.perf_counter() - t0) * 1e3
    rss_after_load = current_rss_mb()
    for i in range(warmup):
        detector(pixels)
        if progress:
            progress("warm-up", i + 1, warmup)
    sampler = TelemetrySampler(interval=interval, root=telemetry_root, throttled=throttled)
    with sampler:
        rows = _timed_runs(detector, pixels, runs, "runs", progress, sampler._start)
    peak = peak_rss_mb()
    for row in rows:  # the telemetry sample nearest each run
        nearest = min(sampler.samples, key=lambda s: abs(s.t - row["t_s"]))
        row.update(temp_c=nearest.temp_c, arm_mhz=nearest.arm_mhz, throttled=nearest.throttled)
    stages = {k: round(float(np.mean([r[f"{k}_ms"] for r in rows])), 4) for k in ("pre", "infer", "post")}
    stages["sum"] = round(stages["pre"] + stages["infer"] + stages["post"], 4)
    report = ProfileReport(
        model=str(model),
        backend=detector.engine.backend,
        precision=detector.meta.precision,
        imgsz=tuple(detector.meta.imgsz),
        threads=detector.engine.threads,
        shared=detector.engine.settings.shared,
        image=name,
        device=device or detect_device().profile,
        load_ms=round(load_ms, 2),
        rss_after_load_mb=round(rss_after_load, 1),
        peak_rss_mb=round(peak, 1),
        warmup=warmup,
        latency=Latency.of([r["frame_ms"] for r in rows]),
        stages=stages,
        runs=rows,
        telemetry=sampler.to_list(),
        telemetry_summary=sampler.summary(),
    )
    if operators:
        report.operators, report.operators_note = operator_times(detector, pixels)
    counts = default_sweep() if sweep is None else list(sweep)
    del detector  # one engine alive at a time: spinning workers of one would slow the next
    for t in counts:
        for shared in (False, True):
            swept = load(model, backend=backend, settings=EngineSettings(t, shared, settings.fp16))
            for _ in range(min(warmup, 3)):
                swept(pixels)
            label = f"{t} threads{', shared' if shared else ''}"
            timed = _timed_runs(swept, pixels, sweep_runs, label, progress, time.perf_counter())
            lat = Latency.of([r["frame_ms"] for r in timed])
            report.sweep.append({"threads": t, "shared": shared, "p50_ms": lat.p50, "mean_ms": lat.mean,
                                 "fps": lat.fps, "infer_ms": round(float(np.mean([r["infer_ms"] for r in timed])), 3)})
            del swept
    if engines and backend is None:
        report.engines = compare_engines(model, pixels, settings, sweep_runs, min(warmup, 3), progress)
    return report


def compare_engines(model: str | Path, image: np.ndarray, settings: EngineSettings, runs: int = 20,
                    warmup: int = 3, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Time `model` on every installed engine that opens it, one engine alive at a time: per engine its median
    frame ms (p50_ms), FPS, detections on `image`, and max_abs_diff, the largest absolute difference from the
    first (the file's own) engine's on the same input: of the raw outputs where the runtime decodes them
    (compared: "outputs"), else of the detections' boxes (pixels) and confidences (compared: "detections"), as
    rows chosen in the graph (top-k, NMS) may come in another order where scores nearly tie (infinite where the
    classes or counts differ). Empty where only one engine opens the file; an engine that is not installed or
    refuses the file is left out."""
    from edgekit.runtimes.engine import backends_opening
    from edgekit.runtimes.preprocess import preprocess

    names = backends_opening(model)
    if len(names) < 2:
        return []
    rows, reference, found_first = [], None, None
    for name in names:
        try:
            detector = load(model, backend=name, settings=settings)
        except (EdgekitError, ImportError) as exc:
            logger.info("profile: %s does not open %s here (%s)", name, Path(model).name, exc)
            continue
        decoded_here = detector.meta.outputs.kind in ("boxes_scores", "packed")
        found = detector(image)
        if found_first is None:
            found_first = found
        if decoded_here:
            tensor, _ = preprocess(image, detector.meta.input, detector.meta.imgsz)
            raw = detector.engine.run({detector.input.name: tensor})
            outputs = [np.asarray(raw[n], np.float64) for n in detector.meta.outputs.names]
            reference = reference or outputs
            diff = max(float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
                       for a, b in zip(outputs, reference))
        else:
            diff = _detections_diff(found, found_first)
        for _ in range(warmup):
            detector(image)
        timed = _timed_runs(detector, image, runs, f"engine {name}", progress, time.perf_counter())
        lat = Latency.of([r["frame_ms"] for r in timed])
        rows.append({"backend": detector.engine.backend, "p50_ms": lat.p50, "fps": lat.fps,
                     "detections": len(found), "max_abs_diff": diff,
                     "compared": "outputs" if decoded_here else "detections"})
        del detector  # one engine alive at a time: spinning workers of one would slow the next
    return rows if len(rows) > 1 else []


def _detections_diff(a: Detections, b: Detections) -> float:
    """The largest absolute difference between two engines' detections of one image, boxes (pixels) and
    confidences together, each of `a`'s detections (best first) matched to the nearest unmatched one of `b` of
    its class (not by list order, which near-tied scores may change); infinite where their counts differ or a
    detection has no partner of its class."""
    if len(a) != len(b):
        return float("inf")
    far = np.abs(a.xyxy[:, None, :] - b.xyxy[None, :, :]).max(-1).astype(np.float64)  # [N, N] pixels
    far[a.class_id[:, None] != b.class_id[None, :]] = np.inf
    worst = 0.0
    for i in np.argsort(-a.confidence, kind="stable"):
        j = int(np.argmin(far[i]))
        if not np.isfinite(far[i, j]):
            return float("inf")
        worst = max(worst, float(far[i, j]), abs(float(a.confidence[i]) - float(b.confidence[j])))
        far[:, j] = np.inf
    return worst


def format_report(report: ProfileReport, top_ops: int = 12) -> str:
    """The report as the text `edgekit profile` prints."""
    r, lat, st = report, report.latency, report.stages
    lines = [
        f"model      {r.model}  ({r.backend}, {r.precision}, {r.imgsz[0]}x{r.imgsz[1]}, "
        f"threads {r.threads or 'default'}{', shared' if r.shared else ''}, device {r.device or 'unknown'})",
        f"load       {r.load_ms:.1f} ms; RSS after load {r.rss_after_load_mb:.1f} MB, peak {r.peak_rss_mb:.1f} MB",
        f"latency    {len(r.runs)} runs after {r.warmup} warm-up on {r.image}: p50 {lat.p50:.2f} ms  p90 {lat.p90:.2f}"
        f"  p99 {lat.p99:.2f}  mean {lat.mean:.2f} +- {lat.std:.2f}  ({lat.fps:.1f} FPS)",
        f"stages     pre {st['pre']:.2f} + infer {st['infer']:.2f} + post {st['post']:.2f} = {st['sum']:.2f} ms "
        f"(frame mean {lat.mean:.2f} ms)",
    ]
    for shared in (False, True):
        rows = [s for s in r.sweep if bool(s.get("shared")) == shared]
        if rows:
            label = "shared on " if shared else "shared off"
            lines.append(f"threads    {label}  " + "   ".join(
                f"{s['threads']}: {s['p50_ms']:.2f} ms ({s['fps']:.1f} FPS)" for s in rows))
    if r.sweep:
        best = min(r.sweep, key=lambda s: s["p50_ms"])
        lines.append(f"fastest    {best['threads']} threads, shared {'on' if best.get('shared') else 'off'} "
                     f"(--threads {best['threads']} {'--shared' if best.get('shared') else '--no-shared'})")
    if r.engines:
        first = r.engines[0]["backend"]
        lines.append("engines    " + "   ".join(
            f"{e['backend']}: {e['p50_ms']:.2f} ms ({e['detections']} detections"
            + ("" if e["backend"] == first else
               f", {e.get('compared', 'outputs')} within {e['max_abs_diff']:.1g} of {first}'s") + ")"
            for e in r.engines))
        fastest = min(r.engines, key=lambda e: e["p50_ms"])["backend"]
        lines.append(f"fastest    engine {fastest} (--backend {fastest})")
    summary = r.telemetry_summary
    if summary.get("temp_c") or summary.get("arm_mhz") or summary.get("throttled"):
        parts = []
        if summary.get("temp_c"):
            parts.append(f"SoC {summary['temp_c'][0]:.1f}-{summary['temp_c'][1]:.1f} C")
        if summary.get("arm_mhz"):
            parts.append(f"ARM {summary['arm_mhz'][0]:.0f}-{summary['arm_mhz'][1]:.0f} MHz")
        if summary.get("throttled"):
            parts.append(f"throttled {summary['throttled']} ({', '.join(summary['flags']) or 'none'})")
        lines.append(f"device     {'; '.join(parts)} over {summary['samples']} samples")
    else:
        lines.append("device     no temperature, clock or throttling readings on this machine")
    if r.operators:
        lines.append(f"operators  {r.operators_note}:")
        for op in r.operators[:top_ops]:
            lines.append(f"  {op.op:<24} {op.ms:8.3f} ms  {op.share * 100:5.1f}%  x{op.count}")
        if len(r.operators) > top_ops:
            rest = sum(op.ms for op in r.operators[top_ops:])
            lines.append(f"  {'(' + str(len(r.operators) - top_ops) + ' more)':<24} {rest:8.3f} ms")
    elif r.operators_note:
        lines.append(f"operators  {r.operators_note}")
    return "\n".join(lines)


CSV_COLUMNS = ("run", "t_s", "frame_ms", "pre_ms", "infer_ms", "post_ms", "temp_c", "arm_mhz", "throttled")


def runs_csv(report: ProfileReport) -> str:
    """One CSV row per timed run: time, frame and stage milliseconds, and the telemetry nearest it."""
    lines = [",".join(CSV_COLUMNS)]
    for row in report.runs:
        lines.append(",".join("" if row.get(c) is None else str(row[c]) for c in CSV_COLUMNS))
    return "\n".join(lines) + "\n"


def save_runs_csv(report: ProfileReport, path: str | Path) -> Path:
    """Write `runs_csv(report)` to `path` atomically; returns the path."""
    from edgekit.fileio import atomic_write_bytes

    return atomic_write_bytes(path, runs_csv(report).encode())
