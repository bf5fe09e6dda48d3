"""CoreML export: ML Program (.mlpackage) through torch.export and coremltools.

FP32, FP16 (compute precision) and INT8 as W8A8: the deploy module quantized in torch with PT2E (torchao's
``prepare_pt2e``/``convert_pt2e`` and ExecuTorch's ``CoreMLQuantizer``, Apple's annotation rules: int8
per-channel symmetric weights, 8-bit activations calibrated on the conversion's calibration images, the decode
region in float), then converted; CoreML's own activation calibration
(``coremltools.optimize.coreml.linear_quantize_activations``) runs the model and so needs macOS.
With ``vision=True`` the NMS families get a pipeline Apple's Vision framework consumes directly: an image
input (RGB, scaled inside), the detector emitting ``raw_confidence`` [A, C] and ``raw_coordinates`` [A, 4] (normalized
centre x, y, width, height, as Vision wants), and CoreML's NonMaximumSuppression model producing
``confidence`` and ``coordinates``. Class labels and the edgekit metadata go into the user metadata.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from edgekit.converters.backends.base import Backend
from edgekit.converters.backends.decode_region import fx_decode_region
from edgekit.converters.verify import Verification, verify_agreement, verify_elementwise, verify_torch_program
from edgekit.errors import EdgekitError, require
from edgekit.logs import silenced
from edgekit.meta import KEY, ModelMeta, OutputSpec
from edgekit.runtimes.engine import TensorSpec

PAD_CLASSES_TO = 80  # CoreML's ML Program NMS misbehaves unless the class count is a multiple of 80


class VisionHead(torch.nn.Module):
    """The deploy model's contract outputs rearranged for Vision: confidence [A, C'] and cx, cy, w, h [A, 4]."""

    def __init__(self, model: torch.nn.Module, classes: int):
        super().__init__()
        self.model = model
        self.pad = (-classes) % PAD_CLASSES_TO

    def forward(self, x):
        boxes, scores = self.model(x)
        xyxy, conf = boxes[0], scores[0]
        centre, size = (xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]
        if self.pad:
            conf = torch.nn.functional.pad(conf, (0, self.pad))
        return conf, torch.cat((centre, size), 1)


def quantize_w8a8(module: torch.nn.Module, sample: torch.Tensor, calibration: Iterable[np.ndarray]) -> torch.nn.Module:
    """W8A8 of `module` in torch, as CoreML converts it: PT2E with ExecuTorch's ``CoreMLQuantizer`` (int8
    per-channel symmetric weights, 8-bit activations; Apple's conv/linear/add/mul/pool patterns), activation
    ranges observed on `calibration` ([1, C, H, W] float32, preprocessed as the runtime does); the decode
    region (``fx_decode_region``) is left unannotated, so float. Returns the converted graph module (q/dq nodes)."""
    require("executorch.backends.apple.coreml.quantizer", "coreml")
    from coremltools.optimize.torch.quantization.quantization_config import LinearQuantizerConfig, QuantizationScheme
    from executorch.backends.apple.coreml.quantizer import CoreMLQuantizer
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    class DecodeInFloat(CoreMLQuantizer):
        def annotate(self, model):
            self._annotate_all_patterns(model, self._config.global_config, lambda node: node.name not in floats)
            return model

    config = LinearQuantizerConfig.from_dict({"global_config": {
        "quantization_scheme": QuantizationScheme.symmetric, "activation_dtype": torch.quint8,
        "weight_dtype": torch.qint8, "weight_per_channel": True,
    }})
    with silenced(), torch.no_grad():
        graph = torch.export.export(module.eval(), (sample,)).module()
        floats = fx_decode_region(graph.graph)
        prepared = prepare_pt2e(graph, DecodeInFloat(config))
        for x in calibration:
            prepared(torch.from_numpy(x))
        return convert_pt2e(prepared)


def export_coreml(module: torch.nn.Module, meta: ModelMeta, precision: str, vision: bool = False):
    """The ML Program for `module` (export form, NCHW 0..1 input; for INT8 the ``quantize_w8a8`` graph), in
    `precision`, optionally with NMS."""
    ct = require("coremltools", "coreml")
    h, w = meta.imgsz
    sample = torch.zeros(1, meta.input.channels, h, w)
    if not isinstance(module, torch.fx.GraphModule):  # a quantized (exported) graph refuses eval(), and is one
        module = module.eval()
    if vision:
        module = VisionHead(module, len(meta.classes))
        layout = ct.colorlayout.RGB if meta.input.channels == 3 else ct.colorlayout.GRAYSCALE
        inputs = [ct.ImageType(name="image", shape=sample.shape, scale=1.0 / 255.0, color_layout=layout)]
        outputs = [ct.TensorType(name="raw_confidence"), ct.TensorType(name="raw_coordinates")]
    else:
        inputs = [ct.TensorType(name=meta.input.name, shape=sample.shape)]
        outputs = [ct.TensorType(name=n) for n in meta.outputs.names]
    with silenced(), torch.no_grad():
        program = torch.export.export(module, (sample,)).run_decompositions({})
        model = ct.convert(
            program,
            inputs=inputs,
            outputs=outputs,
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS17 if precision == "int8" else ct.target.iOS16,
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        )
    if vision:
        model = _vision_pipeline(ct, model, meta)
    return model


def mil_op_types(spec) -> set[str]:
    """The operation types of the ML Program in a package's spec (the detector's, in a Vision pipeline)."""
    if spec.WhichOneof("Type") == "pipeline":
        spec = spec.pipeline.models[0]
    types = set()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            types.update(op.type for op in block.operations)
    return types


W8A8_OPS = {"quantize", "dequantize"}  # activations quantized in the program
W8A8_WEIGHT_OPS = {"constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"}  # int8 weights (iOS17, iOS18)


def check_w8a8_structure(spec) -> None:
    """The program quantizes activations (quantize/dequantize ops) and stores int8 weights; raises EdgekitError."""
    types = mil_op_types(spec)
    missing = [op for op in sorted(W8A8_OPS) if op not in types]
    if missing or not types & W8A8_WEIGHT_OPS:
        raise EdgekitError(f"CoreML W8A8 check failed: the program lacks {missing or 'int8 weights'} ({sorted(types)})")


def _vision_pipeline(ct, detector, meta: ModelMeta):
    """Chain the detector and CoreML's NonMaximumSuppression into a pipeline Vision runs as is."""
    spec = detector.get_spec()
    classes = len(meta.classes) + (-len(meta.classes)) % PAD_CLASSES_TO
    anchors = None
    nms_spec = ct.proto.Model_pb2.Model()
    nms_spec.specificationVersion = spec.specificationVersion
    for source_name, name, width in (("raw_confidence", "confidence", classes), ("raw_coordinates", "coordinates", 4)):
        feature = next(o for o in spec.description.output if o.name == source_name)
        if feature.type.multiArrayType.shape:
            anchors = feature.type.multiArrayType.shape[0]
        nms_spec.description.input.add().CopyFrom(feature)
        out = nms_spec.description.output.add()
        out.CopyFrom(feature)
        out.name = name
        array = out.type.multiArrayType
        del array.shape[:]
        ranges = array.shapeRange.sizeRanges
        first, second = ranges.add(), ranges.add()
        first.lowerBound, first.upperBound = 0, -1
        second.lowerBound = second.upperBound = width
        for inp in nms_spec.description.input:
            if inp.name == source_name and anchors:
                inp.type.multiArrayType.shape[:] = [anchors, width]
    nms = nms_spec.nonMaximumSuppression
    nms.confidenceInputFeatureName, nms.coordinatesInputFeatureName = "raw_confidence", "raw_coordinates"
    nms.confidenceOutputFeatureName, nms.coordinatesOutputFeatureName = "confidence", "coordinates"
    nms.iouThresholdInputFeatureName, nms.confidenceThresholdInputFeatureName = "iouThreshold", "confidenceThreshold"
    nms.iouThreshold, nms.confidenceThreshold = meta.decode.iou, meta.decode.conf
    nms.pickTop.perClass = not meta.decode.agnostic
    labels = list(meta.classes) + [""] * (classes - len(meta.classes))
    nms.stringClassLabels.vector.extend(labels)
    nms_model = ct.models.MLModel(nms_spec, skip_model_load=True)

    pipeline = ct.models.pipeline.Pipeline(
        input_features=[
            ("image", ct.models.datatypes.Array(meta.input.channels, *meta.imgsz)),
            ("iouThreshold", ct.models.datatypes.Double()),
            ("confidenceThreshold", ct.models.datatypes.Double()),
        ],
        output_features=["confidence", "coordinates"],
    )
    pipeline.add_model(detector)
    pipeline.add_model(nms_model)
    pipeline.spec.description.input[0].CopyFrom(spec.description.input[0])
    pipeline.spec.description.output[0].CopyFrom(nms_spec.description.output[0])
    pipeline.spec.description.output[1].CopyFrom(nms_spec.description.output[1])
    pipeline.spec.specificationVersion = spec.specificationVersion
    return ct.models.MLModel(pipeline.spec, weights_dir=detector.weights_dir, skip_model_load=True)


def save_coreml(model, target: Path, meta: ModelMeta) -> None:
    """Store the metadata (edgekit JSON, class labels, description) and save the .mlpackage to `target`."""
    model.user_defined_metadata[KEY] = meta.to_json()
    model.user_defined_metadata["classes"] = ",".join(meta.classes)
    model.short_description = f"{meta.family} {meta.variant} object detector ({meta.precision}), by edgekit"
    with silenced():
        model.save(str(target))


def spec_of(path: Path):
    """The protobuf spec of a saved .mlpackage (readable on any OS)."""
    ct = require("coremltools", "coreml")
    with silenced():
        return ct.utils.load_spec(str(path))


@dataclass(frozen=True)
class CoreMLOptions:
    """CoreML's own options."""

    nms: bool = False  # the Vision pipeline: the detector followed by CoreML's NonMaximumSuppression


def check_coreml_structure(engine, meta: ModelMeta, imgsz: tuple[int, int]) -> None:
    """Inputs, outputs, shapes, metadata and (for the Vision pipeline) the NMS stage are as declared."""
    h, w = imgsz
    inputs = {t.name: t for t in engine.inputs}
    outputs = [t.name for t in engine.outputs]
    problems = []
    c = meta.input.channels
    if meta.input.name not in inputs or tuple(inputs[meta.input.name].shape) != (1, c, h, w):
        problems.append(f"input {meta.input.name} [1, {c}, {h}, {w}] missing (found {list(inputs.items())})")
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


class TorchProgramEngine:
    """A torch module with the contract's outputs, run as an engine (``run(feeds)`` -> outputs by name), so
    the INT8 agreement check can run the program a CoreML package was converted from."""

    backend = "coreml (quantized program in torch)"

    def __init__(self, module: torch.nn.Module, meta: ModelMeta):
        self.module, self.meta = module, meta
        self.outputs = [TensorSpec(name, (), "float32") for name in meta.outputs.names]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = self.module(torch.from_numpy(feeds[self.meta.input.name]))
        out = (out,) if isinstance(out, torch.Tensor) else out
        return {name: t.numpy() for name, t in zip(self.meta.outputs.names, out)}


class CoreMLBackend(Backend):
    """CoreML ML Program (.mlpackage): FP32, FP16, INT8 (W8A8); optionally the Vision NMS pipeline.

    Off macOS the package cannot be run, so verification checks its structure (inputs, outputs, shapes,
    metadata, the NMS stage; for INT8 the quantize/dequantize ops and int8 weights) and runs the exact
    program CoreML converted (torch.export; for INT8 the quantized graph, whose detections are held to the
    INT8 agreement checks) against the training form; on macOS it runs the package itself."""

    name = "coreml"
    extra = "coreml"
    suffix = ".mlpackage"
    directory = True
    Options = CoreMLOptions

    def write(self, precision: str, tmp: Path) -> ModelMeta:
        if self.ctx.nms_in_graph:
            raise EdgekitError(
                "for CoreML, NMS comes as the Vision pipeline: use --coreml-nms instead of --nms-in-graph"
            )
        meta = replace(self.ctx.meta, precision=precision)
        if self.options.nms:
            if meta.decode.method != "nms":
                raise EdgekitError("--coreml-nms applies to models decoded with NMS (YOLOv9, DAMO-YOLO, --nms exports)")
            meta = replace(
                meta,
                input=replace(meta.input, name="image", dtype="uint8", range=(0.0, 255.0)),
                outputs=OutputSpec(kind="vision", names=["confidence", "coordinates"]),
                decode=replace(meta.decode, method="none"),
            )
        module = self.w8a8_module() if precision == "int8" else self.ctx.deploy
        model = export_coreml(module, meta if self.options.nms else self.ctx.meta, precision, self.options.nms)
        save_coreml(model, tmp, meta)
        return meta

    def engine(self, path: Path):
        from edgekit.runtimes.coreml import CoreMLEngine

        return CoreMLEngine(path)

    def w8a8_module(self) -> torch.nn.Module:
        """The deploy module quantized W8A8 on this conversion's calibration images (made once)."""
        return self.ctx.once(
            "coreml-w8a8", lambda: quantize_w8a8(self.ctx.deploy, self.ctx.sample(), self.ctx.calibration())
        )

    def verify(self, tmp: Path, meta: ModelMeta, precision: str) -> Verification:
        engine = self.engine(tmp)
        if engine.model is not None:  # macOS: run the package itself
            if precision == "int8" or self.options.nms:
                return verify_agreement(self.ctx, engine, meta)
            return verify_elementwise(self.ctx, engine, meta, precision)
        check_coreml_structure(engine, meta, self.ctx.imgsz)
        if precision == "int8":
            check_w8a8_structure(engine.spec)
            program = TorchProgramEngine(self.w8a8_module(), self.ctx.source_meta)
            result = verify_agreement(self.ctx, program, self.ctx.source_meta)
            result.skipped = ("W8A8 package checked (quantize/dequantize ops, int8 weights); running it needs macOS, "
                              "so the quantized program it was converted from was run in torch")
            return result
        with torch.no_grad():
            program = torch.export.export(self.ctx.deploy.eval(), (self.ctx.sample(),))

        def run(x):
            with torch.no_grad():
                out = program.module()(torch.from_numpy(x))
            return [t.numpy() for t in ((out,) if isinstance(out, torch.Tensor) else out)]  # one output: a tensor

        result = verify_torch_program(self.ctx, run, backend="coreml (torch.export)")
        result.skipped = "package checked; running it needs macOS, so the converted program was run in torch"
        return result

    def set_metadata(self, tmp: Path, meta: ModelMeta) -> None:
        ct = require("coremltools", "coreml")
        with silenced():
            model = ct.models.MLModel(str(tmp), skip_model_load=True)
            model.user_defined_metadata[KEY] = meta.to_json()
            staged = tmp.parent / f"{tmp.name}.staged.mlpackage"
            model.save(str(staged))
        shutil.rmtree(tmp)
        staged.rename(tmp)
