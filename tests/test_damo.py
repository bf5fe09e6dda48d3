"""DAMO-YOLO: variant recognition, strict loading, RepConv collapse, preprocessing faithfulness, export."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

import edgekit
from edgekit import assets
from edgekit.converters.convert import convert
from edgekit.converters.families import open_source
from edgekit.converters.families.damo import reference_deploy, to_deploy
from edgekit.errors import EdgekitError
from edgekit.models import damo as D
from edgekit.models.checkpoint import load_checkpoint
from edgekit.models.facts import count_gflops, count_params
from edgekit.runtimes.decode import decode_nms
from edgekit.runtimes.preprocess import preprocess

from checkpoints import random_damo, write_damo_checkpoint

VARIANTS = ["damoyolo-t", "damoyolo-s", "damoyolo-m", "damoyolo-l"]
# official figures, 640x640: deploy = RepConv collapsed (the reference's deploy form); training = unfused
DEPLOY = {
    "damoyolo-t": (8.480, 18.12),
    "damoyolo-s": (16.252, 37.78),
    "damoyolo-m": (28.178, 61.89),
    "damoyolo-l": (42.058, 97.46),
}
TRAINING = {
    "damoyolo-t": (8.876, 19.22),
    "damoyolo-s": (16.936, 40.01),
    "damoyolo-m": (29.242, 64.28),
    "damoyolo-l": (43.862, 101.84),
}


@pytest.mark.parametrize("arch", VARIANTS)
def test_params_match_the_official_figures(arch):
    model = D.build(arch).eval()
    assert count_params(model) / 1e6 == pytest.approx(TRAINING[arch][0], rel=5e-4)
    assert count_params(reference_deploy(model)) / 1e6 == pytest.approx(DEPLOY[arch][0], rel=5e-3)
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize("arch", ["damoyolo-t", "damoyolo-s"])
def test_gflops_small_variants(arch):
    model = D.build(arch).eval()
    assert count_gflops(model, 640) == pytest.approx(TRAINING[arch][1], rel=5e-3)
    assert count_gflops(reference_deploy(model), 640) == pytest.approx(DEPLOY[arch][1], rel=5e-3)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["damoyolo-m", "damoyolo-l"])
def test_gflops_large_variants(arch):
    model = D.build(arch).eval()
    assert count_gflops(model, 640) == pytest.approx(TRAINING[arch][1], rel=5e-3)
    assert count_gflops(reference_deploy(model), 640) == pytest.approx(DEPLOY[arch][1], rel=5e-3)


@pytest.mark.parametrize("arch", VARIANTS)
def test_variant_recognised_from_shapes(tmp_path, arch):
    path = write_damo_checkpoint(D.build(arch, 7), tmp_path / "w.pth")
    weights = D.weights_of(load_checkpoint(path))
    assert D.recognise(weights) == (arch, 7)
    wrong = "damoyolo-s" if arch != "damoyolo-s" else "damoyolo-t"
    with pytest.raises(EdgekitError, match=f"the weights do not fit {wrong}: "):
        D.recognise(weights, wrong)


def test_bare_and_ddp_state_dicts(tmp_path):
    model = random_damo("damoyolo-t", 3)
    for kwargs in ({"bare": True}, {"ddp_prefix": True}):
        path = write_damo_checkpoint(model, tmp_path / "w.pth", **kwargs)
        loaded, variant = D.from_checkpoint(load_checkpoint(path))
        assert variant == "damoyolo-t"
        torch.testing.assert_close(loaded.state_dict()["head.gfl_cls.0.weight"], model.head.gfl_cls[0].weight)


@pytest.mark.parametrize("arch", VARIANTS)
def test_deploy_equals_the_training_form(arch):
    model = random_damo(arch, 6)
    deploy, notes = to_deploy(model)
    assert "x255 folded" in notes[1]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deploy.modules())
    x = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        scores, boxes = model(x * 255)
        got_boxes, got_scores = deploy(x)
    torch.testing.assert_close(got_scores, scores, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(got_boxes, boxes / torch.tensor([160, 128, 160, 128]), atol=1e-5, rtol=1e-4)
    assert float(scores.max()) < 0.999 and float(scores.std()) > 0.05


def _convert(tmp_path, arch, imgsz=192, **kwargs):
    path = write_damo_checkpoint(random_damo(arch, 5), tmp_path / f"{arch}.pth")
    result = convert(path, imgsz=imgsz, out_dir=tmp_path / "out", **kwargs)
    # far inside the converter's own gate (1e-3 / 1e-4): measured about 2e-7 / 4e-6
    assert result.verification.max_abs["boxes"] <= 2e-5 and result.verification.max_abs["scores"] <= 2e-5
    return result


@pytest.mark.parametrize("arch", ["damoyolo-t", "damoyolo-s"])
@pytest.mark.convert
def test_convert_and_predict(tmp_path, arch):
    result = _convert(tmp_path, arch)
    detector = edgekit.load(result.path)
    meta = detector.meta
    assert meta.family == "damo-yolo" and meta.variant == arch and meta.decode.multi_label
    assert meta.input.range == (0.0, 1.0) and meta.input.color == "RGB"
    assert not meta.input.letterbox.keep_ratio  # stretched, as the reference's transforms do since v0.3.0
    found = detector(assets.shapes_image(), conf=0.3)
    assert found.image_size == (480, 640) and len(found) > 0


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["damoyolo-m", "damoyolo-l"])
def test_convert_large_variants(tmp_path, arch):
    _convert(tmp_path, arch, imgsz=320)


def test_runtime_preprocessing_is_the_references(tmp_path):
    """The runtime's input tensor equals DAMO-YOLO's test transform applied to the same photo."""
    image = cv2.imread(str(assets.shapes_image()))
    rgb = image[..., ::-1]
    stretched = open_source("damoyolo-t").input
    tensor, _ = preprocess(image, stretched, (256, 320))
    reference = cv2.resize(rgb, (320, 256), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1).astype(np.float32)
    np.testing.assert_allclose(tensor[0] * 255, reference, atol=1e-3)  # x255 lives in the first conv

    kept = open_source("damoyolo-t", keep_ratio=True).input
    tensor, info = preprocess(image, kept, (320, 320))
    ratio = min(320 / 640, 320 / 480)
    w, h = int(640 * ratio), int(480 * ratio)  # the reference floors the scaled size
    padded = np.zeros((3, 320, 320), np.float32)  # and pads with zeros at the bottom and right
    padded[:, :h, :w] = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
    np.testing.assert_allclose(tensor[0] * 255, padded, atol=1e-3)
    assert info.pad == (0, 0)


@pytest.mark.convert
def test_stretched_boxes_map_back_per_axis(tmp_path):
    result = _convert(tmp_path, "damoyolo-t", imgsz=(192, 256))
    detector = edgekit.load(result.path)
    image = np.zeros((100, 400, 3), np.uint8)
    found = detector(image, conf=0.0, max_det=1000)
    # the network's own outputs for this image, decoded, then mapped back by hand: stretched, so a normalized
    # x goes to x * 256 / (256 / 400) = 400 x and a normalized y to 100 y, each clipped to its own axis
    meta = detector.meta
    x, _ = preprocess(image, meta.input, meta.imgsz)
    raw = detector.engine.run({meta.input.name: x})
    expected = decode_nms(raw["boxes"][0], raw["scores"][0], 0.0, meta.decode.iou, 1000, multi_label=True)
    assert len(found) == len(expected.confidence) > 0
    np.testing.assert_allclose(
        found.xyxy, np.clip(expected.xyxy * [400, 100, 400, 100], 0, [400, 100, 400, 100]), atol=1e-3
    )
    np.testing.assert_allclose(found.confidence, expected.confidence, atol=1e-6)
    np.testing.assert_array_equal(found.class_id, expected.class_id)
    assert found.xyxy[:, 2].max() > 300  # x is scaled by 400/256, not by the y ratio


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *map(str, args)], capture_output=True, text=True, timeout=300
    )


@pytest.mark.convert
def test_cli_arch_and_names(tmp_path):
    path = write_damo_checkpoint(random_damo("damoyolo-t", 2), tmp_path / "two.pth")
    proc = _cli("convert", path, "--imgsz", "128", "--arch", "damoyolo-s", "--out", tmp_path / "o")
    assert proc.returncode == 1 and "the weights do not fit damoyolo-s" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()
    proc = _cli("convert", path, "--imgsz", "128", "--names", "cat,dog", "--out", tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    assert edgekit.load(tmp_path / "o" / "two.onnx").names == ["cat", "dog"]
    proc = _cli("convert", path, "--names", "a,b,c", "--out", tmp_path / "p")
    assert proc.returncode == 1 and "3 class names given, the model has 2 classes" in proc.stderr


def test_bad_checkpoints(tmp_path):
    torch.save({"epoch": 1, "model": {"layer.weight": torch.zeros(3)}}, tmp_path / "other.pth")
    proc = _cli("convert", tmp_path / "other.pth", "--out", tmp_path / "o")
    assert proc.returncode == 1 and "does not recognise" in proc.stderr and "Traceback" not in proc.stderr
    weights = D.build("damoyolo-t").state_dict()
    del weights["neck.merge_3.conv1.conv.weight"]
    torch.save({"model": weights}, tmp_path / "cut.pth")
    proc = _cli("convert", tmp_path / "cut.pth", "--out", tmp_path / "o")
    assert proc.returncode == 1 and "missing neck.merge_3.conv1.conv.weight" in proc.stderr
    data = (tmp_path / "cut.pth").read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 3])
    proc = _cli("convert", tmp_path / "trunc.pth", "--out", tmp_path / "o")
    assert proc.returncode == 1 and "trunc.pth" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
