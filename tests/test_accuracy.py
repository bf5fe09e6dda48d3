"""INT8 against labelled data: the measured drop is reported whenever labelled data is given, and --max-drop keeps
the most sensitive layers in float until the drop fits (or fails, writing nothing, saying what was reached)."""

import json
import sys

import pytest

import edgekit
from edgekit import assets
from edgekit.cli import main
from edgekit.converters.accuracy import AccuracyBudgetError, rank_by_error, search_float_layers
from edgekit.eval import synthetic

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    calib = synthetic.write_yolo_dataset(root / "calib", 60, seed=1)
    return calib, synthetic.write_yolo_dataset(root / "val", 40, seed=2)


def test_search_keeps_the_fewest_top_ranked_layers_that_meet_the_budget(tmp_path):
    ranking = [f"layer{i}" for i in range(10)]
    # each of the first three ranked layers costs one point in INT8; the rest cost nothing
    calls = []

    def quantize(exclude):
        calls.append(len(exclude))
        path = tmp_path / f"q{len(exclude)}"
        path.write_text(str(max(0, 3 - len(exclude))))
        return path

    def measure(path):
        return 50.0 - float(path.read_text())

    found = search_float_layers(quantize, measure, ranking, reference=50.0, max_drop=1.0)
    assert found.float_layers == ["layer0", "layer1"] and found.points == 49.0
    assert calls == [0, 1, 2]  # 0 fails (drop 3), 1 fails (drop 2), 2 meets it: nothing more to bisect
    found = search_float_layers(quantize, measure, ranking, reference=50.0, max_drop=0.0)
    assert found.float_layers == ranking[:3]
    with pytest.raises(AccuracyBudgetError, match=r"not met: the best INT8 reached mAP50-95 50.00 against 52.00"):
        search_float_layers(quantize, measure, ranking, reference=52.0, max_drop=0.5)


def test_ranking_orders_layers_by_the_error_they_add_not_the_error_they_inherit():
    import numpy as np

    x = np.linspace(1, 2, 50)
    floats = [{"in": x, "a": x * 2, "b": x * 3}]
    # layer a adds 10 % error; b inherits a's 10 % and adds only 1 % of its own
    quants = [{"in": x, "a": x * 2 * 1.1, "b": x * 3 * 1.11}]
    assert rank_by_error(floats, quants, [("A", ["in"], "a"), ("B", ["a"], "b")]) == ["A", "B"]


@pytest.mark.convert
def test_int8_reports_its_measured_drop_when_labelled_data_is_given(tmp_path, shapes_data, capsys):
    calib, val = shapes_data
    code = main(["convert", str(assets.demo_checkpoint()), "--imgsz", "320", "--to", "onnx", "--precision",
                 "fp32,int8", "--calib", str(calib), "--val-data", str(val), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "accuracy onnx int8: mAP50-95" in out and " drop " in out
    accuracy = edgekit.load(tmp_path / "shapes-int8.onnx").meta.accuracy
    assert accuracy["images"] == 40 and accuracy["max_drop"] is None and accuracy["float_layers"] == []
    assert accuracy["reference_map50_95"] > 80 and abs(accuracy["drop"]) < 5 and accuracy["speedup"] > 0
    assert accuracy["drop"] == pytest.approx(accuracy["reference_map50_95"] - accuracy["map50_95"], abs=2e-3)
    header = next(line for line in out.splitlines() if line.startswith("format"))
    assert "drop" in header and "float" in header and "xFP32" in header


@pytest.mark.convert
def test_max_drop_keeps_layers_in_float_until_the_drop_fits(tmp_path, shapes_data, capsys):
    calib, val = shapes_data
    code = main(["convert", str(assets.demo_checkpoint()), "--imgsz", "320", "--to", "onnx", "--precision", "int8",
                 "--calib", str(calib), "--val-data", str(val), "--max-drop", "0.05", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    accuracy = edgekit.load(tmp_path / "shapes-int8.onnx").meta.accuracy
    assert accuracy["max_drop"] == 0.05 and accuracy["drop"] <= 0.05
    assert "accuracy 0 layer(s) in float" in out  # plain INT8 was measured first
    plain = float(next(line for line in out.splitlines() if "accuracy 0 layer(s)" in line).split("drop ")[1][:-1])
    assert plain > 0.05 and len(accuracy["float_layers"]) > 0  # this model needs float layers to fit the budget
    doc = json.loads(json.dumps(accuracy))
    assert doc == accuracy  # plain JSON in the metadata


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--precision", "int8", "--max-drop", "0.5"], "--max-drop needs labelled validation data"),
        (["--precision", "fp32", "--max-drop", "0.5", "--val-data", "{val}"], "--max-drop applies to INT8"),
        (["--precision", "int8", "--max-drop", "-1", "--val-data", "{val}"], "a drop budget is 0 or more"),
        (["--precision", "int8", "--val-data", "{nowhere}"], "dataset not found"),
    ],
)
@pytest.mark.convert
def test_max_drop_bad_input(tmp_path, shapes_data, capsys, extra, message):
    _, val = shapes_data
    folder = tmp_path / "images"
    folder.mkdir()
    args = ["convert", str(assets.demo_checkpoint()), "--imgsz", "320", "--to", "onnx", "--calib", str(folder),
            "--out", str(tmp_path / "out")]
    args += [a.format(val=val, nowhere=tmp_path / "nowhere.yaml") for a in extra]
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.convert
def test_benchmark_prints_the_fields_table_with_a_failed_row_saying_why(tmp_path, shapes_data, capsys):
    _, val = shapes_data
    code = main(["benchmark", str(assets.demo_checkpoint()), "--data", str(val), "--imgsz", "320",
                 "--to", "onnx,coreml", "--precision", "fp32,int8", "--runs", "5", "--json", "--quiet"])
    report = json.loads(capsys.readouterr().out)
    rows = {(r["format"], r["precision"]): r for r in report["rows"]}
    assert code == 0 and report["params_m"] == pytest.approx(0.78, abs=0.01) and report["gflops"] > 0
    fp32, int8 = rows[("onnx", "fp32")], rows[("onnx", "int8")]
    assert fp32["map50_95"] > 0.8 and abs(fp32["map50_95"] - int8["map50_95"]) < 0.05
    assert int8["size_mb"] < fp32["size_mb"]
    assert fp32["speedup"] == 1.0 and int8["speedup"] == pytest.approx(fp32["ms"] / int8["ms"], rel=0.01)
    assert fp32["fps"] == pytest.approx(1000 / fp32["ms"], rel=0.01)
    if sys.platform != "darwin":  # written and verified here, but CoreML runs only on macOS: a row saying so
        assert "only on macOS" in (rows[("coreml", "fp32")]["error"] or "") and rows[("coreml", "fp32")]["file"]
