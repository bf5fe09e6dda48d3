"""Other libraries' chatter stays off the user's terminal: a conversion prints only edgekit's lines, and
running a TFLite file prints no native INFO line; --verbose lets them through."""

import subprocess
import sys

import pytest

from edgekit import assets

PREFIXES = ("source ", "imgsz ", "head ", "top-k ", "deploy ", "writing ", "verify ", "wrote ", "format ", "tflite ",
            "openvino ")


def run(*args):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.convert
def test_convert_and_predict_print_only_edgekits_lines(tmp_path):
    proc = run("convert", assets.demo_checkpoint(), "--imgsz", "64", "--to", "tflite,openvino", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no absl/XNNPACK/oneDNN lines, no fork warning from OpenVINO's telemetry
    foreign = [line for line in proc.stdout.splitlines() if not line.startswith(PREFIXES)]
    assert foreign == []
    assert sum(line.startswith("writing ") for line in proc.stdout.splitlines()) == 2  # a line per stage
    proc = run("predict", tmp_path / "shapes.tflite", assets.shapes_image())
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.splitlines()[0].startswith("shapes.tflite: Detector(")
    verbose = run("--verbose", "predict", tmp_path / "shapes.tflite", assets.shapes_image())
    assert "XNNPACK" in verbose.stderr
