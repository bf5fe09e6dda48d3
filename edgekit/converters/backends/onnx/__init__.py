"""ONNX: FP32 as exported (onnxslim-simplified), FP16 weights with float32 I/O, INT8 static QDQ (per-channel
weights, the decode region in float); optionally NMS inside the graph. Metadata in ``metadata_props``."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from edgekit.converters.backends.base import Backend
from edgekit.converters.backends.onnx.export import MIN_OPSET, export_onnx, set_onnx_metadata
from edgekit.converters.context import ExportContext
from edgekit.errors import EdgekitError
from edgekit.meta import ModelMeta


@dataclass(frozen=True)
class OnnxOptions:
    """ONNX export options (OpenVINO IR is converted from this export, so they apply to it too)."""

    opset: int = MIN_OPSET
    dynamic: bool = False  # dynamic batch and image size

    def __post_init__(self) -> None:
        if self.opset < MIN_OPSET:
            raise EdgekitError(f"opset {self.opset} is too old; edgekit exports opset {MIN_OPSET} or newer")


def fp32_onnx(ctx: ExportContext) -> Path:
    """The FP32 ONNX export every ONNX-derived target starts from (made once per conversion; ends in NMS
    when the conversion puts NMS in the graph)."""

    def make() -> Path:
        options = ctx.backend_options.get("onnx") or OnnxOptions()
        path = ctx.workdir / "base.onnx"
        export_onnx(ctx.deploy, ctx.sample(), path, ctx.source_meta, opset=options.opset, dynamic=options.dynamic)
        if ctx.nms_in_graph:
            from edgekit.converters.backends.onnx.nms import append_nms

            append_nms(path, ctx.meta)
        return path

    return ctx.once("onnx-fp32", make)


class OnnxBackend(Backend):
    """ONNX, run by ONNX Runtime."""

    name = "onnx"
    extra = "convert"
    suffix = ".onnx"
    Options = OnnxOptions

    def write(self, precision: str, tmp: Path) -> ModelMeta:
        import onnx

        from edgekit.converters.backends.onnx.quantize import half_onnx, quantize_onnx

        base = fp32_onnx(self.ctx)
        meta = replace(self.ctx.meta, precision=precision)
        if precision == "fp32":
            shutil.copyfile(base, tmp)
        elif precision == "fp16":
            onnx.save(half_onnx(onnx.load(str(base))), str(tmp))
        elif precision == "int8" and self.ctx.accuracy is not None and self.ctx.accuracy.max_drop is not None:
            meta = self._within_budget(base, tmp, meta)
        elif precision == "int8":
            quantize_onnx(base, tmp, self.ctx.calibration())
        else:
            raise EdgekitError(f"unknown precision {precision}")
        self.set_metadata(tmp, meta)
        return meta

    def _within_budget(self, base: Path, tmp: Path, meta: ModelMeta) -> ModelMeta:
        """INT8 whose mAP50-95 drop fits --max-drop: the convolutions whose quantization adds the most error
        kept in float, as few as the budget allows (converters.accuracy)."""
        from edgekit.converters.accuracy import RANKING_IMAGES, detector_points, search_float_layers
        from edgekit.converters.backends.onnx.quantize import onnx_ranking, quantize_onnx
        from edgekit.runtimes.detector import Detector

        calibration = self.ctx.calibration()

        def quantize(exclude: list[str]) -> Path:
            path = self.ctx.workdir / f"onnx-int8-float{len(exclude)}.onnx"
            if not path.exists():
                quantize_onnx(base, path, calibration, exclude)
            return path

        def measure(path: Path) -> float:
            return detector_points(Detector(self.engine(path), meta), self.ctx.accuracy)

        few = calibration[:: max(1, len(calibration) // RANKING_IMAGES)][:RANKING_IMAGES]
        ranking = onnx_ranking(base, quantize([]), few)
        found = search_float_layers(
            quantize, measure, ranking, self.ctx.reference_points(), self.ctx.accuracy.max_drop
        )
        shutil.copyfile(found.path, tmp)
        return replace(meta, accuracy={"map50_95": found.points, "float_layers": found.float_layers})

    def engine(self, path: Path):
        from edgekit.runtimes.ort import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path)

    def fp32_engine(self):
        return self.engine(fp32_onnx(self.ctx)), replace(self.ctx.meta, precision="fp32")

    def set_metadata(self, tmp: Path, meta: ModelMeta) -> None:
        import onnx

        model = onnx.load(str(tmp))
        set_onnx_metadata(model, meta)
        onnx.save(model, str(tmp))


__all__ = ["OnnxBackend", "OnnxOptions", "fp32_onnx"]
