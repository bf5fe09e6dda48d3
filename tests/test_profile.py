"""`edgekit profile`: latency, stages that add up to the frame time, a threads sweep, per-operator times from
ONNX Runtime and OpenVINO, telemetry from copies of a Raspberry Pi's files, JSON / CSV / PNG outputs."""

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgekit
from edgekit import assets
from edgekit.assets import shapes_model
from edgekit.cli import main
from edgekit.detections import Detections
from edgekit.images import read_image
from edgekit.runtimes.profile import Latency, _detections_diff, default_sweep, format_report, profile_model
from edgekit.runtimes.profile_plot import nice_ticks, render_profile
from edgekit.runtimes.settings import EngineSettings

FIXTURES = Path(__file__).parent / "fixtures" / "devices"


@pytest.fixture(scope="module")
def pi5_report():
    return profile_model(shapes_model(), backend="onnxruntime", runs=30, warmup=3, sweep=[1, 2], sweep_runs=5,
                         settings=EngineSettings(shared=False), telemetry_root=FIXTURES / "rpi5",
                         throttled=lambda: 0xE0008, interval=0.05)


def test_stages_add_up_to_the_frame_time(pi5_report):
    r = pi5_report
    assert r.stages["sum"] == pytest.approx(r.stages["pre"] + r.stages["infer"] + r.stages["post"], abs=1e-3)
    assert abs(r.latency.mean - r.stages["sum"]) <= max(0.5, 0.05 * r.latency.mean)
    for row in r.runs:
        assert row["pre_ms"] > 0 and row["infer_ms"] > 0 and row["post_ms"] > 0
        assert row["pre_ms"] + row["infer_ms"] + row["post_ms"] <= row["frame_ms"] + 1e-3


def test_latency_summary(pi5_report):
    r = pi5_report
    lat = r.latency
    assert len(r.runs) == 30 and r.warmup == 3
    assert lat.min <= lat.p50 <= lat.p90 <= lat.p99 <= lat.max
    assert lat.fps == pytest.approx(1000 / lat.mean, rel=1e-3)
    assert Latency.of([1, 2, 3, 4]).p50 == 2.5 and Latency.of([1, 2, 3, 4]).fps == 400.0
    assert r.load_ms > 0 and 0 < r.rss_after_load_mb <= r.peak_rss_mb
    starts = [row["t_s"] for row in r.runs]  # the x axis of the plot and the CSV
    assert starts == sorted(starts) and starts[-1] > starts[0] >= 0


def test_sweep_and_operators(pi5_report):
    r = pi5_report
    assert [(s["threads"], s["shared"]) for s in r.sweep] == [(1, False), (1, True), (2, False), (2, True)]
    assert all(s["fps"] > 0 for s in r.sweep) and r.shared is False
    ops = {op.op: op for op in r.operators}
    assert "Conv" in ops and ops["Conv"].count == 19 and r.operators[0].op == "Conv"
    assert sum(op.share for op in r.operators) == pytest.approx(1, abs=0.01)
    assert "onnxruntime profiler" in r.operators_note
    assert default_sweep(4) == [1, 2, 4] and default_sweep(6) == [1, 2, 4, 6] and default_sweep(1) == [1]


def test_telemetry_of_a_throttled_pi5(pi5_report):
    s = pi5_report.telemetry_summary
    assert s["temp_c"] == [84.35, 84.35] and s["arm_mhz"] == [1500.0, 1500.0] and s["throttled"] == "0xe0008"
    assert "soft temperature limit" in s["flags"] and s["samples"] >= 2
    assert all(row["temp_c"] == 84.35 and row["throttled"] == 0xE0008 for row in pi5_report.runs)


def test_plot_is_a_readable_png(pi5_report):
    image = render_profile(pi5_report)
    assert image.shape == (850, 1280, 3)
    top, bottom = image[80:440, 110:1170], image[510:750, 110:1170]
    blue = np.all(np.abs(top.astype(int) - (200, 110, 30)) < 30, axis=2)
    red = np.all(np.abs(bottom.astype(int) - (40, 40, 210)) < 30, axis=2)
    green = np.all(np.abs(bottom.astype(int) - (40, 150, 40)) < 30, axis=2)
    orange = np.all(np.abs(bottom.astype(int) - (120, 200, 255)) < 10, axis=2)
    assert blue.sum() > 500 and red.sum() > 500 and green.sum() > 500 and orange.mean() > 0.5  # throttled all run


def test_nice_ticks():
    assert nice_ticks(0, 1.02) == [0, 0.25, 0.5, 0.75, 1, 1.25]
    assert nice_ticks(0, 37.4) == [0, 10, 20, 30, 40]
    assert nice_ticks(82, 87) == [82, 83, 84, 85, 86, 87]


def test_profile_command_text_json_csv_plot(capsys, tmp_path):
    csv, png = tmp_path / "runs.csv", tmp_path / "plot.png"
    code = main(["profile", str(shapes_model()), "--runs", "20", "--warmup", "2", "--sweep", "1",
                 "--csv", str(csv), "--plot", str(png)])
    out, err = capsys.readouterr()
    assert code == 0, err
    stages = re.search(r"pre ([\d.]+) \+ infer ([\d.]+) \+ post ([\d.]+) = ([\d.]+) ms \(frame mean ([\d.]+) ms\)", out)
    pre, infer, post, total, frame = map(float, stages.groups())
    assert pre + infer + post == pytest.approx(total, abs=0.015)
    assert abs(frame - total) <= max(0.5, 0.05 * frame)
    assert re.search(r"^threads    shared off  1: [\d.]+ ms \([\d.]+ FPS\)$", out, re.M)
    assert re.search(r"^threads    shared on   1: [\d.]+ ms \([\d.]+ FPS\)$", out, re.M)
    assert re.search(r"^fastest    1 threads, shared o(n \(--threads 1 --shared|ff \(--threads 1 --no-shared)\)$", out,
                     re.M)
    # the operators of the engine this machine runs an .onnx file on (ONNX Runtime's Conv, OpenVINO's Convolution)
    assert re.search(r"^  Conv(olution)? +[\d.]+ ms", out, re.M) and "peak" in out
    rows = csv.read_text().splitlines()
    assert rows[0] == "run,t_s,frame_ms,pre_ms,infer_ms,post_ms,temp_c,arm_mhz,throttled" and len(rows) == 21
    plot = cv2.imread(str(png))
    assert plot.shape == (850, 1280, 3) and plot.std() > 10
    assert main(["profile", str(shapes_model()), "--runs", "5", "--warmup", "0", "--no-sweep", "--no-ops",
                 "--json", "--quiet"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert len(doc["runs"]) == 5 and doc["operators"] == [] and err == ""
    assert set(doc["latency"]) == {"p50", "p90", "p99", "mean", "std", "min", "max", "fps"}


def test_no_sweep_times_no_thread_count(capsys):
    # the progress bars show every stage that ran: --no-sweep once ran the default sweep, then hid its rows
    code = main(["profile", str(shapes_model()), "--runs", "3", "--warmup", "1", "--no-sweep", "--no-ops"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "warm-up:" in err and "runs:" in err
    assert "threads:" not in err and "threads, shared:" not in err
    assert not re.search(r"^(threads |fastest    \d+ threads)", out, re.M) and "engine onnxruntime:" in err


def test_profile_bad_input(capsys, tmp_path):
    assert main(["profile", str(tmp_path / "missing.onnx")]) == 1
    assert capsys.readouterr().err.strip() == f"edgekit: error: model not found: {tmp_path / 'missing.onnx'}"
    assert main(["profile", str(shapes_model()), "--runs", "2", "--warmup", "0", "--no-sweep", "--no-ops",
                 "--plot", str(tmp_path / "plot.jpg"), "--quiet"]) == 1
    assert "--plot writes a PNG" in capsys.readouterr().err and not list(tmp_path.iterdir())
    assert main(["profile", "--device", "pi9", "--quiet"]) == 1
    assert "unknown device 'pi9'" in capsys.readouterr().err


def test_openvino_performance_counters(tmp_path):
    ov = pytest.importorskip("openvino")
    import onnx

    props = {p.key: p.value for p in onnx.load(str(shapes_model())).metadata_props}
    model = ov.convert_model(str(shapes_model()))
    model.set_rt_info(props["edgekit"], ["edgekit"])
    ov.save_model(model, str(tmp_path / "shapes.xml"))
    report = profile_model(tmp_path / "shapes.xml", runs=5, warmup=1, sweep=[])
    assert report.backend == "openvino" and "openvino profiler" in report.operators_note
    assert "Convolution" in {op.op for op in report.operators}


def test_profile_and_camera_modules_run_without_torch_or_onnx(tmp_path):
    from blocked import CONVERTER_SIDE, imported, run_cli

    modules = tmp_path / "modules.json"
    camera_side = [f"edgekit.devices.{name}" for name in ("picamera", "mjpeg", "loop", "telemetry")]
    done = run_cli(["profile", "--runs", "3", "--warmup", "0", "--no-sweep", "--quiet"], CONVERTER_SIDE,
                   preload=camera_side, modules_file=modules)
    assert done.returncode == 0, done.stderr
    assert "Conv" in done.stdout and imported(modules, ["picamera2"]) == []


def test_an_onnx_file_is_timed_on_each_engine_that_opens_it(capsys):
    r = profile_model(shapes_model(), runs=3, warmup=1, sweep=[], sweep_runs=3, operators=False,
                      settings=EngineSettings(shared=False))
    assert [e["backend"] for e in r.engines] == ["onnxruntime", "openvino"]
    assert r.engines[0]["max_abs_diff"] == 0.0 and 0 < r.engines[1]["max_abs_diff"] < 1e-3  # the same outputs
    assert all(e["p50_ms"] > 0 and e["detections"] == r.engines[0]["detections"] > 0 for e in r.engines)
    text = format_report(r)
    assert re.search(r"^engines    onnxruntime: [\d.]+ ms \(\d+ detections\)   openvino: [\d.]+ ms \(\d+ detections, "
                     r"outputs within [\de.+-]+ of onnxruntime's\)$", text, re.M)
    assert re.search(r"^fastest    engine (onnxruntime|openvino) \(--backend \1\)$", text, re.M)
    assert r.engines[1]["compared"] == "outputs"  # the runtime decodes them: every raw element compares
    forced = profile_model(shapes_model(), backend="openvino", runs=2, warmup=0, sweep=[], operators=False)
    assert forced.engines == [] and "engines" not in format_report(forced)
    assert main(["profile", "--runs", "2", "--warmup", "0", "--no-sweep", "--no-ops", "--no-engines"]) == 0
    assert "engines" not in capsys.readouterr().out


def test_engines_with_rows_chosen_in_the_graph_compare_detections():
    # The embedded yolo26n picks its top-k rows in the graph: where low scores nearly tie, the engines may list
    # them in another order (raw rows then differ by whole class ids), while the detections agree.
    r = profile_model(assets.default_model(), runs=2, warmup=0, sweep=[], sweep_runs=2, operators=False,
                      settings=EngineSettings(shared=False))
    assert [e["backend"] for e in r.engines] == ["onnxruntime", "openvino"]
    assert r.engines[1]["compared"] == "detections" and r.engines[1]["max_abs_diff"] < 1e-2
    assert re.search(r"openvino: [\d.]+ ms \(\d+ detections, detections within [\de.+-]+ of onnxruntime's\)$",
                     format_report(r), re.M)
    found = edgekit.load(assets.default_model())(read_image(assets.sample_image()))
    assert len(found) > 1 and _detections_diff(found, found) == 0.0
    other = Detections(found.xyxy, found.confidence, found.class_id + 1)
    moved = Detections(found.xyxy + 0.5, found.confidence, found.class_id)
    assert _detections_diff(found, found[:1]) == float("inf")
    assert _detections_diff(found, moved) == pytest.approx(0.5, abs=1e-4)
    assert _detections_diff(found, other) == float("inf")
    assert _detections_diff(found, found[::-1]) == 0.0  # the same detections listed in another order
    twins = Detections(np.array([[10, 10, 50, 50], [10.001, 30, 50, 70]], np.float32),
                       np.array([0.9, 0.8], np.float32), np.array([1, 1]))
    jittered = Detections(np.array([[10.002, 10, 50, 50], [10.0, 30, 50, 70]], np.float32),  # left edges swap order
                          np.array([0.9, 0.8], np.float32), np.array([1, 1]))
    assert _detections_diff(twins, jittered) == pytest.approx(0.002, abs=1e-4)  # matched by place, not left edge
    assert _detections_diff(Detections.empty(), Detections.empty()) == 0.0
