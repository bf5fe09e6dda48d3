"""One fuzz target per reader edgekit wrote itself: each takes the bytes of a file, hands them to the reader
as a user's file would reach it, and returns normally when the reader gave a result (checked for sense) or a
clean EdgekitError. Anything else raises: another exception, a result that makes no sense, and, for the
checkpoint, anything the :class:`~fuzzing.boundary.Tracer` saw imported or called.

Hangs (over 2 s) and memory growth (over 256 MB) are the runner's to catch (see ``fuzzing.__main__``).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError

BIN_SEPARATOR = b"\x00EDGEKIT-NCNN-BIN\x00"  # the ncnn target's input: .param text, this, then the .bin
COCO_IMAGES = ("val_00000.jpg", "val_00001.jpg", "val_00002.jpg")  # image files the coco target provides
SHAPES = [[1, 84, 8400], [1, 300, 6], [1, 7, 2100]]  # the output shapes the metadata target tries

_folder = Path(tempfile.mkdtemp(prefix="edgekit-fuzz-"))
atexit.register(shutil.rmtree, _folder, True)


class Finding(AssertionError):
    """A target's input made the reader do something other than return or raise EdgekitError."""


def _file(name: str, data: bytes) -> Path:
    path = _folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise Finding(message)


def onnx(data: bytes) -> None:
    from edgekit.runtimes.onnx_graph import summarize_onnx

    summary = summarize_onnx(_file("model.onnx", data))
    _check(sum(summary.ops.values()) <= len(data) and summary.initializers <= len(data), "more nodes than bytes")


def tflite(data: bytes) -> None:
    from edgekit.runtimes.litert import appended_metadata
    from edgekit.runtimes.tflite_file import read_tflite_metadata

    path = _file("model.tflite", data)
    found = read_tflite_metadata(path)
    _check(sum(len(v) for v in found.values()) <= len(data) * 4, "metadata larger than the file")
    _check(isinstance(appended_metadata(path), dict), "appended metadata is not a dict")


def ncnn(data: bytes) -> None:
    from edgekit.converters.backends.ncnn.model_file import NcnnModel
    from edgekit.runtimes.ncnn import param_io, read_param

    param, _, weights = data.partition(BIN_SEPARATOR)
    param_path, bin_path = _file("ncnn/model.param", param), _file("ncnn/model.bin", weights)
    inputs, outputs = param_io(read_param(param_path))
    _check(len(inputs) + len(outputs) <= len(param), "more blobs than bytes")
    model = NcnnModel.read(param_path, bin_path)
    _check(sum(a.values.nbytes for layer in model.layers for a in layer.weights) <= len(weights), "weights > .bin")


def yaml(data: bytes) -> None:
    from edgekit.yaml_subset import parse_simple_yaml

    parsed = parse_simple_yaml(data.decode("utf-8", "replace"))
    _check(isinstance(parsed, dict), "not a dict")
    _foreign(parsed)


def _foreign(props: dict) -> None:
    """Metadata read from Ultralytics' keys, as the runtime reads it for a file without edgekit's."""
    from edgekit import meta_foreign

    if not meta_foreign.is_ultralytics(props):
        return
    for shape in SHAPES:
        try:
            found = meta_foreign.from_ultralytics(props, "images", "float32", ["output0"], [shape])
        except EdgekitError:
            continue
        _check(found.classes and min(found.imgsz) > 0 and found.stride > 0, f"nonsense metadata {found}")


def metadata(data: bytes) -> None:
    from edgekit import meta
    from edgekit.limits import parse_json

    try:
        found = meta.from_json(data)
    except EdgekitError:
        found = None
    if found is not None:
        _check(meta.from_json(found.to_json()) == found, "metadata does not survive a round trip")
    document = parse_json(data, "metadata")
    if isinstance(document, dict):
        props = {str(k): v if isinstance(v, str) else str(v) for k, v in document.items()}
        _foreign(props)


def labels(data: bytes) -> None:
    from edgekit.eval.datasets import read_yolo_labels

    boxes, classes = read_yolo_labels(_file("labels/image.txt", data), 80)
    _check(boxes.shape == (len(classes), 4) and bool(np.isfinite(boxes).all()), "boxes not finite")
    _check(bool(((boxes >= 0) & (boxes <= 1)).all()) and bool((boxes[:, 2:] >= boxes[:, :2]).all()), "bad boxes")
    _check(bool(((classes >= 0) & (classes < 80)).all()), "class out of range")


def coco(data: bytes) -> None:
    from edgekit.eval.datasets import load_dataset

    for name in COCO_IMAGES:
        _file(f"coco/images/{name}", b"")
    dataset = load_dataset(_file("coco/annotations/instances_val.json", data))
    for item in dataset.items:
        _check(bool(np.isfinite(item.boxes).all()) and len(item.boxes) == len(item.labels), "boxes not finite")
        _check(bool(((item.labels >= 0) & (item.labels < len(dataset.names))).all()), "label out of range")


def checkpoint(data: bytes) -> None:
    from edgekit.models import checkpoint as ck

    from fuzzing.boundary import Tracer

    path = _file("model.pt", data)
    with Tracer(allowed_open=str(path)) as tracer:
        try:
            loaded = ck.load_checkpoint(path)
        except EdgekitError as exc:
            _check("memory" not in str(exc).lower(), f"a load ran out of memory: {exc}")
            loaded = None
    _check(not tracer.findings, f"the load reached outside the allow-list: {tracer.findings[:5]}")
    if loaded is None:
        return
    loaded.training_size()
    try:
        record = loaded.model_record()
    except EdgekitError:
        return
    weights = ck.state_dict(record)
    _check(all(isinstance(k, str) for k in weights), "state_dict key not a string")
    ck.find_types(record)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "onnx": onnx,
    "tflite": tflite,
    "ncnn": ncnn,
    "yaml": yaml,
    "metadata": metadata,
    "labels": labels,
    "coco": coco,
    "checkpoint": checkpoint,
}


# the modules each target drives: the runner imports them under atheris' instrumentation
MODULES = {
    "onnx": ["edgekit.runtimes.onnx_graph"],
    "tflite": ["edgekit.runtimes.tflite_file", "edgekit.runtimes.litert", "edgekit.limits"],
    "ncnn": ["edgekit.runtimes.ncnn", "edgekit.converters.backends.ncnn.model_file", "edgekit.limits"],
    "yaml": ["edgekit.yaml_subset", "edgekit.meta_foreign", "edgekit.limits"],
    "metadata": ["edgekit.meta", "edgekit.meta_foreign", "edgekit.limits"],
    "labels": ["edgekit.eval.datasets", "edgekit.limits"],
    "coco": ["edgekit.eval.datasets", "edgekit.limits"],
    "checkpoint": ["edgekit.models.checkpoint", "edgekit.fileio"],
}


def run(name: str, data: bytes) -> None:
    """Run target `name` on `data`: returns for a result or a clean EdgekitError; raises Finding (or the
    reader's own exception) otherwise."""
    try:
        TARGETS[name](data)
    except EdgekitError as exc:
        message = str(exc)
        _check("\n" not in message.strip() and "Traceback" not in message, f"not a one-line error: {message[:200]}")

