"""The artifact metadata schema: what a runtime needs to run a model file, stored inside the file.

Every artifact carries one JSON document under the key ``edgekit`` (ONNX ``metadata_props``, OpenVINO
``rt_info``, TFLite metadata, CoreML user metadata). Files exported by Ultralytics carry their own keys;
:func:`edgekit.meta_foreign.from_ultralytics` reads those so such files run too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from edgekit.errors import MetadataError
from edgekit.limits import METADATA_BYTES, parse_json

SCHEMA = 1
KEY = "edgekit"

LAYOUTS = ("NCHW", "NHWC")
DTYPES = ("float32", "float16", "uint8", "int8")
COLORS = ("RGB", "BGR")
ALIGNS = ("center", "topleft")
ROUNDINGS = ("round", "floor")
OUTPUT_KINDS = ("boxes_scores", "detections", "packed", "vision", "postprocess")
DECODE_METHODS = ("nms", "topk", "none")
PRECISIONS = ("fp32", "fp16", "int8", "w8a8", "mixed")
TASKS = ("detect",)
MAX_NUMBER = 2**53  # larger numbers in metadata are mistakes (and some do not fit a float)

DEFAULT_OUTPUT_NAMES = {
    "boxes_scores": ["boxes", "scores"],
    "detections": ["detections"],
    "packed": ["output0"],
    "vision": ["confidence", "coordinates"],
    "postprocess": ["detection_boxes", "detection_classes", "detection_scores", "num_detections"],
}


@dataclass
class Letterbox:
    """How the image is fitted into the network input: scaled to fit keeping its aspect ratio, then
    padded (``keep_ratio``), or stretched to the input size; ``rounding`` makes the scaled size whole."""

    align: str = "center"
    pad_value: int = 114
    keep_ratio: bool = True
    rounding: str = "round"


@dataclass
class InputSpec:
    """The network input tensor and the preprocessing that produces it from a BGR uint8 image."""

    name: str = "images"
    layout: str = "NCHW"
    dtype: str = "float32"
    color: str = "RGB"
    range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    letterbox: Letterbox = field(default_factory=Letterbox)
    quant: tuple[float, int] | None = None  # (scale, zero_point) of an integer input tensor
    channels: int = 3  # 3 (color, in `color` order) or 1 (grayscale: the frame's luminance)


@dataclass
class OutputSpec:
    """What the outputs hold: ``boxes_scores`` ([B,A,4] xyxy + [B,A,C]), ``detections`` ([B,K,6]),
    ``packed`` (Ultralytics-style [B,4+C,A] with cx,cy,w,h), ``vision`` (CoreML's NMS pipeline:
    confidence [N,C] and normalized cx,cy,w,h coordinates [N,4]), or ``postprocess`` (TFLite's
    detection post-process op: boxes [B,D,4] as y1,x1,y2,x2, classes [B,D], scores [B,D], count [B])."""

    kind: str = "boxes_scores"
    names: list[str] = field(default_factory=lambda: ["boxes", "scores"])
    normalized: bool = True  # boxes in 0..1 of the network input (the contract); False: input pixels
    quant: dict[str, tuple[float, int]] | None = None  # (scale, zero_point) of integer outputs, by name


@dataclass
class DecodeSpec:
    """Decoding defaults: NMS for the NMS families, top-k for NMS-free heads, none for `detections`."""

    method: str = "nms"
    conf: float = 0.25
    iou: float = 0.45
    max_det: int = 300
    agnostic: bool = False
    multi_label: bool = False


@dataclass
class SourceInfo:
    """Where the artifact came from."""

    file: str
    sha256: str
    edgekit: str


@dataclass
class ModelMeta:
    """Everything a runtime needs to turn an image into detections with one model file."""

    family: str
    variant: str
    classes: list[str]
    imgsz: tuple[int, int]
    task: str = "detect"
    input: InputSpec = field(default_factory=InputSpec)
    outputs: OutputSpec = field(default_factory=OutputSpec)
    decode: DecodeSpec = field(default_factory=DecodeSpec)
    precision: str = "fp32"
    stride: int = 32
    source: SourceInfo | None = None
    verification: dict[str, Any] | None = None
    random_weights: bool = False  # converted from an architecture name: seeded random weights, detects nothing
    # INT8 measured on labelled data: mAP50-95 points of the file and its FP32 source, the drop, the budget,
    # the layers kept in float to meet it, and the speed-up over FP32 on the same backend
    accuracy: dict[str, Any] | None = None
    schema: int = SCHEMA
    origin: str = field(default="edgekit", compare=False)  # where this metadata was read from; not stored

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready document stored under the ``edgekit`` key."""
        data = asdict(self)
        data.pop("origin")
        data["imgsz"] = list(self.imgsz)
        data["input"]["range"] = list(self.input.range)
        for key in ("mean", "std", "quant"):
            if data["input"][key] is not None:
                data["input"][key] = list(data["input"][key])
        if self.outputs.quant:
            data["outputs"]["quant"] = {k: list(v) for k, v in self.outputs.quant.items()}
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def validate(self) -> ModelMeta:
        """Check every field; raise MetadataError naming the first bad one."""
        from_dict(self.to_dict())
        return self


# ----------------------------------------------------------------------------------------------------
# reading and validation


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(path: str, message: str) -> MetadataError:
    return MetadataError(f"metadata field '{path}' {message}")


def _get(data: Mapping[str, Any], key: str, path: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if key not in data:
        if default is ...:
            raise _fail(f"{path}{key}", "is missing")
        return default
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = _float(value, f"{path}{key}")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise _fail(f"{path}{key}", f"must be {names}, got {_short(value)}")
    return value


def _float(value: Any, path: str) -> float:
    """A JSON number as a float; MetadataError for a string or an integer too large for one."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or abs(value) > MAX_NUMBER:
        raise _fail(path, f"must be a number, got {_short(value)}")
    return float(value)


def _channels(inp: Mapping[str, Any]) -> int:
    value = _get(inp, "channels", "input.", int, 3)
    if value not in (1, 3):
        raise _fail("input.channels", f"must be 1 or 3, got {value}")
    return value


def _choice(data: Mapping[str, Any], key: str, path: str, choices: Sequence[str], default: Any = ...) -> str:
    value = _get(data, key, path, str, default)
    if value not in choices:
        raise _fail(f"{path}{key}", f"must be one of {', '.join(choices)}, got {_short(value)}")
    return value


def _numbers(data: Mapping[str, Any], key: str, path: str, length: int, default: Any = ..., integer=False):
    value = _get(data, key, path, (list, tuple, type(None)), default)
    if value is None and default is None:  # an optional field, left out or null
        return None
    numeric = value is not None and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not numeric or len(value) != length:
        raise _fail(f"{path}{key}", f"must be a list of {length} numbers, got {_short(value)}")
    numbers = tuple(_float(v, f"{path}{key}") for v in value)
    if integer:
        if not all(v.is_integer() for v in numbers):
            raise _fail(f"{path}{key}", f"must hold integers, got {_short(value)}")
        return tuple(int(v) for v in numbers)
    return numbers


def _quant(value: Any, path: str) -> tuple[float, int]:
    """A (scale, zero_point) pair: a positive finite scale and an integer zero point."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[1], int)
    scale = _float(value[0], path) if ok else 0.0
    if not ok or not 0 < scale < math.inf or isinstance(value[1], bool) or abs(value[1]) > MAX_NUMBER:
        raise _fail(path, f"must be [scale > 0, zero_point], got {_short(value)}")
    return scale, int(value[1])


def _input(data: Mapping[str, Any]) -> InputSpec:
    """The ``input`` section: name, layout, dtype, colour, channels, range, mean/std, letterbox, quantization."""
    inp = _get(data, "input", "", dict, {})
    lb = _get(inp, "letterbox", "input.", dict, {})
    letterbox = Letterbox(
        align=_choice(lb, "align", "input.letterbox.", ALIGNS, "center"),
        pad_value=_get(lb, "pad_value", "input.letterbox.", int, 114),
        keep_ratio=_get(lb, "keep_ratio", "input.letterbox.", bool, True),
        rounding=_choice(lb, "rounding", "input.letterbox.", ROUNDINGS, "round"),
    )
    if not 0 <= letterbox.pad_value <= 255:
        raise _fail("input.letterbox.pad_value", f"must be in 0..255, got {letterbox.pad_value}")
    rng = _numbers(inp, "range", "input.", 2, [0.0, 1.0])
    if rng not in ((0.0, 1.0), (0.0, 255.0)):
        raise _fail("input.range", f"must be [0, 1] or [0, 255], got {list(rng)}")
    std = _numbers(inp, "std", "input.", 3, None)
    if std is not None and min(std) <= 0:
        raise _fail("input.std", f"must be positive, got {list(std)}")
    quant = _get(inp, "quant", "input.", (list, tuple, type(None)), None)
    if quant is not None:
        quant = _quant(quant, "input.quant")
    input_spec = InputSpec(
        name=_get(inp, "name", "input.", str, "images"),
        layout=_choice(inp, "layout", "input.", LAYOUTS, "NCHW"),
        dtype=_choice(inp, "dtype", "input.", DTYPES, "float32"),
        color=_choice(inp, "color", "input.", COLORS, "RGB"),
        channels=_channels(inp),
        range=rng,
        mean=_numbers(inp, "mean", "input.", 3, None),
        std=std,
        letterbox=letterbox,
        quant=quant,
    )
    if input_spec.dtype == "int8" and quant is None:
        raise _fail("input.quant", "is required for an int8 input")
    if input_spec.dtype == "uint8" and quant is None and (rng != (0.0, 255.0) or input_spec.mean or input_spec.std):
        raise _fail("input.range", "must be [0, 255] without mean/std for a raw uint8 input (or give input.quant)")
    return input_spec


def _outputs(data: Mapping[str, Any]) -> OutputSpec:
    """The ``outputs`` section: kind, tensor names (as many as the kind has), normalization, quantization."""
    out = _get(data, "outputs", "", dict, {})
    kind = _choice(out, "kind", "outputs.", OUTPUT_KINDS, "boxes_scores")
    names = _get(out, "names", "outputs.", list, DEFAULT_OUTPUT_NAMES[kind])
    if not names or not all(isinstance(n, str) for n in names):
        raise _fail("outputs.names", "must be a non-empty list of output names")
    counts = {"boxes_scores": (2, 2), "detections": (1, 2), "packed": (1, 1), "vision": (2, 2), "postprocess": (4, 4)}
    expected = counts[kind]
    if not expected[0] <= len(names) <= expected[1]:
        raise _fail("outputs.names", f"must name {expected[0]}..{expected[1]} tensors for kind {kind}, got {names}")
    out_quant = _get(out, "quant", "outputs.", (dict, type(None)), None)
    if out_quant is not None:
        checked = {}
        for key, value in out_quant.items():
            checked[key] = _quant(value, f"outputs.quant.{key}")
        out_quant = checked
    return OutputSpec(
        kind=kind, names=list(names), normalized=_get(out, "normalized", "outputs.", bool, True), quant=out_quant
    )


def _decode(data: Mapping[str, Any], kind: str) -> DecodeSpec:
    """The ``decode`` section, checked against the output `kind` (rows chosen in the graph need no decoding)."""
    dec = _get(data, "decode", "", dict, {})
    selected = kind not in ("boxes_scores", "packed")  # rows already chosen in the graph: nothing to decode
    decode = DecodeSpec(
        method=_choice(dec, "method", "decode.", DECODE_METHODS, "none" if selected else "nms"),
        conf=_get(dec, "conf", "decode.", float, 0.25),
        iou=_get(dec, "iou", "decode.", float, 0.45),
        max_det=_get(dec, "max_det", "decode.", int, 300),
        agnostic=_get(dec, "agnostic", "decode.", bool, False),
        multi_label=_get(dec, "multi_label", "decode.", bool, False),
    )
    if not (0 <= decode.conf <= 1 and 0 <= decode.iou <= 1 and decode.max_det > 0):
        raise _fail(
            "decode", f"has out-of-range values: conf {decode.conf}, iou {decode.iou}, max_det {decode.max_det}"
        )
    if selected and decode.method != "none":
        raise _fail("decode.method", f"must be 'none' for kind {kind}, got {decode.method!r}")
    return decode


def _source(data: Mapping[str, Any]) -> SourceInfo | None:
    """The ``source`` section (the checkpoint an artifact came from), if present."""
    src = _get(data, "source", "", (dict, type(None)), None)
    if src is None:
        return None
    return SourceInfo(
        file=_get(src, "file", "source.", str),
        sha256=_get(src, "sha256", "source.", str),
        edgekit=_get(src, "edgekit", "source.", str),
    )


def from_dict(data: Mapping[str, Any]) -> ModelMeta:
    """Build and validate ModelMeta from the stored JSON document."""
    if not isinstance(data, Mapping):
        raise MetadataError("edgekit metadata must be a JSON object")
    schema = _get(data, "schema", "", int)
    if schema > SCHEMA:
        raise MetadataError(
            f"this artifact uses metadata schema {schema}; this edgekit reads up to {SCHEMA}: upgrade edgekit"
        )
    if schema < 1:
        raise _fail("schema", f"must be >= 1, got {schema}")

    classes = _get(data, "classes", "", list)
    if not classes or not all(isinstance(c, str) for c in classes):
        raise _fail("classes", "must be a non-empty list of class names")
    imgsz = _numbers(data, "imgsz", "", 2, integer=True)
    if min(imgsz) <= 0:
        raise _fail("imgsz", f"must be positive, got {list(imgsz)}")

    input_spec = _input(data)  # sections checked in document order: the first bad field is the one named
    outputs = _outputs(data)
    decode = _decode(data, outputs.kind)
    source = _source(data)
    stride = _get(data, "stride", "", int, 32)
    if stride <= 0:
        raise _fail("stride", f"must be positive, got {stride}")
    return ModelMeta(
        family=_get(data, "family", "", str),
        variant=_get(data, "variant", "", str, ""),
        classes=list(classes),
        imgsz=imgsz,
        task=_choice(data, "task", "", TASKS, "detect"),
        input=input_spec,
        outputs=outputs,
        decode=decode,
        precision=_choice(data, "precision", "", PRECISIONS, "fp32"),
        stride=stride,
        source=source,
        verification=_get(data, "verification", "", (dict, type(None)), None),
        random_weights=_get(data, "random_weights", "", bool, False),
        accuracy=_get(data, "accuracy", "", (dict, type(None)), None),
        schema=schema,
    )


def from_json(text: str | bytes) -> ModelMeta:
    """Parse the stored JSON document. Raises MetadataError for one that is not JSON, is larger than
    METADATA_BYTES or nests deeper than NESTING levels, or whose fields are wrong (see :func:`from_dict`)."""
    if len(text) > METADATA_BYTES:
        raise MetadataError(f"edgekit metadata of {len(text):,} bytes is too large (at most {METADATA_BYTES:,})")
    return from_dict(parse_json(text, "edgekit metadata", MetadataError))


def from_props(props: Mapping[str, str]) -> ModelMeta | None:
    """The edgekit metadata stored in a model's key/value properties, or None if there is none."""
    if KEY not in props:
        return None
    return from_json(props[KEY])
