"""The aarch64 cost estimate (benchmarks/arm_estimate.py): the QEMU plugin's log format, per-inference counts,
the calibration on published Raspberry Pi 5 figures, the smoke mode, and (where qemu-user, gcc and the emulated
userland are installed) the plugin counting a real guest."""

import dataclasses
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("arm_estimate", ROOT / "benchmarks" / "arm_estimate.py")
arm = importlib.util.module_from_spec(spec)
sys.modules["arm_estimate"] = arm  # dataclasses look their module up while the file executes
spec.loader.exec_module(arm)

LOG = """mark 1001 0 0:1000 1:50
mark 1002 0 0:4000 1:2050 2:700
mark 2001 0 0:5000 1:2050 2:700
mark 2002 0 0:5600 1:2050 2:700
exit 0:9000 1:2050 2:700
"""


def test_plugin_log_gives_per_inference_counts_per_thread():
    marks = arm.parse_marks(LOG)
    assert marks[1002] == {0: 4000, 1: 2050, 2: 700}
    # setting 0: thread 0 ran 3000, thread 1 2000, thread 2 (new) 700
    assert arm.per_run(marks, runs=1, setting=0) == ([5700], [3000], 3)
    assert arm.per_run(marks, runs=1, setting=1) == ([600], [600], 1)
    with pytest.raises(ValueError, match="run 1: marker 1003 missing"):
        arm.per_run(marks, runs=2, setting=0)
    with pytest.raises(ValueError, match="run 0: marker 2002 missing"):
        arm.per_run(arm.parse_marks(LOG.replace("mark 2002", "mark 2003")), runs=1, setting=1)
    with pytest.raises(ValueError, match="not a plugin line"):
        arm.parse_marks("mark 1 0 0:5\nqemu: warning\n")


def counts(ort=2.0e9, ncnn=1.0e9, ov=1.2e9, litert=0.9e9):
    def c(backend, setting, n, precision="fp32"):
        return arm.Count("yolo26n", 640, backend, precision, setting, "a76", 1, [int(n)], [int(n)], 1)

    return [
        c("onnxruntime", "", ort),
        c("ncnn", "fp16 arithmetic", ncnn),
        c("openvino", "f16 (its ARM default)", ov),
        c("litert", "", litert, "int8"),
    ]


def test_calibration_reproduces_the_published_figures_and_reports_the_ratio():
    found = counts()
    cal = arm.calibrate(found)
    for pub in arm.PUBLISHED:  # each engine's fitted IPC gives back its published figure
        (count,) = [c for c in found if c.backend == pub.backend]
        assert cal.ms(count) == (pytest.approx(pub.ms), True)
    assert cal.ratio == (pytest.approx(2.0), pytest.approx(126.9 / 67.2))
    assert cal.ipc["onnxruntime"] == pytest.approx(2.0e9 / (0.1269 * 2.4e9 * 4))  # per core, 4 cores
    ms, fitted = cal.ms(found[3])  # LiteRT has no published figure: the common (geometric mean) IPC
    assert not fitted and ms == pytest.approx(0.9e9 / (cal.common_ipc * 4 * 2.4e6))
    # counts in the published proportions: one IPC explains them all, no error
    exact = arm.calibrate(counts(ort=126.9e7, ncnn=67.2e7, ov=70.7e7))
    assert all(abs(e) < 1e-9 for e in exact.common_error.values())
    text = "\n".join(arm.calibration_lines(cal))
    assert "is 2.00 in instructions and 1.89 in published ms, +6% (within 25%)" in text
    # only 320 counts: scaled to the published 640
    small = [dataclasses.replace(c, imgsz=320, busiest=[c.busiest[0] // 4]) for c in found]
    scaled = arm.calibrate(small)
    assert scaled.basis == "one-thread YOLO26n 320 FP32 counts on the emulated A76, scaled x4 to the published 640"
    assert scaled.ratio[0] == pytest.approx(2.0, rel=1e-6)
    assert arm.calibrate(found[1:]).startswith("no calibration: no input size with one-thread A76 FP32 counts")


def test_table_scales_a_size_not_counted_from_the_nearest_one():
    found = counts()
    only320 = arm.Count("yolo26n", 320, "openvino", "int8", "", "a76", 1, [100], [10_000_000], 1)
    lines = arm.table([*found, only320], arm.calibrate(found), "a76")
    assert lines[2] == "| engine x precision | 320: M instr | 320: est. ms | 640: M instr | 640: est. ms |"
    row = next(line for line in lines if line.startswith("| OpenVINO INT8 |"))
    cells = [c.strip() for c in row.split("|")[2:-1]]
    assert cells[0] == "10.0" and cells[2] == "~40.0" and cells[3].startswith("~")
    assert lines[-1].startswith("~: not counted at this size")
    assert not any("not offered" in line for line in lines)  # NCNN INT8 is written now: no placeholder row


def test_table_flags_a_file_far_slower_than_its_engines_fp32():
    found = counts()
    slow = arm.Count("yolo26n", 640, "onnxruntime", "int8", "", "a76", 1, [1], [int(2.1e10)], 1)  # 10.5x FP32
    lines = arm.table([*found, slow], arm.calibrate(found), "a76")
    assert next(line for line in lines if line.startswith("| ONNX Runtime INT8 |")).endswith(" ! |")
    assert not any(" ! |" in line for line in lines if not line.startswith("| ONNX Runtime INT8 |"))
    assert lines[-1].startswith("!: over 10x the same engine's FP32 count")


def test_smoke_mode_needs_no_emulator():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "arm_estimate.py"), "--smoke"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    first, second = out.splitlines()[:2]  # the NCNN log: FP32, then fp16 arithmetic, in one process
    assert first == "recorded plugin log, setting 0: 215.8 M instructions, 1 thread(s)"
    assert second == "recorded plugin log, setting 1: 113.1 M instructions, 1 thread(s)"
    assert "### Cortex-A76 (Raspberry Pi 5), 2.4 GHz" in out and "| ONNX Runtime FP32 |" in out
    assert "ONNX Runtime : NCNN (fp16 arithmetic) is " in out and " in published ms, " in out


def test_missing_emulator_is_a_one_line_skip(tmp_path):
    reason = arm.find_userland(tmp_path)
    assert isinstance(reason, str) and ("qemu-aarch64" in reason or "no aarch64 userland" in reason)


USERLAND = Path("/tmp/edgekit-arm64")


@pytest.mark.skipif(
    not (shutil.which("qemu-aarch64") and shutil.which("gcc") and (USERLAND / "rootfs/usr/bin/python3.11").exists()),
    reason="needs qemu-user, gcc and the userland of scripts/arm64_userland.sh",
)
def test_plugin_counts_a_real_guest(tmp_path):
    userland = arm.find_userland(USERLAND, tmp_path / "insn_count.so")
    root = userland.core_root(arm.CORES["a53"])
    assert (root / "sys/devices/system/cpu/cpu3/regs/identification/midr_el1").read_text() == "0x00000000410fd034\n"
    log = tmp_path / "plugin.log"
    loop = (
        "import ctypes; mark = ctypes.CDLL(None).syscall\n"
        "for i, n in enumerate((100000, 200000)):\n"
        "    mark(4242, 1000 * (i + 1) + 1); sum(range(n)); mark(4242, 1000 * (i + 1) + 2)\n"
    )
    python = str(userland.rootfs / "usr/bin/python3.11")
    argv = [userland.qemu, "-cpu", "cortex-a53", "-L", str(root), "-plugin", f"{userland.plugin},out={log}", python]
    subprocess.run([*argv, "-c", loop], check=True, timeout=300)
    marks = arm.parse_marks(log.read_text())
    small, large = (arm.per_run(marks, 1, i)[0][0] for i in (0, 1))
    assert 5e6 < small < 5e7 and large / small == pytest.approx(2.0, rel=0.05)  # instructions scale with the work
