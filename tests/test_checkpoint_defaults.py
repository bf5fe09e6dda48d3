"""What a checkpoint says about itself sets the defaults: the head Ultralytics runs for the file (the Detect
head's saved end2end switch) and the size it was trained at (train_args.imgsz / opt.imgsz)."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import edgekit
from edgekit.converters.convert import convert
from edgekit.converters.families import open_source
from edgekit.converters.heads import validate_heads
from edgekit.converters.source_detector import open_source_detector
from edgekit.errors import EdgekitError
from edgekit.eval.datasets import load_dataset

from checkpoints import random_ultralytics, random_yolov9, write_ultralytics_checkpoint, write_yolov9_checkpoint

SCENES = Path(__file__).parent / "fixtures" / "families" / "scenes" / "data.yaml"


@pytest.fixture(scope="module")
def yolo26n():
    return random_ultralytics("yolo26n", nc=6)


@pytest.fixture(scope="module")
def saved_o2m(yolo26n, tmp_path_factory):
    """A YOLO26n as a current Ultralytics trainer saves it: head end2end=False, trained at 320."""
    return write_ultralytics_checkpoint(yolo26n, tmp_path_factory.mktemp("c") / "o2m.pt", imgsz=320, end2end=False)


@pytest.fixture(scope="module")
def saved_o2o(yolo26n, tmp_path_factory):
    return write_ultralytics_checkpoint(yolo26n, tmp_path_factory.mktemp("c") / "o2o.pt", end2end=True)


def test_head_saved_without_end2end_converts_to_one_to_many_nms_at_training_size(saved_o2m, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="edgekit"):
        result = convert(saved_o2m, out_dir=tmp_path)
    meta = edgekit.load(result.path).meta
    assert result.verification.passed
    assert meta.outputs.names == ["boxes", "scores"] and meta.decode.method == "nms"
    assert list(meta.imgsz) == [320, 320]
    assert "imgsz    320x320: the size o2m was trained at (its train_args.imgsz 320" in caplog.text
    assert "head     one-to-many + NMS: the head Ultralytics runs for this file" in caplog.text
    assert "saved with end2end=False" in caplog.text


def test_head_saved_with_end2end_converts_to_one_to_one(saved_o2o, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="edgekit"):
        result = convert(saved_o2o, imgsz=128, out_dir=tmp_path)
    meta = edgekit.load(result.path).meta
    assert meta.outputs.names == ["detections"] and meta.decode.method == "none" and list(meta.imgsz) == [128, 128]
    assert "imgsz    128x128: as asked (--imgsz)" in caplog.text
    assert "head     one-to-one, top-k in the graph: the head Ultralytics runs for this model" in caplog.text


@pytest.mark.parametrize("saved", ["saved_o2m", "saved_o2o"])
def test_topk_and_nms_still_choose_the_head(saved, request):
    path = request.getfixturevalue(saved)
    graph, runtime, nms = (open_source(path, **o) for o in ({"topk": "graph"}, {"topk": "runtime"}, {"nms": True}))
    assert (graph.outputs.kind, graph.decode.method, graph.head) == ("detections", "none", "one-to-one")
    assert (runtime.outputs.names, runtime.decode.method) == (["boxes", "scores"], "topk")
    assert (nms.decode.method, nms.head) == ("nms", "one-to-many + NMS")
    assert "as asked (--topk runtime)" in runtime.head_note and "as asked (--nms)" in nms.head_note
    assert graph.default_head == ("one-to-many + NMS" if saved == "saved_o2m" else "one-to-one")


def test_phone_takes_the_saved_head_per_anchor(saved_o2m, saved_o2o):
    assert open_source(saved_o2m, per_anchor=True).decode.method == "nms"
    assert open_source(saved_o2o, per_anchor=True).decode.method == "topk"


def test_val_runs_at_the_training_size_unless_asked(saved_o2m, tmp_path):
    detector = open_source_detector(saved_o2m)
    assert detector.meta.imgsz == [320, 320] and detector.meta.decode.method == "nms"
    assert detector.notes[0].startswith("imgsz    320x320: the size o2m was trained at")
    assert open_source_detector(saved_o2m, [256]).meta.imgsz == [256, 256]
    odd = write_ultralytics_checkpoint(random_ultralytics("yolo26n", nc=6), tmp_path / "odd.pt", imgsz=300)
    assert open_source_detector(odd).meta.imgsz == [320, 320]  # rounded up to the stride, as Ultralytics does
    assert "rounded up to the stride 32" in open_source_detector(odd).notes[0]
    with pytest.raises(EdgekitError, match="multiples of the model's stride 32"):
        open_source_detector(saved_o2m, [300])


def test_yolov9_opt_imgsz_and_no_record(tmp_path):
    path = write_yolov9_checkpoint(random_yolov9("yolov9-t", nc=6), tmp_path / "v9.pt", imgsz=416)
    assert open_source_detector(path).meta.imgsz == [416, 416]
    built = open_source_detector("yolov9-t")
    assert built.meta.imgsz == [640, 640] and "the default (an architecture name has none)" in built.notes[0]


def test_both_heads_are_validated_side_by_side(saved_o2m):
    data = load_dataset(SCENES, "val")
    data.items = data.items[:3]
    report = validate_heads(saved_o2m, data, 128, progress=False)
    assert list(report.reports) == ["one-to-one", "one-to-many + NMS"] and report.default == "one-to-many + NMS"
    rows = report.table().splitlines()
    assert rows[2].startswith("one-to-many + NMS") and rows[2].endswith("(default)")
    assert not rows[1].endswith("(default)")
    assert set(report.as_dict()["heads"]) == {"one-to-one", "one-to-many + NMS"}


def test_both_heads_needs_an_end_to_end_model():
    data = load_dataset(SCENES, "val")
    with pytest.raises(EdgekitError, match="one output head"):
        validate_heads("yolov9-t", data, 128, progress=False)


def test_cli_val_says_which_size_and_head(saved_o2m, tmp_path):
    images = sorted((SCENES.parent / "images" / "val").iterdir())[:3]
    (tmp_path / "val.txt").write_text("".join(f"{p}\n" for p in images))
    data = tmp_path / "data.yaml"
    data.write_text(SCENES.read_text().replace("val: images/val", f"val: {tmp_path / 'val.txt'}"))
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "val", str(saved_o2m), "--data", str(data), "--quiet", "--both-heads",
         "--json"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "imgsz    320x320: the size o2m was trained at" in proc.stderr
    assert json.loads(proc.stdout)["default"] == "one-to-many + NMS"
