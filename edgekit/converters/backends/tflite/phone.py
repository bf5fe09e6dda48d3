"""Phone-ready TFLite: a .tflite that MediaPipe Tasks' ObjectDetector runs with no app-side decoding.

The YOLO head's boxes become (cy, cx, log h, log w) encodings, normalized to the input, and go with
the class probabilities into TFLite's built-in custom op ``TFLite_Detection_PostProcess``. With one
unit anchor (0, 0, 1, 1) per row and all four scales 1 the op decodes them back to the exact boxes,
then runs per-class NMS (``use_regular_nms``). MediaPipe's object-detector metadata (labels, input
normalization) is written with mediapipe's own metadata writer, kept an optional extra.
"""

from __future__ import annotations

import gc
import sys
import types
from pathlib import Path

import numpy as np
import torch

from edgekit.errors import EdgekitError, require
from edgekit.meta import ModelMeta

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
OUTPUT_NAMES = ["detection_boxes", "detection_classes", "detection_scores", "num_detections"]
MIN_SIZE = 1e-6  # log of a zero-size box would be -inf
MEDIAPIPE_MIN_MAP50 = 0.5  # MediaPipe's detections against edgekit's run of the same file
ROW_TOLERANCE = {"op_boxes": 1e-4, "op_scores": 1e-6, "op_unmatched": 0}  # the op against numpy's NMS
TAP_NAMES = ("op_encodings", "op_scores")  # the op's inputs, exposed in a verification copy


class PhoneHead(torch.nn.Module):
    """Wraps a deploy module emitting boxes (x1, y1, x2, y2 normalized) and scores into the post-process
    op's inputs: encodings (cy, cx, log h, log w) [1, A, 4] and scores [1, A, C]."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        boxes, scores = self.model(x)
        x1, y1, x2, y2 = boxes.unbind(-1)
        h = (y2 - y1).clamp(min=MIN_SIZE)
        w = (x2 - x1).clamp(min=MIN_SIZE)
        encodings = torch.stack(((y1 + y2) * 0.5, (x1 + x2) * 0.5, torch.log(h), torch.log(w)), -1)
        return encodings, scores


def postprocess_options(meta: ModelMeta) -> dict:
    """The op's custom options: unit scales, per-class NMS at the model's thresholds, one class per box."""
    return {
        "max_detections": int(meta.decode.max_det),
        "max_classes_per_detection": 1,
        "detections_per_class": int(meta.decode.max_det),  # no per-class cap below the overall one
        "use_regular_nms": True,
        "nms_score_threshold": float(meta.decode.conf),
        "nms_iou_threshold": float(meta.decode.iou),
        "num_classes": len(meta.classes),
        "y_scale": 1.0,
        "x_scale": 1.0,
        "h_scale": 1.0,
        "w_scale": 1.0,
    }


def append_postprocess(path: Path, meta: ModelMeta) -> None:
    """Feed the graph's two outputs (encodings, scores) into TFLite_Detection_PostProcess with unit anchors;
    its four outputs (boxes y1,x1,y2,x2; classes; scores; count) become the graph's outputs."""
    schema = require("ai_edge_litert.schema_py_generated", "tflite")
    require("flatbuffers", "tflite")
    from flatbuffers import flexbuffers

    from edgekit.converters.backends.tflite.export import read_model, write_model

    model = read_model(path)
    graph = model.subgraphs[0]
    float_interface(model)
    if len(graph.outputs) != 2:
        raise EdgekitError(f"the phone graph must end in encodings and scores, it has {len(graph.outputs)} outputs")
    encodings, scores = (graph.tensors[i] for i in graph.outputs)
    if list(encodings.shape)[-1] != 4:  # litert-torch may order the outputs by name: put the boxes first
        graph.outputs = graph.outputs[::-1]
        encodings, scores = scores, encodings
    anchors_count = int(encodings.shape[1])
    if any(t.type != schema.TensorType.FLOAT32 for t in (encodings, scores)):
        raise EdgekitError("the post-process op needs float encodings and scores (keep the decode region float)")

    def add_tensor(name: str, shape: list[int], data: np.ndarray | None = None) -> int:
        buffer = schema.BufferT()
        if data is not None:
            buffer.data = np.frombuffer(data.astype(np.float32).tobytes(), dtype=np.uint8)
        model.buffers.append(buffer)
        tensor = schema.TensorT()
        tensor.name = name.encode()
        tensor.shape = np.asarray(shape, dtype=np.int32)
        tensor.type = schema.TensorType.FLOAT32
        tensor.buffer = len(model.buffers) - 1
        graph.tensors.append(tensor)
        return len(graph.tensors) - 1

    anchors = np.tile(np.asarray([[0.0, 0.0, 1.0, 1.0]], np.float32), (anchors_count, 1))
    anchor_index = add_tensor("anchors", [anchors_count, 4], anchors)
    d = int(meta.decode.max_det)
    shapes = {"detection_boxes": [1, d, 4], "detection_classes": [1, d], "detection_scores": [1, d]}
    outputs = [add_tensor(name, shapes.get(name, [1])) for name in OUTPUT_NAMES]

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = POSTPROCESS_OP.encode()
    code.version = 1
    model.operatorCodes.append(code)
    op = schema.OperatorT()
    op.opcodeIndex = len(model.operatorCodes) - 1
    op.inputs = np.asarray([graph.outputs[0], graph.outputs[1], anchor_index], dtype=np.int32)
    op.outputs = np.asarray(outputs, dtype=np.int32)
    op.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(postprocess_options(meta))), dtype=np.uint8)
    op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    graph.operators.append(op)
    graph.outputs = np.asarray(outputs, dtype=np.int32)
    for signature in model.signatureDefs or []:
        signature.outputs = []
        for name, index in zip(OUTPUT_NAMES, outputs):
            item = schema.TensorMapT()
            item.name = name.encode()
            item.tensorIndex = index
            signature.outputs.append(item)
    write_model(model, path)


def float_interface(model) -> None:
    """Give a fully quantized graph float input and outputs, as MediaPipe feeds float images and the
    post-process op needs float encodings: drop the QUANTIZE ops that end the graph (their inputs are the
    float decode region) and put a QUANTIZE op in front of an integer input."""
    schema = require("ai_edge_litert.schema_py_generated", "tflite")
    graph = model.subgraphs[0]

    def opcode(kind: int) -> int:
        for i, code in enumerate(model.operatorCodes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == kind:
                return i
        code = schema.OperatorCodeT()
        code.builtinCode = kind
        code.deprecatedBuiltinCode = min(kind, 127)
        code.version = 1
        model.operatorCodes.append(code)
        return len(model.operatorCodes) - 1

    quantize = opcode(schema.BuiltinOperator.QUANTIZE)
    producer = {int(t): op for op in graph.operators for t in op.outputs}
    outputs = []
    for index in graph.outputs:
        op = producer.get(int(index))
        float_source = op is not None and graph.tensors[op.inputs[0]].type == schema.TensorType.FLOAT32
        if float_source and op.opcodeIndex == quantize:
            graph.operators.remove(op)
            outputs.append(int(op.inputs[0]))
        else:
            outputs.append(int(index))
    graph.outputs = np.asarray(outputs, dtype=np.int32)
    replaced = {}
    for index in graph.inputs:
        tensor = graph.tensors[index]
        if tensor.type not in (schema.TensorType.INT8, schema.TensorType.UINT8) or tensor.quantization is None:
            continue
        float_input = schema.TensorT()
        float_input.name, tensor.name = tensor.name, tensor.name + b"_quantized"
        float_input.shape = tensor.shape
        float_input.shapeSignature = tensor.shapeSignature
        float_input.type = schema.TensorType.FLOAT32
        buffer = schema.BufferT()
        model.buffers.append(buffer)
        float_input.buffer = len(model.buffers) - 1
        graph.tensors.append(float_input)
        op = schema.OperatorT()
        op.opcodeIndex = quantize
        op.inputs = np.asarray([len(graph.tensors) - 1], dtype=np.int32)
        op.outputs = np.asarray([index], dtype=np.int32)
        graph.operators.insert(0, op)
        replaced[int(index)] = len(graph.tensors) - 1
    graph.inputs = np.asarray([replaced.get(int(i), int(i)) for i in graph.inputs], dtype=np.int32)
    for signature in model.signatureDefs or []:
        for item in signature.inputs or []:
            item.tensorIndex = replaced.get(int(item.tensorIndex), item.tensorIndex)


def _install_metadata_version_module() -> None:
    """mediapipe's wheels lack ``_pywrap_metadata_version`` (the minimum metadata parser version), which its
    metadata writer imports; provide it in pure Python: 1.5.0 with custom metadata, 1.2.0 with tensor groups,
    else 1.0.0 (the versions the original reports for what these writers produce)."""
    name = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"
    if name in sys.modules:
        return
    try:
        __import__(name)
        return
    except ImportError:
        pass

    def minimum_version(buffer: bytes) -> str:
        from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

        metadata = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(bytearray(buffer), 0))
        graphs = metadata.subgraphMetadata or []
        if any(g.customMetadata for g in graphs):
            return "1.5.0"
        if any(g.inputTensorGroups or g.outputTensorGroups for g in graphs):
            return "1.2.0"
        return "1.0.0"

    parts = name.split(".")
    for i in range(3, len(parts)):  # mediapipe.tasks.cc, .metadata, .python: empty packages
        package = ".".join(parts[:i])
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = []
            sys.modules[package] = module
    module = types.ModuleType(name)
    module.GetMinimumMetadataParserVersion = minimum_version
    sys.modules[name] = module
    setattr(sys.modules[".".join(parts[:-1])], parts[-1], module)


def normalization(meta: ModelMeta) -> tuple[list[float], list[float]]:
    """MediaPipe's (mean, std) that turn 0..255 pixels into the model's input range."""
    if meta.input.dtype == "uint8":
        return [0.0], [1.0]
    low, high = meta.input.range
    if meta.input.mean or meta.input.std:
        raise EdgekitError("--phone supports inputs scaled to a range, not per-channel mean/std")
    scale = (high - low) / 255.0
    return [-low / scale], [1.0 / scale]


def add_mediapipe_metadata(path: Path, meta: ModelMeta) -> None:
    """Attach MediaPipe's object-detector metadata (labels, input normalization) with mediapipe's writer."""
    require("mediapipe", "mediapipe")
    _install_metadata_version_module()
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer, object_detector

    mean, std = normalization(meta)
    labels = metadata_writer.Labels().add(list(meta.classes))
    writer = object_detector.MetadataWriter.create_for_models_with_nms(
        bytearray(path.read_bytes()), mean, std, labels
    )
    model, _ = writer.populate()
    del writer
    gc.collect()  # its temporary folder is removed in __del__, which fails if left to interpreter exit
    path.write_bytes(bytes(model))


def mediapipe_detect(
    path: Path, images_bgr: list[np.ndarray], labels: list[str], conf: float = 0.25, max_det: int = 300
) -> list[np.ndarray]:
    """Run MediaPipe's ObjectDetector on images: per image, rows (x1, y1, x2, y2 in pixels, score, class id
    from `labels`, since MediaPipe reports names). Detections it merged for sharing a box are one row each."""
    require("mediapipe", "mediapipe")
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions
    from mediapipe.tasks.python.vision import ObjectDetector, ObjectDetectorOptions

    options = ObjectDetectorOptions(
        base_options=BaseOptions(model_asset_path=str(path)), score_threshold=conf, max_results=max_det
    )
    found = []
    with ObjectDetector.create_from_options(options) as detector:
        for image in images_bgr:
            rgb = np.ascontiguousarray(image[:, :, ::-1])
            result = detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
            rows = []
            for detection in result.detections:
                b = detection.bounding_box
                box = [b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height]
                rows += [[*box, c.score, labels.index(c.category_name)] for c in detection.categories]
            rows = np.asarray(rows, np.float32).reshape(-1, 6)
            h, w = image.shape[:2]
            rows[:, [0, 2]] = rows[:, [0, 2]].clip(0, w)
            rows[:, [1, 3]] = rows[:, [1, 3]].clip(0, h)
            found.append(rows)
    return found


def tap_postprocess_inputs(path: Path, target: Path) -> None:
    """A copy of the phone file whose outputs also include the post-process op's two inputs."""
    from edgekit.converters.backends.tflite.export import read_model, write_model

    model = read_model(path)
    graph = model.subgraphs[0]
    code = {i for i, c in enumerate(model.operatorCodes) if (c.customCode or b"").decode() == POSTPROCESS_OP}
    op = next(o for o in graph.operators if o.opcodeIndex in code)
    for name, index in zip(TAP_NAMES, op.inputs[:2]):
        graph.tensors[index].name = name.encode()
    graph.outputs = np.concatenate([graph.outputs, op.inputs[:2]]).astype(np.int32)
    model.signatureDefs = []
    write_model(model, target)


def verify_phone(ctx, engine, path: Path, meta: ModelMeta, precision: str):
    """Three checks. The op's inputs against the training form (boxes decoded from the encodings and scores:
    element-wise for FP32/FP16, detection agreement for INT8); the op's rows against numpy's multi-label
    per-class NMS on those same inputs; MediaPipe's ObjectDetector running the file, scored against
    edgekit's run of it (mAP, edgekit's detections as truth)."""
    from edgekit.converters.verify import (
        FP16_TOLERANCE,
        FP32_TOLERANCE,
        compare,
        detection_rows,
        verify_agreement,
        verify_rows_against_nms,
    )
    from edgekit.runtimes.decode import decode_postprocess
    from edgekit.runtimes.litert import LiteRTEngine

    tapped = ctx.workdir / f"tapped-{precision}.tflite"
    tap_postprocess_inputs(path, tapped)
    probe = LiteRTEngine(tapped)
    degenerate = 0

    def representable(i: int) -> dict[str, np.ndarray]:
        nonlocal degenerate
        ref = ctx.reference_outputs(ctx.images[i], key=i)
        boxes, count = encodable(np.asarray(ref["boxes"]))
        degenerate += count
        return {**ref, "boxes": boxes}

    if precision == "int8":
        result = verify_agreement(ctx, engine, meta)
    else:
        result = compare(
            representable,
            lambda i: _op_inputs(_run(probe, meta, ctx.images[i])),
            list(range(len(ctx.images))),
            FP16_TOLERANCE if precision == "fp16" else FP32_TOLERANCE,
            backend=engine.backend,
        )
        result.extra["degenerate_boxes"] = degenerate
    runs = []
    for image in ctx.images:
        out = _run(probe, meta, image)  # one run gives the op's inputs and its rows
        got = decode_postprocess(*(out[n][0] for n in OUTPUT_NAMES), conf=0.0, max_det=meta.decode.max_det)
        runs.append((_op_inputs(out), detection_rows(got)))
    rows = verify_rows_against_nms(runs, meta, ROW_TOLERANCE["op_scores"])
    result.max_abs.update(rows)
    result.tolerance.update({k: v for k, v in ROW_TOLERANCE.items() if k in rows})
    agreement = mediapipe_agreement(path, engine, meta, ctx.images)
    result.extra.update({f"mediapipe_{k}": v for k, v in agreement.items()})
    if agreement.get("reference_detections"):
        result.minimum["mediapipe_map50"] = MEDIAPIPE_MIN_MAP50
    return result


def _run(probe, meta: ModelMeta, image: np.ndarray) -> dict[str, np.ndarray]:
    from edgekit.runtimes.preprocess import preprocess

    x, _ = preprocess(image, meta.input, tuple(meta.imgsz))
    return probe.run({meta.input.name: x})


def encodable(boxes: np.ndarray) -> tuple[np.ndarray, int]:
    """`boxes` [..., 4] (x1, y1, x2, y2) as the op's (cy, cx, log h, log w) encodings carry them, and how many
    changed: a box of no or negative width or height (a head can emit one where nothing is: the YOLO26 fixture
    does, at scores near 1e-6) becomes the MIN_SIZE box at its centre, as PhoneHead clamps it."""
    boxes = np.asarray(boxes, np.float64)
    centre = (boxes[..., :2] + boxes[..., 2:]) * 0.5
    size = boxes[..., 2:] - boxes[..., :2]
    clamped = np.maximum(size, MIN_SIZE)
    changed = int((size < MIN_SIZE).any(-1).sum())
    return np.concatenate([centre - clamped * 0.5, centre + clamped * 0.5], -1), changed


def _op_inputs(out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The op's inputs in a tapped run's outputs, as the contract's boxes (x1, y1, x2, y2 normalized) and scores."""
    enc, scores = out[TAP_NAMES[0]].astype(np.float64), out[TAP_NAMES[1]]
    cy, cx, h, w = enc[..., 0], enc[..., 1], np.exp(enc[..., 2]), np.exp(enc[..., 3])
    boxes = np.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), -1).astype(np.float32)
    return {"boxes": boxes, "scores": scores}


def mediapipe_agreement(path: Path, engine, meta: ModelMeta, images: list[np.ndarray]) -> dict[str, float]:
    """mAP of MediaPipe's detections on `images` against edgekit's own run of the same file."""
    from edgekit.converters.verify import detection_agreement, run_engine
    from edgekit.detections import Detections
    from edgekit.runtimes.decode import decode_outputs
    from edgekit.runtimes.preprocess import preprocess

    decode = meta.decode
    truths, predictions = [], []
    for image, rows in zip(images, mediapipe_detect(path, images, meta.classes, decode.conf, decode.max_det)):
        _, info = preprocess(image, meta.input, tuple(meta.imgsz))
        truths += decode_outputs(
            meta, run_engine(engine, meta, image), [info], conf=decode.conf, iou=decode.iou, max_det=decode.max_det
        )
        predictions.append(Detections(rows[:, :4], rows[:, 4], rows[:, 5]))
    return detection_agreement(predictions, truths, len(meta.classes))
