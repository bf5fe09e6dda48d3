"""`edgekit convert`: open a checkpoint (or a built-in architecture), deploy it, export, verify, write."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edgekit import __version__
from edgekit.converters.onnx_export import MIN_OPSET, write_onnx_artifact
from edgekit.converters.source import SourceModel
from edgekit.converters.verify import Verification
from edgekit.errors import EdgekitError
from edgekit.fileio import sha256_file
from edgekit.meta import InputSpec, ModelMeta, SourceInfo
from edgekit.models.checkpoint import Record, load_checkpoint
from edgekit.models.facts import count_params

FORMATS = ("onnx",)


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
    from edgekit.converters import damo, ultralytics, yolov9
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


def sample_inputs(imgsz: tuple[int, int], spec: InputSpec, images: int = 3, noise: int = 1) -> list[np.ndarray]:
    """Verification inputs, preprocessed as the runtime will: the bundled photo, rendered scenes, noise."""
    from edgekit import assets
    from edgekit.devices.sources import read_image
    from edgekit.eval.shapes import render, sample_size
    from edgekit.runtimes.preprocess import preprocess

    rng = np.random.default_rng(0)
    frames = [read_image(assets.sample_image())] if images else []
    frames += [render(rng, *sample_size(rng)).image for _ in range(max(0, images - 1))]
    tensors = [preprocess(f, spec, imgsz)[0] for f in frames]
    shape = tensors[0].shape if tensors else (1, 3, *imgsz)
    tensors += [rng.uniform(0, 1, shape).astype(np.float32) for _ in range(noise)]
    return tensors


@dataclass
class Result:
    """One written artifact."""

    path: Path
    format: str
    precision: str
    size_mb: float
    seconds: float
    verification: Verification
    notes: list[str] = field(default_factory=list)


def convert(
    spec: str | Path,
    to: str = "onnx",
    imgsz: int | tuple[int, int] = 640,
    half: bool = False,
    out_dir: str | Path = ".",
    dynamic: bool = False,
    opset: int = MIN_OPSET,
    topk: str = "graph",
    nms: bool = False,
    arch: str | None = None,
    keep_ratio: bool = False,
    names: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> Result:
    """Convert one checkpoint (or architecture) to one verified artifact."""
    if to not in FORMATS:
        raise EdgekitError(f"unknown format '{to}' (edgekit writes: {', '.join(FORMATS)})")
    start = time.perf_counter()
    size = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    source = open_source(spec, topk, nms, arch, keep_ratio, names)
    if any(s <= 0 or s % source.stride for s in size):
        raise EdgekitError(f"image size {list(size)} must be positive multiples of the model's stride {source.stride}")
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
    inputs = sample_inputs(size, source.input)

    def reference(x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {k: v.numpy() for k, v in source.reference(torch.from_numpy(x)).items()}

    stem = source.name + (f"-{source.tag}" if source.tag else "") + ("-fp16" if half else "")
    out = Path(out_dir) / f"{stem}.onnx"
    log(
        f"export   onnx opset {opset}, {size[0]}x{size[1]}, {'fp16' if half else 'fp32'}"
        f"{', dynamic batch and size' if dynamic else ''}; verifying on {len(inputs)} inputs"
    )
    path, verification = write_onnx_artifact(
        deploy,
        meta,
        out,
        reference,
        inputs,
        opset=opset,
        dynamic=dynamic,
        half=half,
        log=lambda text: log("\n".join("verify   " + line for line in text.splitlines())),
    )
    seconds = time.perf_counter() - start
    size_mb = path.stat().st_size / 1e6
    log(f"wrote    {path} ({size_mb:.1f} MB) in {seconds:.1f} s")
    return Result(path, to, "fp16" if half else "fp32", size_mb, seconds, verification, list(source.notes))
