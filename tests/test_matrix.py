"""Every family x every registered format, with default options: a hole in the matrix cannot hide.

The whole matrix is slow (`pytest -m slow`); the default run keeps the one cell that was broken (YOLO26 with
its default in-graph top-k to CoreML), so it cannot come back unnoticed.
"""

import json

import pytest

from edgekit import assets
from edgekit.converters.backends import BACKENDS
from edgekit.converters.backends.coreml import spec_of
from edgekit.converters.convert import convert_many
from edgekit.meta import KEY

from checkpoints import (
    random_damo,
    random_ultralytics,
    random_yolov9,
    write_damo_checkpoint,
    write_ultralytics_checkpoint,
    write_yolov9_checkpoint,
)

IMGSZ = 160
FAMILIES = {
    "yolov9": lambda root: write_yolov9_checkpoint(random_yolov9("yolov9-t", nc=5), root / "yolov9-t.pt"),
    "yolo26": lambda root: write_ultralytics_checkpoint(random_ultralytics("yolo26n", nc=5), root / "yolo26n.pt"),
    "ultralytics-yolov9": lambda root: write_ultralytics_checkpoint(
        random_ultralytics("yolov9t", nc=5), root / "yolov9t.pt"
    ),
    "damo": lambda root: write_damo_checkpoint(random_damo("damoyolo-t", 5), root / "damo-t.pth"),
    "shapesnet": lambda root: assets.demo_checkpoint(),
}


@pytest.mark.convert
def test_yolo26_default_topk_converts_to_coreml(tmp_path):
    ckpt = write_ultralytics_checkpoint(random_ultralytics("yolo26n", nc=5), tmp_path / "yolo26n.pt")
    result = convert_many(ckpt, "coreml", "fp32", IMGSZ, tmp_path / "out")[0]
    assert result.ok, result.error
    assert result.verification.max_abs["topk_unmatched"] == 0
    spec = spec_of(result.path)
    outputs = [(o.name, list(o.type.multiArrayType.shape)) for o in spec.description.output]
    assert outputs == [("detections", [1, 300, 6])]
    meta = json.loads(spec.description.metadata.userDefined[KEY])
    assert meta["outputs"]["kind"] == "detections" and meta["decode"]["method"] == "none"


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_converts_to_every_format_with_default_options(tmp_path, family):
    ckpt = FAMILIES[family](tmp_path)
    size = 320 if family == "shapesnet" else IMGSZ
    results = convert_many(ckpt, "all", "fp32", size, tmp_path / "out")
    assert [(r.format, r.ok) for r in results] == [(name, True) for name in BACKENDS], [r.error for r in results]
    assert all(r.verification.passed and r.path.exists() for r in results)
