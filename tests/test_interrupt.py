"""Ctrl-C at any point of a conversion stops the whole command with exit status 130 and leaves nothing half
written (targets finished before it stay whole); litert-torch swallows KeyboardInterrupt, so the TFLite
export is the point that matters most."""

import signal
import subprocess
import sys
import time

import pytest

from edgekit import assets


def interrupt_after(line_start: str, out_dir, delay: float, to: str = "onnx,tflite"):
    cmd = [sys.executable, "-m", "edgekit.cli", "convert", str(assets.demo_checkpoint()), "--imgsz", "64",
           "--to", to, "--out", str(out_dir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(line_start):
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=300)
    return proc.returncode, "".join(seen) + out, err


def leftovers(out_dir):
    return sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []


@pytest.mark.convert
def test_ctrl_c_during_the_tflite_export_stops_everything(tmp_path):
    code, out, err = interrupt_after("writing  tflite", tmp_path / "out", 2.0)
    assert code == 130 and err.strip().splitlines()[-1] == "edgekit: interrupted", err
    assert "wrote    tflite" not in out
    assert leftovers(tmp_path / "out") == ["shapes.onnx"]  # finished before Ctrl-C: whole, and kept


@pytest.mark.slow
@pytest.mark.parametrize(("line", "delay"), [("source ", 0.0), ("writing  onnx", 0.5), ("verify   onnx", 0.0)])
def test_ctrl_c_at_other_points(tmp_path, line, delay):
    code, _, err = interrupt_after(line, tmp_path / "out", delay)
    assert code == 130 and "edgekit: interrupted" in err
    # no temporary (.part) file anywhere; the ONNX file only if it was complete when Ctrl-C came
    allowed = ([], ["shapes.onnx"]) if line.startswith("verify") else ([],)
    assert leftovers(tmp_path / "out") in allowed
