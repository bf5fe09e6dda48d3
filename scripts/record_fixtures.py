"""Measure the committed family fixtures and write tests/fixtures/families/expected.json.

    python scripts/record_fixtures.py

Each checkpoint is converted to ONNX at its training size and validated on the committed val split: the full
split's mAP (the figures in docs/contributing/fixtures.md) and the first FEW images' (what tests/test_fixtures.py checks quickly).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import edgekit
from edgekit.converters.convert import convert
from edgekit.eval.datasets import load_dataset
from edgekit.eval.val import validate

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "families"
FEW = 24
IMGSZ = 320


def main() -> None:
    data = load_dataset(FIXTURES / "scenes" / "data.yaml", "val")
    few = load_dataset(FIXTURES / "scenes" / "data.yaml", "val")
    few.items = few.items[:FEW]
    expected = {}
    for path in sorted(p for p in FIXTURES.iterdir() if p.suffix in (".pt", ".pth")):
        with tempfile.TemporaryDirectory() as tmp:
            result = convert(path, "onnx", IMGSZ, out_dir=tmp)
            detector = edgekit.load(result.path)
            full = validate(detector, data, progress=False)
            part = validate(detector, few, progress=False)
        expected[path.name] = {
            "family": detector.meta.family,
            "variant": detector.meta.variant,
            "imgsz": IMGSZ,
            "map50_95": round(full.map50_95, 4),
            "map50": round(full.map50, 4),
            "images": full.images,
            "few_images": FEW,
            "few_map50_95": round(part.map50_95, 4),
        }
        print(f"{path.name}: mAP50-95 {full.map50_95:.4f}, mAP50 {full.map50:.4f} on {full.images} val images")
    (FIXTURES / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")


if __name__ == "__main__":
    main()
