"""Every input a fuzz run found failing (tests/fixtures/fuzz/TARGET/), replayed through its target; and files
with forged lengths, offsets, counts and nesting, refused by every reader edgekit wrote itself before it
allocates or recurses for them."""

from __future__ import annotations

import io
import json
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from edgekit import limits
from edgekit.errors import EdgekitError, MetadataError

from fuzzing import targets

FINDINGS = Path(__file__).parent / "fixtures" / "fuzz"
CASES = sorted((p.parent.name, p) for p in FINDINGS.glob("*/*") if p.is_file())


@pytest.mark.parametrize(("target", "path"), CASES, ids=[f"{t}/{p.name[:24]}" for t, p in CASES])
def test_fuzz_finding_is_handled(target, path):
    targets.run(target, path.read_bytes())


def _bounded(call, *, seconds: float = 2.0, megabytes: float = 64.0):
    """Run `call`; assert it took under `seconds` and allocated under `megabytes` in Python at its peak."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        return call()
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        assert elapsed < seconds and peak < megabytes, f"{elapsed:.2f} s, {peak:.0f} MB"


def test_onnx_field_claiming_a_terabyte_is_refused(tmp_path):
    from edgekit.runtimes.onnx_graph import summarize_onnx

    path = tmp_path / "forged.onnx"
    path.write_bytes(b"\x08\x07" + b"\x3a" + bytes([0x80, 0x80, 0x80, 0x80, 0x80, 0x20]) + b"\x0a\x00")  # 2**40
    with pytest.raises(EdgekitError, match="past the end"):
        _bounded(lambda: summarize_onnx(path))


def test_onnx_endless_varint_is_refused_at_once(tmp_path):
    from edgekit.runtimes.onnx_graph import summarize_onnx

    path = tmp_path / "varint.onnx"
    path.write_bytes(b"\x08" + b"\xff" * 400_000 + b"\x01")
    with pytest.raises(EdgekitError, match="varint longer"):
        _bounded(lambda: summarize_onnx(path), seconds=0.5)


def _tflite(vector_length: int, soffset: int = 24) -> bytes:
    """A TFL3 flatbuffer whose root table (at 32, its vtable `soffset` bytes before it) has a metadata vector
    that claims `vector_length` entries."""
    root, vtable = 32, 8
    buf = bytearray(64)
    struct.pack_into("<I", buf, 0, root)
    buf[4:8] = b"TFL3"
    struct.pack_into("<" + "H" * 9, buf, vtable, 18, 8, 0, 0, 0, 0, 0, 0, 4)  # field 6 (metadata) at +4
    struct.pack_into("<i", buf, root, soffset)
    struct.pack_into("<I", buf, root + 4, 8)  # the metadata vector 8 bytes further on
    struct.pack_into("<I", buf, root + 12, vector_length)
    return bytes(buf)


def test_tflite_vector_longer_than_the_file_is_refused(tmp_path):
    from edgekit.runtimes.tflite_file import read_tflite_metadata

    path = tmp_path / "forged.tflite"
    path.write_bytes(_tflite(2**32 - 1))
    with pytest.raises(EdgekitError, match="runs past the end"):
        _bounded(lambda: read_tflite_metadata(path))


def test_tflite_offsets_outside_the_file_or_into_themselves(tmp_path):
    from edgekit.runtimes.tflite_file import read_tflite_metadata

    path = tmp_path / "forged.tflite"
    path.write_bytes(_tflite(0))
    assert read_tflite_metadata(path) == {}
    for soffset in (40, -60):  # the vtable before the file's start, past its end
        path.write_bytes(_tflite(1, soffset))
        with pytest.raises(EdgekitError, match="damaged TFLite"):
            _bounded(lambda: read_tflite_metadata(path))
    path.write_bytes(_tflite(1, soffset=0))  # the vtable is the table itself: it lists no fields
    assert _bounded(lambda: read_tflite_metadata(path)) == {}


def test_appended_zip_bomb_is_not_inflated(tmp_path):
    from edgekit.runtimes.litert import appended_metadata

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", b'{"names": "' + b" " * (limits.METADATA_BYTES + 1) + b'"}')
    path = tmp_path / "bomb.tflite"
    path.write_bytes(_tflite(0) + archive.getvalue())
    assert len(archive.getvalue()) < 100_000
    assert _bounded(lambda: appended_metadata(path), megabytes=2) == {}


def test_ncnn_counts_larger_than_the_line_are_refused(tmp_path):
    from edgekit.converters.backends.ncnn.model_file import NcnnModel
    from edgekit.runtimes.ncnn import param_io

    with pytest.raises(EdgekitError, match="names fewer blobs"):
        param_io("7767517\n1 1\nInput in0 0 999999999 in0\n")
    with pytest.raises(EdgekitError, match="layer/blob counts"):
        param_io("7767517\n1 99999999999999999999\n")
    param, weights = tmp_path / "model.param", tmp_path / "model.bin"
    param.write_text("7767517\n1 2\nInnerProduct fc 0 1 out 0=2 1=0 2=1099511627776\n")
    weights.write_bytes(b"\0" * 64)
    with pytest.raises(EdgekitError, match="ends before"):
        _bounded(lambda: NcnnModel.read(param, weights))
    param.write_text("7767517\n1 2\nInnerProduct fc 0 1 out 0=2 1=0 2=-1\n")
    with pytest.raises(EdgekitError, match="-1 elements"):
        NcnnModel.read(param, weights)


@pytest.mark.parametrize(
    ("reader", "limit"),
    [
        ("param", limits.PARAM_BYTES),
        ("labels", limits.LABEL_FILE_BYTES),
        ("yaml", limits.DATASET_YAML_BYTES),
        ("metadata.yaml", limits.METADATA_BYTES),
    ],
)
def test_documents_of_absurd_size_are_refused_by_size_first(tmp_path, reader, limit):
    from edgekit.eval.datasets import read_yaml, read_yolo_labels
    from edgekit.runtimes.ncnn import read_param

    path = tmp_path / "big"
    with open(path, "wb") as f:
        f.truncate(limit + 1)  # sparse: nothing is written, nothing should be read
    call = {
        "param": lambda: read_param(path),
        "labels": lambda: read_yolo_labels(path, 80),
        "yaml": lambda: read_yaml(path),
        "metadata.yaml": lambda: limits.read_text(path, limits.METADATA_BYTES, "metadata"),
    }[reader]
    with pytest.raises(EdgekitError, match="too large"):
        _bounded(call, megabytes=1)


def test_a_small_file_under_a_large_limit_sets_aside_only_its_size(tmp_path):
    path = tmp_path / "small.json"
    path.write_text("{}")
    assert _bounded(lambda: limits.read_bytes(path, limits.COCO_JSON_BYTES, "a COCO file"), megabytes=1) == b"{}"


def test_metadata_nested_deeper_than_the_bound_is_refused():
    from edgekit.meta import from_json

    with pytest.raises(MetadataError, match="nests 100000 levels"):
        _bounded(lambda: from_json("[" * 100_000 + "]" * 100_000))
    with pytest.raises(MetadataError, match="too large"):
        from_json(" " * (limits.METADATA_BYTES + 1))
    with pytest.raises(MetadataError, match="not valid JSON"):
        from_json("1" * 5000)  # Python refuses integers of over 4300 digits with a ValueError
    assert limits.json_nesting('{"a": "[[[[", "b": [[1]]}') == 3


def test_yaml_nested_deeper_than_the_bound_is_refused():
    from edgekit.yaml_subset import parse_simple_yaml

    text = "".join(" " * i + f"k{i}:\n" for i in range(2000)) + " " * 2000 + "v: 1\n"
    with pytest.raises(EdgekitError, match="nested more than"):
        _bounded(lambda: parse_simple_yaml(text))
    assert parse_simple_yaml("- " * 3000 + "x") == {}
    assert parse_simple_yaml("a: " + "-" * 200_000 + "1") == {"a": "-" * 200_000 + "1"}  # the parser's MemoryError


def test_coco_fields_of_the_wrong_type_are_one_line_errors():
    for bad in (
        {"images": [{"id": 1, "file_name": 7, "width": 10, "height": 10}], "categories": [{"id": 1}]},
        {"images": [{"id": 1, "file_name": "a.jpg", "width": "0", "height": 10}], "categories": [{"id": 1}]},
        {"images": [], "categories": [{"id": [1]}]},
        {"images": [], "categories": [{"id": 1}], "annotations": [{"image_id": 1, "bbox": [], "category_id": [1]}]},
    ):
        with pytest.raises(EdgekitError):
            targets.coco(json.dumps(bad).encode())


def test_labels_with_nan_are_refused(tmp_path):
    from edgekit.eval.datasets import read_yolo_labels

    path = tmp_path / "a.txt"
    path.write_text("0 0.5 nan 0.1 0.1\n")
    with pytest.raises(EdgekitError, match="not normalized"):
        read_yolo_labels(path, 1)
