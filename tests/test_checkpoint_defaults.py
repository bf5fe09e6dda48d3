"""What a checkpoint says about itself sets the defaults: the head Ultralytics runs for the file (the Detect
head's saved end2end switch) and the size it was trained at (train_args.imgsz / opt.imgsz)."""

import json
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import edgekit
from edgekit.converters.convert import convert
from edgekit.converters.families import open_source
from edgekit.converters.families.ultralytics import pick_head
from edgekit.converters.heads import validate_heads
from edgekit.converters.source_detector import open_source_detector
from edgekit.errors import EdgekitError
from edgekit.eval.datasets import load_dataset
from edgekit.models import ultralytics as U
from edgekit.models.checkpoint import Record, load_checkpoint
from edgekit.models.ultralytics import saved_end2end

from checkpoints import random_ultralytics, write_ultralytics_checkpoint

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


@pytest.mark.convert
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


@pytest.mark.convert
def test_head_saved_with_end2end_converts_to_one_to_one(saved_o2o, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="edgekit"):
        result = convert(saved_o2o, imgsz=64, out_dir=tmp_path)
    meta = edgekit.load(result.path).meta
    assert meta.outputs.names == ["detections"] and meta.decode.method == "none" and list(meta.imgsz) == [64, 64]
    assert "imgsz    64x64: as asked (--imgsz, or a --device profile)" in caplog.text
    assert "head     one-to-one, top-k in the graph: the head Ultralytics runs for this model" in caplog.text


@pytest.fixture(scope="module")
def loaded(saved_o2m, saved_o2o):
    return {name: U.from_checkpoint(load_checkpoint(path)) for name, path in (("o2m", saved_o2m), ("o2o", saved_o2o))}


@pytest.mark.parametrize("saved", ["o2m", "o2o"])
def test_topk_and_nms_still_choose_the_head(loaded, saved):
    model = loaded[saved]
    assert pick_head(model, "graph", False)[0] == "e2e" and pick_head(model, "runtime", False)[0] == "o2o"
    mode, note = pick_head(model, None, True)
    assert mode == "o2m" and note == "one-to-many + NMS: as asked (--nms)"
    assert pick_head(model, None, False)[0] == ("o2m" if saved == "o2m" else "e2e")
    assert pick_head(model, None, False, per_anchor=True)[0] == ("o2m" if saved == "o2m" else "o2o")  # --phone
    with pytest.raises(EdgekitError, match="unknown top-k placement"):
        pick_head(model, "inside", False)


def test_a_head_without_the_switch_runs_end_to_end(yolo26n):
    switched_off = Record()
    switched_off.__setstate__({"_end2end": False})  # what unpickling a head saved with end2end=False gives
    assert saved_end2end(Record()) and not saved_end2end(switched_off)
    assert pick_head(yolo26n, None, False)[0] == "e2e"


def test_val_runs_at_the_training_size(saved_o2m):
    detector = open_source_detector(saved_o2m)
    assert detector.meta.imgsz == [320, 320] and detector.meta.decode.method == "nms"
    assert detector.notes[0] == (
        "imgsz    320x320: the size o2m was trained at (its train_args.imgsz 320; --imgsz to change)"
    )
    assert detector.notes[1].startswith("head     one-to-many + NMS: the head Ultralytics runs for this file")


def test_input_size_rules(saved_o2m):
    source = open_source(saved_o2m)
    assert source.input_size() == ((320, 320), source.input_size()[1])
    assert source.input_size([256]) == ((256, 256), "256x256: as asked (--imgsz, or a --device profile)")
    assert source.input_size((192, 256))[0] == (192, 256)
    odd = replace(source, train_imgsz=((300, 300), "train_args.imgsz"))
    assert odd.input_size()[0] == (320, 320)  # rounded up, as Ultralytics' check_imgsz does
    assert "(its train_args.imgsz 300, rounded up to the stride 32; --imgsz to change)" in odd.input_size()[1]
    none = replace(source, train_imgsz=None).input_size()
    assert none == ((640, 640), "640x640: the default (o2m.pt records no training size)")
    built = replace(source, path=None, train_imgsz=None).input_size()[1]
    assert built == "640x640: the default (an architecture name has no training size)"
    with pytest.raises(EdgekitError, match="multiples of the model's stride 32"):
        source.input_size([300])


@pytest.mark.parametrize(
    "data, found",
    [
        ({"train_args": {"imgsz": 320}}, ((320, 320), "train_args.imgsz")),
        ({"train_args": {"imgsz": [256, 320]}}, ((256, 320), "train_args.imgsz")),
        ({"opt": {"imgsz": 416, "epochs": 3}}, ((416, 416), "opt.imgsz")),
        ({"opt": {"img_size": [640, 640]}}, None),
        ({"train_args": {"imgsz": "big"}}, None),
        ({"train_args": {"imgsz": 0}}, None),
        ({"model": {}}, None),
    ],
)
def test_training_size_recorded(tmp_path, data, found):
    torch.save(data, tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt").training_size() == found


def test_cli_val_both_heads(saved_o2m, tmp_path):
    images = sorted((SCENES.parent / "images" / "val").iterdir())[:3]
    (tmp_path / "val.txt").write_text("".join(f"{p}\n" for p in images))
    data = tmp_path / "data.yaml"
    data.write_text(SCENES.read_text().replace("val: images/val", f"val: {tmp_path / 'val.txt'}"))
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "val", str(saved_o2m), "--data", str(data), "--quiet", "--both-heads"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("imgsz    320x320: the size o2m was trained at")
    assert lines[1].split() == ["head", "P", "R", "mAP50", "mAP50-95", "ms/image"]
    assert lines[2].startswith("one-to-one ") and not lines[2].endswith("(default)")
    assert lines[3].startswith("one-to-many + NMS") and lines[3].endswith("(default)")


def test_both_heads_needs_an_end_to_end_model():
    with pytest.raises(EdgekitError, match="one output head"):
        validate_heads("yolov9-t", load_dataset(SCENES, "val"), 128, progress=False)


@pytest.mark.parametrize("name", ["yolo26n.pt", "yolov9-t.pt"])
def test_trained_fixtures_record_the_size_they_were_trained_at(name):
    fixtures = SCENES.parents[1]
    trained = json.loads((fixtures / "expected.json").read_text())[name]["imgsz"]
    assert load_checkpoint(fixtures / name).training_size()[0] == (trained, trained)
