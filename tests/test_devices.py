"""Device profiles, detecting the machine from copies of real Raspberry Pi files, telemetry parsing, and the
`devices` verb and `--device` options."""

import json
import shutil
from pathlib import Path

import onnx
import pytest

from edgekit.cli import main
from edgekit.devices import profiles, telemetry
from edgekit.runtimes.detector import load

import onnx_models as om

FIXTURES = Path(__file__).parent / "fixtures" / "devices"


@pytest.mark.parametrize(
    ("board", "profile", "model", "memory"),
    [
        ("rpi4", "rpi4", "Raspberry Pi 4 Model B Rev 1.4", 3793),
        ("rpi5", "rpi5", "Raspberry Pi 5 Model B Rev 1.0", 8052),
        ("rpi-zero-2w", "rpi-zero-2w", "Raspberry Pi Zero 2 W Rev 1.0", 422),
    ],
)
def test_detects_raspberry_pis_from_device_tree(board, profile, model, memory):
    found = profiles.detect_device(FIXTURES / board, machine="aarch64", system="linux")
    assert (found.profile, found.model, found.cores, found.memory_mb) == (profile, model, 4, memory)
    assert found.evidence == "/proc/device-tree/model"


@pytest.mark.parametrize(("board", "profile", "memory"), [("rpi4", "rpi4", 4096), ("rpi5", "rpi5", 8192),
                                                          ("rpi-zero-2w", "rpi-zero-2w", 512)])
def test_detects_raspberry_pis_from_cpuinfo_alone(tmp_path, board, profile, memory):
    # a container on a Pi sees /proc/cpuinfo but often no device tree; the Model line decides
    (tmp_path / "proc").mkdir()
    text = (FIXTURES / board / "proc/cpuinfo").read_text()
    (tmp_path / "proc/cpuinfo").write_text(text)
    found = profiles.detect_device(tmp_path, machine="aarch64", system="linux")
    assert (found.profile, found.evidence) == (profile, "/proc/cpuinfo Model")
    # without the Model line (older kernels), the revision code's board type and memory bits decide
    (tmp_path / "proc/cpuinfo").write_text("\n".join(line for line in text.splitlines() if "Model" not in line))
    found = profiles.detect_device(tmp_path, machine="aarch64", system="linux")
    assert (found.profile, found.memory_mb, found.evidence) == (profile, memory, "/proc/cpuinfo Revision")


def test_detects_other_platforms(tmp_path):
    assert profiles.detect_device(tmp_path, machine="aarch64", system="linux").profile == "generic-arm64-linux"
    assert profiles.detect_device(tmp_path, machine="x86_64", system="linux").profile == "x86-cpu"
    assert profiles.detect_device(tmp_path, machine="AMD64", system="win32").profile == "x86-cpu"
    assert profiles.detect_device(tmp_path, machine="iPhone15,2", system="ios").profile == "ios"
    assert profiles.detect_device(tmp_path, machine="aarch64", system="android").profile == "android-arm64"
    assert profiles.detect_device(tmp_path, machine="riscv64", system="linux").profile is None


def test_every_profile_gives_a_reason_for_every_choice():
    assert set(profiles.PROFILES) == {"rpi5", "rpi4", "rpi-zero-2w", "generic-arm64-linux", "android-arm64", "ios",
                                      "x86-cpu"}
    for p in profiles.PROFILES.values():
        for choice in (p.formats, p.precisions, p.threads, p.imgsz):
            assert choice.reason and "\n" not in choice.reason
        assert set(p.formats.value) <= set(profiles.FORMAT_BACKENDS)
        sides = profiles.size_list(p.imgsz.value)
        assert set(p.precisions.value) <= {"fp32", "fp16", "int8"} and len(sides) in (1, 2)
        assert all(side % 32 == 0 for side in sides)
    assert profiles.get_profile("rpi-zero-2w").memory_mb == 512


def test_no_profile_recommends_what_the_backends_do_not_offer():
    """Every format x precision a profile's plan writes is in the backend table (a format's `precisions`), and
    OpenVINO is never an ARM device's INT8 choice (its ARM plugin runs INT8 as FP16 at best)."""
    from edgekit.converters.backends import BACKENDS

    for profile in profiles.PROFILES.values():
        plan = profiles.convert_plan(profile, have_calibration=True)
        written = {(f, p) for f in plan.formats for p in plan.precisions}
        assert all(p in BACKENDS[f].precisions for f, p in written), (profile.name, written)
        assert profile.format in BACKENDS and profile.precisions.value[0] in BACKENDS[profile.format].precisions
        if profile.arch == "aarch64":
            assert ("openvino", "int8") not in written, profile.name
        assert set(profile.offered.value) <= set(BACKENDS) and not set(profile.offered.value) & set(plan.formats)


def test_offered_formats_run_without_a_hint_and_are_never_written_by_default():
    for name in ("android-arm64", "ios"):
        profile = profiles.get_profile(name)
        assert "executorch" in profile.offered.value and profile.offered.reason
        assert "executorch" not in profiles.convert_plan(profile, have_calibration=True).formats
        assert profiles.profile_hints(profile, "executorch", profile.precisions.value[0], (320, 320)) == []
        assert "offered    executorch:" in profiles.describe_profile(profile)
    assert profiles.get_profile("android-arm64").to_dict()["offered"]["value"] == ["executorch"]


def test_convert_plan_follows_the_profile():
    plan = profiles.convert_plan(profiles.get_profile("rpi5"), have_calibration=True)
    assert (plan.formats, plan.precisions, plan.imgsz) == (["tflite", "onnx"], ["int8", "fp32"], [640])
    plan = profiles.convert_plan(profiles.get_profile("rpi-zero-2w"), have_calibration=False)
    assert (plan.formats, plan.precisions, plan.imgsz) == (["tflite", "onnx"], ["fp32"], [320])
    assert any("--calib" in note for note in plan.notes)
    assert profiles.convert_plan(profiles.get_profile("rpi4"), False, formats="onnx").formats == ["onnx"]


def test_phone_profile_suggests_the_cameras_aspect():
    """A phone camera's default stream is 4:3 and MediaPipe stretches it to the input: the phone profile picks a
    4:3 input (height x width, multiples of 32) that --imgsz takes as is, and shows it as such."""
    profile = profiles.get_profile("android-arm64")
    plan = profiles.convert_plan(profile, have_calibration=True)
    assert len(plan.imgsz) == 2 and plan.imgsz[1] * 3 == plan.imgsz[0] * 4
    targets = profiles.convert_targets("android-arm64", None, None, None, have_calibration=True,
                                       default_formats="onnx", default_precisions="fp32")
    assert targets.imgsz == plan.imgsz and f"input {plan.imgsz[0]}x{plan.imgsz[1]}:" in "\n".join(targets.notes)
    assert f"{plan.imgsz[0]}x{plan.imgsz[1]}" in profiles.describe_profile(profile)
    assert profiles.profile_hints(profile, "litert", "int8", tuple(plan.imgsz)) == []
    assert "larger than the 288x384" in profiles.profile_hints(profile, "litert", "int8", (480, 640))[0]


def test_convert_targets_merge_the_user_the_profile_and_the_defaults():
    def merged(device, to=None, precision=None, imgsz=None, calib=False):
        t = profiles.convert_targets(device, to, precision, imgsz, have_calibration=calib,
                                     default_formats="onnx", default_precisions="fp32")
        return t.formats, t.precisions, t.imgsz, len(t.notes)

    assert merged(None) == ("onnx", "fp32", None, 0)  # no profile: the verb's defaults, the size left open
    assert merged(None, "tflite", "fp16", [320]) == ("tflite", "fp16", [320], 0)
    assert merged("rpi5", calib=True) == ("tflite,onnx", "int8,fp32", [640], 3)
    assert merged("rpi-zero-2w") == ("tflite,onnx", "fp32", [320], 3)  # INT8 dropped: no calibration images
    assert merged("rpi5", "onnx", "fp16", [256, 320], calib=True) == ("onnx", "fp16", [256, 320], 2)


def test_load_takes_threads_from_the_profile(tmp_path):
    model = om.save_with_meta(tmp_path / "m.onnx")
    assert load(model, device="rpi-zero-2w").engine.threads == 3
    assert load(model, device="rpi-zero-2w", threads=1).engine.threads == 1
    detector = load(model, device="rpi4")
    assert detector.engine.session.get_session_options().intra_op_num_threads == 4
    assert profiles.profile_hints(detector.device, "onnxruntime", "int8", (320, 320)) == []
    hints = profiles.profile_hints(profiles.get_profile("android-arm64"), "onnxruntime", "fp32", (640, 640))
    assert len(hints) == 3 and "prefers tflite" in hints[0] and "larger than the 288x384" in hints[2]


def test_devices_verb(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in profiles.PROFILES) and "this machine:" in out
    assert main(["devices", "rpi5", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rpi5 = doc["profiles"][0]
    assert rpi5["name"] == "rpi5" and rpi5["formats"]["value"] == list(profiles.get_profile("rpi5").formats.value)
    assert doc["detected"]["cores"] >= 1


def test_unknown_device_lists_the_known_ones(capsys, tmp_path):
    model = om.save_with_meta(tmp_path / "m.onnx")
    for argv in (["devices", "rpi9"], ["predict", str(model), "--device", "rpi9"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("edgekit: error: unknown device 'rpi9'") and "rpi-zero-2w, generic-arm64-linux" in err


def test_predict_device_prints_threads_and_hints(capsys, tmp_path):
    model = om.save_with_meta(tmp_path / "m.onnx")
    image = tmp_path / "scene.png"
    import cv2

    cv2.imwrite(str(image), om.scene())
    assert main(["predict", str(model), str(image), "--device", "android-arm64"]) == 0
    out = capsys.readouterr().out
    assert "device android-arm64: 4 threads" in out and "this device prefers tflite" in out


def test_convert_device_picks_size_and_precisions(capsys, tmp_path):
    from edgekit.assets import demo_checkpoint

    code = main(["convert", str(demo_checkpoint()), "--device", "rpi4", "--to", "onnx", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "device   rpi4: int8 skipped" in out
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["shapes.onnx"]
    dims = onnx.load(str(tmp_path / "shapes.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 320, 320]


@pytest.mark.parametrize(
    ("board", "temp", "mhz", "bits", "flags"),
    [
        ("rpi4", 61.854, 1800.0, 0, []),
        ("rpi5", 84.35, 1500.0, 0xE0008, ["soft temperature limit", "arm frequency capping occurred",
                                          "throttling occurred", "soft temperature limit occurred"]),
        ("rpi-zero-2w", 52.078, 600.0, 0x50005, ["under-voltage", "throttled", "under-voltage occurred",
                                                 "throttling occurred"]),
    ],
)
def test_telemetry_reads_pi_files(board, temp, mhz, bits, flags):
    root = FIXTURES / board
    assert telemetry.read_temperature(root) == pytest.approx(temp)
    assert telemetry.read_arm_clock(root) == mhz
    value = telemetry.parse_throttled((root / "vcgencmd_get_throttled.txt").read_text())
    assert value == bits and telemetry.throttle_flags(value) == flags
    sampler = telemetry.TelemetrySampler(interval=0.01, root=root, throttled=lambda: value)
    with sampler:
        pass
    summary = sampler.summary()
    assert summary["temp_c"] == [pytest.approx(temp)] * 2 and summary["arm_mhz"] == [mhz, mhz]
    assert summary["throttled"] == hex(bits) and summary["flags"] == flags


def test_telemetry_picks_the_cpu_zone_and_survives_missing_files(tmp_path):
    shutil.copytree(FIXTURES / "rpi5" / "sys", tmp_path / "sys")
    other = tmp_path / "sys/class/thermal/thermal_zone0"
    cpu = tmp_path / "sys/class/thermal/thermal_zone1"
    shutil.copytree(other, cpu)
    (other / "type").write_text("rp1_adc\n")
    (other / "temp").write_text("30000\n")
    assert telemetry.read_temperature(tmp_path) == pytest.approx(84.35)
    empty = telemetry.TelemetrySampler(root=tmp_path / "nothing", throttled=lambda: None)
    assert not empty.available and empty.sample().temp_c is None
    assert telemetry.parse_throttled("error=1 error_msg=\"Command not registered\"") is None
