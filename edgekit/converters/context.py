"""What every backend shares in one conversion: the source and deploy models, the base metadata, the
verification and calibration images, and a cache for intermediate files one backend derives from
another (OpenVINO starts from the ONNX export).

Backend flags live in each backend's own options dataclass, not here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgekit.converters.accuracy import AccuracyData
from edgekit.converters.source import SourceModel
from edgekit.errors import EdgekitError
from edgekit.logs import get_logger
from edgekit.meta import InputSpec, ModelMeta
from edgekit.runtimes.preprocess import preprocess

AGREEMENT_IMAGES = 32  # calibration images the INT8 agreement check runs on


@dataclass
class ExportContext:
    """One conversion's shared state. `meta` is the base every target derives from (FP32, NCHW float
    input, the output form of this conversion); `source_meta` the source model's own outputs (they differ
    with in-graph NMS)."""

    source: SourceModel
    deploy: torch.nn.Module
    meta: ModelMeta
    images: list[np.ndarray]  # verification images (BGR uint8)
    workdir: Path
    calib: list[Path] | None = None
    source_meta: ModelMeta | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)  # backend name -> its Options instance
    accuracy: AccuracyData | None = None  # labelled data INT8 drops are measured on, and the budget
    # the FP32 source as a detector (image -> Detections) for the budget's reference: convert makes a SourceDetector
    reference_detector: Callable[[], Callable[..., Any]] | None = None
    _reference: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    _calib_tensors: list[np.ndarray] | None = None
    _cache: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source_meta is None:
            self.source_meta = self.meta

    @property
    def imgsz(self) -> tuple[int, int]:
        return tuple(self.meta.imgsz)

    @property
    def nms_in_graph(self) -> bool:
        """The artifacts end in NMS (detections) where the source gives boxes and scores."""
        return self.meta.outputs.kind == "detections" and self.source_meta.outputs.kind == "boxes_scores"

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        """`make()` the first time `key` is asked for, the cached value after (e.g. the FP32 ONNX file)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def reference_input(self, image: np.ndarray) -> tuple[np.ndarray, object]:
        """The source model's input for an image: RGB 0..1 NCHW float, fitted as the metadata says."""
        spec = InputSpec(
            name=self.meta.input.name, letterbox=self.meta.input.letterbox, channels=self.meta.input.channels
        )
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

    def sample(self) -> torch.Tensor:
        """A network input [1, 3, H, W] (the first verification image) for tracing and exporting."""
        return torch.from_numpy(self.reference_input(self.images[0])[0])

    def calibration(self) -> list[np.ndarray]:
        """Calibration tensors preprocessed as the FP32 input (made once)."""
        if self._calib_tensors is None:
            if not self.calib:
                raise EdgekitError("INT8 needs calibration images: pass --calib (image folder, YOLO yaml or COCO json)")
            from edgekit.converters.calibration import calibration_tensors

            spec = InputSpec(
            name=self.meta.input.name, letterbox=self.meta.input.letterbox, channels=self.meta.input.channels
        )
            self._calib_tensors = list(calibration_tensors(self.calib, spec, self.imgsz))
        return self._calib_tensors

    def calibration_images(self) -> list[np.ndarray]:
        """Up to AGREEMENT_IMAGES calibration images, spread over the set (BGR uint8)."""
        from edgekit.images import read_image

        picks = self.calib[:: max(1, len(self.calib) // AGREEMENT_IMAGES)][:AGREEMENT_IMAGES] if self.calib else []
        return [read_image(p) for p in picks]

    def reference_points(self) -> float:
        """mAP50-95 points of the FP32 source on the accuracy data (measured once, by ``reference_detector``: its
        images fitted as the artifacts' metadata says, stretched for a phone file as MediaPipe does)."""

        def make() -> float:
            from edgekit.converters.accuracy import detector_points

            if self.reference_detector is None:
                raise EdgekitError("the accuracy budget needs the FP32 source's detector (reference_detector)")
            points = detector_points(self.reference_detector(), self.accuracy)
            get_logger("edgekit.convert").info(
                f"accuracy FP32 source: mAP50-95 {points:.2f} on {len(self.accuracy.images)} images of "
                f"{self.accuracy.name}"
            )
            return points

        return self.once("reference-points", make)
