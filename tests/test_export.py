"""The shared export machinery: BatchNorm folding, ONNX export with metadata, always-on verification."""

import hashlib

import numpy as np
import pytest
import torch

import edgekit
from edgekit.converters.context import ExportContext
from edgekit.converters.convert import convert, export_target, verification_images
from edgekit.converters.families import open_source
from edgekit.meta import ModelMeta
from edgekit.models.fuse import fold_all_bn, fold_bn
from edgekit.models.shapesnet import ShapesNet
from edgekit.runtimes.decode import decode_nms
from edgekit.runtimes.preprocess import preprocess


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics, so folding errors cannot hide behind identity BNs."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.2)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)


def test_fold_bn_is_exact():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 16, 3, padding=1, groups=2, bias=False)
    bn = torch.nn.BatchNorm2d(16, eps=1e-3)
    randomize_bn(torch.nn.Sequential(bn))
    bn.eval()
    x = torch.randn(2, 8, 12, 12)
    torch.testing.assert_close(fold_bn(conv, bn)(x), bn(conv(x)), atol=1e-5, rtol=1e-5)


def test_fold_all_bn_keeps_the_forward():
    torch.manual_seed(0)
    model = ShapesNet().eval()
    randomize_bn(model)
    x = torch.rand(1, 3, 64, 64)
    before = model(x)
    assert fold_all_bn(model) == sum(1 for m in ShapesNet().modules() if isinstance(m, torch.nn.BatchNorm2d))
    after = model(x)
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    torch.manual_seed(0)
    model = ShapesNet()
    randomize_bn(model)
    path = tmp_path_factory.mktemp("w") / "shapes.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.convert
def test_conversion_embeds_verified_metadata_and_runs(random_weights, tmp_path):
    found = convert(random_weights, imgsz=128, out_dir=tmp_path)
    out, result = found.path, found.verification
    assert out == tmp_path / "shapes.onnx"
    assert result.max_abs["boxes"] <= 2e-5 and result.max_abs["scores"] <= 2e-5  # the gate is 1e-3 / 1e-4
    detector = edgekit.load(out)
    meta = detector.meta
    assert meta.verification["passed"] and meta.verification["inputs"] == 4
    assert meta.source.file == "shapes.pt"
    assert meta.source.sha256 == hashlib.sha256(random_weights.read_bytes()).hexdigest()
    assert meta.imgsz == (128, 128) and meta.classes == ["circle", "square", "triangle"]
    image = np.full((90, 160, 3), 127, np.uint8)
    found = detector(image, conf=0.0)
    # the network's own outputs for this image, decoded, then taken back through the letterbox by hand:
    # 160x90 fits 128x128 at scale 0.8 (128x72), centred with 28 rows of padding above
    x, _ = preprocess(image, meta.input, meta.imgsz)
    raw = detector.engine.run({meta.input.name: x})
    expected = decode_nms(raw["boxes"][0], raw["scores"][0], 0.0, meta.decode.iou, meta.decode.max_det)
    unclipped = (expected.xyxy * 128 - [0, 28, 0, 28]) / 0.8
    assert len(found) == len(expected.confidence) > 0
    np.testing.assert_allclose(found.xyxy, np.clip(unclipped, 0, [160, 90, 160, 90]), atol=1e-3)
    np.testing.assert_allclose(found.confidence, expected.confidence, atol=1e-6)
    np.testing.assert_array_equal(found.class_id, expected.class_id)


@pytest.mark.convert
def test_failed_verification_leaves_nothing(random_weights, tmp_path):
    source = open_source(random_weights)
    right = source.reference
    source.reference = lambda x: {k: v + (1e-3 if k == "scores" else 0) for k, v in right(x).items()}
    meta = ModelMeta(source.family, source.variant, source.classes, (64, 64))
    ctx = ExportContext(
        source, source.make_deploy(), meta, verification_images(1, 1), tmp_path / "work"
    )
    (tmp_path / "work").mkdir()
    result = export_target(ctx, "onnx", "fp32", tmp_path / "out", "bad")
    assert not result.ok and "verification failed: scores" in result.error
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.convert
def test_conversion_of_the_demo_weights_by_state_dict(random_weights, tmp_path):
    result = convert(random_weights, imgsz=96, out_dir=tmp_path)
    assert result.path.name == "shapes.onnx" and result.verification.passed


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os

    from edgekit.fileio import atomic_write_bytes

    umask = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644 and path.read_bytes() == b"x"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
