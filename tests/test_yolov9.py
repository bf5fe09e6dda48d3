"""YOLOv9: safe checkpoint reading, strict loading, PGI stripping for every size, export and verification."""

import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import pytest
import torch

import edgekit
from edgekit import assets
from edgekit.converters.convert import convert
from edgekit.converters.families import open_source
from edgekit.converters.families.yolov9 import strip_pgi, to_deploy
from edgekit.converters.source import boxes_scores_from_packed
from edgekit.errors import EdgekitError
from edgekit.images import read_image
from edgekit.meta import KEY
from edgekit.models import yolov9 as Y
from edgekit.models.checkpoint import load_checkpoint
from edgekit.models.facts import count_gflops, count_params
from edgekit.runtimes.decode import decode_nms
from edgekit.runtimes.preprocess import preprocess

from checkpoints import random_yolov9, write_yolov9_checkpoint

SIZES = ["t", "s", "m", "c", "e"]
# official figures (thop, 640x640): deploy form = gelan fused; training form = with PGI, unfused
DEPLOY = {"t": (2.408, 9.82), "s": (7.106, 26.38), "m": (19.979, 76.32), "c": (25.289, 102.15), "e": (57.346, 188.95)}
TRAINING = {
    "t": (3.718, 16.53),
    "s": (9.805, 39.95),
    "m": (32.878, 133.02),
    "c": (51.182, 239.88),
    "e": (69.530, 245.53),
}


@pytest.fixture(scope="module")
def t_checkpoint(tmp_path_factory):
    return write_yolov9_checkpoint(random_yolov9("yolov9-t", nc=12), tmp_path_factory.mktemp("ckpt") / "yolov9-t.pt")


def test_checkpoint_is_read_without_the_reference_code(t_checkpoint):
    assert "models" not in sys.modules
    ckpt = load_checkpoint(t_checkpoint)
    assert "models.yolo.DualDDetect" in ckpt.globals and "models" not in sys.modules
    record = ckpt.model_record()
    assert record.type_name == "DetectionModel" and record.yaml["nc"] == 12
    assert record.names == [f"cls{i}" for i in range(12)]


def test_ema_is_preferred_over_model(tmp_path):
    model = random_yolov9("yolov9-t", nc=3, seed=1)
    other = random_yolov9("yolov9-t", nc=3, seed=2)
    path = write_yolov9_checkpoint(model, tmp_path / "a.pt", ema=False, extra={"ema": None})
    ckpt_model = Y.from_checkpoint(load_checkpoint(path))
    import copy

    from checkpoints import stand_in_modules, yolov9_names

    data = {"model": copy.deepcopy(model).half(), "ema": copy.deepcopy(other).half()}
    with stand_in_modules([data["model"], data["ema"]], yolov9_names()):
        torch.save(data, tmp_path / "b.pt")
    ckpt_ema = Y.from_checkpoint(load_checkpoint(tmp_path / "b.pt"))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ckpt_ema(x)[1], other.half().float()(x)[1], atol=1e-4, rtol=1e-4)
        assert not torch.allclose(ckpt_model(x)[1], ckpt_ema(x)[1])


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Payload()}, path)
    with pytest.raises(EdgekitError, match=r"refused to load: its pickle calls posix\.system"):
        load_checkpoint(path)
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "convert", str(path), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "refused to load" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt"]


def test_eval_builtin_is_refused_too(tmp_path):
    class Payload:
        def __reduce__(self):
            return (eval, ("__import__('os').getcwd()",))

    torch.save({"model": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(EdgekitError, match=r"builtins\.eval"):
        load_checkpoint(tmp_path / "evil.pt")


@pytest.mark.parametrize("size", SIZES)
def test_deploy_form_matches_official_gelan_and_the_main_head(size):
    model = random_yolov9(f"yolov9-{size}")
    deploy, notes = to_deploy(model)
    assert count_params(model) / 1e6 == pytest.approx(TRAINING[size][0], rel=5e-4)
    assert count_params(deploy) / 1e6 == pytest.approx(DEPLOY[size][0], rel=5e-3)
    assert "auxiliary head removed" in notes[0]
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        expected = boxes_scores_from_packed(model(x)[1], 128, 96)
        boxes, scores = deploy(x)
    torch.testing.assert_close(boxes, expected["boxes"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(scores, expected["scores"], atol=1e-5, rtol=1e-4)
    assert float(scores.max()) < 0.999 and float(scores.std()) > 0.1  # spread, not saturated: ties would hide errors


@pytest.mark.parametrize("size", ["t", "s"])
def test_gflops_of_small_sizes(size):
    model = Y.build(f"gelan-{size}")
    deploy, _ = to_deploy(model)
    assert count_gflops(deploy, 640) == pytest.approx(DEPLOY[size][1], rel=5e-3)


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
def test_gflops_of_every_size(size):
    model = Y.build(f"yolov9-{size}")
    assert count_gflops(model, 640) == pytest.approx(TRAINING[size][1], rel=5e-3)
    assert count_gflops(to_deploy(model)[0], 640) == pytest.approx(DEPLOY[size][1], rel=5e-3)


def test_gelan_checkpoint_has_nothing_to_strip():
    model = random_yolov9("gelan-t")
    stripped, removed = strip_pgi(model)
    assert removed == 0 and not stripped.dual


def _convert_and_check(tmp_path, arch, imgsz=160, nc=5):
    model = random_yolov9(arch, nc=nc)
    ckpt = write_yolov9_checkpoint(model, tmp_path / f"{arch}.pt")
    out = tmp_path / "out"
    result = convert(ckpt, imgsz=imgsz, out_dir=out)
    # far inside the converter's own gate (1e-3 / 1e-4): measured about 2e-7 / 4e-7
    assert result.verification.max_abs["boxes"] <= 2e-5 and result.verification.max_abs["scores"] <= 2e-5
    onnx_model = onnx.load(str(result.path))
    assert onnx_model.opset_import[0].version >= 17
    assert [i.name for i in onnx_model.graph.input] == ["images"]
    assert [o.name for o in onnx_model.graph.output] == ["boxes", "scores"]
    dims = [d.dim_value for d in onnx_model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, imgsz, imgsz]
    props = {p.key: p.value for p in onnx_model.metadata_props}
    assert KEY in props
    detector = edgekit.load(result.path)
    assert detector.meta.family == "yolov9" and detector.meta.variant == arch
    assert detector.meta.classes == [f"cls{i}" for i in range(nc)]
    assert detector.meta.verification["passed"] and detector.meta.source.file == f"{arch}.pt"
    return result, detector


@pytest.mark.parametrize("arch", ["yolov9-t", "gelan-t"])
@pytest.mark.convert
def test_convert_small_checkpoints_and_predict(tmp_path, arch):
    _, detector = _convert_and_check(tmp_path, arch)
    image = read_image(assets.shapes_image())
    found = detector(image, conf=0.3)
    assert found.image_size == (480, 640) and len(found) > 0
    # the network's own outputs for the photo, decoded, then taken back through the letterbox by hand:
    # 640x480 fits 160x160 at scale 0.25 (160x120), centred with 20 rows of padding above
    meta = detector.meta
    x, _ = preprocess(image, meta.input, meta.imgsz)
    raw = detector.engine.run({meta.input.name: x})
    expected = decode_nms(raw["boxes"][0], raw["scores"][0], 0.3, meta.decode.iou, meta.decode.max_det)
    unclipped = (expected.xyxy * 160 - [0, 20, 0, 20]) / 0.25
    assert len(found) == len(expected.confidence)
    np.testing.assert_allclose(found.xyxy, np.clip(unclipped, 0, [640, 480, 640, 480]), atol=1e-3)
    np.testing.assert_allclose(found.confidence, expected.confidence, atol=1e-6)
    np.testing.assert_array_equal(found.class_id, expected.class_id)


@pytest.mark.slow
@pytest.mark.parametrize("arch", [f"{form}-{size}" for size in "smce" for form in ("yolov9", "gelan")])
def test_convert_every_size(tmp_path, arch):
    _convert_and_check(tmp_path, arch, imgsz=320)


@pytest.mark.convert
def test_half_and_dynamic_exports(tmp_path):
    ckpt = write_yolov9_checkpoint(random_yolov9("gelan-t", nc=4), tmp_path / "g.pt")
    half = convert(ckpt, imgsz=128, half=True, out_dir=tmp_path)
    assert half.path.name == "g-fp16.onnx" and half.verification.passed and half.precision == "fp16"
    assert edgekit.load(half.path).meta.precision == "fp16"
    dyn = convert(ckpt, imgsz=128, dynamic=True, out_dir=tmp_path / "d")
    detector = edgekit.load(dyn.path, imgsz=192)
    assert detector.meta.imgsz == (192, 192)
    images = [read_image(assets.shapes_image()), np.full((100, 120, 3), 200, np.uint8)]
    batch = detector(images)  # one run of a batch of two, each image decoded from its own outputs
    assert len(batch) == len(images)
    for together, image in zip(batch, images):
        alone = detector(image)
        assert together.image_size == image.shape[:2] and len(together) == len(alone) > 0
        np.testing.assert_allclose(together.xyxy, alone.xyxy, atol=1e-3)
        np.testing.assert_allclose(together.confidence, alone.confidence, atol=1e-5)


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def _assert_one_line_error(proc, message, out_dir):
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not out_dir.exists() or not list(out_dir.iterdir())


def test_truncated_checkpoint(tmp_path, t_checkpoint):
    data = t_checkpoint.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    _assert_one_line_error(_cli("convert", tmp_path / "cut.pt", "--out", tmp_path / "o"), "cut.pt", tmp_path / "o")


def test_pickle_of_something_else(tmp_path):
    torch.save({"weights": [1, 2, 3]}, tmp_path / "list.pt")
    _assert_one_line_error(
        _cli("convert", tmp_path / "list.pt", "--out", tmp_path / "o"), "no pickled detection model", tmp_path / "o"
    )
    (tmp_path / "plain.pt").write_bytes(pickle.dumps({"a": 1}))
    _assert_one_line_error(
        _cli("convert", tmp_path / "plain.pt", "--out", tmp_path / "o"), "not a torch checkpoint", tmp_path / "o"
    )


def test_unknown_block_in_yaml(tmp_path):
    model = random_yolov9("gelan-t", nc=3)
    model.yaml["backbone"][2][2] = "FancyBlock"
    path = write_yolov9_checkpoint(model, tmp_path / "fancy.pt")
    _assert_one_line_error(
        _cli("convert", path, "--out", tmp_path / "o"), "unknown block 'FancyBlock' in layer 2", tmp_path / "o"
    )


def test_class_count_mismatch(tmp_path):
    model = random_yolov9("gelan-t", nc=3)
    model.yaml["nc"] = 7
    path = write_yolov9_checkpoint(model, tmp_path / "nc.pt")
    _assert_one_line_error(
        _cli("convert", path, "--out", tmp_path / "o"), "class-count mismatch: the yaml says nc=7", tmp_path / "o"
    )
    model = random_yolov9("gelan-t", nc=3)
    model.names = ["a", "b"]
    path = write_yolov9_checkpoint(model, tmp_path / "names.pt")
    _assert_one_line_error(_cli("convert", path, "--out", tmp_path / "o"), "2 names for nc=3", tmp_path / "o")


def test_strict_loading_names_the_keys(tmp_path):
    model = random_yolov9("gelan-t", nc=3)
    del model.model[2].cv4.bn
    model.model[2].cv4.bn = torch.nn.Identity()
    model.model[4].extra = torch.nn.Conv2d(1, 1, 1)
    path = write_yolov9_checkpoint(model, tmp_path / "keys.pt")
    with pytest.raises(EdgekitError) as err:
        open_source(path)
    assert "missing 5 key(s): model.2.cv4.bn.weight" in str(err.value)
    assert "unexpected 2 key(s): model.4.extra.weight" in str(err.value)


def test_inspect_architecture_and_checkpoint(t_checkpoint):
    proc = _cli("inspect", "yolov9-c", "--json")
    assert proc.returncode == 0, proc.stderr
    import json

    report = json.loads(proc.stdout)
    assert report["training"]["params"] / 1e6 == pytest.approx(51.182, rel=1e-3)
    assert report["deploy"]["params"] / 1e6 == pytest.approx(25.289, rel=5e-3)
    assert report["deploy"]["gflops"] == pytest.approx(102.15, rel=5e-3)
    proc = _cli("inspect", t_checkpoint)
    assert proc.returncode == 0 and "yolov9 yolov9-t, 12 classes" in proc.stdout
    assert zipfile.is_zipfile(t_checkpoint)


def test_batchnorm_eps_comes_from_the_checkpoint(tmp_path):
    """A state_dict does not hold BatchNorm eps; the pickled modules do (the trainers set 1e-3)."""
    model = random_yolov9("gelan-t", nc=3)
    assert {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-3}
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 1e-5
    path = write_yolov9_checkpoint(model, tmp_path / "eps.pt")
    loaded = Y.from_checkpoint(load_checkpoint(path))
    assert {m.eps for m in loaded.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-5}
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.half().float()(x), atol=1e-5, rtol=1e-4)
