"""Small ONNX detectors built with onnx.helper whose outputs are known exactly.

The "bright box" model finds the bounding box of the pixels brighter than 0.5 (after the runtime's
preprocessing) and scores each RGB channel by its maximum inside that box, so a pure red rectangle
is class 0 ("red"). A second anchor repeats the box slightly shrunk at a lower score (NMS must remove
it), a third sits below the confidence threshold, and a fourth is a constant box of class "blue".
Wrong letterboxing, colour order, range or layout all move or re-label the result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit import meta as meta_mod

CLASSES = ["red", "green", "blue"]
CONST_BOX = np.array([0.5, 0.5, 0.75, 0.75], np.float32)  # normalized, anchor 3
CONST_SCORE = 0.6


class _Graph:
    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def const(self, value, dtype=np.float32) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, name: str | None = None, **attrs):
        self.count += 1
        outs = [name] if name else [f"t{self.count}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if outputs == 1 else outs


def _extent(g: _Graph, profile: str, size: int) -> tuple[str, str]:
    """First and one-past-last index where a [1, N] 0/1 profile is 1, as float [1] tensors."""
    first = g.op("ArgMax", [profile], axis=1, keepdims=0)
    rev = g.op(
        "Slice",
        [
            profile,
            g.const([-1], np.int64),
            g.const([-(size + 1)], np.int64),
            g.const([1], np.int64),
            g.const([-1], np.int64),
        ],
    )
    last_from_end = g.op("ArgMax", [rev], axis=1, keepdims=0)
    end = g.op("Sub", [g.const([size], np.int64), last_from_end])
    return g.op("Cast", [first], to=TensorProto.FLOAT), g.op("Cast", [end], to=TensorProto.FLOAT)


def bright_box_model(
    imgsz: tuple[int, int] = (320, 320),
    layout: str = "NCHW",
    dtype: str = "float32",
    kind: str = "boxes_scores",
    with_count: bool = False,
    batch: int | str = 1,
) -> onnx.ModelProto:
    """The bright-box detector with the given input and output conventions."""
    h, w = imgsz
    g = _Graph()
    elem = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8, "float16": TensorProto.FLOAT16}[dtype]
    shape = [batch, 3, h, w] if layout == "NCHW" else [batch, h, w, 3]
    x = "images"
    if dtype == "uint8":
        x = g.op("Div", [g.op("Cast", [x], to=TensorProto.FLOAT), g.const(255.0)])
    elif dtype == "float16":
        x = g.op("Cast", [x], to=TensorProto.FLOAT)
    if layout == "NHWC":
        x = g.op("Transpose", [x], perm=[0, 3, 1, 2])
    gray = g.op("ReduceMax", [x], axes=[1], keepdims=0)  # [B,H,W]
    mask = g.op("Cast", [g.op("Greater", [gray, g.const(0.5)])], to=TensorProto.FLOAT)
    col = g.op("ReduceMax", [mask], axes=[1], keepdims=0)  # [B,W]
    row = g.op("ReduceMax", [mask], axes=[2], keepdims=0)  # [B,H]
    x1, x2 = _extent(g, col, w)
    y1, y2 = _extent(g, row, h)
    box_px = g.op("Concat", [g.op("Unsqueeze", [t, g.const([1], np.int64)]) for t in (x1, y1, x2, y2)], axis=1)
    norm = g.op("Div", [box_px, g.const([w, h, w, h])])  # [B,4]
    zeros4 = g.op("Mul", [norm, g.const(0.0)])
    shrink = g.op("Add", [norm, g.const([0.005, 0.005, -0.005, -0.005])])
    masked = g.op("Mul", [x, g.op("Unsqueeze", [mask, g.const([1], np.int64)])])
    chan = g.op("ReduceMax", [masked], axes=[2, 3], keepdims=0)  # [B,3]
    zeros3 = g.op("Mul", [chan, g.const(0.0)])

    def stack(parts):
        return g.op("Concat", [g.op("Unsqueeze", [t, g.const([1], np.int64)]) for t in parts], axis=1)

    boxes = stack(
        [norm, shrink, g.op("Add", [zeros4, g.const([0.0, 0.0, 0.1, 0.1])]), g.op("Add", [zeros4, g.const(CONST_BOX)])]
    )  # [B,4 anchors,4]
    scores = stack(
        [
            g.op("Mul", [chan, g.const(0.9)]),
            g.op("Mul", [chan, g.const(0.8)]),
            g.op("Add", [zeros3, g.const([0.1, 0.1, 0.1])]),
            g.op("Add", [zeros3, g.const([0.0, 0.0, CONST_SCORE])]),
        ]
    )  # [B,4,3]
    outputs = []
    if kind == "boxes_scores":
        g.op("Identity", [boxes], name="boxes")
        g.op("Identity", [scores], name="scores")
        outputs = [("boxes", [batch, 4, 4]), ("scores", [batch, 4, 3])]
    elif kind == "packed":
        px = g.op("Mul", [boxes, g.const([w, h, w, h])])
        xy1 = g.op("Slice", [px, g.const([0], np.int64), g.const([2], np.int64), g.const([2], np.int64)])
        xy2 = g.op("Slice", [px, g.const([2], np.int64), g.const([4], np.int64), g.const([2], np.int64)])
        center = g.op("Div", [g.op("Add", [xy1, xy2]), g.const(2.0)])
        size = g.op("Sub", [xy2, xy1])
        rows = g.op("Concat", [center, size, scores], axis=2)  # [B,4,7]
        g.op("Transpose", [rows], perm=[0, 2, 1], name="output0")
        outputs = [("output0", [batch, 7, 4])]
    else:
        best = g.op("ReduceMax", [scores], axes=[2], keepdims=1)
        cls = g.op("Cast", [g.op("ArgMax", [scores], axis=2, keepdims=1)], to=TensorProto.FLOAT)
        rows = g.op("Concat", [boxes, best, cls], axis=2)  # [B,4,6]
        # keep anchor 0 and 3; with a count, a high-scoring third row lies beyond the count
        picks = [0, 3, 2] if not with_count else [0, 3, 1]
        rows = g.op("Gather", [rows, g.const(picks, np.int64)], axis=1)
        if kind == "detections_pixels":
            rows = g.op("Mul", [rows, g.const([w, h, w, h, 1, 1])])
        g.op("Identity", [rows], name="detections")
        outputs = [("detections", [batch, 3, 6])]
        if with_count:
            count = g.op("Add", [g.op("ReduceSum", [zeros3, g.const([1], np.int64)], keepdims=0), g.const(2.0)])
            g.op("Cast", [count], to=TensorProto.INT64, name="count")
            outputs.append(("count", [batch]))
    graph = helper.make_graph(
        g.nodes,
        "bright_box",
        [helper.make_tensor_value_info("images", elem, shape)],
        [
            helper.make_tensor_value_info(n, TensorProto.INT64 if n == "count" else TensorProto.FLOAT, s)
            for n, s in outputs
        ],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgekit-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def edgekit_meta(
    imgsz=(320, 320), layout="NCHW", dtype="float32", kind="boxes_scores", align="center", with_count=False, **decode
) -> meta_mod.ModelMeta:
    """The edgekit metadata matching :func:`bright_box_model`."""
    names = {"boxes_scores": ["boxes", "scores"], "detections": ["detections"]}[kind]
    if with_count:
        names = ["detections", "count"]
    return meta_mod.ModelMeta(
        family="test",
        variant="bright-box",
        classes=list(CLASSES),
        imgsz=tuple(imgsz),
        input=meta_mod.InputSpec(
            layout=layout,
            dtype=dtype,
            range=(0.0, 255.0) if dtype == "uint8" else (0.0, 1.0),
            letterbox=meta_mod.Letterbox(align=align, pad_value=114),
        ),
        outputs=meta_mod.OutputSpec(kind=kind, names=names),
        decode=meta_mod.DecodeSpec(method="none" if kind == "detections" else "nms", **decode),
    )


def save(model: onnx.ModelProto, path: Path, props: dict[str, str] | None = None) -> Path:
    """Write `model` with `props` as metadata_props."""
    del model.metadata_props[:]
    for key, value in (props or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def save_with_meta(path: Path, **kwargs) -> Path:
    """Build a bright-box model and its edgekit metadata from the same arguments, and save it."""
    model_args = {k: kwargs[k] for k in ("imgsz", "layout", "dtype", "kind", "with_count") if k in kwargs}
    meta = edgekit_meta(**kwargs)
    return save(bright_box_model(**model_args), path, {meta_mod.KEY: meta.to_json()})


def ultralytics_props(imgsz=(320, 320), end2end=False) -> dict[str, str]:
    """Metadata as Ultralytics' exporter writes it (Python reprs as strings)."""
    return {
        "description": "Ultralytics YOLO11n model trained on colors.yaml",
        "author": "Ultralytics",
        "version": "8.3.0",
        "stride": "32",
        "task": "detect",
        "batch": "1",
        "imgsz": str(list(imgsz)),
        "names": str(dict(enumerate(CLASSES))),
        "args": str({"batch": 1, "half": False, "int8": False, "nms": False, "dynamic": False}),
        "channels": "3",
        "end2end": str(end2end),
    }


def scene(height: int = 200, width: int = 400, rect=(100, 50, 300, 150), color=(0, 0, 255)) -> np.ndarray:
    """A black BGR image with one filled rectangle (x1, y1, x2, y2 exclusive), red by default."""
    image = np.zeros((height, width, 3), np.uint8)
    x1, y1, x2, y2 = rect
    image[y1:y2, x1:x2] = color
    return image
