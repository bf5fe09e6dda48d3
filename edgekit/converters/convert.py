"""`edgekit convert`: open a checkpoint (or a built-in architecture) once, deploy it once, then write and
verify one artifact per format x precision through the backends' registry.

Every target is written to a temporary path, verified through the runtime's own preprocessing and
engine, gets the verification stored in its metadata, and only then is renamed into place. A target that
fails leaves nothing behind and does not stop the others.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from edgekit.converters.accuracy import (
    AccuracyBudgetError,
    AccuracyData,
    detector_points,
    labelled_splits,
    load_accuracy_data,
    median_latency_ms,
)
from edgekit.converters.backends import BACKENDS
from edgekit.converters.calibration import calibration_images
from edgekit.converters.context import ExportContext
from edgekit.converters.families import open_source
from edgekit.converters.options import ConvertOptions
from edgekit.converters.source import SourceModel
from edgekit.converters.source_detector import artifact_meta, reference_detector
from edgekit.converters.verify import Verification
from edgekit.errors import EdgekitError, first_line
from edgekit.fileio import atomic_path, check_output_folder, size_bytes
from edgekit.interrupts import Interrupts
from edgekit.logs import get_logger
from edgekit.meta import ModelMeta
from edgekit.models.facts import count_params

log = get_logger("edgekit.convert")


@dataclass
class TargetResult:
    """One row of the conversion table."""

    format: str
    precision: str
    path: Path | None = None
    size_mb: float = 0.0
    seconds: float = 0.0
    verification: Verification | None = None
    error: str | None = None
    accuracy: dict | None = None  # INT8 on labelled data: points, reference, drop, float layers, speed-up

    @property
    def ok(self) -> bool:
        return self.error is None


def verification_images(renders: int = 2, noise: int = 1) -> list[np.ndarray]:
    """Images every artifact is verified on: the bundled shapes image, rendered shapes, and seeded noise."""
    from edgekit import assets
    from edgekit.eval.synthetic import render, sample_size
    from edgekit.images import read_image

    rng = np.random.default_rng(0)
    images = [read_image(assets.shapes_image())]
    images += [render(rng, *sample_size(rng)).image for _ in range(renders)]
    images += [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(noise)]
    return images


def _open(spec: str | Path, options: ConvertOptions, phone: bool) -> SourceModel:
    """Open the source of a conversion. An end-to-end head with its top-k in the graph becomes per-anchor boxes +
    scores (top-k in the runtime) when a requested format cannot hold the in-graph top-k (``Backend.graph_topk``
    False, e.g. NCNN), for every format of the conversion and with one line saying so, and for the phone file
    (MediaPipe's op takes per-anchor outputs). An explicit ``--topk`` is kept as given."""
    without = [f for f in options.formats if not BACKENDS[f].graph_topk]
    if options.source.topk is not None or not (phone or without):
        return open_source(spec, options.source, options.names)
    source = open_source(spec, replace(options.source, per_anchor=True), options.names)
    if without and source.tag == "topk":
        every = " for every format" if len(without) < len(options.formats) else ""
        log.info(
            f"top-k    {', '.join(without)} cannot hold {source.variant}'s in-graph top-k: writing the runtime top-k "
            f"form{every} (boxes + scores; the runtime does the same top-k; --topk graph to refuse)"
        )
    return source


def convert_many(spec: str | Path, *args, options: ConvertOptions | None = None, **flat) -> list[TargetResult]:
    """Convert once, then write and verify every format x precision; a failed target does not stop the
    others. Returns one result per target (check ``ok``).

    Pass a :class:`ConvertOptions`, or the flat arguments of :meth:`ConvertOptions.create`:
    ``convert_many("yolo26n.pt", "onnx,tflite", "fp32,int8", 320, calib="data.yaml", topk="runtime")``.
    Raises EdgekitError for problems found before any target starts (bad options, unreadable checkpoint).
    """
    if options is None:
        options = ConvertOptions.create(*args, **flat)
    elif args or flat:
        raise TypeError("pass either options or flat arguments, not both")
    out_dir = options.out_dir
    if out_dir is None:
        out_dir = Path(spec).parent if Path(spec).is_file() else Path(".")
    check_output_folder(out_dir, "output folder")
    phone = options.backend("tflite").phone
    if phone and options.formats != ["tflite"]:
        raise EdgekitError("--phone makes a TFLite file for MediaPipe: use it with --to tflite alone")
    source = _open(spec, options, phone)
    if phone and source.outputs.kind != "boxes_scores":
        raise EdgekitError(
            f"--phone needs a model with boxes and scores outputs; {source.variant} gives {source.outputs.kind}"
        )
    size, size_note = source.input_size(options.imgsz)
    if "int8" in options.precisions and options.calib is None:
        raise EdgekitError("INT8 needs calibration images: pass --calib (an image folder, YOLO yaml or COCO json)")
    accuracy, calib_split = _accuracy_data(options, len(source.classes))
    calib = calibration_images(options.calib, options.calib_size, calib_split) if options.calib is not None else None
    if source.random_weights:
        log.warning(
            f"'{spec}' is an architecture name, not a checkpoint: the weights are seeded random numbers, so the "
            "artifacts detect nothing useful (for sizes and speed only); pass a trained checkpoint file"
        )
    log.info(
        f"source   {source.name}: {source.family} {source.variant}, {len(source.classes)} classes, "
        f"{count_params(source.training) / 1e6:.3f} M params (training form)"
    )
    for line in source.choices(size_note):
        log.info(line)
    with torch.no_grad():
        deploy = source.make_deploy()
    for note in source.notes:
        log.info(f"deploy   {note}")
    log.info(f"deploy   {count_params(deploy) / 1e6:.3f} M params")
    meta = artifact_meta(source, size)
    if phone:  # MediaPipe stretches the image to the input size: so does every check of the phone file
        letterbox = replace(meta.input.letterbox, keep_ratio=False)
        meta = replace(meta, input=replace(meta.input, letterbox=letterbox))
    source_meta = meta
    if options.nms_in_graph:
        from edgekit.converters.backends.onnx.nms import nms_meta

        meta = nms_meta(meta)
    stem = source.name + (f"-{source.tag}" if source.tag else "") + ("-phone" if phone else "")
    results = []
    created = not out_dir.exists()
    with tempfile.TemporaryDirectory(prefix="edgekit-") as workdir, Interrupts() as interrupts:
        ctx = ExportContext(
            source=source,
            deploy=deploy,
            meta=meta,
            images=verification_images(),
            workdir=Path(workdir),
            calib=calib,
            source_meta=source_meta,
            backend_options={name: options.backend(name) for name in BACKENDS},
            accuracy=accuracy,
            reference_detector=partial(reference_detector, source, meta),
        )
        for fmt in options.formats:
            for precision in options.precisions:
                if precision not in BACKENDS[fmt].precisions and len(options.precisions) > 1:
                    log.info(f"skipped  {fmt} {precision}: {fmt} offers {', '.join(BACKENDS[fmt].precisions)}")
                    continue  # asked for alone, it fails with the backend's reason
                try:
                    result = export_target(ctx, fmt, precision, out_dir, stem, interrupts)
                except KeyboardInterrupt:
                    _remove_if_empty(out_dir, created)
                    raise
                results.append(result)
                if result.ok:
                    log.info(
                        f"wrote    {fmt} {precision}: {result.path} ({result.size_mb:.1f} MB) in {result.seconds:.1f} s"
                    )
                else:
                    log.info(f"failed   {fmt} {precision}: {result.error}")
    _remove_if_empty(out_dir, created)  # every target failed: leave no empty folder behind
    if len(results) > 1:
        log.info(results_table(results))
    return results


def _accuracy_data(options: ConvertOptions, num_classes: int) -> tuple[AccuracyData | None, str | None]:
    """The labelled data INT8 drops are measured on (--val-data, or a labelled --calib), and the split the
    calibration should then take so the two do not share images."""
    if options.max_drop is not None and options.max_drop < 0:
        raise EdgekitError(f"--max-drop {options.max_drop:g}: a drop budget is 0 or more mAP50-95 points")
    if "int8" not in options.precisions:
        if options.max_drop is not None:
            raise EdgekitError("--max-drop applies to INT8: add --precision int8")
        return None, None
    if options.val_data is not None:
        return load_accuracy_data(options.val_data, num_classes, options.max_drop), None
    labelled = labelled_splits(options.calib)
    if labelled is not None:
        calib = Path(options.calib)
        classes, splits = labelled
        if classes != num_classes:  # labelled for another model: only calibration images
            if options.max_drop is not None:
                raise EdgekitError(
                    f"--max-drop: {calib.name} is labelled with {classes} classes, the model has "
                    f"{num_classes}: pass --val-data labelled with the model's classes"
                )
            return None, None
        if "train" in splits and "val" in splits:  # calibrate on train, measure on val
            return load_accuracy_data(calib, num_classes, options.max_drop, "val"), "train"
        log.warning(f"{calib.name}: the drop is measured on the calibration images themselves; pass --val-data "
                    "with a held-out split for an unbiased figure")
        return load_accuracy_data(calib, num_classes, options.max_drop, splits[0] if splits else "val"), None
    if options.max_drop is not None:
        raise EdgekitError(
            "--max-drop needs labelled validation data: pass --val-data (a YOLO data.yaml or COCO json), or give "
            "--calib as a labelled dataset"
        )
    return None, None


def measure_int8(ctx: ExportContext, backend, tmp: Path, meta: ModelMeta) -> dict:
    """The INT8 artifact's mAP50-95 on the accuracy data against its FP32 source, and its speed against the
    backend's FP32 form; raises AccuracyBudgetError when a --max-drop budget is missed."""
    from edgekit.runtimes.detector import Detector

    found = dict(meta.accuracy or {})
    reference = backend.accuracy_reference()
    engine = backend.engine(tmp)
    points = found.get("map50_95")
    if points is None:
        points = detector_points(Detector(engine, meta), ctx.accuracy)
    drop = reference - points
    budget = ctx.accuracy.max_drop
    if budget is not None and drop > budget:
        raise AccuracyBudgetError(
            f"--max-drop {budget:g} not met: INT8 reached mAP50-95 {points:.2f} against {reference:.2f} in float "
            f"(drop {drop:.2f} points, {len(found.get('float_layers', []))} layer(s) in float)"
        )
    int8_ms = median_latency_ms(engine, meta)
    fp32 = backend.fp32_engine()
    fp32_ms = median_latency_ms(*fp32) if fp32 is not None else None
    return {
        "data": ctx.accuracy.name,
        "images": len(ctx.accuracy.images),
        "map50_95": round(points, 3),
        "reference_map50_95": round(reference, 3),
        "drop": round(drop, 3),
        "max_drop": budget,
        "float_layers": list(found.get("float_layers", [])),
        "int8_ms": round(int8_ms, 3),
        "fp32_ms": round(fp32_ms, 3) if fp32_ms is not None else None,
        "speedup": round(fp32_ms / int8_ms, 3) if fp32_ms else None,
    }


def accuracy_summary(accuracy: dict) -> str:
    """One line: mAP50-95, the drop (and budget), layers in float, speed against FP32."""
    budget = f" (budget {accuracy['max_drop']:g})" if accuracy.get("max_drop") is not None else ""
    speed = f", {accuracy['speedup']:.2f}x FP32 speed" if accuracy.get("speedup") else ""
    return (
        f"mAP50-95 {accuracy['map50_95']:.2f} vs {accuracy['reference_map50_95']:.2f} FP32, drop "
        f"{accuracy['drop']:.2f}{budget}, {len(accuracy['float_layers'])} layer(s) in float{speed}"
    )


def _remove_if_empty(folder: Path, created: bool) -> None:
    """Remove `folder` if this conversion created it and nothing was written into it."""
    if created and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def convert(
    spec: str | Path,
    to: str = "onnx",
    imgsz: int | tuple[int, int] | None = None,
    half: bool = False,
    precision: str = "fp32",
    **flat,
) -> TargetResult:
    """Convert one checkpoint (or architecture) to one verified artifact; a failure raises EdgekitError.

    ``convert("yolov9-c.pt", "openvino", 640, out_dir="models")``; `imgsz` None converts at the size the
    checkpoint was trained at (640 when it records none); other keywords as :meth:`ConvertOptions.create`.
    """
    result = convert_many(spec, to, "fp16" if half else precision, imgsz, **flat)[0]
    if not result.ok:
        raise EdgekitError(f"{result.format} {result.precision}: {result.error}; nothing was written")
    return result


def export_target(
    ctx: ExportContext, fmt: str, precision: str, out_dir: Path, stem: str, interrupts: Interrupts | None = None
) -> TargetResult:
    """Write, verify and place one artifact; errors are caught into the result, never half-written.
    KeyboardInterrupt (also one a backend swallowed, seen through `interrupts`) propagates, leaving nothing."""
    interrupts = interrupts or Interrupts()
    start = time.perf_counter()
    result = TargetResult(fmt, precision)
    try:
        backend_type = BACKENDS[fmt]
        backend = backend_type(ctx, ctx.backend_options.get(fmt))
        target = out_dir / backend_type.artifact_name(stem, precision)
        calibration = f" (calibrating on {len(ctx.calib)} images)" if precision == "int8" and ctx.calib else ""
        log.info(f"writing  {fmt} {precision}{calibration} ...")
        with atomic_path(target, directory=backend_type.directory) as tmp:
            meta = backend.write(precision, tmp)
            interrupts.check()
            verification = backend.verify(tmp, meta, precision)
            interrupts.check()
            log.info(f"verify   {fmt} {precision}: " + verification.summary())
            if not verification.passed:
                raise EdgekitError(f"verification failed: {verification.failures()}")
            if precision == "int8" and ctx.accuracy is not None and verification.skipped:
                log.warning(f"{fmt} int8: its accuracy on {ctx.accuracy.name} is not measured ({verification.skipped})")
            elif precision == "int8" and ctx.accuracy is not None:
                meta = replace(meta, accuracy=measure_int8(ctx, backend, tmp, meta))
                log.info(f"accuracy {fmt} int8: " + accuracy_summary(meta.accuracy))
                result.accuracy = meta.accuracy
                interrupts.check()
            backend.set_metadata(tmp, replace(meta, verification=verification.as_dict()))
            interrupts.check()
        result.path = target
        result.size_mb = size_bytes(target) / 1e6
        result.verification = verification
    except EdgekitError as exc:
        interrupts.check()  # a backend may turn the KeyboardInterrupt of a Ctrl-C into its own error
        result.error = str(exc)
    except Exception as exc:  # a backend's own failure must not lose the other targets
        interrupts.check()
        result.error = first_line(exc, typed=True)
    result.seconds = time.perf_counter() - start
    return result


def results_table(results: Sequence[TargetResult]) -> str:
    """format, precision, file, size MB, verification figures, seconds, and for INT8 measured on labelled data
    the mAP50-95 drop, the layers kept in float and the speed-up over FP32: one row per target."""
    width = max([len("verification")] + [len(r.verification.summary()) for r in results if r.ok])
    measured = any(r.accuracy for r in results)
    extra = f"  {'mAP50-95':>8} {'drop':>6} {'float':>5} {'xFP32':>6}" if measured else ""
    rows = [f"{'format':<9} {'precision':<9} {'file':<34} {'size MB':>8}  {'verification':<{width}} {'seconds':>7}"
            + extra]
    for r in results:
        if r.ok:
            a = r.accuracy
            figures = ""
            if a:
                speed = f"{a['speedup']:>6.2f}" if a.get("speedup") else f"{'-':>6}"
                figures = f"  {a['map50_95']:>8.2f} {a['drop']:>6.2f} {len(a['float_layers']):>5} {speed}"
            rows.append(
                f"{r.format:<9} {r.precision:<9} {r.path.name:<34} {r.size_mb:>8.1f}  "
                f"{r.verification.summary():<{width}} {r.seconds:>7.1f}" + figures
            )
        else:
            rows.append(f"{r.format:<9} {r.precision:<9} {'-':<34} {'-':>8}  FAILED: {r.error[:200]}")
    return "\n".join(rows)


def failures_line(results: Sequence[TargetResult]) -> str | None:
    """How many targets failed, which, and whether the others were written; None when none failed."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return None
    what = ", ".join(f"{r.format} {r.precision}" for r in failed)
    rest = "the others were written" if len(failed) < len(results) else "nothing was written"
    return f"{len(failed)} of {len(results)} target(s) failed ({what}); {rest}"
