"""OpenVINO IR, converted from edgekit's FP32 ONNX export: FP32, FP16 (compressed weights), INT8 (NNCF,
preset MIXED, the decode region in float). The artifact is a folder holding model.xml + model.bin; the
metadata lives in the IR's rt_info."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from edgekit.converters.backends.base import Backend
from edgekit.converters.backends.decode_region import is_fixed_weight_layer
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
            if kind in ("Convolution", "GroupConvolution") and not is_fixed_weight_layer(src.get_friendly_name()):
                continue
            if kind not in ("Constant", "Parameter"):
                region.append(src.get_friendly_name())
            stack.append(src)
    return region


def float_convolutions(model) -> list[str]:
    """Friendly names of the convolutions whose weights are not quantized (neither a FakeQuantize nor an
    integer constant behind them); on a float model, every convolution."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in ("Convolution", "GroupConvolution"):
            continue
        node = op.input(1).get_source_output().get_node()
        while node.get_type_name() not in ("FakeQuantize", "Constant") and node.get_input_size():
            node = node.input(0).get_source_output().get_node()
        integer = node.get_type_name() == "Constant" and node.get_element_type().is_integral()
        if node.get_type_name() != "FakeQuantize" and not integer:
            names.append(op.get_friendly_name())
    return names


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
        meta = replace(self.ctx.meta, precision=precision)
        if precision == "int8":
            nncf = require("nncf", "openvino")
            calibration = self.ctx.calibration()
            nncf.set_log_level(logging.ERROR)
            ignored = nncf.IgnoredScope(names=openvino_decode_region(model), validate=False)
            if self.ctx.accuracy is not None and self.ctx.accuracy.max_drop is not None:
                model, accuracy = self._within_budget(model, meta, calibration, ignored)
                meta = replace(meta, accuracy=accuracy)
            else:
                with silenced():
                    model = nncf.quantize(
                        model,
                        nncf.Dataset(calibration),
                        preset=nncf.QuantizationPreset.MIXED,
                        subset_size=len(calibration),
                        ignored_scope=ignored,
                    )
        elif precision not in ("fp32", "fp16"):
            raise EdgekitError(f"unknown precision {precision}")
        model.set_rt_info(meta.to_json(), [KEY])
        tmp.mkdir(parents=True, exist_ok=True)
        ov.save_model(model, str(tmp / IR_NAME), compress_to_fp16=precision == "fp16")
        return meta

    def _within_budget(self, model, meta: ModelMeta, calibration: list, ignored) -> tuple[object, dict]:
        """INT8 whose mAP50-95 drop fits --max-drop, by NNCF's quantize_with_accuracy_control: it ranks the
        quantizers by their effect and reverts the worst to float until the validation metric (here the
        mAP50-95 points of the accuracy data, decoded as the runtime decodes) is within the budget."""
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

        from edgekit.converters.accuracy import map_points, prepared_inputs

        data = self.ctx.accuracy
        inputs = [tensor for tensor, _ in prepared_inputs(meta, data)]

        def validate(compiled, indices) -> tuple[float, None]:
            def run(tensor):
                result = compiled(tensor)
                return {name: result[compiled.output(name)] for name in meta.outputs.names}

            return map_points(run, meta, data, list(indices)), None

        with silenced():
            quantized = nncf.quantize_with_accuracy_control(
                model,
                nncf.Dataset(calibration),
                nncf.Dataset(list(range(len(inputs))), lambda i: inputs[i]),
                validate,
                max_drop=data.max_drop,
                drop_type=nncf.DropType.ABSOLUTE,
                preset=nncf.QuantizationPreset.MIXED,
                subset_size=len(calibration),
                ignored_scope=ignored,
                advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    ranking_subset_size=min(len(inputs), 100)
                ),
            )
        reverted = [name for name in float_convolutions(quantized) if not is_fixed_weight_layer(name)]
        return quantized, {"float_layers": reverted}

    def engine(self, path: Path):
        from edgekit.runtimes.openvino import OpenVINOEngine

        return OpenVINOEngine(path)

    def fp32_engine(self):
        def make() -> Path:
            ov = require("openvino", "openvino")
            folder = self.ctx.workdir / "fp32_openvino"
            folder.mkdir(exist_ok=True)
            ov.save_model(ov.convert_model(str(fp32_onnx(self.ctx))), str(folder / IR_NAME), compress_to_fp16=False)
            return folder

        return self.engine(self.ctx.once("openvino-fp32", make)), replace(self.ctx.meta, precision="fp32")

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
