"""Ultralytics lineages beside YOLO26 and YOLOv9: YOLOv5u, YOLOv8, YOLO11 (one DFL head, NMS) and YOLOv10
(end-to-end). Checkpoints are built from edgekit's layer tables (seeded weights) and pickled in Ultralytics'
layout; Ultralytics itself is not used (the comparison with its forward pass is a reference check outside)."""

import pytest
import torch

import edgekit
from edgekit import assets
from edgekit.benchmark import run_benchmark
from edgekit.converters.convert import convert_many
from edgekit.converters.families import open_source
from edgekit.converters.families.ultralytics import pick_head, to_deploy
from edgekit.converters.options import ConvertOptions
from edgekit.converters.source_detector import open_source_detector
from edgekit.errors import EdgekitError
from edgekit.eval.datasets import load_dataset
from edgekit.eval.synthetic import write_yolo_dataset
from edgekit.eval.val import validate
from edgekit.models import ultralytics as U
from edgekit.models import ultralytics_blocks as B
from edgekit.models.checkpoint import load_checkpoint
from edgekit.models.facts import count_gflops, count_params

from checkpoints import random_ultralytics, randomize, write_ultralytics_checkpoint

# Ultralytics 8.4.190 model.info() at 640: training-form params, fused params, fused GFLOPs
# (/work/refenv: DetectionModel(yaml); model_info; model.fuse(); model_info)
ULTRALYTICS = {
    "yolov5nu": (2654816, 2649200, 7.725),
    "yolov5su": (9153152, 9142496, 23.995),
    "yolov5mu": (25111456, 25091536, 64.206),
    "yolov5lu": (53225024, 53193088, 134.989),
    "yolov5xu": (97276448, 97229648, 246.393),
    "yolov8n": (3157200, 3151904, 8.744),
    "yolov8s": (11166560, 11156544, 28.603),
    "yolov8m": (25902640, 25886080, 78.937),
    "yolov8l": (43691520, 43668288, 165.149),
    "yolov8x": (68229648, 68200608, 257.804),
    "yolo11n": (2624080, 2616248, 6.543),
    "yolo11s": (9458752, 9443760, 21.59),
    "yolo11m": (20114688, 20091712, 68.104),
    "yolo11l": (25372160, 25340992, 87.156),
    "yolo11x": (56966176, 56919424, 195.272),
    "yolov10n": (2775520, 2299264, 6.757),
    "yolov10s": (8128272, 7248960, 21.703),
    "yolov10m": (16576768, 15359488, 59.236),
    "yolov10b": (20574384, 19065792, 92.077),
    "yolov10l": (25888688, 24371008, 120.462),
    "yolov10x": (31808960, 29473568, 160.536),
}
SMALL = [name for name in ULTRALYTICS if name[-1] in "ns" or name[-2:] in ("nu", "su")]
LARGE = [name for name in ULTRALYTICS if name not in SMALL]
LINEAGE = {"yolov5": "yolov5u", "yolov8": "yolov8", "yolo11": "yolo11", "yolov10": "yolov10"}


def deploy_form(model):
    return to_deploy(model.eval(), "e2e" if model.end2end else "o2m")[0]


def check_params(name):
    model = U.build(name)
    training, fused, _ = ULTRALYTICS[name]
    assert model.lineage == LINEAGE[name.rstrip("nsmblxu")]
    assert count_params(model) == training
    assert count_params(deploy_form(model)) == fused


@pytest.mark.parametrize("name", SMALL)
def test_params_of_small_scales_equal_ultralytics(name):
    check_params(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE)
def test_params_of_large_scales_equal_ultralytics(name):
    check_params(name)


@pytest.mark.parametrize("name", ["yolov5nu", "yolov8n", "yolo11n", "yolov10n"])
def test_gflops_within_half_a_percent(name):
    assert count_gflops(deploy_form(U.build(name)), 640) == pytest.approx(ULTRALYTICS[name][2], rel=5e-3)


def test_repvggdw_reparameterizes_exactly():
    torch.manual_seed(0)
    block = randomize(B.CIB(32, 32, shortcut=True, lk=True)).eval()
    x = torch.randn(1, 32, 20, 24)
    with torch.no_grad():
        expected = block(x)
        block.cv1[2].reparameterize()
        got = block(x)
    assert not hasattr(block.cv1[2], "conv1") and block.cv1[2].conv.kernel_size == (7, 7)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_yolov10_deploy_equals_training_branches():
    model = random_ultralytics("yolov10n", nc=4)
    x = torch.rand(1, 3, 128, 160)
    for mode in ("o2o", "o2m"):
        deploy, notes = to_deploy(model, mode)
        assert "re-parameterized" in notes[-1]
        model.head.mode = mode
        with torch.no_grad():
            for a, b in zip(model(x), deploy(x)):
                torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    model.head.mode = "reference"


@pytest.fixture(scope="module")
def yolov10n(tmp_path_factory):
    return random_ultralytics("yolov10n", nc=4)


@pytest.mark.parametrize(("saved", "head"), [(None, "one-to-one"), (True, "one-to-one"), (False, "one-to-many + NMS")])
def test_yolov10_runs_the_head_its_checkpoint_saved(yolov10n, tmp_path, saved, head):
    path = write_ultralytics_checkpoint(yolov10n, tmp_path / "v10.pt", end2end=saved)
    source = open_source(path)
    assert source.family == "yolov10" and source.variant == "yolov10n" and source.head == head
    model = U.from_checkpoint(load_checkpoint(path))
    assert pick_head(model, "runtime", False)[0] == "o2o" and pick_head(model, None, True)[0] == "o2m"


@pytest.mark.parametrize(
    ("edit", "found"),
    [
        ({"yaml_block": "A2C2f"}, "YOLO12"),
        ({"task_class": "RTDETRDetectionModel"}, "RT-DETR"),
        ({"task_class": "YOLOEModel"}, "YOLOE"),
        ({"task_class": "WorldModel"}, "YOLO-World"),
        ({"task_class": "PoseModel"}, "pose"),
    ],
)
def test_out_of_scope_ultralytics_models_are_refused_by_name(tmp_path, edit, found):
    model = random_ultralytics("yolov8n", nc=2)
    if "yaml_block" in edit:
        model.yaml["head"][2][2] = edit["yaml_block"]
    path = write_ultralytics_checkpoint(model, tmp_path / "x.pt", task_class=edit.get("task_class", "DetectionModel"))
    with pytest.raises(EdgekitError) as err:
        open_source(path)
    assert str(err.value).startswith(f"x.pt: an Ultralytics {found} model, which edgekit does not convert (")
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    return write_yolo_dataset(tmp_path_factory.mktemp("calib") / "calib", 16, seed=4)


NAMES = ["cat", "dog", "bird", "car", "tree"]
CASES = {  # checkpoint builder, imgsz
    "yolov8n-gray": (lambda: random_ultralytics("yolov8n", nc=5, channels=1, seed=1), (128, 160)),
    "yolo11n": (lambda: random_ultralytics("yolo11n", nc=3, seed=2), 128),
    "yolov10n": (lambda: random_ultralytics("yolov10n", nc=4, seed=3), 128),
}


@pytest.mark.convert
@pytest.mark.parametrize("case", list(CASES))
def test_every_format_and_precision_converts_and_verifies(case, calib, tmp_path):
    build, imgsz = CASES[case]
    model = build()
    if model.nc == len(NAMES):
        model.names = dict(enumerate(NAMES))
    ckpt = write_ultralytics_checkpoint(model, tmp_path / f"{case}.pt")
    results = convert_many(ckpt, "onnx,openvino,tflite,ncnn", "fp32,int8", imgsz, tmp_path / "out", calib=calib)
    assert [(r.format, r.precision, r.ok) for r in results] == [
        (f, p, True) for f in ("onnx", "openvino", "tflite", "ncnn") for p in ("fp32", "int8")
    ], [r.error for r in results]
    height, width = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    for r in results:
        assert r.verification.passed, (r.format, r.precision)
        detector = edgekit.load(r.path)
        meta = detector.meta
        assert meta.family == model.lineage and tuple(meta.imgsz) == (height, width), r.path
        assert meta.input.channels == model.channels and len(meta.classes) == model.nc
        shape = detector.engine.inputs[0].shape
        assert (shape[1] if meta.input.layout == "NCHW" else shape[3]) == model.channels, (r.format, shape)
        if r.precision == "fp32":
            assert max(r.verification.max_abs.values()) <= 1e-3, (r.format, r.verification.max_abs)
            assert len(detector(assets.shapes_image(), conf=0.2)) > 0
    if model.nc == len(NAMES):
        assert edgekit.load(results[0].path).meta.classes == NAMES
    if model.end2end:  # the one-to-one head: NMS-free, by default
        assert edgekit.load(results[0].path).meta.decode.method in ("none", "topk")
    else:
        assert edgekit.load(results[0].path).meta.decode.method == "nms"


@pytest.mark.convert
def test_val_and_benchmark_of_a_yolov10n_checkpoint(calib, tmp_path):
    ckpt = write_ultralytics_checkpoint(random_ultralytics("yolov10n", nc=3, seed=5), tmp_path / "yolov10n.pt")
    dataset = load_dataset(calib, "val")
    report = validate(open_source_detector(ckpt, 128), dataset, progress=False)
    assert report.images == len(dataset.items) and 0.0 <= report.map50_95 <= 1.0
    bench = run_benchmark(ckpt, calib, ConvertOptions.create("onnx", "fp32", 128), runs=2, progress=False)
    (row,) = bench.rows
    assert row.error is None and row.file == "yolov10n.onnx" and row.ms > 0
    assert row.map50_95 == pytest.approx(report.map50_95, abs=0.005)  # the artifact scores what the checkpoint does
