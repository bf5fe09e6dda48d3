"""Convert the demo ShapesNet weights into the embedded ONNX artifact (fused, verified)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from edgekit import __version__
from edgekit.converters.fuse import fold_all_bn
from edgekit.converters.onnx_export import write_onnx_artifact
from edgekit.converters.verify import Verification
from edgekit.eval.shapes import CLASSES, render, sample_size
from edgekit.fileio import sha256_file
from edgekit.meta import DecodeSpec, InputSpec, ModelMeta, SourceInfo
from edgekit.models.shapes import ShapesNet
from edgekit.runtimes.preprocess import preprocess


def shapes_meta(imgsz: int, source: Path | None = None) -> ModelMeta:
    """The metadata of the demo artifact."""
    return ModelMeta(
        family="edgekit-shapes",
        variant="shapesnet",
        classes=list(CLASSES),
        imgsz=(imgsz, imgsz),
        input=InputSpec(),
        decode=DecodeSpec(method="nms", conf=0.25, iou=0.45, max_det=100),
        stride=32,
        source=SourceInfo(source.name, sha256_file(source), __version__) if source else None,
    )


def verification_inputs(imgsz: int, images: int = 4, noise: int = 2, seed: int = 0) -> list[np.ndarray]:
    """Letterboxed renders (what the artifact will see) plus seeded noise, as [1,3,H,W] float32."""
    rng = np.random.default_rng(seed)
    spec = InputSpec()
    tensors = [preprocess(render(rng, *sample_size(rng)).image, spec, (imgsz, imgsz))[0] for _ in range(images)]
    tensors += [rng.uniform(0, 1, (1, 3, imgsz, imgsz)).astype(np.float32) for _ in range(noise)]
    return tensors


def convert_shapes(weights: str | Path, out: str | Path, imgsz: int = 320) -> Verification:
    """Load a ShapesNet state_dict, fold BatchNorm, export to ONNX and verify against the unfused model."""
    weights = Path(weights)
    source = ShapesNet(len(CLASSES))
    source.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    source.eval().export = True
    deploy = copy.deepcopy(source)
    fold_all_bn(deploy)

    def reference(x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            boxes, scores = source(torch.from_numpy(x))
        return {"boxes": boxes.numpy(), "scores": scores.numpy()}

    _, result = write_onnx_artifact(deploy, shapes_meta(imgsz, weights), out, reference, verification_inputs(imgsz))
    return result
