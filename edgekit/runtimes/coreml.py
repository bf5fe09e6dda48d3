"""The CoreML engine: coremltools prediction, which only macOS provides.

Elsewhere the model opens for inspection (tensors, metadata) but running it raises a clear message.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, require
from edgekit.logs import silenced
from edgekit.meta import KEY
from edgekit.runtimes.engine import Engine, TensorSpec
from edgekit.runtimes.settings import EngineSettings


class CoreMLEngine(Engine):
    """Runs an .mlpackage with coremltools on macOS; reads its description anywhere."""

    backend = "coreml"
    idle_switch = False  # no spin / sleep setting to pass

    def __init__(self, path: str | Path, threads: int | None = None, settings: EngineSettings | None = None):
        super().__init__(path, threads, settings)
        self.ct = require("coremltools", "coreml")
        with silenced():
            try:
                self.spec = self.ct.utils.load_spec(str(self.path))
            except Exception as exc:  # coremltools raises several types for unreadable packages
                raise EdgekitError(f"{self.path}: not a loadable CoreML model ({str(exc)[:200]})") from None
        self._inputs = [self._spec(f) for f in self.spec.description.input]
        self._outputs = [self._spec(f) for f in self.spec.description.output]
        self.model = None
        if platform.system() == "Darwin":
            self.model = self.ct.models.MLModel(str(self.path))

    @staticmethod
    def _spec(feature) -> TensorSpec:
        kind = feature.type.WhichOneof("Type")
        if kind == "multiArrayType":
            shape = tuple(int(d) for d in feature.type.multiArrayType.shape) or (None, None)
            return TensorSpec(feature.name, shape, "float32")
        if kind == "imageType":
            image = feature.type.imageType
            channels = 1 if image.colorSpace == image.GRAYSCALE else 3
            return TensorSpec(feature.name, (1, channels, int(image.height), int(image.width)), "uint8")
        return TensorSpec(feature.name, (), "float64")

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.model is None:
            raise EdgekitError(
                f"{self.path.name}: CoreML models run only on macOS (coremltools prediction needs it); "
                "convert here, run on a Mac or an iPhone"
            )
        feeds = dict(feeds)
        for feature in self.spec.description.input:
            kind = feature.type.WhichOneof("Type")
            if kind == "imageType" and isinstance(feeds.get(feature.name), np.ndarray):
                from PIL import Image  # coremltools takes images as PIL images

                array = feeds[feature.name]
                feeds[feature.name] = Image.fromarray(np.ascontiguousarray(array[0].transpose(1, 2, 0)))
            elif kind == "doubleType" and feature.name not in feeds:
                feeds[feature.name] = self._threshold(feature.name)
        return {k: np.asarray(v) for k, v in self.model.predict(feeds).items()}

    def _threshold(self, name: str) -> float:
        """The NMS stage's own default for an optional threshold input of the Vision pipeline."""
        nms = self.spec.pipeline.models[-1].nonMaximumSuppression
        return float(nms.iouThreshold if name == nms.iouThresholdInputFeatureName else nms.confidenceThreshold)

    def metadata(self) -> dict[str, str]:
        user = dict(self.spec.description.metadata.userDefined)
        return {KEY: user[KEY]} if KEY in user else {}
