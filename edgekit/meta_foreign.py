"""Metadata for model files that carry none of edgekit's: read from Ultralytics' own keys, or guessed from the
tensors and what the user says (class names, input size)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edgekit.errors import MetadataError
from edgekit.limits import literal
from edgekit.meta import DTYPES, DecodeSpec, InputSpec, ModelMeta, OutputSpec

ULTRALYTICS_KEYS = ("names", "stride", "imgsz", "task")


def is_ultralytics(props: Mapping[str, str]) -> bool:
    """True when the key/value metadata looks like an Ultralytics export."""
    return all(k in props for k in ULTRALYTICS_KEYS) or "ultralytics" in str(props.get("author") or "").lower()


def _literal(props: Mapping[str, str], key: str, default: Any = ...) -> Any:
    if key not in props:
        if default is ...:
            raise MetadataError(f"Ultralytics metadata lacks '{key}'")
        return default
    value = props[key]
    if not isinstance(value, str):
        return value
    try:
        return literal(value)
    except ValueError:
        if value in ("true", "false"):
            return value == "true"
        return value


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**16


def _size(value: Any, what: str) -> tuple[int, int]:
    values = [value, value] if isinstance(value, int) else value
    if isinstance(values, (list, tuple)) and len(values) == 2 and all(_positive_int(v) for v in values):
        return (int(values[0]), int(values[1]))
    raise MetadataError(f"{what} must be one size or [height, width], got {str(value)[:80]}")


def _class_id(key: Any) -> int | None:
    """A class id key of Ultralytics' ``names`` map: an int, or its digits where the map came from JSON."""
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    return int(key) if isinstance(key, str) and key.isascii() and key.isdigit() and len(key) < 10 else None


def _stride(value: Any) -> int:
    """The largest stride: Ultralytics stores one number (a float or an int, or its text)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 2**16 and value == int(value):
        return int(value)
    raise MetadataError(f"Ultralytics metadata 'stride' must be a positive whole number, got {str(value)[:40]}")


def from_ultralytics(
    props: Mapping[str, str],
    input_name: str,
    input_dtype: str,
    output_names: Sequence[str],
    output_shapes: Sequence[Sequence[Any]],
    *,
    normalized: bool = False,
    input_shape: Sequence[Any] | None = None,
) -> ModelMeta:
    """Read the metadata Ultralytics writes into exported models (names, stride, imgsz, task, end2end).

    `normalized`: the boxes are 0..1 of the input (Ultralytics' TFLite exports divide them by the image size;
    its other formats give pixels). `input_shape` decides the layout (NHWC when the last axis holds 1 or 3
    channels and the second does not)."""
    task = str(_literal(props, "task", "detect"))
    if task != "detect":
        raise MetadataError(f"Ultralytics '{task}' models are not supported yet (edgekit runs detect models)")
    names = _literal(props, "names")
    ids = {_class_id(k): v for k, v in names.items()} if isinstance(names, dict) else {}
    if isinstance(names, dict) and None not in ids:
        classes = [str(ids[k]) for k in sorted(ids)]
    elif isinstance(names, (list, tuple)):
        classes = [str(n) for n in names]
    else:
        raise MetadataError(f"Ultralytics metadata 'names' is not a list or dict: {str(names)[:80]}")
    if not classes:
        raise MetadataError("Ultralytics metadata 'names' lists no classes")
    imgsz = _size(_literal(props, "imgsz"), "Ultralytics metadata 'imgsz'")
    args = _literal(props, "args", {})
    args = args if isinstance(args, dict) else {}
    end2end = bool(_literal(props, "end2end", False)) or bool(args.get("nms", False))
    if len(output_names) != 1:
        raise MetadataError(f"expected one output in an Ultralytics detect model, found {len(output_names)}")
    shape = list(output_shapes[0])
    packed = len(shape) == 3 and shape[1] == 4 + len(classes)
    if not end2end and not packed and len(shape) == 3 and shape[2] == 6:
        end2end = True
    if not end2end and not packed:
        raise MetadataError(f"Ultralytics output shape {shape} is neither [B, 4+{len(classes)}, A] nor [B, K, 6]")
    kind = "detections" if end2end else "packed"
    dims = list(input_shape or [])
    layout = "NHWC" if len(dims) == 4 and dims[3] in (1, 3) and dims[1] not in (1, 3) else "NCHW"
    description = str(props.get("description") or "")
    variant = description.split()[1] if description.startswith("Ultralytics ") and len(description.split()) > 1 else ""
    return ModelMeta(
        family="ultralytics",
        variant=variant,
        classes=classes,
        imgsz=imgsz,
        input=InputSpec(name=input_name, dtype=input_dtype if input_dtype in DTYPES else "float32", layout=layout),
        outputs=OutputSpec(kind=kind, names=list(output_names), normalized=normalized),
        decode=DecodeSpec(method="none" if end2end else "nms", conf=0.25, iou=0.7, max_det=300),
        precision="fp16" if args.get("half") else ("int8" if args.get("int8") else "fp32"),
        stride=_stride(_literal(props, "stride", 32)),
        origin="ultralytics",
    )


def guess(
    input_name: str,
    input_shape: Sequence[Any],
    input_dtype: str,
    output_names: Sequence[str],
    output_shapes: Sequence[Sequence[Any]],
    imgsz: tuple[int, int],
    classes: Sequence[str] | None = None,
) -> ModelMeta:
    """Metadata for a model file that has none, from its tensors and what the user told us.

    `boxes`+`scores` and [B,K,6] outputs follow the edgekit contract (normalized xyxy); a single
    [B,4+C,A] output follows Ultralytics' raw layout (cx,cy,w,h in input pixels).
    """
    layout = "NHWC" if len(input_shape) == 4 and input_shape[-1] == 3 and input_shape[1] != 3 else "NCHW"
    names = list(output_names)
    shapes = [list(s) for s in output_shapes]
    if set(names) >= {"boxes", "scores"}:
        kind, names = "boxes_scores", ["boxes", "scores"]
        nc = shapes[output_names.index("scores")][-1]
    elif len(names) in (1, 2) and len(shapes[0]) == 3 and shapes[0][-1] == 6:
        kind, nc = "detections", None
    elif len(names) == 1 and len(shapes[0]) == 3 and isinstance(shapes[0][1], int) and shapes[0][1] > 4:
        kind, nc = "packed", shapes[0][1] - 4
    else:
        raise MetadataError(
            f"cannot tell what outputs {dict(zip(output_names, shapes))} hold; expected boxes+scores, "
            "[B,K,6] detections, or [B,4+C,A]"
        )
    if classes is None:
        if not isinstance(nc, int):
            raise MetadataError("the model's class count is not fixed in its outputs: pass the class names")
        classes = [f"class{i}" for i in range(nc)]
    return ModelMeta(
        family="unknown",
        variant="",
        classes=list(classes),
        imgsz=imgsz,
        input=InputSpec(name=input_name, layout=layout, dtype=input_dtype if input_dtype in DTYPES else "float32"),
        outputs=OutputSpec(kind=kind, names=names, normalized=kind != "packed"),
        decode=DecodeSpec(method="none" if kind == "detections" else "nms"),
        origin="guessed",
    )
