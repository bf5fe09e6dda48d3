"""OpenVINO IR, converted from edgekit's FP32 ONNX export: FP32, FP16 (compressed weights), INT8 (NNCF,
preset MIXED, the decode region in float). The artifact is a folder holding model.xml + model.bin; the
metadata lives in the IR's rt_info."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from edgekit.converters.backends.base import Backend
from edgekit.converters.backends.onnx import fp32_onnx
from edgekit.errors import EdgekitError, require
from edgekit.logs import silenced
from edgekit.meta import KEY, ModelMeta
from edgekit.runtimes.openvino import block_openvino_telemetry

IR_NAME = "model.xml"  # inside the artifact folder, next to model.bin

block_openvino_telemetry()  # before anything imports openvino: see there


def openvino_decode_region(model) -> list[str]:
    """Friendly names of the OpenVINO ops between the last weighted convolutions and the results (the
    region INT8 leaves in float; see backends.onnx.quantize)."""
    region: list[str] = []
    seen: set[int] = set()
    stack = list(model.get_results())
    while stack:
        op = stack.pop()
        for port in op.inputs():
            src = port.get_source_output().get_node()
            if id(src) in seen:
                continue
            seen.add(id(src))
            kind = src.get_type_name()
            if kind in ("Convolution", "GroupConvolution") and "/dfl/" not in src.get_friendly_name():
                continue
            if kind not in ("Constant", "Parameter"):
                region.append(src.get_friendly_name())
            stack.append(src)
    return region


class OpenVINOBackend(Backend):
    """OpenVINO IR, run by the OpenVINO runtime."""

    name = "openvino"
    extra = "openvino"
    suffix = "_openvino"
    directory = True

    def write(self, precision: str, tmp: Path) -> ModelMeta:
        block_openvino_telemetry()
        ov = require("openvino", "openvino")
        model = ov.convert_model(str(fp32_onnx(self.ctx)))
        if precision == "int8":
            nncf = require("nncf", "openvino")
            calibration = self.ctx.calibration()
            nncf.set_log_level(logging.ERROR)
            with silenced():
                model = nncf.quantize(
                    model,
                    nncf.Dataset(calibration),
                    preset=nncf.QuantizationPreset.MIXED,
                    subset_size=len(calibration),
                    ignored_scope=nncf.IgnoredScope(names=openvino_decode_region(model), validate=False),
                )
        elif precision not in ("fp32", "fp16"):
            raise EdgekitError(f"unknown precision {precision}")
        meta = replace(self.ctx.meta, precision=precision)
        model.set_rt_info(meta.to_json(), [KEY])
        tmp.mkdir(parents=True, exist_ok=True)
        ov.save_model(model, str(tmp / IR_NAME), compress_to_fp16=precision == "fp16")
        return meta

    def engine(self, path: Path):
        from edgekit.runtimes.openvino import OpenVINOEngine

        return OpenVINOEngine(path)

    def set_metadata(self, tmp: Path, meta: ModelMeta) -> None:
        ov = require("openvino", "openvino")
        xml = tmp / IR_NAME
        model = ov.Core().read_model(str(xml))
        model.set_rt_info(meta.to_json(), [KEY])
        staged = tmp / "staged.xml"
        ov.save_model(model, str(staged), compress_to_fp16=False)
        del model
        staged.replace(xml)
        staged.with_suffix(".bin").replace(xml.with_suffix(".bin"))
