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


class _Table:
    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vsize = struct.unpack_from("<H", buf, self.vtable)[0]

    def _field(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot >= self.vsize:
            return None
        offset = struct.unpack_from("<H", self.buf, self.vtable + slot)[0]
        return self.pos + offset if offset else None

    def scalar(self, index: int, fmt: str, default=0):
        at = self._field(index)
        return default if at is None else struct.unpack_from("<" + fmt, self.buf, at)[0]

    def _indirect(self, at: int) -> int:
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def vector(self, index: int) -> tuple[int, int] | None:
        """(start, length) of a vector field."""
        at = self._field(index)
        if at is None:
            return None
        start = self._indirect(at)
        return start + 4, struct.unpack_from("<I", self.buf, start)[0]

    def tables(self, index: int) -> list[_Table]:
        found = self.vector(index)
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
    """All named metadata entries of a .tflite whose buffers hold text (the ``edgekit`` JSON among them)."""
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
                raw = buf[offset : offset + size] if offset > 1 else b""
            try:
                found[name] = raw.decode("utf-8")
            except UnicodeDecodeError:
                continue  # binary metadata (e.g. MediaPipe's) is not text
        return found
    except (struct.error, IndexError) as exc:
        raise EdgekitError(f"{path}: damaged TFLite flatbuffer ({exc})") from None
