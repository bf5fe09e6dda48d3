"""The committed family fixtures (trained by scripts/train_families.py on procedural scenes): each still loads
through its family's real loader, converts, and reaches its recorded mAP on the first val images."""

import json
from pathlib import Path

import pytest

import edgekit
from edgekit.eval.datasets import load_dataset
from edgekit.eval.val import validate

FIXTURES = Path(__file__).parent / "fixtures" / "families"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
TOLERANCE = 0.02


def test_the_recorded_figures_cover_every_family():
    assert {entry["family"] for entry in EXPECTED.values()} == {"yolov9", "damo-yolo", "yolo26"}
    for name, entry in EXPECTED.items():
        assert (FIXTURES / name).is_file() and entry["map50_95"] >= 0.5, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.convert
def test_fixture_loads_converts_and_reaches_its_recorded_map(name, tmp_path):
    pytest.importorskip("torch")
    from edgekit.converters.convert import convert

    entry = EXPECTED[name]
    result = convert(FIXTURES / name, "onnx", entry["imgsz"], out_dir=tmp_path)
    detector = edgekit.load(result.path)
    assert detector.meta.family == entry["family"] and detector.meta.variant == entry["variant"]
    data = load_dataset(FIXTURES / "scenes" / "data.yaml", "val")
    data.items = data.items[: entry["few_images"]]
    report = validate(detector, data, progress=False)
    assert report.map50_95 == pytest.approx(entry["few_map50_95"], abs=TOLERANCE), report.table()
