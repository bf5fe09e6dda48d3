"""What a file can make edgekit's own readers do: the largest text document each reads, the deepest nesting
it follows, checked before anything is allocated for it. One owner for every such bound.

A model file itself (ONNX, TFLite, a checkpoint) may be gigabytes, so its readers check each length and
offset against the file's size instead; the documents here (metadata, labels, an NCNN .param) are small
by nature, and one of absurd size is refused from its size alone.
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError

METADATA_BYTES = 4 << 20  # edgekit's metadata JSON, Ultralytics' metadata.yaml or appended metadata.json
DATASET_YAML_BYTES = 4 << 20  # a YOLO data.yaml
LABEL_FILE_BYTES = 16 << 20  # one YOLO label file (``class cx cy w h`` lines of one image)
PARAM_BYTES = 64 << 20  # an NCNN .param (text: one line per layer)
COCO_JSON_BYTES = 2 << 30  # a COCO annotation file (instances_train2017.json is 448 MB)
NESTING = 64  # levels of nested lists/maps in a JSON or YAML document (edgekit's own use 4)

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def check_size(path: str | os.PathLike, limit: int, what: str) -> int:
    """The size of file `path` in bytes; EdgekitError naming `what` when it exceeds `limit`."""
    size = os.stat(path).st_size
    if size > limit:
        raise EdgekitError(f"{path}: {size:,} bytes is too large for {what} (at most {limit:,})")
    return size


def read_bytes(path: str | os.PathLike, limit: int, what: str) -> bytes:
    """The contents of `path`, refused by its size before it is read when larger than `limit` bytes."""
    size = check_size(path, limit, what)
    with open(path, "rb") as f:
        data = f.read(size + 1)  # read(n) sets aside n bytes first: ask for what the file holds, not the limit
    if len(data) > size:
        raise EdgekitError(f"{path}: {what} grew while it was read; try again")
    return data


def read_text(path: str | os.PathLike, limit: int, what: str, errors: str = "strict") -> str:
    """The UTF-8 text of `path`, refused by size as :func:`read_bytes` does; with the default `errors`, a file
    that is not UTF-8 raises EdgekitError."""
    try:
        return read_bytes(path, limit, what).decode("utf-8", errors)
    except UnicodeDecodeError as exc:
        raise EdgekitError(f"{Path(path)}: {what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def json_nesting(text: str | bytes) -> int:
    """How deep lists and objects nest in a JSON document (brackets inside strings not counted)."""
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text)
    codes = np.frombuffer(_JSON_STRING.sub(b'""', raw), np.uint8)
    steps = np.isin(codes, (0x5B, 0x7B)).astype(np.int32) - np.isin(codes, (0x5D, 0x7D)).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def parse_json(text: str | bytes, what: str, error: type[EdgekitError] = EdgekitError) -> Any:
    """A JSON document, nesting at most NESTING levels; `error` (one line, naming `what`) for anything else."""
    depth = json_nesting(text)
    if depth > NESTING:
        raise error(f"{what} nests {depth} levels deep (at most {NESTING})")
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:  # ValueError also covers integers of over 4300 digits
        raise error(f"{what} is not valid JSON ({exc})") from None


def literal(text: str) -> Any:
    """A Python literal (number, string, list, dict...) as :func:`ast.literal_eval` reads it; ValueError for
    anything else, including text nested too deeply for the parser (which raises MemoryError or RecursionError
    there)."""
    try:
        return ast.literal_eval(text)
    except (SyntaxError, MemoryError, RecursionError, TypeError) as exc:
        raise ValueError(f"not a literal ({type(exc).__name__})") from None
