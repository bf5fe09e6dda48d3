"""Facts about an .onnx file (opsets, producer, operator histogram) read without the onnx package.

A device has onnxruntime but not onnx; `edgekit inspect` still reports what the graph is made of by
walking the protobuf wire format for the few fields it needs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import EdgekitError


@dataclass
class OnnxSummary:
    """What `inspect` reports about an ONNX graph."""

    ir_version: int = 0
    producer: str = ""
    opsets: dict[str, int] = field(default_factory=dict)
    ops: Counter = field(default_factory=Counter)
    initializers: int = 0
    metadata: dict[str, str] = field(default_factory=dict)  # ModelProto.metadata_props, as ONNX Runtime gives them


VARINT_BYTES = 10  # a protobuf varint encodes at most 64 bits


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = 0
    for shift in range(0, 7 * VARINT_BYTES, 7):
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
    raise ValueError(f"varint longer than {VARINT_BYTES} bytes")


def _payload(buf: memoryview, pos: int, length: int) -> tuple[memoryview, int]:
    """`length` bytes from `pos`, checked against the buffer's end (a view: nothing is copied)."""
    if pos + length > len(buf):
        raise ValueError(f"field of {length} bytes runs past the end of the file")
    return buf[pos : pos + length], pos + length


def _fields(buf: memoryview):
    """Yield (field number, wire type, value) where value is an int or a memoryview of the payload."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = _payload(buf, pos, 8)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = _payload(buf, pos, length)
        elif wire == 5:
            value, pos = _payload(buf, pos, 4)
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _graph(buf: memoryview, summary: OnnxSummary) -> None:
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 2:  # GraphProto.node
            op_type = domain = ""
            for n, w, v in _fields(value):
                if n == 4 and w == 2:
                    op_type = bytes(v).decode()
                elif n == 7 and w == 2:
                    domain = bytes(v).decode()
            summary.ops[f"{domain}.{op_type}" if domain not in ("", "ai.onnx") else op_type] += 1
        elif number == 5 and wire == 2:  # GraphProto.initializer
            summary.initializers += 1


def summarize_onnx(path: str | Path, graph: bool = True) -> OnnxSummary:
    """Read the IR version, producer, opset imports, metadata_props and top-level operator counts of an ONNX
    file (`graph=False`: everything but the operators, without walking the graph).

    Every length is checked against the file's end and no payload is copied but the few strings reported, so
    nothing larger than the file is allocated. Raises EdgekitError for a file that is not a readable ONNX
    protobuf."""
    summary = OnnxSummary()
    buf = memoryview(Path(path).read_bytes())
    producer = version = ""
    try:
        for number, wire, value in _fields(buf):
            if number == 1 and wire == 0:
                summary.ir_version = value
            elif number == 2 and wire == 2:
                producer = bytes(value).decode()
            elif number == 3 and wire == 2:
                version = bytes(value).decode()
            elif number == 7 and wire == 2 and graph:
                _graph(value, summary)
            elif number == 8 and wire == 2:
                domain, opset = "", 0
                for n, w, v in _fields(value):
                    if n == 1 and w == 2:
                        domain = bytes(v).decode()
                    elif n == 2 and w == 0:
                        opset = v
                summary.opsets[domain or "ai.onnx"] = opset
            elif number == 14 and wire == 2:  # ModelProto.metadata_props: StringStringEntryProto key = 1, value = 2
                entry = {n: bytes(v).decode() for n, w, v in _fields(value) if n in (1, 2) and w == 2}
                summary.metadata[entry.get(1, "")] = entry.get(2, "")
    except (ValueError, UnicodeDecodeError) as exc:
        raise EdgekitError(f"{path}: not a readable ONNX file ({exc})") from None
    summary.producer = f"{producer} {version}".strip()
    return summary
