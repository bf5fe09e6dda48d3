"""CoreML export: ML Program (.mlpackage) through torch.export and coremltools.

FP32, FP16 (compute precision) and INT8 weights (linear, symmetric, per channel). With ``vision=True`` the
NMS families get a pipeline Apple's Vision framework consumes directly: an image input (RGB, scaled
inside), the detector emitting ``raw_confidence`` [A, C] and ``raw_coordinates`` [A, 4] (normalized
centre x, y, width, height, as Vision wants), and CoreML's NonMaximumSuppression model producing
``confidence`` and ``coordinates``. Class labels and the edgekit metadata go into the user metadata.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch

from edgekit.errors import require
from edgekit.meta import KEY, ModelMeta

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


@contextlib.contextmanager
def _quiet():
    silent = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(silent), contextlib.redirect_stderr(silent):
        warnings.simplefilter("ignore")
        yield


def export_coreml(module: torch.nn.Module, meta: ModelMeta, precision: str, vision: bool = False):
    """The ML Program for `module` (export form, NCHW 0..1 input), in `precision`, optionally with NMS."""
    ct = require("coremltools", "coreml")
    h, w = meta.imgsz
    sample = torch.zeros(1, 3, h, w)
    if vision:
        module = VisionHead(module, len(meta.classes))
        inputs = [ct.ImageType(name="image", shape=sample.shape, scale=1.0 / 255.0, color_layout=ct.colorlayout.RGB)]
        outputs = [ct.TensorType(name="raw_confidence"), ct.TensorType(name="raw_coordinates")]
    else:
        inputs = [ct.TensorType(name=meta.input.name, shape=sample.shape)]
        outputs = [ct.TensorType(name=n) for n in meta.outputs.names]
    with _quiet(), torch.no_grad():
        program = torch.export.export(module.eval(), (sample,)).run_decompositions({})
        model = ct.convert(
            program,
            inputs=inputs,
            outputs=outputs,
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS16,
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        )
        if precision == "int8":
            config = ct.optimize.coreml.OptimizationConfig(
                global_config=ct.optimize.coreml.OpLinearQuantizerConfig(mode="linear_symmetric")
            )
            model = ct.optimize.coreml.linear_quantize_weights(model, config)
    if vision:
        model = _vision_pipeline(ct, model, meta)
    return model


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
            ("image", ct.models.datatypes.Array(3, *meta.imgsz)),
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
    with _quiet():
        model.save(str(target))


def spec_of(path: Path):
    """The protobuf spec of a saved .mlpackage (readable on any OS)."""
    ct = require("coremltools", "coreml")
    with _quiet():
        return ct.utils.load_spec(str(path))
