"""`edgekit benchmark`: convert once to each format x precision, then validate and time every artifact here.

The table is the one the field publishes (format, precision, size, mAP50-95, ms per frame, FPS, speed-up over
FP32 of the same format, parameters, GFLOPs). A target that fails to convert, load or run is a row saying why::

    report = run_benchmark("yolo26n.pt", "scenes/data.yaml", ConvertOptions.create("onnx,openvino", "fp32,int8", 320))
    print(report.table())
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from edgekit.converters.backends import BACKENDS
from edgekit.converters.convert import convert_many
from edgekit.converters.options import ConvertOptions
from edgekit.errors import EdgekitError, first_line
from edgekit.eval.datasets import load_dataset
from edgekit.logs import get_logger
from edgekit.runtimes.settings import EngineSettings, resolve_shared

log = get_logger("edgekit.convert")


@dataclass
class BenchmarkRow:
    """One artifact: figures, or the reason it has none (`error`). Times in milliseconds per frame."""

    format: str
    precision: str
    file: str = ""
    size_mb: float | None = None
    map50_95: float | None = None
    map50: float | None = None
    ms: float | None = None
    fps: float | None = None
    speedup: float | None = None
    error: str | None = None


@dataclass
class BenchmarkReport:
    """Every row, with what they share: the model, its parameters (M) and GFLOPs at `imgsz`, the data, threads."""

    model: str
    data: str
    imgsz: tuple[int, int]
    params_m: float
    gflops: float
    images: int
    threads: int | None
    rows: list[BenchmarkRow] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {**asdict(self), "imgsz": list(self.imgsz)}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def title(self) -> str:
        """The line `edgekit benchmark` prints above its table: model, input size, images, data, threads."""
        return (f"{Path(self.model).name} at {self.imgsz[0]}, {self.images} images of {self.data}, "
                f"threads {self.threads or 'default'}")

    def _cells(self, row: BenchmarkRow) -> list[str]:
        def num(value, fmt):
            return "-" if value is None else format(value, fmt)

        return [
            row.format, row.precision, num(row.size_mb, ".1f"), num(row.map50_95, ".4f"), num(row.ms, ".2f"),
            num(row.fps, ".1f"), "-" if row.speedup is None else f"{row.speedup:.2f}x", f"{self.params_m:.2f}",
            f"{self.gflops:.2f}",
        ]

    HEADER = ["format", "precision", "size MB", "mAP50-95", "ms/frame", "FPS", "vs FP32", "params M", "GFLOPs"]

    def table(self) -> str:
        """Aligned text, failed rows with their reason."""
        widths = [9, 9, 8, 9, 9, 7, 8, 9, 7]
        lines = [" ".join(h.rjust(w) if i > 1 else h.ljust(w) for i, (h, w) in enumerate(zip(self.HEADER, widths)))]
        for row in self.rows:
            if row.error:
                lines.append(f"{row.format:<9} {row.precision:<9} FAILED: {row.error[:160]}")
                continue
            cells = self._cells(row)
            lines.append(" ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))))
        return "\n".join(lines)

    def markdown(self) -> str:
        """A Markdown table (failed rows carry their reason in the mAP column)."""
        lines = ["| " + " | ".join(self.HEADER) + " |", "|" + "---|" * len(self.HEADER)]
        for row in self.rows:
            if row.error:
                cells = [row.format, row.precision, "-", f"failed: {row.error[:120]}", "-", "-", "-", "-", "-"]
            else:
                cells = self._cells(row)
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def run_benchmark(
    spec: str | Path,
    data: str | Path,
    options: ConvertOptions,
    *,
    split: str = "val",
    runs: int = 50,
    threads: int | None = None,
    shared: bool | None = None,
    progress: bool = True,
) -> BenchmarkReport:
    """Convert `spec` as `options` say (into a temporary folder unless ``options.out_dir`` is set), then per
    artifact: mAP on `data` (`split`) and the median latency of `runs` timed frames after warm-up, each engine
    with `threads` and `shared` (:class:`~edgekit.runtimes.settings.EngineSettings`; None: decided once,
    from the machine's load as the run starts, so that every row runs the same way).

    Raises EdgekitError for unreadable data or a checkpoint that cannot be opened; everything that goes wrong
    with one target becomes that row's error.
    """
    from edgekit.converters.families import open_source
    from edgekit.models.facts import count_gflops, count_params

    dataset = load_dataset(data, split)
    source = open_source(spec, options.source, options.names)
    if len(dataset.names) != len(source.classes):
        raise EdgekitError(
            f"{Path(str(spec)).name} has {len(source.classes)} classes, {data} has {len(dataset.names)}: benchmark "
            "on data labelled with the model's classes"
        )
    deploy = source.make_deploy()
    size, _ = source.input_size(options.imgsz)
    params, gflops = count_params(deploy) / 1e6, count_gflops(deploy, size, source.input.channels)
    if "int8" in options.precisions and options.calib is None:
        options = replace(options, calib=str(data))  # calibrate on the data's own images (its train split first)
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as scratch:
        if options.out_dir is None:
            options = replace(options, out_dir=Path(scratch))
        results = {(r.format, r.precision): r for r in convert_many(spec, options=options)}
        report = BenchmarkReport(
            str(spec), str(data), size, params, gflops, len(dataset.items), threads
        )
        settings = resolve_shared(EngineSettings(threads, shared))  # after the conversions: the load of timing
        for fmt, precision in ((f, p) for f in options.formats for p in options.precisions):
            row = BenchmarkRow(fmt, precision)
            result = results.get((fmt, precision))
            if result is None:  # skipped by the conversion: the backend does not offer it
                offered = ", ".join(BACKENDS[fmt].precisions)
                row.error = f"{fmt} does not offer {precision.upper()} (it offers {offered})"
            elif not result.ok:
                row.error = result.error
            else:
                row.file, row.size_mb = result.path.name, round(result.size_mb, 2)
                try:
                    _measure(row, result.path, dataset, runs, settings, progress)
                except EdgekitError as exc:
                    row.error = str(exc)
                except Exception as exc:  # one artifact's engine failing must not lose the table
                    row.error = first_line(exc, 200, typed=True)
            report.rows.append(row)
    fp32 = {r.format: r.ms for r in report.rows if r.precision == "fp32" and r.ms}
    for row in report.rows:
        if row.ms and row.format in fp32:
            row.speedup = round(fp32[row.format] / row.ms, 3)
    return report


def _measure(row: BenchmarkRow, path: Path, dataset, runs: int, settings: EngineSettings, progress: bool) -> None:
    from edgekit.eval.val import validate
    from edgekit.runtimes.detector import load
    from edgekit.runtimes.engine import backend_for
    from edgekit.runtimes.profile import profile_model

    backend = backend_for(path)  # each row is its format on the engine made for it (.onnx: ONNX Runtime)
    detector = load(path, backend=backend, settings=settings)
    if progress:
        print(f"benchmark {row.format} {row.precision}: validating on {len(dataset.items)} images", file=sys.stderr)
    report = validate(detector, dataset, progress=progress, model=str(path))
    row.map50_95, row.map50 = round(report.map50_95, 4), round(report.map50, 4)
    profile = profile_model(
        path, backend=backend, image=dataset.items[0].image, runs=runs, warmup=5, settings=settings, sweep=(),
        operators=False
    )
    row.ms = round(profile.latency.p50, 3)
    row.fps = round(1000.0 / profile.latency.p50, 1) if profile.latency.p50 else None
