"""Every verb over a corpus of bad inputs: one `edgekit: error:` line naming the problem, a non-zero exit, no
file left behind, and never an unforeseen error (those say "unexpected" and ask for --debug)."""

import shutil

import cv2
import pytest

from edgekit import assets
from edgekit.cli import main

import onnx_models as om


@pytest.fixture()
def corpus(tmp_path):
    files = tmp_path / "in"
    files.mkdir()
    (files / "junk.onnx").write_bytes(b"\x00garbage")
    (files / "empty.onnx").write_bytes(b"")
    (files / "empty.pt").write_bytes(b"")
    (files / "junk.pt").write_bytes(b"not a checkpoint at all")
    ckpt = assets.demo_checkpoint().read_bytes()
    (files / "cut.pt").write_bytes(ckpt[: len(ckpt) // 2])
    (files / "notes.txt").write_text("hello")
    (files / "a_file").write_text("I am a file")
    cv2.imwrite(str(files / "scene.png"), om.scene())
    om.save_with_meta(files / "model.onnx")
    shutil.copy(assets.demo_checkpoint(), files / "demo.pt")
    return files


CASES = [
    (["predict", "{in}/missing.onnx", "{in}/scene.png"], "model not found"),
    (["predict", "{in}/junk.onnx", "{in}/scene.png"], "not a loadable ONNX model"),
    (["predict", "{in}/empty.onnx", "{in}/scene.png"], "not a loadable ONNX model"),
    (["predict", "{in}/model.onnx", "{in}/notes.txt"], "unsupported source type"),
    (["predict", "{in}/model.onnx", "{in}/scene.png", "--classes", "9"], "class id 9 is out of range"),
    (["predict", "{in}/model.onnx", "{in}/scene.png", "--classes", "dog"], "unknown class 'dog'"),
    (["predict", "{in}/model.onnx", "{in}/scene.png", "--save", "{in}/a_file/out"], "{in}/a_file is a file"),
    (["predict", "{in}/model.onnx", "{in}/scene.png", "--save", "{in}/a_file"], "is a file, not a folder"),
    (["inspect", "{in}/junk.onnx"], "not a loadable ONNX model"),
    (["inspect", "{in}/demo.pt", "--imgsz", "33"], "multiples of the model's stride 32"),
    (["inspect", "{in}/empty.pt"], "empty.pt"),
    (["inspect", "{in}/missing.pt"], "checkpoint not found"),
    (["convert", "{in}/missing.pt", "--out", "{out}"], "checkpoint not found"),
    (["convert", "{in}/empty.pt", "--out", "{out}"], "empty.pt"),
    (["convert", "{in}/junk.pt", "--out", "{out}"], "junk.pt"),
    (["convert", "{in}/cut.pt", "--out", "{out}"], "cut.pt"),
    (["convert", "{in}/demo.pt", "--out", "{in}/a_file/out"], "{in}/a_file is a file"),
    (["convert", "{in}/demo.pt", "--out", "{out}", "--imgsz", "33"], "multiples of the model's stride 32"),
    (["convert", "{in}/demo.pt", "--out", "{out}", "--to", "tensorrt"], "unknown format tensorrt"),
    (["convert", "{in}/demo.pt", "--out", "{out}", "--precision", "int4"], "unknown precision int4"),
    (["convert", "{in}/demo.pt", "--out", "{out}", "--precision", "int8"], "INT8 needs calibration images"),
    (["convert", "{in}/demo.pt", "--out", "{out}", "--opset", "11"], "opset 11 is too old"),
    (["convert", "{in}/demo.pt", "--out", "{out}", "--names", "a,b"], "2 class names given"),
    (["convert", "{in}/demo.pt", "--out", "{out}", "--to", "onnx,tflite", "--phone"], "--phone makes a TFLite"),
    (["convert", "{in}/demo.pt", "--out", "{out}", "--precision", "int8", "--calib", "{in}/notes.txt"],
     "calibration data must be"),
    (["convert", "{in}/demo.pt", "--out", "{out}", "--device", "nosuch"], "unknown device 'nosuch'"),
    (["predict", "{in}/model.onnx", "{in}/scene.png", "--device", "nosuch"], "unknown device 'nosuch'"),
    (["devices", "nosuch"], "unknown device 'nosuch'; known devices: rpi5"),
    (["predict", "{in}/demo.pt"], "demo.pt is a training checkpoint, not a model edgekit runs: convert it first"),
    (["predict", "{in}/model.onnx", "{in}/*.jpeg"], "no images match"),
    (["convert", "{in}/model.onnx", "--out", "{out}"], "model.onnx is already a model edgekit runs"),
    (["profile", "{in}/missing.onnx"], "model not found"),
    (["profile", "{in}/junk.onnx"], "not a loadable ONNX model"),
    (["profile", "{in}/scene.png"], "scene.png: unknown model type '.png'"),  # not the demo model profiled instead
    (["profile", "{in}/model.onxx"], "model not found: {in}/model.onxx"),
    (["profile", "{in}/model.onnx", "--runs", "3", "--plot", "{in}/a_file/p.png"], "{in}/a_file is a file"),
    (["profile", "{in}/model.onnx", "--runs", "3", "--csv", "{in}/a_file/p.csv"], "{in}/a_file is a file"),
    (["profile", "{in}/model.onnx", "--runs", "3", "--csv", "{in}"], "is a folder; give a file name"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(a[:1] + a[2:4]) for a, _ in CASES])
def test_bad_input(capsys, tmp_path, corpus, args, message):
    values = {"in": corpus, "out": tmp_path / "out"}
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = main([a.format(**values) for a in args])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("edgekit: error:"), err
    assert message.format(**values) in lines[0], lines[0]
    assert "unexpected" not in lines[0] and "Traceback" not in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written or created


def test_an_unforeseen_error_is_one_line_and_debug_shows_it(capsys, monkeypatch, corpus):
    import edgekit.cli.inspect as inspect_verb

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(inspect_verb, "run", broken)
    code = main(["inspect", str(corpus / "model.onnx")])
    err = capsys.readouterr().err
    assert code == 1 and err == (
        "edgekit: error: unexpected ZeroDivisionError: division by zero (run with --debug for the traceback)\n"
    )
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "inspect", str(corpus / "model.onnx")])


@pytest.mark.convert
def test_architecture_names_warn_and_mark_random_weights(capsys, tmp_path):
    code = main(["convert", "yolo26n", "--imgsz", "64", "--out", str(tmp_path), "--topk", "runtime"])
    err = capsys.readouterr().err
    assert code == 0 and "edgekit: warning: 'yolo26n' is an architecture name, not a checkpoint" in err
    import edgekit

    detector = edgekit.load(tmp_path / "yolo26n-topk.onnx")
    assert detector.meta.random_weights is True
    code = main(["predict", str(tmp_path / "yolo26n-topk.onnx"), str(assets.shapes_image()), "--json"])
    err = capsys.readouterr().err
    assert code == 0 and "edgekit: warning: yolo26n-topk.onnx was converted from an architecture name" in err
    code = main(["inspect", str(tmp_path / "yolo26n-topk.onnx")])
    out, err = capsys.readouterr()
    assert "weights    RANDOM" in out and "edgekit: warning:" in err
    trained = main(["inspect", str(assets.shapes_model())])
    out, err = capsys.readouterr()
    assert trained == 0 and "RANDOM" not in out and err == ""


@pytest.mark.convert
def test_default_output_folder_is_the_checkpoints(capsys, tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt" / "demo.pt"
    ckpt.parent.mkdir()
    shutil.copy(assets.demo_checkpoint(), ckpt)
    monkeypatch.chdir(tmp_path)
    assert main(["convert", str(ckpt), "--imgsz", "64"]) == 0
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["demo.onnx", "demo.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


@pytest.mark.convert
def test_all_targets_failing_leaves_no_folder_and_says_so(capsys, tmp_path):
    code = main(["convert", str(assets.demo_checkpoint()), "--imgsz", "64", "--out", str(tmp_path / "new"),
                 "--to", "tflite", "--nms-in-graph"])
    err = capsys.readouterr().err
    assert code == 1 and "1 of 1 target(s) failed (tflite fp32); nothing was written" in err
    assert not (tmp_path / "new").exists()


@pytest.mark.convert
def test_inspect_names_the_openvino_format(capsys, tmp_path):
    assert main(["convert", str(assets.demo_checkpoint()), "--imgsz", "64", "--to", "openvino",
                 "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "shapes_openvino")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"{tmp_path / 'shapes_openvino'}  (openvino, ")


def test_globs_expand_like_yolo_predict(capsys, tmp_path):
    for name in ("b.png", "a.png", "c.jpg"):
        cv2.imwrite(str(tmp_path / name), om.scene())
    model = om.save_with_meta(tmp_path / "m.onnx")
    code = main(["predict", str(model), str(tmp_path / "*.png"), "--json"])
    out = capsys.readouterr().out
    import json

    assert code == 0 and [json.loads(line)["source"] for line in out.splitlines()] == ["a.png", "b.png"]


def test_a_file_that_cannot_be_a_checkpoint_is_refused_before_torch_loads(corpus):
    from blocked import run_cli

    for verb in ("convert", "inspect"):
        proc = run_cli([verb, corpus / "junk.pt"], ["torch"])
        assert proc.returncode == 1 and proc.stderr == (
            "edgekit: error: junk.pt: not a torch checkpoint (expected the zip format torch.save has written since "
            "torch 1.6; the file may be truncated)\n"
        ), proc.stderr
