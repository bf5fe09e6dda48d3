"""Every script under benchmarks/ runs in its smoke mode (tiny model, few frames), so none can rot unnoticed.

The scripts that need no conversion run in the default tier; those that convert a model first are `slow`
(CI runs them in .ci/run). A new script must be added to one of the lists below: the last test says so.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

# script -> extra arguments and a line its smoke output must contain
FAST = {
    "bench_runtime.py": (["--load", "1"], "1 busy worker processes competing"),
    "bench_engines.py": (["--load", "1"], "1 busy worker processes competing"),
    "bench_vs_ultralytics.py": ([], "edgekit, same file on ONNX Runtime"),
    "device_footprint.py": ([], "predict peak RSS"),
}
CONVERTING = {
    "bench_damo.py": ([], "deploy form is"),
    "bench_yolov9.py": ([], "deploy form is"),
    "bench_yolo26.py": ([], "top-k in runtime (boxes+scores)"),
    "bench_backends.py": ([], "target: INT8 per-frame latency below FP32"),
    "bench_val_decode.py": ([], "edgekit decode_nms"),
    "bench_accuracy.py": ([], "| yolo26n.pt | onnx int8 |"),
    "bench_phone.py": ([], "| yolo26n.pt | tflite int8 phone 288x384 |"),
}
ELSEWHERE = {
    "arm_estimate.py": "its --smoke runs in tests/test_arm_estimate.py",
    "ultralytics_peer.py": "the Ultralytics side of bench_vs_ultralytics.py, run in Ultralytics' own venv",
    "bench_stream.py": "a 2-second run in tests/test_mjpeg.py (test_load_benchmark_short_run)",
}


def smoke(script: str, extra: list[str], expected: str, timeout: int) -> None:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--smoke", *extra], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:] or done.stdout[-2000:]
    assert expected in done.stdout, done.stdout[-2000:]
    assert "machine" in done.stdout.splitlines()[0] or "this environment" in done.stdout


@pytest.mark.parametrize("script", sorted(FAST))
def test_benchmark_smoke(script):
    smoke(script, *FAST[script], timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(CONVERTING))
def test_converting_benchmark_smoke(script):
    smoke(script, *CONVERTING[script], timeout=900)


@pytest.mark.slow
def test_vs_ultralytics_trained_fixture_part_smoke():
    """Part 3 of bench_vs_ultralytics.py (FP32 and --max-drop INT8 of a trained fixture, with mAP) converts first."""
    smoke("bench_vs_ultralytics.py", ["--fixtures", "yolo26n.pt"], "3. trained fixture yolo26n at 320", timeout=900)


def test_every_benchmark_script_has_a_smoke_run():
    scripts = {p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(FAST) | set(CONVERTING) | set(ELSEWHERE)
    for script in set(FAST) | set(CONVERTING):
        assert "--smoke" in (BENCHMARKS / script).read_text(), script


def test_runs_take_turns_in_processes_and_a_failure_is_a_row_not_a_crash():
    sys.path.insert(0, str(BENCHMARKS))
    import _load

    emit = "import json, os; print(json.dumps({'wall': [1.0, 3.0], 'pid': os.getpid()}))"
    commands = {"ok": [sys.executable, "-c", emit], "bad": [sys.executable, "-c", "raise SystemExit('no engine')"]}
    results = _load.in_turns(commands, rounds=3)
    assert len(results["ok"]) == 3 and len({r["pid"] for r in results["ok"]}) == 3  # a fresh process each turn
    assert len(results["bad"]) == 1 and "no engine" in results["bad"][0]["error"]  # tried once, then skipped
    assert _load.medians(results["ok"], ["wall"]) == {"wall": 2.0}
    assert "no engine" in _load.medians(results["bad"], ["wall"])
    assert _load.regimes(0) == [0] and _load.regimes(2) == [0, 2]


def bench(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_a_user_mistake_is_one_line_and_a_failed_run_is_not_success(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    (tmp_path / "notes.txt").write_text("hello")
    for script, args, code, said in [
        ("bench_engines.py", [str(tmp_path / "missing.onnx")], 2, "error: model not found: "),
        ("bench_engines.py", [str(tmp_path / "notes.txt")], 2, "notes.txt: unknown model type '.txt'"),
        ("bench_vs_ultralytics.py", ["--fixtures", "nosuch.pt", "--models", ""], 2,
         "argument --fixtures: no nosuch.pt in "),
        ("bench_vs_ultralytics.py", ["--ultralytics-python", str(tmp_path / "python"), "--fixtures", "",
                                     "--models", ""], 1, "not an interpreter that runs here"),
    ] + ([] if importlib.util.find_spec("ultralytics") else [  # (edgekit's own environment never has it)
        ("bench_vs_ultralytics.py", ["--ultralytics-python", sys.executable, "--fixtures", "", "--models", ""], 1,
         "cannot import ultralytics, torch and cv2"),
    ]):
        done = bench(script, *args)
        assert done.returncode == code and said in done.stderr, (script, args, done.stderr[-800:])
        assert "Traceback" not in done.stderr, done.stderr[-800:]
    done = bench("bench_engines.py", str(tmp_path / "junk.onnx"), "--rounds", "1", "--frames", "1", "--warmup", "0",
                 "--backends", "onnxruntime")
    assert done.returncode == 1 and "failed" in done.stdout  # the table says so, and the exit status
    assert f"FAILED {tmp_path / 'junk.onnx'} on onnxruntime: " in done.stderr
    assert "not a loadable ONNX model" in done.stderr  # the child's own message, whole
