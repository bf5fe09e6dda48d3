"""NCNN: pnnx conversion to a NAME[-fp16|-int8]_ncnn folder (model.param + model.bin + metadata.json), INT8
written by edgekit in NCNN's int8 form, its engine, what it refuses, and one-line errors for a missing ncnn or
pnnx. FP32 agreement with every other engine is in test_backends.test_same_detections_on_every_engine."""

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import edgekit
from edgekit import assets
from edgekit.converters.backends.ncnn import PixelUnshuffleFocus, ncnn_ready, rename_blobs
from edgekit.converters.backends.ncnn.int8 import is_grouped, ncnn_decode_region
from edgekit.converters.backends.ncnn.model_file import TAG_INT8, NcnnModel
from edgekit.converters.convert import convert_many
from edgekit.converters.verify import detection_rows, match_rows, matched_f1
from edgekit.errors import EdgekitError
from edgekit.eval import synthetic
from edgekit.images import read_image
from edgekit.models.damo_blocks import Focus
from edgekit.runtimes.fp16_check import check_fp16
from edgekit.runtimes.ncnn import NCNNEngine, param_io, param_layers
from edgekit.runtimes.settings import EngineSettings
from edgekit.tolerances import FP16_TOLERANCE, FP32_TOLERANCE

from checkpoints import family_checkpoints

IMGSZ = 160
FAMILY_OPTIONS = {"yolov9": {}, "yolo26": {"topk": "runtime"}, "damo": {}}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return family_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.mark.parametrize("family", ["yolov9", "yolo26", "damo"])
@pytest.mark.convert
def test_fp16_folder_detects_as_onnx_runtime_does(checkpoints, tmp_path, family):
    options = FAMILY_OPTIONS[family]
    onnx = convert_many(checkpoints[family], "onnx", "fp32", IMGSZ, tmp_path, **options)[0]
    result = convert_many(checkpoints[family], "ncnn", "fp16", IMGSZ, tmp_path, **options)[0]
    assert onnx.ok and result.ok, (onnx.error, result.error)
    stem = onnx.path.name.removesuffix(".onnx")
    assert result.path == tmp_path / f"{stem}-fp16_ncnn"
    assert sorted(p.name for p in result.path.iterdir()) == ["metadata.json", "model.bin", "model.param"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([onnx.path.name, result.path.name])
    assert result.verification.max_abs["boxes"] <= 1e-2 and result.verification.max_abs["scores"] <= 1e-2

    ncnn, reference = edgekit.load(result.path), edgekit.load(onnx.path)
    assert ncnn.engine.backend == "ncnn" and ncnn.meta.precision == "fp16"
    image = read_image(assets.shapes_image())
    expected, got = detection_rows(reference(image, conf=0.3)), detection_rows(ncnn(image, conf=0.3))
    assert len(expected) > 0
    boxes, scores, unmatched = match_rows(expected, got, 1e-2)
    # random weights score uniform regions (the letterbox padding) nearly alike, so FP16 weights may make NMS
    # keep the other of two tied boxes: at most one row in twenty (or one) may differ, the rest agree
    allowed = max(1, 0.05 * len(expected))
    assert unmatched <= allowed and scores.max() <= 1e-2, (unmatched, len(expected), scores.max())
    assert int((boxes > 0.5).sum()) <= allowed, (boxes, len(expected))


@pytest.mark.convert
def test_metadata_json_blob_names_and_fp16_weights(checkpoints, tmp_path):
    results = convert_many(checkpoints["yolov9"], "ncnn", "fp32,fp16", IMGSZ, tmp_path)
    assert all(r.ok for r in results), [r.error for r in results]
    fp32, fp16 = (r.path for r in results)
    assert (fp32.name, fp16.name) == ("gelan-t_ncnn", "gelan-t-fp16_ncnn")
    meta = json.loads((fp16 / "metadata.json").read_text())
    assert meta["precision"] == "fp16" and meta["family"] == "yolov9" and meta["imgsz"] == [IMGSZ, IMGSZ]
    assert meta["verification"]["passed"] and meta["verification"]["backend"] == "ncnn"
    assert meta["outputs"]["kind"] == "boxes_scores" and meta["outputs"]["names"] == ["boxes", "scores"]
    assert param_io((fp32 / "model.param").read_text()) == (["images"], ["boxes", "scores"])
    engine = NCNNEngine(fp32)
    assert [i.name for i in engine.inputs] == ["images"] and engine.inputs[0].shape == (1, 3, IMGSZ, IMGSZ)
    assert edgekit.load(fp32 / "model.param").meta == edgekit.load(fp32).meta
    ratio = (fp16 / "model.bin").stat().st_size / (fp32 / "model.bin").stat().st_size
    assert 0.45 < ratio < 0.55, ratio  # float16 weights


@pytest.mark.convert
def test_fp16_check_holds_an_fp16_form_to_fp16_tolerance(checkpoints, tmp_path):
    fp32, fp16 = (r.path for r in convert_many(checkpoints["yolov9"], "ncnn", "fp32,fp16", IMGSZ, tmp_path))
    x = {"images": np.random.default_rng(1).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)}
    exact, half = NCNNEngine(fp32), NCNNEngine(fp16)  # FP16 weights: the numbers FP16 storage gives
    check = check_fp16(lambda: exact.run(x), lambda: half.run(x))
    assert check.passed and check.tolerance == {"boxes": FP16_TOLERANCE["boxes"], "scores": FP16_TOLERANCE["scores"]}
    assert 0 < check.max_abs["scores"] <= FP16_TOLERANCE["scores"], check.max_abs
    strict = check_fp16(lambda: exact.run(x), lambda: half.run(x), FP32_TOLERANCE)
    assert not strict.passed and "outside FP16 tolerance" in strict.summary()
    assert check_fp16(lambda: exact.run(x), lambda: exact.run(x), {}).passed  # same form: exact
    assert not check_fp16(lambda: exact.run(x), lambda: half.run(x), {}).passed  # unnamed outputs: exact
    with pytest.raises(ValueError, match="outputs differ"):
        check_fp16(lambda: exact.run(x), lambda: {"boxes": exact.run(x)["boxes"]})


@pytest.mark.convert
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 has no FP16 arithmetic")
def test_fp16_request_stays_fp32_on_a_cpu_without_fp16_arithmetic(checkpoints, tmp_path):
    folder = convert_many(checkpoints["yolo26"], "ncnn", "fp32", IMGSZ, tmp_path, topk="runtime")[0].path
    engine = NCNNEngine(folder, settings=EngineSettings(fp16=True))
    assert not engine.fp16_active and not engine.net.opt.use_fp16_arithmetic and engine.fp16_check is None
    assert engine.fp16_reason == "FP32: this CPU has no FP16 arithmetic"


USERLAND = Path("/tmp/edgekit-arm64")  # scripts/arm64_userland.sh


@pytest.mark.slow
@pytest.mark.convert
@pytest.mark.skipif(
    not (shutil.which("qemu-aarch64") and (USERLAND / "root-a76/usr/bin/python3.11").exists()),
    reason="needs qemu-user and the userland of scripts/arm64_userland.sh (with its Cortex-A76 root)",
)
def test_fp16_check_runs_on_an_emulated_cortex_a76(checkpoints, tmp_path):
    """On a core with FP16 arithmetic the request runs the check; the file runs in FP16 only if it passed."""
    folder = convert_many(checkpoints["yolov9"], "ncnn", "fp32", IMGSZ, tmp_path)[0].path
    script = (
        "import json, sys\nfrom edgekit.runtimes.ncnn import NCNNEngine\n"
        "from edgekit.runtimes.settings import EngineSettings\n"
        "e = NCNNEngine(sys.argv[1], settings=EngineSettings(fp16=True))\n"
        "print(json.dumps([e.fp16_active, e.net.opt.use_fp16_arithmetic, e.fp16_check.passed,"
        " e.fp16_check.max_abs, e.fp16_reason]))\n"
    )
    done = subprocess.run(
        ["qemu-aarch64", "-cpu", "cortex-a76", "-L", str(USERLAND / "root-a76"),
         str(USERLAND / "rootfs/usr/bin/python3.11"), "-c", script, str(folder)],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{Path(__file__).parents[1]}:{USERLAND / 'site'}",
             "HOME": str(tmp_path), "OMP_WAIT_POLICY": "PASSIVE"},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    active, switched, passed, max_abs, reason = json.loads(done.stdout.strip().splitlines()[-1])
    assert active == switched == passed
    assert max_abs["scores"] > 0 and max_abs["boxes"] > 0, max_abs  # FP16 arithmetic ran: numbers moved
    assert reason.startswith("FP16: within" if passed else "FP32: outside"), reason


@pytest.mark.convert
def test_engine_switches(checkpoints, tmp_path):
    folder = convert_many(checkpoints["yolo26"], "ncnn", "fp32", IMGSZ, tmp_path, topk="runtime")[0].path
    x = np.random.default_rng(0).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)
    exact = NCNNEngine(folder, threads=1)
    assert exact.net.opt.num_threads == 1 and not exact.net.opt.use_fp16_storage
    half = NCNNEngine(folder, fp16_storage=True, fp16_arithmetic=True)
    assert half.net.opt.use_fp16_storage and half.net.opt.use_fp16_arithmetic
    a, b = exact.run({"images": x}), half.run({"images": x})
    assert a["boxes"].shape == (1, (IMGSZ // 8) ** 2 + (IMGSZ // 16) ** 2 + (IMGSZ // 32) ** 2, 4)
    assert a["scores"].shape[-1] == 5
    for name in ("boxes", "scores"):
        np.testing.assert_allclose(b[name], a[name], atol=2e-2)
    with pytest.raises(EdgekitError, match="one image at a time"):
        exact.run({"images": np.concatenate([x, x])})


def test_focus_becomes_pixel_unshuffle_with_the_same_outputs():
    torch.manual_seed(0)
    focus = Focus(3, 16, 3).eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(PixelUnshuffleFocus(focus)(x), focus(x), atol=1e-5, rtol=1e-5)
        model = torch.nn.Sequential(focus, torch.nn.Identity())
        ready = ncnn_ready(model)
        assert isinstance(ready[0], PixelUnshuffleFocus) and isinstance(model[0], Focus)  # a copy is rewritten


def test_param_io_and_rename():
    text = (
        "7767517\n4 5\n"
        "Input in0 0 1 in0\n"
        "Split splitncnn_0 1 2 in0 1 2\n"
        "Convolution conv_0 1 1 1 out0 0=4 1=1\n"
        "Sigmoid sigmoid_0 1 1 2 out1\n"
    )
    assert param_io(text) == (["in0"], ["out0", "out1"])
    renamed = rename_blobs(text, {"in0": "images", "out0": "boxes", "out1": "scores"})
    assert param_io(renamed) == (["images"], ["boxes", "scores"])
    assert "Input images 0 1 images" in renamed and "Convolution conv_0 1 1 1 boxes 0=4 1=1" in renamed
    with pytest.raises(EdgekitError, match=r"not an NCNN \.param"):
        param_io("<?xml version='1.0'?>")


@pytest.mark.convert
def test_failed_ncnn_targets_leave_nothing_and_spare_the_others(checkpoints, tmp_path):
    results = convert_many(checkpoints["yolo26"], "onnx,ncnn", "fp32", IMGSZ, tmp_path, topk="graph")  # asked for
    assert [r.ok for r in results] == [True, False]
    assert "--topk runtime" in results[1].error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["yolo26n.onnx"]
    calib = assets.shapes_image().parent
    int8 = convert_many(checkpoints["yolo26"], "ncnn", "int8", IMGSZ, tmp_path / "int8", calib=calib, topk="graph")[0]
    assert not int8.ok and "--topk runtime" in int8.error
    assert not (tmp_path / "int8").exists()  # every target failed: not even the folder is left


def int8_layers(folder):
    """Names of the layers of an NCNN folder's .param that carry int8_scale_term (parameter 8)."""
    lines = (folder / "model.param").read_text().splitlines()[2:]
    return {line.split()[1] for line in lines if any(f.startswith("8=") for f in line.split())}


def check_int8_folder(fp32, int8, image):
    """The INT8 folder has int8 convolutions stored as int8 in the .bin, a float decode region, and detects what
    the FP32 folder detects; returns the FP32 model and the quantized layer names."""
    model = NcnnModel.read(fp32 / "model.param", fp32 / "model.bin")
    quantized = int8_layers(int8)
    convs = {layer.name for layer in model.layers if layer.kind in ("Convolution", "ConvolutionDepthWise")}
    region = ncnn_decode_region(model, set())
    assert quantized and quantized <= convs and not quantized & region, (quantized, region)
    assert {k for k, *_ in param_layers((int8 / "model.param").read_text())} == {layer.kind for layer in model.layers}
    first = next(layer for layer in model.layers if layer.weights)  # the first weights in the .bin
    assert first.name in quantized and np.fromfile(int8 / "model.bin", "<u4", 1)[0] == TAG_INT8
    assert (int8 / "model.bin").stat().st_size < 0.5 * (fp32 / "model.bin").stat().st_size
    expected, got = edgekit.load(fp32)(image), edgekit.load(int8)(image)
    assert len(expected) > 0
    matched, n_ref, n_got = matched_f1(expected, got)
    assert 2 * matched / (n_ref + n_got) >= 0.8, (matched, n_ref, n_got)
    return model, quantized


@pytest.fixture(scope="module")
def calib_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ncnn-data")
    return synthetic.write_yolo_dataset(root / "calib", 48, seed=1), synthetic.write_yolo_dataset(root / "val", 40, 2)


@pytest.mark.convert
def test_int8_shapesnet_runs_int8_convolutions_with_a_float_decode_region(calib_data, tmp_path):
    calib, val = calib_data
    results = convert_many(assets.demo_checkpoint(), "ncnn", "fp32,int8", 320, tmp_path, calib=calib)
    assert all(r.ok for r in results), [r.error for r in results]
    fp32, int8 = (r.path for r in results)
    assert int8.name == "shapes-int8_ncnn" and int8 == tmp_path / "shapes-int8_ncnn"
    assert results[1].verification.passed and results[1].verification.extra["map50"] >= 0.5
    assert json.loads((int8 / "metadata.json").read_text())["precision"] == "int8"
    image = read_image(assets.shapes_image())
    model, quantized = check_int8_folder(fp32, int8, image)
    region = ncnn_decode_region(model, set())
    assert quantized == {
        layer.name for layer in model.layers if layer.kind in ("Convolution", "ConvolutionDepthWise")
    } - region
    # --max-drop keeps the layers that cost the most in float until the drop fits
    kept = convert_many(assets.demo_checkpoint(), "ncnn", "int8", 320, tmp_path / "budget", calib=calib,
                        val_data=val, max_drop=0.05)[0]
    assert kept.ok, kept.error
    accuracy = edgekit.load(kept.path).meta.accuracy
    assert accuracy["drop"] <= 0.05 and accuracy["speedup"] > 0
    assert not set(accuracy["float_layers"]) & int8_layers(kept.path)
    assert int8_layers(kept.path) | set(accuracy["float_layers"]) == quantized


@pytest.mark.convert
def test_int8_yolov9_keeps_its_dfl_integral_and_grouped_convolutions_in_float(calib_data, tmp_path):
    fixture = Path(__file__).parent / "fixtures" / "families" / "yolov9-t.pt"
    results = convert_many(fixture, "ncnn", "fp32,int8", 320, tmp_path, calib=calib_data[0])
    assert all(r.ok for r in results), [r.error for r in results]
    fp32, int8 = (r.path for r in results)
    scenes = sorted((fixture.parent / "scenes" / "images" / "val").iterdir())
    model, quantized = check_int8_folder(fp32, int8, read_image(scenes[0]))
    # DFL's expectation over 16 distance bins: a 1x1 convolution with weights 0..15, part of decoding
    dfl = [layer.name for layer in model.layers
           if layer.kind == "Convolution" and np.array_equal(layer.weights[0].values, np.arange(16))]
    assert len(dfl) == 1 and dfl[0] not in quantized
    grouped = {layer.name for layer in model.layers if is_grouped(layer)}
    assert grouped and not grouped & quantized
    assert len(quantized) > 100


BLOCK = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == {name!r} or name.startswith({name!r} + '.'):\n"
    "            raise ImportError('blocked')\n"
    "sys.meta_path.insert(0, Block())\n"
    "from edgekit.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)

THIN = (  # the device side: predict with torch, onnx and pnnx unimportable, then name any that got imported
    "import sys\n"
    "BLOCKED = ('torch', 'onnx', 'pnnx')\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in BLOCKED:\n"
    "            raise ImportError('blocked')\n"
    "sys.meta_path.insert(0, Block())\n"
    "from edgekit.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED))\n"
    "sys.exit(code)\n"
)


@pytest.mark.parametrize("missing", ["ncnn", "pnnx"])
@pytest.mark.convert
def test_missing_ncnn_or_pnnx_is_one_line_naming_the_extra(checkpoints, tmp_path, missing):
    command = [sys.executable, "-c", BLOCK.format(name=missing), "convert", str(checkpoints["yolov9"])]
    command += ["--to", "onnx,ncnn", "--imgsz", str(IMGSZ), "--out", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"pip install 'edgekit[{missing}]'" in proc.stdout
    assert "1 of 2 target(s) failed (ncnn fp32)" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gelan-t.onnx"]


@pytest.mark.convert
def test_predict_and_inspect_an_ncnn_folder(checkpoints, tmp_path):
    folder = convert_many(checkpoints["yolov9"], "ncnn", "fp32", IMGSZ, tmp_path)[0].path
    cli = [sys.executable, "-m", "edgekit.cli"]
    shown = subprocess.run([*cli, "inspect", str(folder), "--json"], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["backend"] == "ncnn" and report["metadata"]["verification"]["passed"]
    assert [o["name"] for o in report["outputs"]] == ["boxes", "scores"]
    found = subprocess.run(
        [sys.executable, "-c", THIN, "predict", str(folder), "--json"], capture_output=True, text=True, timeout=300
    )
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert json.loads(lines[0])["source"] == assets.sample_image().name and lines[-1] == "[]"
    blocked = subprocess.run(
        [sys.executable, "-c", BLOCK.format(name="ncnn"), "predict", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert blocked.returncode != 0 and "Traceback" not in blocked.stderr
    lines = blocked.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error:") and "edgekit[ncnn]" in lines[0]
