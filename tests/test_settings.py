"""Engine settings (threads, a shared machine, FP16) reach every engine's own switches, through `open_engine`,
`load`, device profiles and the CLI; OpenVINO runs .onnx files with ONNX Runtime's results."""

import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

import edgekit
from edgekit import assets
from edgekit.cli import main
from edgekit.devices.profiles import get_profile, profile_backend, profile_settings
from edgekit.errors import EdgekitError
from edgekit.images import read_image
from edgekit.runtimes.engine import open_engine
from edgekit.runtimes.preprocess import preprocess
from edgekit.runtimes.settings import BUSY_SHARED_CORES, EngineSettings, engine_settings, resolve_shared

SPIN = "session.intra_op.allow_spinning"


def spinning(engine) -> str:
    return engine.session.get_session_options().get_session_config_entry(SPIN)


def test_settings_merge_threads_and_refuse_bad_counts():
    assert engine_settings() == EngineSettings(None, None, False)  # shared: decided when an engine opens
    assert engine_settings(EngineSettings(2, True), None) == EngineSettings(2, True)
    assert engine_settings(EngineSettings(2, True), 3) == EngineSettings(3, True)  # an explicit count wins
    for bad in (0, -1, True):
        with pytest.raises(EdgekitError, match="threads must be a positive number"):
            EngineSettings(bad)


def test_onnxruntime_spins_unless_the_machine_is_shared():
    model = assets.shapes_model()
    assert spinning(open_engine(model, settings=EngineSettings(shared=False))) == "1"
    shared = open_engine(model, settings=EngineSettings(shared=True))
    assert spinning(shared) == "0" and shared.settings.shared
    legacy = open_engine(model, threads=1)  # the threads= callers keep working
    assert legacy.threads == 1 and legacy.settings.threads == 1 and legacy.settings.shared in (False, True)
    assert legacy.session.get_session_options().intra_op_num_threads == 1


def test_shared_left_unset_follows_the_machines_load(tmp_path, monkeypatch):
    from edgekit.runtimes import settings as settings_module

    stat = tmp_path / "proc" / "stat"
    stat.parent.mkdir()
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\n")
    later = "cpu  200 40 150 810 20 0 0 10 0 0\n"  # 150 busy ticks of 230 (niced, iowait, steal ones are not)
    monkeypatch.setattr(settings_module.time, "sleep", lambda s: stat.write_text(later))
    times = iter([os.times_result((1.0, 0.5, 0, 0, 0)), os.times_result((1.0, 0.5, 0, 0, 0))] * 3)
    monkeypatch.setattr(settings_module.os, "times", lambda: next(times))  # this process: no time meanwhile
    assert settings_module.busy_cores(root=tmp_path) == pytest.approx(150 / 230 * os.cpu_count())
    ours = 0.3 * settings_module._TICKS_PER_S  # ticks this process spends meanwhile: 0.2 s user, 0.1 s system
    later = f"cpu  {200 + ours * 2 / 3:.0f} 40 {150 + ours / 3:.0f} 810 20 0 0 10 0 0\n"
    monkeypatch.setattr(settings_module.time, "sleep", lambda s: stat.write_text(later))
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\n")
    times = iter([os.times_result((1.0, 0.5, 0, 0, 0)), os.times_result((1.2, 0.6, 0, 0, 0))])
    monkeypatch.setattr(settings_module.os, "times", lambda: next(times))
    total = 230 + ours
    assert settings_module.busy_cores(root=tmp_path) == pytest.approx(150 / total * os.cpu_count(), rel=1e-3)
    niced = f"cpu  200 {40 + ours * 2 / 3:.0f} {150 + ours / 3:.0f} 810 20 0 0 10 0 0\n"  # our user time is nice
    monkeypatch.setattr(settings_module.time, "sleep", lambda s: stat.write_text(niced))
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\n")
    times = iter([os.times_result((1.0, 0.5, 0, 0, 0)), os.times_result((1.2, 0.6, 0, 0, 0))])
    monkeypatch.setattr(settings_module.os, "nice", lambda inc: 5)
    assert settings_module.busy_cores(root=tmp_path) == pytest.approx(150 / total * os.cpu_count(), rel=1e-3)
    monkeypatch.undo()
    monkeypatch.setattr(settings_module.time, "sleep", lambda s: None)
    assert settings_module.busy_cores(root=tmp_path / "nowhere") is None  # not Linux: no reading, spin
    assert resolve_shared(EngineSettings(), busy=0.4) == EngineSettings(shared=False)
    assert resolve_shared(EngineSettings(), busy=BUSY_SHARED_CORES) == EngineSettings(shared=True)
    assert resolve_shared(EngineSettings(2), busy=None) == EngineSettings(2, False)
    assert resolve_shared(EngineSettings(shared=False), busy=5.0).shared is False  # a stated choice stays


def test_this_process_own_threads_are_not_load():
    """A thread of this process keeping a core busy (a previous engine's workers spinning down) is not another
    process's load: the engine still opens spinning."""
    import threading

    from edgekit.runtimes.settings import busy_cores

    stop = threading.Event()

    def spin():
        while not stop.is_set():
            pass

    before = busy_cores(0.3)
    if before is None:
        pytest.skip("no /proc/stat here")
    worker = threading.Thread(target=spin)
    worker.start()
    try:
        time.sleep(0.1)
        assert busy_cores(0.3) < before + BUSY_SHARED_CORES  # (relative: other processes may be busy too)
    finally:
        stop.set()
        worker.join()


def test_a_busy_machine_opens_engines_shared():
    """One process keeping a core busy while ONNX Runtime opens: its idle workers sleep, as --shared says."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        engine = open_engine(assets.shapes_model())
        assert engine.settings.shared is True and spinning(engine) == "0"
        assert "(shared)" in repr(edgekit.load(assets.shapes_model(), backend="onnxruntime"))
    finally:
        busy.kill()
        busy.wait()


def test_openvino_unpins_threads_on_a_shared_machine():
    model = assets.shapes_model()
    alone = open_engine(model, backend="openvino", settings=EngineSettings(shared=False))
    shared = open_engine(model, backend="openvino", threads=1, settings=EngineSettings(shared=True))
    assert alone.compiled.get_property("ENABLE_CPU_PINNING") is True
    assert shared.compiled.get_property("ENABLE_CPU_PINNING") is False
    assert shared.compiled.get_property("INFERENCE_NUM_THREADS") == 1


def ncnn_folder(tmp_path):
    folder = tmp_path / "relu_ncnn"
    folder.mkdir()
    (folder / "model.param").write_text("7767517\n2 2\nInput in0 0 1 in0\nReLU relu_0 1 1 in0 out0\n")
    (folder / "model.bin").write_bytes(b"")
    return folder


def test_ncnn_gets_fp16_and_sleeping_workers_from_the_settings(tmp_path):
    folder = ncnn_folder(tmp_path)
    plain = open_engine(folder, settings=EngineSettings(shared=False))  # kept alive: the Option belongs to its net
    opt = plain.net.opt
    assert not opt.use_fp16_storage and not opt.use_fp16_arithmetic and opt.openmp_blocktime == 20
    tuned = open_engine(folder, settings=EngineSettings(threads=2, shared=True, fp16=True))
    opt = tuned.net.opt
    assert opt.openmp_blocktime == 0 and opt.num_threads == 2
    # FP16 is asked for; whether it runs is the CPU's and the FP16 check's call (test_ncnn covers both)
    import ncnn

    assert tuned.fp16_reason and opt.use_fp16_arithmetic == tuned.fp16_active
    assert tuned.fp16_active or not ncnn.cpu_support_arm_asimdhp() or not tuned.fp16_check.passed


def test_device_profiles_give_settings_and_the_engine_for_onnx_files():
    pi = get_profile("rpi5")
    assert not pi.shared.value  # a Pi's profile leaves `shared` to the load when the engine opens
    assert profile_settings(pi) == EngineSettings(pi.threads.value, None, pi.fp16.value)
    assert profile_settings(replace(pi, shared=replace(pi.shared, value=True))).shared is True
    assert profile_settings(pi, EngineSettings(1, shared=True)).threads == 1
    assert profile_settings(pi, EngineSettings(shared=True)).shared
    fp16 = replace(pi, fp16=replace(pi.fp16, value=True))
    assert profile_settings(fp16).fp16
    assert profile_backend(pi, "m.onnx") is None
    ov = replace(pi, onnx_backend=replace(pi.onnx_backend, value="openvino"))
    assert profile_backend(ov, assets.shapes_model()) == "openvino" and profile_backend(ov, "m.tflite") is None
    detector = edgekit.load(assets.shapes_model(), device=ov)
    assert detector.engine.backend == "openvino" and detector.engine.threads == pi.threads.value
    assert edgekit.load(assets.shapes_model(), device=ov, backend="onnxruntime").engine.backend == "onnxruntime"


def raw_outputs(detector):
    tensor, _ = preprocess(read_image(assets.sample_image()), detector.meta.input, detector.meta.imgsz)
    return detector.engine.run({detector.input.name: tensor})


@pytest.mark.parametrize("model", [assets.shapes_model(), assets.shapes_model().with_name("yolo26n.onnx")])
def test_openvino_runs_onnx_files_as_onnxruntime_does(model):
    ort, ov = edgekit.load(model), edgekit.load(model, backend="openvino")
    assert ov.engine.backend == "openvino" and ov.meta == ort.meta  # the same metadata, read from the file
    image = read_image(assets.sample_image())
    a, b = ort(image), ov(image)
    assert len(a) > 0 and len(a) == len(b)
    np.testing.assert_array_equal(a.class_id, b.class_id)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)  # pixels
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-5)
    if ort.meta.outputs.kind == "boxes_scores":  # no in-graph top-k: every element compares
        expected, found = raw_outputs(ort), raw_outputs(ov)
        for name in ort.meta.outputs.names:
            np.testing.assert_allclose(found[name], expected[name], atol=1e-5)


def test_cli_verbs_take_shared(capsys):
    assert main(["predict", str(assets.shapes_model()), "--shared", "--json", "--backend", "openvino"]) == 0
    out, err = capsys.readouterr()
    assert "openvino (shared), 320x320" in err and json.loads(out.splitlines()[0])["detections"]
    assert main(["profile", str(assets.shapes_model()), "--shared", "--runs", "2", "--warmup", "0", "--no-sweep",
                 "--no-ops", "--quiet"]) == 0
    assert "threads default, shared" in capsys.readouterr().out


def with_precision(tmp_path, precision: str):
    """The bundled shapes model with its edgekit metadata saying `precision` (the graph unchanged)."""
    import onnx

    model = onnx.load(str(assets.shapes_model()))
    for prop in model.metadata_props:
        if prop.key == "edgekit":
            data = json.loads(prop.value)
            data["precision"] = precision
            prop.value = json.dumps(data)
    path = tmp_path / f"shapes-{precision}.onnx"
    onnx.save(model, str(path))
    return path


def test_onnx_metadata_is_read_without_the_graph():
    from edgekit.runtimes.onnx_graph import summarize_onnx

    for model in (assets.shapes_model(), assets.shapes_model().with_name("yolo26n.onnx")):
        summary = summarize_onnx(model, graph=False)
        assert summary.metadata == open_engine(model).metadata() and "edgekit" in summary.metadata
        assert not summary.ops and summary.opsets  # the graph was skipped, the rest read


def test_load_runs_onnx_files_on_the_engine_this_machines_profile_names(tmp_path, monkeypatch):
    import edgekit.devices.profiles as profiles

    x86 = get_profile("x86-cpu")
    assert x86.onnx_backend.value == "openvino"
    assert profile_backend(x86, with_precision(tmp_path, "fp32")) == "openvino"
    assert profile_backend(x86, with_precision(tmp_path, "int8")) is None  # its budget was measured on ONNX Runtime
    assert profile_backend(x86, with_precision(tmp_path, "fp16")) is None  # verified on ONNX Runtime
    assert profile_backend(x86, "m.tflite") is None
    for junk, content in (("junk.onnx", b"this is not a model"), ("empty.onnx", b"")):
        (tmp_path / junk).write_bytes(content)
        assert profile_backend(x86, tmp_path / junk) is None  # ONNX Runtime's error names the problem
    monkeypatch.setattr(profiles, "detect_device", lambda: profiles.DetectedDevice("x86-cpu", None, "x86_64", 2,
                                                                                   None, "test"))
    assert edgekit.load(assets.shapes_model()).engine.backend == "openvino"
    assert edgekit.load(with_precision(tmp_path, "int8")).engine.backend == "onnxruntime"
    assert edgekit.load(assets.shapes_model(), backend="onnxruntime").engine.backend == "onnxruntime"
    monkeypatch.setattr(profiles, "detect_device", lambda: profiles.DetectedDevice("rpi5", None, "aarch64", 4,
                                                                                   None, "test"))
    assert edgekit.load(assets.shapes_model()).engine.backend == "onnxruntime"  # a Pi's profile keeps ONNX Runtime
    monkeypatch.setattr(profiles, "detect_device", lambda: profiles.DetectedDevice(None, None, "riscv64", 4,
                                                                                   None, "test"))
    assert edgekit.load(assets.shapes_model()).engine.backend == "onnxruntime"
