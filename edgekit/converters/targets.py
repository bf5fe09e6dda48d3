"""One artifact per (format, precision): write it, verify it with its own runtime engine, store the result.

Every target starts from the same deploy model (and, for ONNX-derived formats, the same FP32 ONNX file),
is written to a temporary path, verified through the runtime's own preprocessing and engine, gets the
verification stored in its metadata, and only then is renamed into place. A target that fails leaves
nothing behind and does not stop the others.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from edgekit.converters.source import SourceModel
from edgekit.converters.verify import FP16_TOLERANCE, FP32_TOLERANCE, Verification, compare
from edgekit.errors import EdgekitError
from edgekit.eval.metrics import ImageResult, mean_average_precision
from edgekit.fileio import atomic_path
from edgekit.meta import InputSpec, ModelMeta
from edgekit.runtimes.preprocess import dequantize, preprocess

FORMATS = ("onnx", "openvino", "tflite", "coreml")
PRECISIONS = ("fp32", "fp16", "int8")
INT8_MIN_MAP50 = 0.5  # detection agreement below this is a failed conversion
AGREEMENT_IMAGES = 32


@dataclass
class ExportContext:
    """Everything the per-format writers share for one conversion."""

    source: SourceModel
    deploy: torch.nn.Module
    meta: ModelMeta  # FP32, NCHW float input: the base every target derives from
    images: list[np.ndarray]  # verification images (BGR uint8)
    workdir: Path
    opset: int = 17
    dynamic: bool = False
    calib: list[Path] | None = None
    nms_in_graph: bool = False
    phone: bool = False  # TFLite for MediaPipe: encodings + scores into TFLite_Detection_PostProcess
    uint8_input: bool = False  # TFLite: raw uint8 NHWC pixels in, the 0..1 scaling inside the graph
    coreml_nms: bool = False  # CoreML: the Vision pipeline (NonMaximumSuppression stage)
    log: Callable[[str], None] = print
    source_meta: ModelMeta | None = None  # the source's own outputs (differs from meta with in-graph NMS)
    _reference: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    _onnx: Path | None = None
    _tflite: Path | None = None
    _calib_tensors: list[np.ndarray] | None = None

    @property
    def imgsz(self) -> tuple[int, int]:
        return tuple(self.meta.imgsz)

    def reference_input(self, image: np.ndarray) -> tuple[np.ndarray, object]:
        """The source model's input for an image: RGB 0..1 NCHW float, fitted as the metadata says."""
        spec = InputSpec(name=self.meta.input.name, letterbox=self.meta.input.letterbox)
        return preprocess(image, spec, self.imgsz)

    def reference_outputs(self, image: np.ndarray, key: int | None = None) -> dict[str, np.ndarray]:
        """The training-form model's contract outputs for one image (cached by `key`)."""
        if key is not None and key in self._reference:
            return self._reference[key]
        x, _ = self.reference_input(image)
        with torch.no_grad():
            out = {k: v.numpy() for k, v in self.source.reference(torch.from_numpy(x)).items()}
        if key is not None:
            self._reference[key] = out
        return out

    def onnx_fp32(self) -> Path:
        """The FP32 ONNX export every ONNX-derived target starts from (made once)."""
        if self._onnx is None:
            from edgekit.converters.onnx_export import export_onnx

            path = self.workdir / "base.onnx"
            sample = torch.from_numpy(self.reference_input(self.images[0])[0])
            export_onnx(
                self.deploy, sample, path, self.source_meta or self.meta, opset=self.opset, dynamic=self.dynamic
            )
            if self.nms_in_graph:
                from edgekit.converters.nms_graph import append_nms

                append_nms(path, self.meta)
            self._onnx = path
        return self._onnx

    def tflite_fp32(self) -> Path:
        """The FP32 .tflite every TFLite target starts from (made once); for --phone it ends in the
        post-process op's inputs (box encodings, scores)."""
        if self._tflite is None:
            from edgekit.converters.tflite_export import export_tflite

            path = self.workdir / "base.tflite"
            model = self.deploy
            if self.phone:
                from edgekit.converters.tflite_phone import PhoneHead

                model = PhoneHead(model)
            export_tflite(model, self.imgsz, path, self.uint8_input)
            self._tflite = path
        return self._tflite

    def calibration(self) -> list[np.ndarray]:
        """Calibration tensors preprocessed as the FP32 input (made once)."""
        if self._calib_tensors is None:
            if not self.calib:
                raise EdgekitError("INT8 needs calibration images: pass --calib (image folder, YOLO yaml or COCO json)")
            from edgekit.converters.calibration import calibration_tensors

            spec = InputSpec(name=self.meta.input.name, letterbox=self.meta.input.letterbox)
            self._calib_tensors = list(calibration_tensors(self.calib, spec, self.imgsz))
        return self._calib_tensors

    def calibration_images(self) -> list[np.ndarray]:
        from edgekit.devices.sources import read_image

        picks = self.calib[:: max(1, len(self.calib) // AGREEMENT_IMAGES)][:AGREEMENT_IMAGES] if self.calib else []
        return [read_image(p) for p in picks]


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

    @property
    def ok(self) -> bool:
        return self.error is None


def artifact_name(stem: str, fmt: str, precision: str) -> str:
    tag = "" if precision == "fp32" else f"-{precision}"
    return {
        "onnx": f"{stem}{tag}.onnx",
        "openvino": f"{stem}{tag}_openvino",
        "tflite": f"{stem}{tag}.tflite",
        "coreml": f"{stem}{tag}.mlpackage",
    }[fmt]


def _size(path: Path) -> float:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
    return path.stat().st_size / 1e6


def _run_engine(engine, meta: ModelMeta, image: np.ndarray) -> dict[str, np.ndarray]:
    x, _ = preprocess(image, meta.input, tuple(meta.imgsz))
    out = engine.run({meta.input.name: x})
    specs = {o.name: o for o in engine.outputs}
    return {
        name: dequantize(out[name], specs[name].quant) if specs[name].quant else np.asarray(out[name], np.float32)
        for name in meta.outputs.names
    }


def verify_elementwise(ctx: ExportContext, engine, meta: ModelMeta, precision: str) -> Verification:
    """FP32 / FP16: outputs against the training form on the verification images, element-wise."""
    tolerance = FP16_TOLERANCE if precision == "fp16" else FP32_TOLERANCE
    indices = list(range(len(ctx.images)))
    return compare(
        lambda i: ctx.reference_outputs(ctx.images[i], key=i),
        lambda i: _run_engine(engine, meta, ctx.images[i]),
        indices,
        tolerance,
        backend=engine.backend,
    )


def verify_agreement(ctx: ExportContext, engine, meta: ModelMeta) -> Verification:
    """INT8: mAP of the artifact's detections against the FP32 source's detections taken as truth."""
    from edgekit.runtimes.decode import decode_outputs

    images = ctx.calibration_images() or ctx.images
    truths, predictions = [], []
    decode = meta.decode
    for image in images:
        ref = ctx.reference_outputs(image)
        _, info = ctx.reference_input(image)
        truth = decode_outputs(
            ctx.source_meta or ctx.meta, ref, [info], conf=decode.conf, iou=decode.iou, max_det=decode.max_det
        )[0]
        _, art_info = preprocess(image, meta.input, tuple(meta.imgsz))
        got = decode_outputs(
            meta, _run_engine(engine, meta, image), [art_info], conf=0.001, iou=decode.iou, max_det=decode.max_det
        )[0]
        truths.append(ImageResult(truth.xyxy, truth.class_id))
        predictions.append(ImageResult(got.xyxy, got.class_id, got.confidence))
    result = mean_average_precision(predictions, truths, len(meta.classes))
    verification = Verification(backend=engine.backend, inputs=len(images))
    verification.extra = {"map50_95": result.map50_95, "map50": result.map50, "reference_detections": result.instances}
    verification.minimum = {"map50": INT8_MIN_MAP50} if result.instances else {}
    return verification


def export_target(ctx: ExportContext, fmt: str, precision: str, out_dir: Path, stem: str) -> TargetResult:
    """Write, verify and place one artifact; errors are caught into the result, never half-written."""
    from edgekit.converters import writers

    start = time.perf_counter()
    result = TargetResult(fmt, precision)
    target = out_dir / artifact_name(stem, fmt, precision)
    try:
        writer = writers.WRITERS[fmt]
        with atomic_path(target, directory=writer.directory) as tmp:
            meta = writer.write(ctx, precision, tmp)
            verification = writer.verify(ctx, tmp, meta, precision)
            ctx.log(f"verify   {fmt} {precision}: " + verification.summary())
            if not verification.passed:
                raise EdgekitError(f"verification failed: {verification.failures()}")
            writer.set_metadata(tmp, replace(meta, verification=verification.as_dict()))
        result.path = target
        result.size_mb = _size(target)
        result.verification = verification
    except EdgekitError as exc:
        result.error = str(exc)
    except Exception as exc:  # a backend's own failure must not lose the other targets
        text = str(exc).strip().splitlines()
        result.error = f"{type(exc).__name__}: {text[0][:300] if text else ''}"
    result.seconds = time.perf_counter() - start
    return result


@contextlib.contextmanager
def quiet():
    """Silence the chatter backends print or log while converting (their errors still raise)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(previous)
