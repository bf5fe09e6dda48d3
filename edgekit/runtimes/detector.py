"""The Detector: preprocessing + engine + decoding, all driven by the artifact's metadata."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import meta as meta_mod
from edgekit import meta_foreign
from edgekit.checks import check_class_count, image_size
from edgekit.detections import Detections, class_ids
from edgekit.errors import EdgekitError, MetadataError
from edgekit.images import as_image, read_image
from edgekit.meta import ModelMeta
from edgekit.runtimes import decode
from edgekit.runtimes.engine import Engine, TensorSpec, open_engine
from edgekit.runtimes.preprocess import LetterboxInfo, Preprocessor, dequantize, preprocess
from edgekit.runtimes.settings import EngineSettings, engine_settings

ImageLike = str | Path | np.ndarray
logger = logging.getLogger(__name__)


@dataclass
class Timings:
    """Stage times of the last call, in milliseconds."""

    pre: float = 0.0
    infer: float = 0.0
    post: float = 0.0

    @property
    def total(self) -> float:
        return self.pre + self.infer + self.post

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


class Detector:
    """Runs one model file on images: ``detector(image)`` returns Detections in source pixels.

    Per frame, the input tensor is written in place into a buffer the Detector keeps, and the engine
    reads and writes its own buffers (``Engine.infer``); the Detections returned own their arrays. A
    Detector is therefore one stream's: give each thread its own.
    """

    def __init__(self, engine: Engine, meta: ModelMeta):
        self.engine = engine
        self.meta = meta
        self.input = _check_io(engine, meta)
        self.conf = meta.decode.conf
        self.iou = meta.decode.iou
        self.max_det = meta.decode.max_det
        self.agnostic = meta.decode.agnostic
        self.multi_label = meta.decode.multi_label
        self.classes: list[int] | None = None
        self.timings = Timings()
        self._preprocessor = Preprocessor(meta.input, meta.imgsz)
        self.device = None  # the DeviceProfile it was loaded for, if any
        if meta.random_weights:
            logging.getLogger("edgekit.runtimes").warning(
                f"{engine.path.name} was converted from an architecture name: its weights are random and its "
                "detections mean nothing"
            )

    @property
    def names(self) -> list[str]:
        return self.meta.classes

    def __repr__(self) -> str:
        m = self.meta
        shared = " (shared)" if self.engine.settings.shared else ""
        return (f"Detector({m.family} {m.variant}, {self.engine.backend}{shared}, {m.imgsz[0]}x{m.imgsz[1]}, "
                f"{m.precision})")

    def __call__(
        self,
        images: ImageLike | Sequence[ImageLike],
        *,
        rgb: bool = False,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        classes: Sequence[int | str] | None = None,
        agnostic: bool | None = None,
    ) -> Detections | list[Detections]:
        """Detect objects in a path or HxWx3 uint8 array (BGR unless `rgb`), or a list of them."""
        single = isinstance(images, (str, Path, np.ndarray))
        if not single and not isinstance(images, Iterable):  # None (cv2.imread of a missing file), a number ...
            raise EdgekitError(f"expected an image path, an HxWx3 uint8 array or a list of them, not "
                               f"{type(images).__name__} (cv2.imread returns None for a file it cannot read)")
        batch = [images] if single else list(images)
        options = dict(
            conf=self.conf if conf is None else conf,
            iou=self.iou if iou is None else iou,
            max_det=self.max_det if max_det is None else max_det,
            classes=self.classes if classes is None else class_ids(classes, self.names),
            agnostic=self.agnostic if agnostic is None else agnostic,
        )
        timings = Timings()
        results = []
        step = len(batch) if self._dynamic_batch else 1
        for start in range(0, len(batch), step):
            chunk = batch[start : start + step]
            t0 = time.perf_counter()
            tensors, infos = [], []
            for item in chunk:
                is_path = isinstance(item, (str, Path))
                image = read_image(item) if is_path else as_image(item)
                rgb_image = rgb and not is_path
                if len(chunk) == 1:  # one frame: written in place into the reused input tensor
                    tensor, info = self._frame_preprocessor()(image, rgb=rgb_image)
                else:
                    tensor, info = preprocess(image, self.meta.input, self.meta.imgsz, rgb=rgb_image)
                tensors.append(tensor)
                infos.append(info)
            feed = tensors[0] if len(tensors) == 1 else np.concatenate(tensors)
            t1 = time.perf_counter()
            outputs = self.engine.infer({self.input.name: feed})
            t2 = time.perf_counter()
            results.extend(self.decode(outputs, infos, **options))
            t3 = time.perf_counter()
            timings.pre += (t1 - t0) * 1e3
            timings.infer += (t2 - t1) * 1e3
            timings.post += (t3 - t2) * 1e3
        self.timings = timings
        return results[0] if single else results

    def _frame_preprocessor(self) -> Preprocessor:
        pre = self._preprocessor
        if pre.spec is not self.meta.input or pre.imgsz != tuple(self.meta.imgsz):  # the metadata was replaced
            pre = self._preprocessor = Preprocessor(self.meta.input, self.meta.imgsz)
        return pre

    @property
    def _dynamic_batch(self) -> bool:
        first = self.input.shape[0] if self.input.shape else 1
        return not isinstance(first, int) or first < 0

    def decode(
        self, outputs: dict[str, np.ndarray], infos: Sequence[LetterboxInfo], **options: Any
    ) -> list[Detections]:
        """Turn raw outputs of a batch into Detections, one per letterboxed image."""
        raw = {}
        for name, spec in zip(self.meta.outputs.names, self._output_specs):
            value = np.asarray(outputs[name])
            raw[name] = dequantize(value, spec.quant) if spec.quant else value
        return decode.decode_outputs(self.meta, raw, infos, multi_label=self.multi_label, **options)

    @property
    def _output_specs(self) -> list[TensorSpec]:
        by_name = {o.name: o for o in self.engine.outputs}
        return [by_name[n] for n in self.meta.outputs.names]


def _fixed(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _check_io(engine: Engine, meta: ModelMeta) -> TensorSpec:
    """Check that the metadata describes this model's tensors; return the image input."""
    inputs = {i.name: i for i in engine.inputs}
    if meta.input.name not in inputs:
        raise MetadataError(f"metadata names input '{meta.input.name}', the model has {sorted(inputs)}")
    spec = inputs[meta.input.name]
    if len(spec.shape) != 4:
        raise MetadataError(f"input '{spec.name}' has shape {list(spec.shape)}; expected a 4-d image tensor")
    if spec.dtype != meta.input.dtype:
        raise MetadataError(f"metadata says input dtype {meta.input.dtype}, the model takes {spec.dtype}")
    hw = spec.shape[2:4] if meta.input.layout == "NCHW" else spec.shape[1:3]
    channels = spec.shape[1] if meta.input.layout == "NCHW" else spec.shape[3]
    if _fixed(channels) not in (None, meta.input.channels):
        raise MetadataError(
            f"input '{spec.name}' has {channels} channels in {meta.input.layout} layout; expected {meta.input.channels}"
        )
    fixed_hw = tuple(_fixed(d) for d in hw)
    if all(fixed_hw) and fixed_hw != tuple(meta.imgsz):
        raise MetadataError(f"metadata says image size {list(meta.imgsz)}, the model takes {list(fixed_hw)}")
    outputs = {o.name: o for o in engine.outputs}
    missing = [n for n in meta.outputs.names if n not in outputs]
    if missing:
        raise MetadataError(f"metadata names outputs {missing} that the model lacks (it has {sorted(outputs)})")
    nc = meta.num_classes
    first = outputs[meta.outputs.names[0]].shape
    if meta.outputs.kind == "boxes_scores":
        scores = outputs[meta.outputs.names[1]].shape
        if _fixed(scores[-1]) not in (None, nc):
            raise MetadataError(f"the model scores {scores[-1]} classes but the metadata names {nc}")
        if len(first) != 3 or _fixed(first[-1]) not in (None, 4):
            raise MetadataError(f"output '{meta.outputs.names[0]}' has shape {list(first)}; expected [B, A, 4]")
    elif meta.outputs.kind == "packed":
        if len(first) != 3 or _fixed(first[1]) not in (None, 4 + nc):
            raise MetadataError(f"output '{meta.outputs.names[0]}' has shape {list(first)}; expected [B, 4+{nc}, A]")
    elif meta.outputs.kind == "vision":
        pass  # CoreML's pipeline outputs have a variable row count
    elif meta.outputs.kind == "postprocess":
        if len(first) != 3 or _fixed(first[-1]) not in (None, 4):
            raise MetadataError(f"output '{meta.outputs.names[0]}' has shape {list(first)}; expected [B, D, 4]")
    elif len(first) != 3 or _fixed(first[-1]) not in (None, 6):
        raise MetadataError(f"output '{meta.outputs.names[0]}' has shape {list(first)}; expected [B, K, 6]")
    return spec


def read_meta(
    engine: Engine, imgsz: int | Sequence[int] | None = None, names: Sequence[str] | None = None
) -> ModelMeta:
    """The model's metadata: edgekit's own, else Ultralytics', else guessed from `imgsz` and `names`."""
    props = engine.metadata()
    found = meta_mod.from_props(props)
    image = engine.inputs[0]
    if found is None and meta_foreign.is_ultralytics(props):
        found = meta_foreign.from_ultralytics(
            props, image.name, image.dtype, [o.name for o in engine.outputs], [o.shape for o in engine.outputs],
            normalized=engine.backend == "litert", input_shape=image.shape,  # its TFLite boxes are 0..1
        )
    if found is None and imgsz is None:
        imgsz = _fixed_size(image.shape)  # a bare model with a fixed input needs no --imgsz
    if found is None:
        if imgsz is None:
            raise MetadataError(
                f"{engine.path.name} has neither edgekit nor Ultralytics metadata; give the input size "
                "(--imgsz, and --names for class names) to run it with the edgekit output contract"
            )
        found = meta_foreign.guess(
            image.name,
            image.shape,
            image.dtype,
            [o.name for o in engine.outputs],
            [o.shape for o in engine.outputs],
            image_size(imgsz),
            names,
        )
    elif imgsz is not None and image_size(imgsz) != tuple(found.imgsz):
        dims = image.shape[2:4] if found.input.layout == "NCHW" else image.shape[1:3]
        if all(_fixed(d) for d in dims):
            raise EdgekitError(
                f"this model has a fixed input size {list(found.imgsz)}; it cannot run at {list(image_size(imgsz))}"
            )
        found = replace(found, imgsz=image_size(imgsz))
    if names is not None:
        check_class_count(len(names), found.num_classes, "class names given")
        found = replace(found, classes=list(names))
    return found


def _fixed_size(shape: Sequence[Any]) -> tuple[int, int] | None:
    """(height, width) of a fixed 4-D image input (NCHW when dimension 1 is 1 or 3 channels, else NHWC)."""
    if len(shape) != 4:
        return None
    dims = shape[2:4] if _fixed(shape[1]) in (1, 3) else shape[1:3]
    return (int(dims[0]), int(dims[1])) if all(_fixed(d) for d in dims) else None


def load(
    path: str | Path,
    *,
    backend: str | None = None,
    threads: int | None = None,
    settings: EngineSettings | None = None,
    imgsz: int | Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    device: str | None = None,
) -> Detector:
    """Open a model file (engine chosen by its type) and return a ready Detector.

    `settings` says how the engine uses the CPU (:class:`~edgekit.runtimes.settings.EngineSettings`: threads,
    a machine shared with other busy processes, FP16); an explicit `threads` wins over its count. `device`
    names a device profile (``edgekit devices`` lists them): its thread count is used unless one is given,
    its shared / FP16 choices are added to `settings`, an .onnx file runs on the engine it names for ONNX
    files unless `backend` is given, and a model that is not what the profile prefers is logged as a hint.
    Without `device` and `backend`, an .onnx file runs on the engine this machine's profile names for ONNX
    files (x86: OpenVINO where it is installed, FP32 files only; ``backend="onnxruntime"`` keeps ONNX Runtime).
    Raises EdgekitError for a file that cannot be opened, an unknown backend or device.
    """
    settings = engine_settings(settings, threads)
    profile = None
    if device is not None:
        from edgekit.devices.profiles import get_profile, profile_backend, profile_settings

        profile = get_profile(device)
        settings = profile_settings(profile, settings)
        backend = backend or profile_backend(profile, path)
    elif backend is None:
        from edgekit.devices.profiles import machine_backend

        backend = machine_backend(path)
    engine = open_engine(path, backend=backend, settings=settings)
    detector = Detector(engine, read_meta(engine, imgsz, names))
    if profile is not None:
        from edgekit.devices.profiles import profile_hints

        for hint in profile_hints(profile, detector.engine.backend, detector.meta.precision, detector.meta.imgsz):
            logger.info("%s: %s", profile.name, hint)
        detector.device = profile
    return detector
