"""Per-format writers behind one interface: write an artifact, verify it, store its metadata.

Each writer knows its format's file layout, precision options and where metadata lives; the shared
flow (temporary path, verification, atomic rename) is in converters.targets.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgekit.converters.targets import ExportContext, quiet, verify_agreement, verify_elementwise
from edgekit.converters.verify import Verification
from edgekit.errors import EdgekitError, require
from edgekit.meta import KEY, ModelMeta, OutputSpec


class Writer:
    """Interface: ``write`` the artifact at `tmp` and return its metadata, ``verify``, ``set_metadata``."""

    format = ""
    directory = False

    def write(self, ctx: ExportContext, precision: str, tmp: Path) -> ModelMeta:
        raise NotImplementedError  # each format implements it

    def engine(self, path: Path):
        raise NotImplementedError  # each format implements it

    def verify(self, ctx: ExportContext, tmp: Path, meta: ModelMeta, precision: str) -> Verification:
        engine = self.engine(tmp)
        if precision == "int8" or (ctx.nms_in_graph and precision == "fp16"):
            return verify_agreement(ctx, engine, meta)  # thresholds inside: rows near them may legitimately flip
        if ctx.nms_in_graph:
            from edgekit.converters.nms_graph import verify_nms

            return verify_nms(ctx, engine, meta)
        return verify_elementwise(ctx, engine, meta, precision)

    def set_metadata(self, tmp: Path, meta: ModelMeta) -> None:
        raise NotImplementedError  # each format implements it


class OnnxWriter(Writer):
    """ONNX: FP32 as exported; FP16 weights with float32 I/O; INT8 static QDQ, per-channel, decode in float."""

    format = "onnx"

    def write(self, ctx: ExportContext, precision: str, tmp: Path) -> ModelMeta:
        import onnx

        from edgekit.converters.onnx_export import set_onnx_metadata

        base = ctx.onnx_fp32()
        meta = replace(ctx.meta, precision=precision)
        if precision == "fp32":
            shutil.copyfile(base, tmp)
        elif precision == "fp16":
            model = half_onnx(onnx.load(str(base)))
            onnx.save(model, str(tmp))
        elif precision == "int8":
            quantize_onnx(base, tmp, ctx.calibration())
        else:
            raise EdgekitError(f"unknown precision {precision}")
        model = onnx.load(str(tmp))
        set_onnx_metadata(model, meta)
        onnx.save(model, str(tmp))
        return meta

    def engine(self, path: Path):
        from edgekit.runtimes.ort import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path)

    def set_metadata(self, tmp: Path, meta: ModelMeta) -> None:
        import onnx

        from edgekit.converters.onnx_export import set_onnx_metadata

        model = onnx.load(str(tmp))
        set_onnx_metadata(model, meta)
        onnx.save(model, str(tmp))


def half_onnx(model):
    """FP16 weights and compute, float32 inputs and outputs; selection ops stay in float32."""
    import onnxslim
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings(), quiet():
        warnings.simplefilter("ignore")
        model = convert_float_to_float16(model, keep_io_types=True, op_block_list=["NonMaxSuppression", "TopK"])
        return onnxslim.slim(model)  # also restores the topological order the fp16 pass leaves unsorted


def quantize_onnx(source: Path, target: Path, calibration: list[np.ndarray]) -> None:
    """Static INT8 (QDQ): per-channel int8 weights, uint8 activations calibrated on `calibration`,
    the decode region (after the last convolutions) left in float."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from edgekit.converters.graph_regions import onnx_decode_region

    model = onnx.load(str(source))
    name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {name: x}

    with warnings.catch_warnings(), quiet():
        warnings.simplefilter("ignore")
        quantize_static(
            str(source),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=onnx_decode_region(model),
            extra_options={"WeightSymmetric": True},
        )


IR_NAME = "model.xml"  # inside the artifact folder, next to model.bin


class OpenVINOWriter(Writer):
    """OpenVINO IR from the FP32 ONNX: FP32, FP16 (compressed weights), INT8 (NNCF, preset MIXED, the decode
    region ignored so it stays in float); metadata in rt_info. The artifact is a folder with .xml + .bin."""

    format = "openvino"
    directory = True

    def write(self, ctx: ExportContext, precision: str, tmp: Path) -> ModelMeta:
        ov = require("openvino", "openvino")
        model = ov.convert_model(str(ctx.onnx_fp32()))
        if precision == "int8":
            nncf = require("nncf", "openvino")
            from edgekit.converters.graph_regions import openvino_decode_region

            calibration = ctx.calibration()
            nncf.set_log_level(logging.ERROR)
            with warnings.catch_warnings(), quiet():
                warnings.simplefilter("ignore")
                model = nncf.quantize(
                    model,
                    nncf.Dataset(calibration),
                    preset=nncf.QuantizationPreset.MIXED,
                    subset_size=len(calibration),
                    ignored_scope=nncf.IgnoredScope(names=openvino_decode_region(model), validate=False),
                )
        elif precision not in ("fp32", "fp16"):
            raise EdgekitError(f"unknown precision {precision}")
        meta = replace(ctx.meta, precision=precision)
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


class TFLiteWriter(Writer):
    """TFLite from the deploy module (litert-torch), NHWC input: FP32, FP16 weights, full INT8 with int8
    input and outputs whose (scale, zero_point) go into the metadata; the metadata lives in the flatbuffer."""

    format = "tflite"

    def write(self, ctx: ExportContext, precision: str, tmp: Path) -> ModelMeta:
        from edgekit.converters.tflite_export import finalize_tflite, quantize_tflite

        if ctx.nms_in_graph:
            raise EdgekitError("in-graph NMS is not available for TFLite (--phone builds MediaPipe's post-process op)")
        if precision == "int8" and ctx.uint8_input:
            raise EdgekitError("--uint8-input applies to FP32/FP16 TFLite; INT8 TFLite already takes integer input")
        base = ctx.tflite_fp32()
        if precision == "fp32":
            shutil.copyfile(base, tmp)
        else:
            calibration = [x.transpose(0, 2, 3, 1).copy() for x in ctx.calibration()] if precision == "int8" else None
            quantize_tflite(base, tmp, precision, calibration)
        meta = self._meta(ctx, precision)
        if ctx.phone:
            from edgekit.converters.tflite_phone import append_postprocess

            append_postprocess(tmp, meta)
        finalize_tflite(tmp, meta.input.name, meta.outputs.names, meta.to_json())
        meta = self._with_quant(tmp, meta)
        if ctx.phone:
            from edgekit.converters.tflite_phone import add_mediapipe_metadata

            self._check_phone_input(meta)
            add_mediapipe_metadata(tmp, meta)
        return meta

    @staticmethod
    def _meta(ctx: ExportContext, precision: str) -> ModelMeta:
        spec = replace(ctx.meta.input, layout="NHWC")
        if ctx.uint8_input:
            spec = replace(spec, dtype="uint8", range=(0.0, 255.0))
        meta = replace(ctx.meta, input=spec, precision=precision)
        if ctx.phone:
            from edgekit.converters.tflite_phone import OUTPUT_NAMES

            meta = replace(
                meta, outputs=OutputSpec(kind="postprocess", names=list(OUTPUT_NAMES)),
                decode=replace(meta.decode, method="none"),
            )
        return meta

    @staticmethod
    def _check_phone_input(meta: ModelMeta) -> None:
        if meta.input.dtype not in ("float32", "uint8"):
            raise EdgekitError(
                f"MediaPipe feeds float32 or uint8 images; this model takes {meta.input.dtype} "
                "(INT8 --phone needs a float or uint8 input)"
            )

    @staticmethod
    def _with_quant(path: Path, meta: ModelMeta) -> ModelMeta:
        from edgekit.converters.tflite_export import finalize_tflite, io_quantization

        input_quant, output_quant = io_quantization(path)
        if input_quant is None and not output_quant:
            return meta
        spec = meta.input if input_quant is None else replace(meta.input, dtype="int8", quant=input_quant)
        meta = replace(meta, input=spec, outputs=replace(meta.outputs, quant=output_quant or None))
        finalize_tflite(path, meta.input.name, meta.outputs.names, meta.to_json())
        return meta

    def engine(self, path: Path):
        from edgekit.runtimes.litert import LiteRTEngine

        return LiteRTEngine(path)

    def verify(self, ctx: ExportContext, tmp: Path, meta: ModelMeta, precision: str) -> Verification:
        if not ctx.phone:
            return super().verify(ctx, tmp, meta, precision)
        from edgekit.converters.tflite_phone import verify_phone

        return verify_phone(ctx, self.engine(tmp), tmp, meta, precision)

    def set_metadata(self, tmp: Path, meta: ModelMeta) -> None:
        from edgekit.converters.tflite_export import finalize_tflite

        finalize_tflite(tmp, meta.input.name, meta.outputs.names, meta.to_json())  # drops MediaPipe's files
        if meta.outputs.kind == "postprocess":
            from edgekit.converters.tflite_phone import add_mediapipe_metadata

            add_mediapipe_metadata(tmp, meta)  # so they are written again, last


class CoreMLWriter(Writer):
    """CoreML ML Program (.mlpackage): FP32, FP16, INT8 weights; optionally the Vision NMS pipeline.

    Off macOS the package cannot be run, so verification checks its structure (inputs, outputs, shapes,
    metadata, the NMS stage) and runs the exact program CoreML converted (torch.export) against the
    training form; on macOS it runs the package itself."""

    format = "coreml"
    directory = True

    def write(self, ctx: ExportContext, precision: str, tmp: Path) -> ModelMeta:
        from edgekit.converters.coreml_export import export_coreml, save_coreml

        if ctx.nms_in_graph:
            raise EdgekitError(
                "for CoreML, NMS comes as the Vision pipeline: use --coreml-nms instead of --nms-in-graph"
            )
        meta = replace(ctx.meta, precision=precision)
        if ctx.coreml_nms:
            if meta.decode.method != "nms":
                raise EdgekitError("--coreml-nms applies to models decoded with NMS (YOLOv9, DAMO-YOLO, --nms exports)")
            meta = replace(
                meta,
                input=replace(meta.input, name="image", dtype="uint8", range=(0.0, 255.0)),
                outputs=OutputSpec(kind="vision", names=["confidence", "coordinates"]),
                decode=replace(meta.decode, method="none"),
            )
        model = export_coreml(ctx.deploy, ctx.meta if not ctx.coreml_nms else meta, precision, ctx.coreml_nms)
        save_coreml(model, tmp, meta)
        return meta

    def engine(self, path: Path):
        from edgekit.runtimes.coreml import CoreMLEngine

        return CoreMLEngine(path)

    def verify(self, ctx: ExportContext, tmp: Path, meta: ModelMeta, precision: str) -> Verification:
        engine = self.engine(tmp)
        if engine.model is not None:  # macOS: run the package itself
            if precision == "int8" or ctx.coreml_nms:
                return verify_agreement(ctx, engine, meta)
            return verify_elementwise(ctx, engine, meta, precision)
        check_coreml_structure(engine, meta, ctx.imgsz)
        result = verify_exported_program(ctx, precision)
        result.skipped = "package checked; running it needs macOS, so the converted program was run in torch"
        return result

    def set_metadata(self, tmp: Path, meta: ModelMeta) -> None:
        from edgekit.converters.coreml_export import _quiet

        ct = require("coremltools", "coreml")
        with _quiet():
            model = ct.models.MLModel(str(tmp), skip_model_load=True)
            model.user_defined_metadata[KEY] = meta.to_json()
            staged = tmp.parent / f"{tmp.name}.staged.mlpackage"
            model.save(str(staged))
        shutil.rmtree(tmp)
        staged.rename(tmp)


def check_coreml_structure(engine, meta: ModelMeta, imgsz: tuple[int, int]) -> None:
    """Inputs, outputs, shapes, metadata and (for the Vision pipeline) the NMS stage are as declared."""
    h, w = imgsz
    inputs = {t.name: t for t in engine.inputs}
    outputs = [t.name for t in engine.outputs]
    problems = []
    if meta.input.name not in inputs or tuple(inputs[meta.input.name].shape) != (1, 3, h, w):
        problems.append(f"input {meta.input.name} [1, 3, {h}, {w}] missing (found {list(inputs.items())})")
    if outputs[: len(meta.outputs.names)] != list(meta.outputs.names):
        problems.append(f"outputs {outputs}, expected {meta.outputs.names}")
    if KEY not in engine.metadata():
        problems.append("no edgekit metadata")
    if meta.outputs.kind == "vision":
        kinds = [m.WhichOneof("Type") for m in engine.spec.pipeline.models]
        if kinds[-1:] != ["nonMaximumSuppression"]:
            problems.append(f"the pipeline does not end in NonMaximumSuppression ({kinds})")
        else:
            labels = list(engine.spec.pipeline.models[-1].nonMaximumSuppression.stringClassLabels.vector)
            if labels[: len(meta.classes)] != list(meta.classes):
                problems.append("the NMS stage does not carry the class labels")
    if problems:
        raise EdgekitError("CoreML package check failed: " + "; ".join(problems))


def verify_exported_program(ctx: ExportContext, precision: str) -> Verification:
    """Run the torch.export program CoreML converts against the training form (FP32 tolerance; FP16 and
    INT8 weights change only what CoreML computes, which needs macOS to run)."""
    import torch

    from edgekit.converters.targets import FP32_TOLERANCE, compare

    sample = torch.from_numpy(ctx.reference_input(ctx.images[0])[0])
    with torch.no_grad():
        program = torch.export.export(ctx.deploy.eval(), (sample,))

    def candidate(i):
        x = torch.from_numpy(ctx.reference_input(ctx.images[i])[0])
        with torch.no_grad():
            out = program.module()(x)
        return dict(zip((ctx.source_meta or ctx.meta).outputs.names, (t.numpy() for t in out)))

    return compare(
        lambda i: ctx.reference_outputs(ctx.images[i], key=i),
        candidate,
        list(range(len(ctx.images))),
        FP32_TOLERANCE,
        backend="coreml (torch.export)",
    )


WRITERS: dict[str, Writer] = {
    "onnx": OnnxWriter(),
    "openvino": OpenVINOWriter(),
    "tflite": TFLiteWriter(),
    "coreml": CoreMLWriter(),
}
