"""Metadata from a .tflite file, read straight from the flatbuffer (no TensorFlow, no schema package).

The TFLite Model table lists named metadata entries, each pointing at a buffer; edgekit stores its JSON
in the entry named ``edgekit``. Only the few fields needed are walked.
"""

from __future__ import annotations

import struct
from pathlib import Path

from edgekit.errors import EdgekitError

# Model table field ids (tensorflow/lite/schema/schema.fbs)
MODEL_BUFFERS, MODEL_METADATA = 4, 6
# Buffer: data (vector<ubyte>), offset (ulong), size (ulong); Metadata: name (string), buffer (uint)
BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = 0, 1, 2
METADATA_NAME, METADATA_BUFFER = 0, 1


def _unpack(buf: bytes, fmt: str, at: int):
    """One little-endian value at offset `at`, which must lie wholly inside the buffer."""
    size = struct.calcsize("<" + fmt)
    if not 0 <= at <= len(buf) - size:
        raise ValueError(f"offset {at} outside the {len(buf)}-byte file")
    return struct.unpack_from("<" + fmt, buf, at)[0]


class _Table:
    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        self.vtable = pos - _unpack(buf, "i", pos)
        self.vsize = _unpack(buf, "H", self.vtable)

    def _field(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot >= self.vsize:
            return None
        offset = _unpack(self.buf, "H", self.vtable + slot)
        return self.pos + offset if offset else None

    def scalar(self, index: int, fmt: str, default=0):
        at = self._field(index)
        return default if at is None else _unpack(self.buf, fmt, at)

    def _indirect(self, at: int) -> int:
        return at + _unpack(self.buf, "I", at)

    def vector(self, index: int, item_size: int = 1) -> tuple[int, int] | None:
        """(start, length) of a vector field whose `length` items of `item_size` bytes lie inside the file."""
        at = self._field(index)
        if at is None:
            return None
        start = self._indirect(at)
        length = _unpack(self.buf, "I", start)
        if start + 4 + length * item_size > len(self.buf):
            raise ValueError(f"a vector of {length} items at {start} runs past the end of the file")
        return start + 4, length

    def tables(self, index: int) -> list[_Table]:
        found = self.vector(index, 4)
        if found is None:
            return []
        start, length = found
        return [_Table(self.buf, self._indirect(start + 4 * i)) for i in range(length)]

    def string(self, index: int) -> str | None:
        found = self.vector(index)
        if found is None:
            return None
        start, length = found
        return self.buf[start : start + length].decode("utf-8", "replace")


def read_tflite_metadata(path: str | Path) -> dict[str, str]:
    """All named metadata entries of a .tflite whose buffers hold text (the ``edgekit`` JSON among them).

    Every offset and length is checked against the file's size before it is followed (buffers kept after the
    flatbuffer, in models over 2 GB, included). Raises EdgekitError for a file that is not a readable TFLite
    flatbuffer."""
    buf = Path(path).read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise EdgekitError(f"{path}: not a TFLite model (no TFL3 identifier)")
    try:
        model = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
        buffers = model.tables(MODEL_BUFFERS)
        found = {}
        for entry in model.tables(MODEL_METADATA):
            name = entry.string(METADATA_NAME)
            index = entry.scalar(METADATA_BUFFER, "I")
            if name is None or index >= len(buffers):
                continue
            buffer = buffers[index]
            data = buffer.vector(BUFFER_DATA)
            if data is not None:
                raw = buf[data[0] : data[0] + data[1]]
            else:  # models over 2 GB keep buffers after the flatbuffer
                offset, size = buffer.scalar(BUFFER_OFFSET, "Q"), buffer.scalar(BUFFER_SIZE, "Q")
                if offset > 1 and offset + size > len(buf):
                    raise ValueError(f"buffer {index} of {size} bytes at {offset} lies past the end of the file")
                raw = buf[offset : offset + size] if offset > 1 else b""
            try:
                found[name] = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue  # binary metadata (e.g. MediaPipe's) is not text
        return found
    except (ValueError, struct.error, IndexError) as exc:
        raise EdgekitError(f"{path}: damaged TFLite flatbuffer ({exc})") from None
