"""A checkpoint run in torch the way a Detector runs an artifact: the artifact's preprocessing and decoding
around the training form's own forward pass. `edgekit val CHECKPOINT` and the INT8 accuracy budget use it
as the reference an artifact is measured against."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgekit import __version__
from edgekit.converters.source import SourceModel
from edgekit.detections import Detections
from edgekit.fileio import sha256_file
from edgekit.meta import Letterbox, ModelMeta, SourceInfo
from edgekit.runtimes.decode import decode_outputs
from edgekit.runtimes.detector import Timings
from edgekit.runtimes.preprocess import preprocess


def artifact_meta(source: SourceModel, imgsz: Sequence[int], checksum: bool = True) -> ModelMeta:
    """The metadata an artifact of `source` at input size `imgsz` (height, width) carries."""
    return ModelMeta(
        family=source.family,
        variant=source.variant,
        classes=list(source.classes),
        imgsz=[int(v) for v in imgsz],
        input=source.input,
        outputs=source.outputs,
        decode=source.decode,
        stride=source.stride,
        source=SourceInfo(source.path.name, sha256_file(source.path) if checksum else "", __version__)
        if source.path
        else None,
        random_weights=source.random_weights,
    )


class SourceDetector:
    """``detector(image)`` -> Detections, computed by the checkpoint's training form in float32 torch.

    `imgsz` is (height, width), multiples of the model's stride; `letterbox` how an image is fitted to it
    when not the source's own (a phone file's stretch, as MediaPipe feeds it). Stage times of the last call
    are in ``timings`` (milliseconds), as on a Detector.
    """

    def __init__(
        self, source: SourceModel, imgsz: Sequence[int], notes: Sequence[str] = (), letterbox: Letterbox | None = None
    ):
        self.source = source
        self.meta = artifact_meta(source, imgsz, checksum=False)
        if letterbox is not None:
            self.meta = replace(self.meta, input=replace(self.meta.input, letterbox=letterbox))
        self.notes = list(notes)  # lines saying which input size and head were chosen, and why
        self.conf, self.iou, self.max_det = source.decode.conf, source.decode.iou, source.decode.max_det
        self.multi_label = source.decode.multi_label
        self.timings = Timings()

    @property
    def names(self) -> list[str]:
        return self.meta.classes

    def __repr__(self) -> str:
        m = self.meta
        return f"SourceDetector({m.family} {m.variant}, torch fp32, {m.imgsz[0]}x{m.imgsz[1]})"

    def __call__(
        self, image: np.ndarray, *, conf: float | None = None, iou: float | None = None, max_det: int | None = None
    ) -> Detections:
        """Detect objects in one BGR HxWx3 uint8 image (source pixels out)."""
        t0 = time.perf_counter()
        tensor, info = preprocess(image, self.meta.input, tuple(self.meta.imgsz))
        t1 = time.perf_counter()
        with torch.no_grad():
            outputs = self.source.reference(torch.from_numpy(tensor))
        raw = {name: outputs[name].float().numpy() for name in self.meta.outputs.names}
        t2 = time.perf_counter()
        found = decode_outputs(
            self.meta,
            raw,
            [info],
            conf=self.conf if conf is None else conf,
            iou=self.iou if iou is None else iou,
            max_det=self.max_det if max_det is None else max_det,
            multi_label=self.multi_label,
        )[0]
        t3 = time.perf_counter()
        self.timings = Timings(pre=(t1 - t0) * 1e3, infer=(t2 - t1) * 1e3, post=(t3 - t2) * 1e3)
        return found


def open_source_detector(
    spec: str | Path, imgsz: int | Sequence[int] | None = None, **source_options
) -> SourceDetector:
    """A SourceDetector for a checkpoint file (options as ``open_source`` takes them, e.g. ``names``, ``topk``).

    `imgsz` None runs at the size the checkpoint was trained at (640 when it records none); the detector's
    ``notes`` say which size and head it runs, and why. Raises EdgekitError as ``open_source`` does, and for
    a size off the model's stride.
    """
    from edgekit.converters.families import open_source

    names = source_options.pop("names", None)
    source = open_source(spec, names=names, **source_options)
    size, size_note = source.input_size(imgsz)
    return SourceDetector(source, size, source.choices(size_note))
