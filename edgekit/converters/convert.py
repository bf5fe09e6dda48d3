"""`edgekit convert`: open a checkpoint (or a built-in architecture), deploy it, export, verify, write."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgekit import __version__
from edgekit.converters.calibration import DEFAULT_SIZE as DEFAULT_CALIB_SIZE
from edgekit.converters.calibration import calibration_images
from edgekit.converters.onnx_export import MIN_OPSET
from edgekit.converters.source import SourceModel
from edgekit.converters.targets import FORMATS, PRECISIONS, ExportContext, TargetResult, export_target
from edgekit.errors import EdgekitError
from edgekit.fileio import sha256_file
from edgekit.meta import ModelMeta, SourceInfo
from edgekit.models.checkpoint import Record, load_checkpoint
from edgekit.models.facts import count_params


def open_source(
    spec: str | Path,
    topk: str = "graph",
    nms: bool = False,
    arch: str | None = None,
    keep_ratio: bool = False,
    names: list[str] | None = None,
) -> SourceModel:
    """A SourceModel from a checkpoint file or a built-in architecture name.

    `topk` and `nms` choose the output of end-to-end (YOLO26) models; `arch` names the variant of a
    DAMO-YOLO state_dict and `keep_ratio` its pre-v0.3 preprocessing; `names` replaces the class names.
    """
    source = _open(spec, topk, nms, arch, keep_ratio)
    if names is not None:
        if len(names) != len(source.classes):
            raise EdgekitError(f"{len(names)} class names given, the model has {len(source.classes)} classes")
        source.classes = list(names)
    return source


def _open(spec: str | Path, topk: str, nms: bool, arch: str | None, keep_ratio: bool) -> SourceModel:
    from edgekit.converters import damo, shapes, ultralytics, yolov9
    from edgekit.models.damo import looks_like_damo, weights_of
    from edgekit.models.damo_configs import CONFIGS as DAMO
    from edgekit.models.ultralytics_configs import CONFIGS as ULTRALYTICS
    from edgekit.models.yolov9_configs import CONFIGS as YOLOV9

    path = Path(spec)
    if path.is_file():
        ckpt = load_checkpoint(path)
        data = ckpt.data
        record = data if isinstance(data, Record) else None
        if isinstance(data, dict):
            record = next((data[k] for k in ("ema", "model") if isinstance(data.get(k), Record)), None)
        if record is not None:
            name = record._full_name
            if name.startswith("models."):
                return yolov9.from_checkpoint(ckpt)
            if name.startswith("ultralytics."):
                return ultralytics.from_checkpoint(ckpt, topk, nms)
            raise EdgekitError(f"{path.name}: a pickled {name}, which edgekit does not convert yet")
        state = data.get("model") if isinstance(data, dict) and isinstance(data.get("model"), dict) else data
        if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
            if looks_like_damo(weights_of(ckpt)) or arch in DAMO:
                return damo.from_checkpoint(ckpt, arch, keep_ratio)
            if shapes.looks_like_shapes(weights_of(ckpt)):
                return shapes.from_checkpoint(ckpt, weights_of(ckpt))
            raise EdgekitError(f"{path.name}: a state_dict of an architecture edgekit does not recognise")
        raise EdgekitError(f"{path.name}: no pickled detection model inside (keys: {_keys(data)})")
    name = str(spec)
    if name in YOLOV9:
        return yolov9.from_arch(name)
    if name in ULTRALYTICS:
        return ultralytics.from_arch(name, topk=topk, nms=nms)
    if name in DAMO:
        return damo.from_arch(name, keep_ratio)
    if path.suffix or "/" in name:
        raise EdgekitError(f"checkpoint not found: {spec}")
    known = ", ".join([*YOLOV9, *ULTRALYTICS, *DAMO])
    raise EdgekitError(f"'{spec}' is neither a checkpoint file nor a known architecture ({known})")


def _keys(data) -> str:
    if isinstance(data, dict):
        return ", ".join(map(str, list(data)[:8])) or "empty"
    return type(data).__name__


def verification_images(renders: int = 2, noise: int = 1) -> list[np.ndarray]:
    """Images every artifact is verified on: the bundled photo, rendered scenes, and seeded noise."""
    from edgekit import assets
    from edgekit.devices.sources import read_image
    from edgekit.eval.shapes import render, sample_size

    rng = np.random.default_rng(0)
    images = [read_image(assets.sample_image())]
    images += [render(rng, *sample_size(rng)).image for _ in range(renders)]
    images += [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(noise)]
    return images


def _split(value: str | Sequence[str], known: Sequence[str], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    if items == ["all"]:
        return list(known)
    unknown = [v for v in items if v not in known]
    if unknown or not items:
        raise EdgekitError(f"unknown {what} {', '.join(unknown) or '(none)'} (choose from {', '.join(known)}, or all)")
    return list(dict.fromkeys(items))


def convert_many(
    spec: str | Path,
    formats: str | Sequence[str] = "onnx",
    precisions: str | Sequence[str] = "fp32",
    imgsz: int | tuple[int, int] = 640,
    out_dir: str | Path = ".",
    dynamic: bool = False,
    opset: int = MIN_OPSET,
    topk: str = "graph",
    nms: bool = False,
    arch: str | None = None,
    keep_ratio: bool = False,
    names: list[str] | None = None,
    calib: str | Path | None = None,
    calib_size: int = DEFAULT_CALIB_SIZE,
    nms_in_graph: bool = False,
    phone: bool = False,
    coreml_nms: bool = False,
    uint8_input: bool = False,
    log: Callable[[str], None] = print,
) -> list[TargetResult]:
    """Convert once, then write and verify every format x precision; a failed target does not stop the
    others. Returns one result per target (check ``ok``)."""
    formats = _split(formats, FORMATS, "format")
    precisions = _split(precisions, PRECISIONS, "precision")
    if opset < MIN_OPSET:
        raise EdgekitError(f"opset {opset} is too old; edgekit exports opset {MIN_OPSET} or newer")
    size = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    if phone and formats != ["tflite"]:
        raise EdgekitError("--phone makes a TFLite file for MediaPipe: use it with --to tflite alone")
    # the phone op needs per-anchor boxes and scores: end-to-end models give their one-to-one branch's
    source = open_source(spec, "runtime" if phone else topk, nms, arch, keep_ratio, names)
    if phone and source.outputs.kind != "boxes_scores":
        raise EdgekitError(f"--phone needs a model with boxes and scores outputs; {source.variant} gives "
                           f"{source.outputs.kind}")
    if any(s <= 0 or s % source.stride for s in size):
        raise EdgekitError(f"image size {list(size)} must be positive multiples of the model's stride {source.stride}")
    if "int8" in precisions and calib is None:
        raise EdgekitError("INT8 needs calibration images: pass --calib (an image folder, YOLO yaml or COCO json)")
    calib_images = calibration_images(calib, calib_size, warn=log) if calib is not None else None
    log(
        f"source   {source.name}: {source.family} {source.variant}, {len(source.classes)} classes, "
        f"{count_params(source.training) / 1e6:.3f} M params (training form)"
    )
    with torch.no_grad():
        deploy = source.make_deploy()
    for note in source.notes:
        log(f"deploy   {note}")
    log(f"deploy   {count_params(deploy) / 1e6:.3f} M params")
    meta = ModelMeta(
        family=source.family,
        variant=source.variant,
        classes=list(source.classes),
        imgsz=size,
        input=source.input,
        outputs=source.outputs,
        decode=source.decode,
        stride=source.stride,
        source=SourceInfo(source.path.name, sha256_file(source.path), __version__) if source.path else None,
    )
    if phone:  # MediaPipe stretches the image to the input size: so does every check of the phone file
        letterbox = replace(meta.input.letterbox, keep_ratio=False)
        meta = replace(meta, input=replace(meta.input, letterbox=letterbox))
    source_meta = meta
    if nms_in_graph:
        from edgekit.converters.nms_graph import nms_meta

        meta = nms_meta(meta)
    stem = source.name + (f"-{source.tag}" if source.tag else "") + ("-phone" if phone else "")
    out_dir = Path(out_dir)
    results = []
    with tempfile.TemporaryDirectory(prefix="edgekit-") as workdir:
        ctx = ExportContext(
            source=source,
            deploy=deploy,
            meta=meta,
            images=verification_images(),
            workdir=Path(workdir),
            opset=opset,
            dynamic=dynamic,
            calib=calib_images,
            nms_in_graph=nms_in_graph,
            phone=phone,
            log=log,
            source_meta=source_meta,
            coreml_nms=coreml_nms,
            uint8_input=uint8_input,
        )
        for fmt in formats:
            for precision in precisions:
                result = export_target(ctx, fmt, precision, out_dir, stem)
                results.append(result)
                where = f"{result.path} ({result.size_mb:.1f} MB)" if result.ok else f"FAILED: {result.error}"
                log(
                    f"wrote    {fmt} {precision}: {where} in {result.seconds:.1f} s"
                    if result.ok
                    else f"failed   {fmt} {precision}: {result.error}"
                )
    if len(results) > 1:
        log(results_table(results))
    return results


def convert(
    spec: str | Path,
    to: str = "onnx",
    imgsz: int | tuple[int, int] = 640,
    half: bool = False,
    precision: str = "fp32",
    **options,
) -> TargetResult:
    """Convert one checkpoint (or architecture) to one verified artifact; a failure raises EdgekitError."""
    result = convert_many(spec, to, "fp16" if half else precision, imgsz, **options)[0]
    if not result.ok:
        raise EdgekitError(f"{result.format} {result.precision}: {result.error}; nothing was written")
    return result


def results_table(results: Sequence[TargetResult]) -> str:
    """format, precision, file, size MB, verification figures, seconds: one row per target."""
    rows = [f"{'format':<9} {'precision':<9} {'file':<34} {'size MB':>8}  {'verification':<46} {'seconds':>7}"]
    for r in results:
        if r.ok:
            rows.append(
                f"{r.format:<9} {r.precision:<9} {r.path.name:<34} {r.size_mb:>8.1f}  "
                f"{r.verification.summary()[:46]:<46} {r.seconds:>7.1f}"
            )
        else:
            rows.append(f"{r.format:<9} {r.precision:<9} {'-':<34} {'-':>8}  FAILED: {r.error[:200]}")
    return "\n".join(rows)
