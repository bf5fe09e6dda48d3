"""ExecuTorch: a .pte program lowered to XNNPACK from the deploy module (NCHW float input, the contract's outputs),
FP32 and static INT8 (PT2E, the decode region in float). The metadata is the program's ``edgekit`` constant method."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edgekit.converters.backends.base import Backend
from edgekit.errors import EdgekitError
from edgekit.meta import ModelMeta


class ExecuTorchBackend(Backend):
    """ExecuTorch with the XNNPACK delegate, run by ``executorch.runtime``."""

    name = "executorch"
    extra = "executorch"
    suffix = ".pte"
    precisions = ("fp32", "int8")

    def write(self, precision: str, tmp: Path) -> ModelMeta:
        import shutil

        from edgekit.converters.backends.executorch.export import export_program, quantize_module, write_program

        if self.ctx.nms_in_graph:
            raise EdgekitError("in-graph NMS is not available for ExecuTorch (the runtime does NMS)")
        meta = replace(self.ctx.meta, precision=precision)
        sample = self.ctx.sample()
        if precision == "fp32":
            shutil.copyfile(self.fp32_pte(), tmp)
        elif precision == "int8" and self.ctx.accuracy is not None and self.ctx.accuracy.max_drop is not None:
            meta = self._within_budget(tmp, meta)
        elif precision == "int8":
            quantized = quantize_module(self.ctx.deploy, sample, self.ctx.calibration())
            write_program(export_program(quantized, sample), meta.to_json(), tmp)
        else:
            raise EdgekitError(f"ExecuTorch offers fp32 and int8, not {precision}")
        return meta

    def _within_budget(self, tmp: Path, meta: ModelMeta) -> ModelMeta:
        """INT8 whose mAP50-95 drop fits --max-drop: the weighted layers whose quantization adds the most error
        kept in float, as few as the budget allows (converters.accuracy)."""
        from edgekit.converters.accuracy import RANKING_IMAGES, detector_points, search_float_layers
        from edgekit.converters.backends.executorch.export import (
            export_program,
            pte_ranking,
            quantize_module,
            write_program,
        )
        from edgekit.runtimes.detector import Detector

        calibration = self.ctx.calibration()
        sample = self.ctx.sample()
        plain = quantize_module(self.ctx.deploy, sample, calibration)

        def quantize(exclude: list[str]) -> Path:
            path = self.ctx.workdir / f"executorch-int8-float{len(exclude)}.pte"
            if not path.exists():
                quantized = quantize_module(self.ctx.deploy, sample, calibration, exclude) if exclude else plain
                write_program(export_program(quantized, sample), meta.to_json(), path)
            return path

        def measure(path: Path) -> float:
            return detector_points(Detector(self.engine(path), meta), self.ctx.accuracy)

        few = calibration[:: max(1, len(calibration) // RANKING_IMAGES)][:RANKING_IMAGES]
        ranking = pte_ranking(self.ctx.deploy, sample, plain, few)
        found = search_float_layers(quantize, measure, ranking, self.ctx.reference_points(), self.ctx.accuracy.max_drop)
        tmp.write_bytes(found.path.read_bytes())
        return replace(meta, accuracy={"map50_95": found.points, "float_layers": found.float_layers})

    def engine(self, path: Path):
        from edgekit.runtimes.executorch import ExecuTorchEngine

        return ExecuTorchEngine(path)

    def fp32_pte(self) -> Path:
        """The FP32 program of this conversion (made once; FP32 targets copy it, INT8 ones are timed against it)."""
        from edgekit.converters.backends.executorch.export import export_program, write_program

        def make() -> Path:
            path = self.ctx.workdir / "base.pte"
            meta = replace(self.ctx.meta, precision="fp32")
            write_program(export_program(self.ctx.deploy, self.ctx.sample()), meta.to_json(), path)
            return path

        return self.ctx.once("executorch-fp32", make)

    def fp32_engine(self):
        return self.engine(self.fp32_pte()), replace(self.ctx.meta, precision="fp32")

    def set_metadata(self, tmp: Path, meta: ModelMeta) -> None:
        from edgekit.converters.backends.executorch.export import set_pte_metadata

        set_pte_metadata(tmp, meta.to_json())


__all__ = ["ExecuTorchBackend"]
