"""Device profiles: what a target device is (architecture, cores, memory) and what runs best on it
(format, precision, threads, input size), each choice with its reason; and detecting the current machine."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError
from edgekit.runtimes.settings import EngineSettings

# format -> the runtime backend that opens it
FORMAT_BACKENDS = {
    "onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert", "coreml": "coreml", "ncnn": "ncnn",
    "executorch": "executorch",
}


@dataclass(frozen=True)
class Choice:
    """One preferred setting and the one-line reason for it."""

    value: Any
    reason: str


@dataclass(frozen=True)
class DeviceProfile:
    """A target device and the settings edgekit picks for it."""

    name: str
    title: str
    arch: str
    cores: int
    memory_mb: int
    formats: Choice  # tuple of formats, best first
    precisions: Choice  # tuple of precisions, best first (int8 needs calibration images when converting)
    threads: Choice  # int, or None for "let the engine decide"
    imgsz: Choice  # input size: one side (square) or (height, width), multiples of 32
    notes: tuple[str, ...] = field(default_factory=tuple)
    shared: Choice = Choice(False, "a device runs its detector alone: idle engine workers spin-wait between "
                                   "operators (docs/benchmarks.md, Engine settings)")  # bool: EngineSettings.shared
    fp16: Choice = Choice(False, "FP32 arithmetic, exactly as verified")  # bool: EngineSettings.fp16
    onnx_backend: Choice = Choice("onnxruntime", "ONNX Runtime, the engine ONNX files are made for")
    offered: Choice = Choice((), "")  # formats that also run well here, never written by a conversion's default

    @property
    def format(self) -> str:
        """The preferred format."""
        return self.formats.value[0]

    @property
    def backend(self) -> str:
        """The runtime backend of the preferred format."""
        return FORMAT_BACKENDS[self.format]

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain data (JSON-ready)."""
        data = asdict(self)
        for key in ("formats", "precisions", "offered"):
            data[key]["value"] = list(data[key]["value"])
        data["notes"] = list(self.notes)
        return data


PROFILES: dict[str, DeviceProfile] = {}


def register(profile: DeviceProfile) -> DeviceProfile:
    """Add a profile to the registry (names are unique)."""
    if profile.name in PROFILES:
        raise ValueError(f"device profile {profile.name!r} is registered twice")
    PROFILES[profile.name] = profile
    return profile


ESTIMATE = "benchmarks/arm_estimate.md"  # aarch64 instructions counted under emulation, calibrated on published Pi 5 ms
OPENVINO_ON_ARM = ("OpenVINO's ARM plugin runs INT8 files as FP16 at best (its maintainers, "
                   "openvinotoolkit/openvino_build_deploy#440; counted here: no fast path at all), so it is never "
                   "the INT8 choice on a Pi")

register(DeviceProfile(
    name="rpi5",
    title="Raspberry Pi 5 (BCM2712, 4x Cortex-A76 2.4 GHz)",
    arch="aarch64",
    cores=4,
    memory_mb=4096,
    formats=Choice(("tflite", "onnx", "ncnn", "openvino"),
                   f"estimated on an emulated Cortex-A76 ({ESTIMATE}; not measured on a Pi), YOLO26n 640 INT8: "
                   "LiteRT (XNNPACK's dot-product kernels) 45 ms, ONNX Runtime 60, NCNN INT8 (written by edgekit) 76 "
                   "(57 with fp16 arithmetic in its float layers, which the engine turns on only for a file within "
                   "FP16 tolerance); FP32: NCNN with fp16 arithmetic 67 (the published 67.2), OpenVINO f16 71, ONNX "
                   "Runtime 127. LiteRT's factor is not calibrated on a published figure: read it as +-40%"),
    precisions=Choice(("int8", "fp32"),
                      "the A76 has dot-product (SDOT) instructions: INT8 executes 0.3-0.5x the instructions of "
                      "FP32 in every engine that has int8 kernels for it; FP16 files save size only"),
    threads=Choice(4, "four cores without SMT: one inference thread per core"),
    imgsz=Choice(640, "the A76 keeps a t/n model at several FPS at 640; drop to 320 for real-time tracking"),
    notes=("active cooling recommended: without it the SoC throttles from 80 C (edgekit profile shows it)",
           OPENVINO_ON_ARM),
    fp16=Choice(True, "the A76 has FP16 arithmetic: NCNN computes in FP16 (about half its FP32 instructions, "
                      f"{ESTIMATE}) for a file that stays within FP16 tolerance of its FP32 run, checked when the "
                      "engine opens it on the Pi; other files and engines stay FP32"),
))
register(DeviceProfile(
    name="rpi4",
    title="Raspberry Pi 4 / 400 / CM4 (BCM2711, 4x Cortex-A72 1.5-1.8 GHz)",
    arch="aarch64",
    cores=4,
    memory_mb=4096,
    formats=Choice(("tflite", "onnx", "ncnn"),
                   f"estimated on an emulated Cortex-A72 ({ESTIMATE}; not measured on a Pi), YOLO26n 320 INT8: "
                   "LiteRT 30 ms (factor not calibrated on a published figure: +-40%), ONNX Runtime 36; NCNN 42 in "
                   "FP32 and 42 in INT8 (the A72 has no FP16 arithmetic and no dot-product instructions: neither "
                   "NCNN's fp16 path nor its int8 kernels save instructions here)"),
    precisions=Choice(("int8", "fp32"),
                      "INT8 NEON kernels move a quarter of the bytes through the A72's small caches; FP16 has no "
                      "arithmetic on the A72"),
    threads=Choice(4, "four cores without SMT: one inference thread per core"),
    imgsz=Choice(320, "a quarter of the work of 640: users report 400-700 ms per frame at 640 on a Pi 4"),
    notes=("use a 64-bit OS: the aarch64 wheels are the ones built and tested", OPENVINO_ON_ARM),
))
register(DeviceProfile(
    name="rpi-zero-2w",
    title="Raspberry Pi Zero 2 W (RP3A0, 4x Cortex-A53 1 GHz, 512 MB)",
    arch="aarch64",
    cores=4,
    memory_mb=512,
    formats=Choice(("tflite", "onnx", "ncnn"),
                   f"LiteRT (XNNPACK) has the smallest install and working set, which matters more than speed with "
                   f"512 MB of RAM: estimated on an emulated Cortex-A53 ({ESTIMATE}), YOLO26n 320 INT8, LiteRT 68 ms "
                   "(uncalibrated factor) and ONNX Runtime 65 are level; NCNN 76 in INT8, 130 in FP32"),
    precisions=Choice(("int8", "fp32"),
                      "full-integer INT8 is about 4x smaller in memory and the fastest path on the in-order A53"),
    threads=Choice(3, "leave one of the four cores to camera capture and the OS"),
    imgsz=Choice(320, "512 MB of RAM and an in-order A53: peak RSS of a t/n model at 320 stays well under 200 MB"),
    notes=("512 MB of RAM: keep one model loaded, no desktop, camera at low resolution",),
))
register(DeviceProfile(
    name="generic-arm64-linux",
    title="Other 64-bit ARM Linux boards (Jetson CPU, Rock, Orange Pi, Graviton, ...)",
    arch="aarch64",
    cores=4,
    memory_mb=2048,
    formats=Choice(("onnx", "tflite"), "ONNX Runtime has aarch64 wheels for every common distribution"),
    precisions=Choice(("fp32", "int8"),
                      "FP32 is exact and portable; INT8 helps where the core has dot-product instructions"),
    threads=Choice(None, "core counts vary: let the engine use the physical cores"),
    imgsz=Choice(640, "the training size of most checkpoints; reduce it when the board is slow"),
))
register(DeviceProfile(
    name="android-arm64",
    title="Android phones (arm64-v8a, big.LITTLE)",
    arch="aarch64",
    cores=8,
    memory_mb=4096,
    formats=Choice(("tflite",), "LiteRT is Android's own engine, and MediaPipe's ObjectDetector runs edgekit's "
                   "--phone TFLite as is"),
    precisions=Choice(("int8", "fp16"),
                      "INT8 for the CPU (dot-product cores); FP16 is what the GPU delegate computes in"),
    threads=Choice(4, "use the big cores only: threads on the LITTLE cores slow every step down to theirs"),
    imgsz=Choice((288, 384), "a phone camera's default stream is 4:3 (CameraX 640x480) and MediaPipe stretches "
                 "the frame to the input: at 4:3 that is a uniform scale, where a square input squeezes every object "
                 "to 3/4 of its width; 288x384 is about the work of 320x320, real time on the CPU"),
    notes=("convert with --to tflite --phone for MediaPipe Tasks",
           "a portrait app feeds 480x640 frames: --imgsz 384,288"),
    offered=Choice(("executorch",), "ExecuTorch (PyTorch's on-device runtime, XNNPACK on the CPU) for apps built "
                   "on it; not measured faster than LiteRT (docs/convert/executorch.md)"),
))
register(DeviceProfile(
    name="ios",
    title="iPhone / iPad (Apple silicon, Neural Engine)",
    arch="arm64",
    cores=6,
    memory_mb=4096,
    formats=Choice(("coreml",), "CoreML is the only way onto the Neural Engine; --coreml-nms makes a pipeline "
                   "Vision runs directly"),
    precisions=Choice(("fp16", "int8"),
                      "the Neural Engine computes in FP16; INT8 CoreML is W8A8 (calibrated in torch; its speed "
                      "is a device measurement)"),
    threads=Choice(None, "CoreML schedules its own compute units"),
    imgsz=Choice(640, "the Neural Engine runs a t/n model at 640 in a few milliseconds"),
    offered=Choice(("executorch",), "ExecuTorch (XNNPACK on the CPU) for apps built on PyTorch's runtime; the "
                   "Neural Engine is CoreML's"),
))
register(DeviceProfile(
    name="x86-cpu",
    title="x86-64 laptops, desktops and servers (CPU only)",
    arch="x86_64",
    cores=4,
    memory_mb=8192,
    formats=Choice(("openvino", "onnx"),
                   "OpenVINO's CPU plugin is the fastest on Intel CPUs; ONNX Runtime is the portable fallback"),
    precisions=Choice(("int8", "fp32"),
                      "VNNI / AVX-512 make INT8 1.4-2x faster than FP32 (edgekit's backend benchmark); x86 has "
                      "no FP16 arithmetic"),
    threads=Choice(None, "the engines default to the physical cores, which is right on a desktop"),
    imgsz=Choice(640, "the training size of most checkpoints"),
    onnx_backend=Choice("openvino", "OpenVINO reads ONNX directly and ran FP32 files 1.0-1.2x faster than ONNX "
                        "Runtime with the same outputs (bench_engines.py, docs/benchmarks.md); FP16 and INT8 files "
                        "stay on ONNX Runtime, where they were verified"),
))


def get_profile(name: str) -> DeviceProfile:
    """The profile called `name`; an unknown name raises EdgekitError listing the known ones."""
    if isinstance(name, DeviceProfile):
        return name
    key = str(name).strip().lower()
    if key not in PROFILES:
        raise EdgekitError(f"unknown device '{name}'; known devices: {', '.join(PROFILES)}")
    return PROFILES[key]


@dataclass
class DetectedDevice:
    """What this machine is, as far as its files say, and the profile that fits it."""

    profile: str | None
    model: str | None
    arch: str
    cores: int
    memory_mb: int | None
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        """The detection as plain data (JSON-ready)."""
        return asdict(self)


# Raspberry Pi new-style revision codes: bits 4-11 are the board type, bits 20-22 the memory size
_PI_TYPES = {0x11: "rpi4", 0x13: "rpi4", 0x14: "rpi4", 0x17: "rpi5", 0x18: "rpi5", 0x19: "rpi5", 0x12: "rpi-zero-2w"}
_PI_MEMORY_MB = {0: 256, 1: 512, 2: 1024, 3: 2048, 4: 4096, 5: 8192, 6: 16384}


def parse_cpuinfo(text: str) -> dict[str, str]:
    """The `key: value` lines of /proc/cpuinfo (the last value of each key wins) plus `processors`."""
    fields: dict[str, str] = {}
    processors = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        fields[key] = value.strip()
        if key == "processor":
            processors += 1
    fields["processors"] = str(processors)
    return fields


def pi_revision(code: str) -> tuple[str | None, int | None]:
    """(profile name, memory in MB) of a Raspberry Pi revision code such as c03114; (None, None) if unknown."""
    try:
        value = int(code, 16)
    except ValueError:
        return None, None
    if not value & (1 << 23):  # old-style codes: boards before the Pi 2 B v1.2
        return None, None
    return _PI_TYPES.get((value >> 4) & 0xFF), _PI_MEMORY_MB.get((value >> 20) & 0x7)


def _profile_from_model(model: str) -> str | None:
    text = model.lower()
    if "raspberry pi 5" in text or "compute module 5" in text or "raspberry pi 500" in text:
        return "rpi5"
    if "raspberry pi 4" in text or "compute module 4" in text or "raspberry pi 400" in text:
        return "rpi4"
    if "zero 2" in text:
        return "rpi-zero-2w"
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return None


def _memory_mb(meminfo: str | None) -> int | None:
    for line in (meminfo or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return None


def detect_device(root: str | Path = "/", machine: str | None = None, system: str | None = None) -> DetectedDevice:
    """Identify this machine from /proc/device-tree/model, /proc/cpuinfo and the platform.

    `root` (and `machine`, `system`) let tests point this at copies of another machine's files.
    """
    root = Path(root)
    machine = (machine or platform.machine()).lower()
    system = (system or sys.platform).lower()
    cpuinfo = parse_cpuinfo(_read(root / "proc/cpuinfo") or "")
    cores = int(cpuinfo["processors"]) or os.cpu_count() or 1
    memory = _memory_mb(_read(root / "proc/meminfo"))
    arch = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}.get(machine, machine)
    model = (_read(root / "proc/device-tree/model") or "").strip("\x00\n ") or None
    if model and (name := _profile_from_model(model)):
        return DetectedDevice(name, model, arch, cores, memory, "/proc/device-tree/model")
    if "Model" in cpuinfo and (name := _profile_from_model(cpuinfo["Model"])):
        return DetectedDevice(name, cpuinfo["Model"], arch, cores, memory, "/proc/cpuinfo Model")
    if "Revision" in cpuinfo:
        name, pi_memory = pi_revision(cpuinfo["Revision"])
        if name:
            return DetectedDevice(name, model, arch, cores, memory or pi_memory, "/proc/cpuinfo Revision")
    if system in ("ios", "ipados") or (system == "darwin" and machine.startswith(("iphone", "ipad"))):
        return DetectedDevice("ios", model, arch, cores, memory, f"platform {system}")
    if system == "android" or hasattr(sys, "getandroidapilevel") or "ANDROID_ROOT" in os.environ:
        return DetectedDevice("android-arm64", model, arch, cores, memory, "platform android")
    if arch == "aarch64" and system.startswith("linux"):
        return DetectedDevice("generic-arm64-linux", model, arch, cores, memory, f"platform {system} {machine}")
    if arch in ("x86_64", "i686", "i386"):
        return DetectedDevice("x86-cpu", model, arch, cores, memory, f"platform {system} {machine}")
    return DetectedDevice(None, model, arch, cores, memory, f"no profile fits platform {system} {machine}")


def size_list(value: int | tuple[int, int]) -> list[int]:
    """A profile's input size as --imgsz takes it: [side] or [height, width]."""
    return list(value) if isinstance(value, tuple) else [value]


def size_text(value: int | tuple[int, int]) -> str:
    """A profile's input size as shown: ``320`` or ``288x384`` (height x width)."""
    return "x".join(str(v) for v in size_list(value))


def resolve_threads(profile: DeviceProfile, threads: int | None = None) -> int | None:
    """Explicit threads win; else the profile's (None lets the engine decide)."""
    return threads if threads else profile.threads.value


def profile_settings(profile: DeviceProfile, settings: EngineSettings | None = None) -> EngineSettings:
    """The engine settings for this device: `settings`' thread count if it has one, else the profile's; shared
    and FP16 where either `settings` or the profile turns them on."""
    settings = settings or EngineSettings()
    return EngineSettings(
        threads=resolve_threads(profile, settings.threads),
        shared=True if profile.shared.value else settings.shared,
        fp16=settings.fp16 or bool(profile.fp16.value),
    )


def profile_backend(profile: DeviceProfile, path: str | Path) -> str | None:
    """The engine this device runs `path` on where the profile names one for its file type (ONNX files:
    ``onnx_backend``, when that engine is installed and the file is FP32: an FP16 or INT8 file was verified and
    its accuracy measured on ONNX Runtime, so it stays there, as does a file that is not readable ONNX, so that
    its error is ONNX Runtime's); None leaves the choice to the file's type."""
    if Path(path).suffix.lower() != ".onnx" or profile.onnx_backend.value == FORMAT_BACKENDS["onnx"]:
        return None
    import importlib.util

    if not importlib.util.find_spec(profile.onnx_backend.value) or _onnx_precision(Path(path)) != "fp32":
        return None
    return profile.onnx_backend.value


def machine_backend(path: str | Path) -> str | None:
    """:func:`profile_backend` for this machine's profile (:func:`detect_device`): the engine `edgekit.load`
    runs `path` on when no device and no backend are given; None where no profile fits or it names none."""
    name = detect_device().profile
    return None if name is None else profile_backend(PROFILES[name], path)


def _onnx_precision(path: Path) -> str | None:
    """The precision of an .onnx file as edgekit's metadata states it (``fp32`` for a file without edgekit's
    metadata, an Ultralytics export among them); None for a file that is not readable ONNX or whose metadata is
    wrong: ONNX Runtime then refuses it with its own error."""
    from edgekit.meta import from_props
    from edgekit.runtimes.onnx_graph import summarize_onnx

    try:
        summary = summarize_onnx(path, graph=False)
        meta = from_props(summary.metadata)
    except (EdgekitError, OSError):
        return None
    if not summary.opsets:  # an empty file is an empty protobuf message, not a model
        return None
    return "fp32" if meta is None else meta.precision


def profile_hints(profile: DeviceProfile, backend: str, precision: str, imgsz: tuple[int, int]) -> list[str]:
    """Where a loaded model differs from what the profile prefers, one line each (empty when it matches)."""
    hints = []
    backends = [FORMAT_BACKENDS[f] for f in profile.formats.value + profile.offered.value]
    if backend not in backends:
        hints.append(f"runs on {backend}; this device prefers {profile.format} ({profile.formats.reason})")
    if precision not in profile.precisions.value:
        hints.append(f"precision {precision}; this device prefers {profile.precisions.value[0]} "
                     f"({profile.precisions.reason})")
    size = size_list(profile.imgsz.value)
    if max(imgsz) > max(size):
        hints.append(
            f"input {imgsz[0]}x{imgsz[1]} is larger than the {size_text(profile.imgsz.value)} this device prefers "
            f"({profile.imgsz.reason})"
        )
    return hints


@dataclass
class ConvertPlan:
    """The convert options a device profile picks: formats, precisions, input size, and why."""

    formats: list[str]
    precisions: list[str]
    imgsz: list[int]  # one side (square) or height, width
    notes: list[str]


def convert_plan(profile: DeviceProfile, have_calibration: bool, formats: str | None = None) -> ConvertPlan:
    """Turn a profile's preferences into `edgekit convert` options.

    The preferred format and the one after it are written (so there is a fallback engine), in every
    preferred precision; INT8 is dropped with a note when no calibration images are given. `formats`
    (a user's --to) overrides the profile's choice of formats.
    """
    notes = []
    chosen = [f.strip() for f in formats.split(",")] if formats else list(profile.formats.value[:2])
    if not formats:
        notes.append(f"formats {', '.join(chosen)}: {profile.formats.reason}")
    precisions = list(profile.precisions.value)
    if "int8" in precisions and not have_calibration:
        precisions.remove("int8")
        notes.append("int8 skipped: it needs calibration images (--calib); converting "
                     f"{', '.join(precisions)} only")
    else:
        notes.append(f"precisions {', '.join(precisions)}: {profile.precisions.reason}")
    notes.append(f"input {size_text(profile.imgsz.value)}: {profile.imgsz.reason}")
    return ConvertPlan(chosen, precisions, size_list(profile.imgsz.value), notes)


@dataclass
class ConvertTargets:
    """What a conversion writes: formats and precisions (comma-separated), input size (None: not chosen, the
    checkpoint's default applies) and, from a device profile, why."""

    formats: str
    precisions: str
    imgsz: list[int] | None
    notes: list[str] = field(default_factory=list)


def convert_targets(
    device: str | None,
    formats: str | None,
    precisions: str | None,
    imgsz: list[int] | None,
    *,
    have_calibration: bool,
    default_formats: str,
    default_precisions: str,
) -> ConvertTargets:
    """The one merge of a user's --to / --precision / --imgsz with a device profile and the verb's defaults:
    what the user gave wins, then the profile named by `device` (see `convert_plan`), then the defaults.

    Raises EdgekitError for an unknown device name.
    """
    if device is None:
        return ConvertTargets(formats or default_formats, precisions or default_precisions, imgsz)
    plan = convert_plan(get_profile(device), have_calibration, formats)
    return ConvertTargets(
        ",".join(plan.formats), precisions or ",".join(plan.precisions), imgsz or plan.imgsz, plan.notes
    )


def run_notes(profile: DeviceProfile, threads: int | None, backend: str, precision: str,
              imgsz: tuple[int, int]) -> list[str]:
    """What `predict --device` reports about a loaded model: its thread count, then every `profile_hints` line."""
    return [f"{threads or 'default'} threads", *profile_hints(profile, backend, precision, imgsz)]


def describe_profiles(detected: DetectedDevice | None = None) -> str:
    """A table of every profile, the detected one marked, then what this machine is."""
    lines = [f"  {'device':<20} {'arch':<8} {'cores':>5} {'memory':>7}  {'format':<9} {'precision':<9} "
             f"{'threads':>7} {'imgsz':>7}"]
    for p in PROFILES.values():
        mark = "*" if detected and detected.profile == p.name else " "
        threads = p.threads.value if p.threads.value else "auto"
        memory = f"{p.memory_mb // 1024} GB" if p.memory_mb >= 1024 else f"{p.memory_mb} MB"
        lines.append(f"{mark} {p.name:<20} {p.arch:<8} {p.cores:>5} {memory:>7}  {p.format:<9} "
                     f"{p.precisions.value[0]:<9} {threads!s:>7} {size_text(p.imgsz.value):>7}")
    if detected is not None:
        memory = f"{detected.memory_mb} MB" if detected.memory_mb else "memory unknown"
        what = detected.model or detected.arch
        if detected.profile:
            lines.append(f"this machine: {what}, {detected.cores} cores, {memory} -> {detected.profile} "
                         f"(from {detected.evidence})")
        else:
            lines.append(f"this machine: {what}, {detected.cores} cores, {memory}: {detected.evidence}")
    return "\n".join(lines)


def describe_profile(profile: DeviceProfile) -> str:
    """One profile in full: every choice with its reason."""
    memory = f"{profile.memory_mb // 1024} GB" if profile.memory_mb >= 1024 else f"{profile.memory_mb} MB"
    lines = [f"{profile.name}: {profile.title}", f"  hardware   {profile.arch}, {profile.cores} cores, {memory}"]
    for label, choice in (("formats", profile.formats), ("precision", profile.precisions),
                          ("threads", profile.threads), ("imgsz", profile.imgsz), ("shared", profile.shared),
                          ("fp16", profile.fp16), ("onnx on", profile.onnx_backend), ("offered", profile.offered)):
        if label == "offered" and not choice.value:
            continue
        value = choice.value
        if label == "imgsz":
            shown = size_text(value)
        else:
            shown = ", ".join(value) if isinstance(value, tuple) else ("auto" if value is None else value)
        lines.append(f"  {label:<10} {shown}: {choice.reason}")
    lines.extend(f"  note       {note}" for note in profile.notes)
    return "\n".join(lines)
