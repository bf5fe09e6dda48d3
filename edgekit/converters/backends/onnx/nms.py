"""In-graph NMS: append ONNX NonMaxSuppression to a boxes+scores model, emitting the contract's
``detections`` [1, K, 6] (zero-padded) and ``count`` [1].

NonMaxSuppression is per class; for single-label models every anchor first keeps only its best class,
so the graph selects exactly what the runtime's NMS would. Thresholds are fixed at export time.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgekit.errors import EdgekitError
from edgekit.meta import DecodeSpec, ModelMeta, OutputSpec


def nms_meta(meta: ModelMeta) -> ModelMeta:
    """The metadata of the same model with NMS inside the graph."""
    if meta.outputs.kind != "boxes_scores" or meta.decode.method != "nms":
        raise EdgekitError("--nms-in-graph applies to models decoded with NMS (YOLOv9, DAMO-YOLO, --nms exports)")
    return replace(
        meta,
        outputs=OutputSpec(kind="detections", names=["detections", "count"]),
        decode=DecodeSpec(method="none", conf=meta.decode.conf, iou=meta.decode.iou, max_det=meta.decode.max_det),
        verification=None,
    )


def append_nms(path: Path, meta: ModelMeta) -> None:
    """Rewrite the ONNX file at `path` (outputs ``boxes``, ``scores``, batch 1) to end in NMS."""
    model = onnx.load(str(path))
    graph = model.graph
    decode = meta.decode
    nodes, inits = [], []

    def const(name, value, dtype):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=f"/nms/{output}", **attrs))
        return output

    max_det = decode.max_det
    scores = "scores"
    if not decode.multi_label:  # keep each anchor's best class only, as the runtime's single-label NMS does
        best = node("ReduceMax", [scores], "nms_best", axes=[-1], keepdims=1)  # attribute form: opset 17
        is_best = node("Cast", [node("Equal", [scores, best], "nms_is_best")], "nms_is_best_f", to=TensorProto.FLOAT)
        scores = node("Mul", [scores, is_best], "nms_scores_best")
    per_class = node("Transpose", [scores], "nms_scores_t", perm=[0, 2, 1])  # [1, C, A]
    selected = node(
        "NonMaxSuppression",
        [
            "boxes",
            per_class,
            const("nms_max", [max_det], np.int64),
            const("nms_iou", [decode.iou], np.float32),
            const("nms_conf", [decode.conf], np.float32),
        ],
        "nms_selected",
    )  # [N, 3]: batch, class, box
    cls = node("Gather", [selected, const("nms_col_cls", 1, np.int64)], "nms_cls", axis=1)
    idx = node("Gather", [selected, const("nms_col_box", 2, np.int64)], "nms_idx", axis=1)
    boxes0 = node("Squeeze", ["boxes", const("nms_axis0", [0], np.int64)], "nms_boxes0")
    chosen_boxes = node("Gather", [boxes0, idx], "nms_chosen_boxes", axis=0)  # [N, 4]
    flat_scores = node("Reshape", [per_class, const("nms_flat", [-1], np.int64)], "nms_flat_scores")
    anchors = node(
        "Gather", [node("Shape", ["boxes"], "nms_boxes_shape"), const("nms_one", 1, np.int64)], "nms_anchors", axis=0
    )
    flat_index = node("Add", [node("Mul", [cls, anchors], "nms_cls_offset"), idx], "nms_flat_index")
    chosen_scores = node("Gather", [flat_scores, flat_index], "nms_chosen_scores", axis=0)  # [N]
    found = node("Shape", [chosen_scores], "nms_found")
    k = node("Min", [found, const("nms_max_det", [max_det], np.int64)], "nms_k")
    top_scores, order = f"{'nms_top_scores'}", "nms_order"
    nodes.append(helper.make_node("TopK", [chosen_scores, k], [top_scores, order], name="/nms/TopK", axis=0))
    rows = node(
        "Concat",
        [
            node("Gather", [chosen_boxes, order], "nms_top_boxes", axis=0),
            node("Unsqueeze", [top_scores, const("nms_axis1", [1], np.int64)], "nms_top_scores_col"),
            node(
                "Unsqueeze",
                [
                    node(
                        "Cast",
                        [node("Gather", [cls, order], "nms_top_cls", axis=0)],
                        "nms_top_cls_f",
                        to=TensorProto.FLOAT,
                    ),
                    const("nms_axis1b", [1], np.int64),
                ],
                "nms_top_cls_col",
            ),
        ],
        "nms_rows",
        axis=1,
    )  # [k, 6]
    pad_rows = node("Sub", [const("nms_max_det2", [max_det], np.int64), k], "nms_pad_rows")
    pads = node(
        "Concat",
        [const("nms_zero2", [0, 0], np.int64), pad_rows, const("nms_zero1", [0], np.int64)],
        "nms_pads",
        axis=0,
    )
    padded = node("Pad", [rows, pads], "nms_padded")
    node("Unsqueeze", [padded, const("nms_axis0b", [0], np.int64)], "detections")
    node("Identity", [k], "count")
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("detections", TensorProto.FLOAT, [1, max_det, 6]),
            helper.make_tensor_value_info("count", TensorProto.INT64, [1]),
        ]
    )
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=17)
    onnx.checker.check_model(model)
    if opset < 11:
        raise EdgekitError("in-graph NMS needs opset 11 or newer")
    onnx.save(model, str(path))
