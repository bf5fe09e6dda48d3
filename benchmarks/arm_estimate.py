"""Estimated Raspberry Pi latency of every artifact edgekit writes, from aarch64 instructions counted under emulation.

Each model file runs with edgekit's own runtime engine inside an emulated Debian arm64 userland (user-mode QEMU
with ``-cpu cortex-a76`` / ``cortex-a72`` / ``cortex-a53``, the Raspberry Pi 5 / 4 / Zero 2 W cores, and that
device's /proc/cpuinfo and CPU ID registers, so engines pick the kernels they pick on the device). A TCG plugin
(benchmarks/qemu_plugin/insn_count.c) counts executed guest instructions per guest thread; the guest brackets
each ``engine.run`` with a marker syscall, so one inference is counted exactly (deterministic, whatever the host
load). Instructions are not milliseconds: latency is estimated per engine as instructions / (IPC x clock), the
IPC of NCNN, OpenVINO and ONNX Runtime fitted on published Raspberry Pi 5 figures (YOLO26n 640 FP32, 4 threads),
and the report states how well the counts alone reproduce those figures (benchmarks/arm_estimate.md).

    apt-get install -y qemu-user debootstrap gcc             # qemu-user: the dynamic qemu-aarch64 loads plugins
    WITH_OPENVINO=1 scripts/arm64_userland.sh                # the emulated userland, /tmp/edgekit-arm64
    nice -n 10 python benchmarks/arm_estimate.py MODELS_DIR... --record counts.json [--cpus a76,a72,a53]
        [--threads 1,4] [--markdown benchmarks/arm_estimate.md]
    python benchmarks/arm_estimate.py --from benchmarks/arm_counts.json      # the table from recorded counts
    python benchmarks/arm_estimate.py --smoke                                 # CI: no emulator needed

MODELS_DIR holds the artifacts of one `edgekit convert` (every format x precision); each is counted for every
engine setting that matters on ARM (NCNN in FP32 and with fp16 arithmetic, OpenVINO at its f32 default and
at f16, OpenVINO's own choice on ARM). --record appends each count as it finishes and skips counts already
there, so an interrupted run resumes. The host side needs the x86 engines (to read each artifact's metadata).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "benchmarks" / "qemu_plugin"
RECORDED = ROOT / "benchmarks" / "arm_counts.json"
RECORDED_LOG = PLUGIN_DIR / "sample.log"
MARKER_SYSCALL = 4242  # the number insn_count.c watches (an unused aarch64 syscall number)


@dataclass(frozen=True)
class Core:
    """An emulated Raspberry Pi core: QEMU's -cpu name and the device fixture (its /proc/cpuinfo and clock)."""

    key: str
    qemu: str
    device: str
    title: str

    @property
    def fixture(self) -> Path:
        return ROOT / "tests" / "fixtures" / "devices" / self.device

    @property
    def ghz(self) -> float:
        """The device's maximum clock (its recorded cpufreq scaling_max_freq, kHz)."""
        khz = (self.fixture / "sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq").read_text()
        return int(khz) / 1e6


CORES = {
    core.key: core
    for core in (
        Core("a76", "cortex-a76", "rpi5", "Cortex-A76 (Raspberry Pi 5)"),
        Core("a72", "cortex-a72", "rpi4", "Cortex-A72 (Raspberry Pi 4)"),
        Core("a53", "cortex-a53", "rpi-zero-2w", "Cortex-A53 (Raspberry Pi Zero 2 W)"),
    )
}

# engine settings counted per artifact: (backend, precision of the file) -> [(setting name, engine keywords)];
# "" is edgekit's engine default
SETTINGS: dict[str, list[tuple[str, dict]]] = {
    "ncnn": [("", {}), ("fp16 arithmetic", {"fp16_storage": True, "fp16_arithmetic": True})],
    "openvino": [("", {}), ("f16 (its ARM default)", {"precision_hint": "f16"})],
}
ENGINE_TITLES = {"onnxruntime": "ONNX Runtime", "litert": "LiteRT (XNNPACK)", "ncnn": "NCNN", "openvino": "OpenVINO"}


@dataclass(frozen=True)
class Published:
    """A published Raspberry Pi 5 latency (ms per inference) of one engine setting on YOLO26n 640 FP32."""

    backend: str
    setting: str
    ms: float
    range_ms: str
    source: str


# the figures the estimate is calibrated on (inference only, 4 threads, YOLO26n 640 FP32 on a Raspberry Pi 5)
ULTRALYTICS_PI = "Ultralytics' Raspberry Pi guide (docs.ultralytics.com/guides/raspberry-pi), YOLO26n 640"
PUBLISHED = [
    Published("ncnn", "fp16 arithmetic", 67.2, "67.2-67.7", ULTRALYTICS_PI + " (NCNN defaults: fp16 on an A76)"),
    Published("openvino", "f16 (its ARM default)", 70.7, "70.7", ULTRALYTICS_PI + " (OpenVINO's default: f16)"),
    Published("onnxruntime", "", 126.9, "126.9-130", ULTRALYTICS_PI),
]
UNCOUNTED = [  # published figures of engines not counted here, named in the report
    ("ExecuTorch (XNNPACK) FP32", "136.9", ULTRALYTICS_PI),
    ("Arm's XNNPACK FP16 runtime", "36.6", "Arm's YOLO26 Raspberry Pi 5 runtime card"),
]


@dataclass(frozen=True)
class Job:
    """One count: an artifact with one engine setting on one emulated core and thread count."""

    model: str
    imgsz: int
    path: str
    backend: str
    precision: str
    setting: str
    options: dict = field(hash=False)
    core: str
    threads: int

    @property
    def rank(self) -> tuple:
        """Order within a core, thread count and size: FP32 first (the calibration needs it), then by file."""
        return (self.precision != "fp32", self.path)


@dataclass(frozen=True)
class Count:
    """Instructions per inference of one job: every measured run's total over threads and its busiest thread."""

    model: str
    imgsz: int
    backend: str
    precision: str
    setting: str
    core: str
    threads: int
    total: list[int]
    busiest: list[int]
    active_threads: int

    @property
    def instructions(self) -> float:
        """The latency-relevant count: the median run's busiest guest thread (the critical path)."""
        return float(statistics.median(self.busiest))


def identity(item: Job | Count) -> tuple:
    """What one count is of: model, input size, engine setting, core and threads (Count's leading fields)."""
    return (item.model, item.imgsz, item.backend, item.precision, item.setting, item.core, item.threads)


def row_label(backend: str, precision: str, setting: str) -> str:
    base = f"{ENGINE_TITLES.get(backend, backend)} {precision.upper()}"
    return f"{base}, {setting}" if setting else base


# ---------------------------------------------------------------------------------------------- plugin output


def parse_marks(text: str) -> dict[int, dict[int, int]]:
    """The plugin log's marker lines ("mark TAG VCPU IDX:COUNT ...") as {tag: {vcpu: instructions so far}}.

    Raises ValueError for a line that is neither a marker nor the exit line.
    """
    marks: dict[int, dict[int, int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0] == "exit":
            continue
        if fields[0] != "mark" or len(fields) < 3:
            raise ValueError(f"not a plugin line: {line!r}")
        marks[int(fields[1])] = {int(i): int(n) for i, n in (f.split(":") for f in fields[3:])}
    return marks


def tag(setting: int, run: int, end: bool) -> int:
    """The marker tag around run `run` of the `setting`-th engine setting of a guest process."""
    return 1000 * (setting + 1) + 2 * run + (2 if end else 1)


def per_run(marks: dict[int, dict[int, int]], runs: int, setting: int = 0) -> tuple[list[int], list[int], int]:
    """Per measured run of one setting: (totals over threads, busiest thread, threads that ran at least 1% of the
    busiest one's instructions in any run). Raises ValueError when a marker is missing."""
    totals, busiest, active = [], [], 0
    for r in range(runs):
        start, end = marks.get(tag(setting, r, False)), marks.get(tag(setting, r, True))
        if start is None or end is None:
            raise ValueError(f"run {r}: marker {tag(setting, r, end=start is not None)} missing from the log")
        deltas = [n - start.get(vcpu, 0) for vcpu, n in end.items()]
        totals.append(sum(deltas))
        busiest.append(max(deltas))
        active = max(active, sum(d >= 0.01 * max(deltas) for d in deltas))
    return totals, busiest, active


# ---------------------------------------------------------------------------------------------- guest side


def guest(path: str, backend: str, settings: list[dict], threads: int, runs: int) -> None:
    """Run inside the emulated userland: for each engine setting (keywords of edgekit's engine for `backend`),
    open `path`, run once to warm up, then `runs` runs each bracketed by the marker syscall (see :func:`tag`)."""
    import ctypes
    import importlib

    from edgekit.runtimes.engine import BACKENDS

    module, cls, _ = BACKENDS[backend]
    libc = ctypes.CDLL(None)
    mark = libc.syscall
    mark.argtypes = [ctypes.c_long, ctypes.c_long]
    for i, options in enumerate(settings):
        engine = getattr(importlib.import_module(module), cls)(path, threads=threads, **options)
        feeds = _feeds(engine)
        engine.run(feeds)
        for r in range(runs):
            mark(MARKER_SYSCALL, tag(i, r, False))
            engine.run(feeds)
            mark(MARKER_SYSCALL, tag(i, r, True))
        print(json.dumps({"ok": i}), flush=True)
        del engine


def _feeds(engine) -> dict:
    """Seeded random inputs of the engine's fixed input shapes and dtypes (counts barely depend on values)."""
    import numpy as np

    rng = np.random.default_rng(0)
    feeds = {}
    for spec in engine.inputs:
        if spec.is_dynamic:
            raise SystemExit(f"{engine.path}: input {spec.name} has a dynamic shape {spec.shape}")
        if np.dtype(spec.dtype).kind == "f":
            feeds[spec.name] = rng.random(spec.shape, dtype=np.float32).astype(spec.dtype)
        else:
            info = np.iinfo(spec.dtype)
            feeds[spec.name] = rng.integers(info.min, info.max, spec.shape, dtype=spec.dtype, endpoint=True)
    return feeds


# ---------------------------------------------------------------------------------------------- host side


@dataclass(frozen=True)
class Userland:
    """The emulated aarch64 userland scripts/arm64_userland.sh builds, and the tools that run it."""

    work: Path
    qemu: str
    plugin: Path

    @property
    def rootfs(self) -> Path:
        return self.work / "rootfs"

    @property
    def site(self) -> Path:
        return self.work / "site"

    def core_root(self, core: Core) -> Path:
        """A prefix for `qemu-aarch64 -L` that is the rootfs with `core`'s device files: its /proc/cpuinfo, and
        /sys/devices/system/cpu with the CPU count, clock and ID register (MIDR_EL1) engines read."""
        root = self.work / f"root-{core.key}"
        if not root.is_dir():  # hard links: real folders (a symlinked /tmp would send realpath() astray)
            partial = root.with_name(root.name + ".partial")
            subprocess.run(["rm", "-rf", str(partial)], check=True)
            subprocess.run(["cp", "-al", str(self.rootfs), str(partial)], check=True)
            subprocess.run(["rm", "-rf", str(partial / "proc"), str(partial / "sys")], check=True)
            partial.rename(root)
        (root / "proc").mkdir(exist_ok=True)
        cpuinfo = (core.fixture / "proc" / "cpuinfo").read_text()
        (root / "proc" / "cpuinfo").write_text(cpuinfo)
        fields = dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in cpuinfo.splitlines()) if v)
        midr = (
            int(fields["CPU implementer"], 16) << 24
            | int(fields["CPU variant"], 16) << 20
            | 0xF << 16
            | int(fields["CPU part"], 16) << 4
            | int(fields["CPU revision"])
        )
        n = cpuinfo.count("processor\t:")
        cpus = root / "sys" / "devices" / "system" / "cpu"
        cpus.mkdir(parents=True, exist_ok=True)
        for name in ("possible", "present", "online"):
            (cpus / name).write_text(f"0-{n - 1}\n")
        for i in range(n):
            for rel, text in (
                ("regs/identification/midr_el1", f"0x{midr:016x}"),
                ("cpufreq/cpuinfo_max_freq", str(int(core.ghz * 1e6))),
                ("topology/core_siblings_list", f"0-{n - 1}"),
                ("topology/thread_siblings_list", str(i)),
                ("topology/physical_package_id", "0"),
                ("topology/core_id", str(i)),
            ):
                (cpus / f"cpu{i}" / rel).parent.mkdir(parents=True, exist_ok=True)
                (cpus / f"cpu{i}" / rel).write_text(text + "\n")
        return root

    def count(self, jobs: list[Job], runs: int, timeout: float, keep_log: Path | None = None) -> list[Count | str]:
        """Count jobs that share one artifact, core and thread count in one emulated process (imports once).
        Per job: its Count, or the reason it has none (the guest's last words when it failed or timed out)."""
        job = jobs[0]
        root = self.core_root(CORES[job.core])
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "plugin.log"
            script = Path(tmp) / "arm_estimate.py"  # a copy: editing this file does not touch a running count
            shutil.copyfile(__file__, script)
            argv = [
                self.qemu, "-cpu", CORES[job.core].qemu, "-L", str(root), "-plugin", f"{self.plugin},out={log}",
                str(self.rootfs / "usr" / "bin" / "python3.11"), str(script), "--guest", job.path,
                "--backend", job.backend, "--settings", json.dumps([j.options for j in jobs]),
                "--threads", str(job.threads), "--runs", str(runs),
            ]  # fmt: skip
            env = {
                "PATH": "/usr/bin:/bin",
                "PYTHONPATH": f"{ROOT}:{self.site}",  # this checkout's edgekit, the userland's aarch64 wheels
                "PYTHONHASHSEED": "0",
                "OMP_WAIT_POLICY": "PASSIVE",  # NCNN's OpenMP workers sleep instead of spinning between layers
                "HOME": tmp,
            }
            try:
                done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
                words = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            except subprocess.TimeoutExpired:
                words = f"timed out after {timeout:g} s"
            text = log.read_text() if log.exists() else ""
            if keep_log is not None:
                keep_log.write_text(text)
        marks = parse_marks(text)
        results: list[Count | str] = []
        for i, j in enumerate(jobs):
            try:
                totals, busiest, active = per_run(marks, runs, i)
            except ValueError:
                results.append(words)
                continue
            results.append(Count(*identity(j), totals, busiest, active))
        return results


def find_userland(work: Path, plugin: Path | None = None) -> Userland | str:
    """The userland and tools (the plugin built at `plugin`, default WORK/insn_count.so), or the one-line
    reason they are not there."""
    qemu = shutil.which("qemu-aarch64")  # the dynamic one: qemu-aarch64-static cannot load plugins
    if qemu is None:
        return "qemu-aarch64 not found (apt-get install qemu-user)"
    if not (work / "rootfs" / "usr" / "bin" / "python3.11").exists() or not (work / "site").is_dir():
        return f"no aarch64 userland in {work} (run scripts/arm64_userland.sh {work})"
    if shutil.which("gcc") is None:
        return "gcc not found (needed to build the QEMU plugin)"
    plugin = plugin or work / "insn_count.so"
    subprocess.run(["bash", str(PLUGIN_DIR / "build.sh"), str(plugin)], check=True, capture_output=True)
    return Userland(work, qemu, plugin)


def jobs_for(folder: Path, cores: list[str], threads: list[int]) -> list[Job]:
    """Every artifact in `folder` (one convert's output) x engine setting x core x thread count."""
    from edgekit.errors import EdgekitError
    from edgekit.runtimes.detector import read_meta
    from edgekit.runtimes.engine import is_artifact, open_engine

    jobs = []
    for path in sorted(folder.iterdir()):
        if not is_artifact(path) or path.name.startswith("."):  # a dot-name: an atomic write in progress
            continue
        try:
            engine = open_engine(path)
            meta = read_meta(engine)
        except EdgekitError as exc:
            print(f"{path.name}: skipped: {exc}")
            continue
        model = f"{meta.family}{meta.variant.removeprefix(meta.family)}" if meta.variant else meta.family
        for setting, options in SETTINGS.get(engine.backend, [("", {})]):
            if engine.backend == "openvino" and meta.precision == "int8" and setting:
                continue  # OpenVINO's ARM plugin runs INT8 as FP16 whatever the hint: one setting is enough
            for core in cores:
                for n in threads:
                    jobs.append(Job(model, int(meta.imgsz[0]), str(path.resolve()), engine.backend,
                                    meta.precision, setting, options, core, n))  # fmt: skip
    return jobs


def load_counts(path: Path) -> list[Count]:
    if not path.exists():
        return []
    return [Count(**row) for row in json.loads(path.read_text())]


def save_counts(path: Path, counts: list[Count]) -> None:
    from edgekit.fileio import atomic_write_bytes

    rows = sorted((asdict(c) for c in counts), key=lambda r: tuple(str(v) for v in r.values()))
    atomic_write_bytes(path, (json.dumps(rows, indent=1) + "\n").encode())


# ---------------------------------------------------------------------------------------------- the estimate


@dataclass(frozen=True)
class Calibration:
    """Per-engine factors fitted on the published Pi 5 figures, and how well one factor for all explains them.

    A factor is the engine's instructions per core per cycle when its one-thread count is spread over the 4
    cores of the published runs: ipc = instructions / (published ms x clock x 4). It folds the engine's IPC
    and its 4-thread speed-up into one number, which is why it is fitted per engine.
    """

    ghz: float
    ipc: dict[str, float]  # backend -> fitted factor (instructions per core per cycle, 4 cores)
    common_ipc: float  # the geometric mean of ipc: one factor for every engine
    common_error: dict[str, float]  # backend -> (common-factor estimate / published) - 1
    ratio: tuple[float, float]  # (ONNX Runtime : NCNN in instructions, in published ms)
    basis: str  # which counts the fit used

    def ms(self, count: Count) -> tuple[float, bool]:
        """Estimated ms of `count` with 4 threads at its core's clock, and whether its engine's factor was fitted
        (else the common factor is used). On an A72/A53 this is a lower bound: the factor comes from the A76,
        the wider core."""
        ipc = self.ipc.get(count.backend)
        cycles = count.instructions / ((ipc or self.common_ipc) * PUBLISHED_CORES)
        return cycles / (CORES[count.core].ghz * 1e6), ipc is not None


# how the counted models were made (named in the report)
RECIPE = (
    "edgekit convert tests/fixtures/families/yolo26n.pt --imgsz SIZE --topk runtime --to onnx,openvino,tflite,ncnn "
    "--precision fp32,int8 --calib /tmp/calib"
)
SLOW_PATH = 10  # a file counted at over this many times its engine's FP32 count is flagged in the tables
PUBLISHED_CORES = 4  # the published Pi 5 runs use its 4 cores
# the counts a calibration may rest on, best first: input size (one thread); the published figures are at 640
BASES = (640, 320)


def calibrate(counts: list[Count]) -> Calibration | str:
    """Fit each published engine's factor on its one-thread YOLO26n FP32 count on the A76, at the first size of
    :data:`BASES` that has all three engines (a 320 count is scaled by (640/320)^2 to the published 640); the
    reason as a string when no size has them all."""
    ghz = CORES["a76"].ghz
    for imgsz in BASES:
        found: dict[str, Count] = {}
        for pub in PUBLISHED:
            for c in counts:
                wanted = ("a76", imgsz, "fp32", 1, pub.backend, pub.setting)
                if (c.core, c.imgsz, c.precision, c.threads, c.backend, c.setting) == wanted:
                    found.setdefault(pub.backend, c)
        if len(found) == len(PUBLISHED):
            break
    else:
        names = ", ".join(row_label(p.backend, "fp32", p.setting) for p in PUBLISHED)
        return f"no calibration: no input size with one-thread A76 FP32 counts of all of {names}"
    scale = (640 / imgsz) ** 2
    at640 = {b: c.instructions * scale for b, c in found.items()}
    cycles = {p.backend: p.ms * 1e-3 * ghz * 1e9 * PUBLISHED_CORES for p in PUBLISHED}
    ipc = {b: at640[b] / cycles[b] for b in cycles}
    common = math.exp(statistics.fmean(math.log(v) for v in ipc.values()))
    error = {b: ipc[b] / common - 1 for b in ipc}
    ms = {p.backend: p.ms for p in PUBLISHED}
    ratio = (at640["onnxruntime"] / at640["ncnn"], ms["onnxruntime"] / ms["ncnn"])
    basis = f"one-thread YOLO26n {imgsz} FP32 counts on the emulated A76"
    if scale != 1:
        basis += f", scaled x{scale:g} to the published 640"
    return Calibration(ghz, ipc, common, error, ratio, basis)


def table(counts: list[Count], cal: Calibration | str, core: str) -> list[str]:
    """Markdown rows for one core: engine x precision down; per input size, M instructions (one thread) and
    the estimated ms with 4 threads."""
    mine = [c for c in counts if c.core == core and c.threads == 1]
    if not mine:
        return []
    sizes = sorted({c.imgsz for c in mine})
    rows = sorted({(c.backend, c.precision, c.setting) for c in mine})
    by_key = {(c.backend, c.precision, c.setting, c.imgsz): c for c in mine}
    head = "| engine x precision | " + " | ".join(f"{s}: M instr | {s}: est. ms" for s in sizes) + " |"
    lines = [f"### {CORES[core].title}, {CORES[core].ghz:g} GHz", "", head, "|---" * (2 * len(sizes) + 1) + "|"]
    scaled = slow = False
    for backend, precision, setting in rows:
        cells = []
        for s in sizes:
            c = by_key.get((backend, precision, setting, s))
            mark = ""
            if c is None:
                c = _scaled(mine, backend, precision, setting, s)
                mark = "~"
                scaled |= c is not None
            if c is None:
                cells += ["", ""]
                continue
            est = ""
            if isinstance(cal, Calibration):
                ms, fitted = cal.ms(c)
                est = f"{mark}{ms:.1f}" + ("" if fitted else "*")
            fp32 = by_key.get((backend, "fp32", setting, s))
            if fp32 is not None and c.instructions > SLOW_PATH * fp32.instructions:
                est += " !"
                slow = True
            cells += [f"{mark}{c.instructions / 1e6:.1f}", est]
        lines.append(f"| {row_label(backend, precision, setting)} | " + " | ".join(cells) + " |")
    if scaled:
        lines += ["", "~: not counted at this size; the count at the nearest counted size times the pixel ratio."]
    if slow:
        lines += ["", f"!: over {SLOW_PATH}x the same engine's FP32 count: no fast path for this file on this core."]
    return lines


def _scaled(counts: list[Count], backend: str, precision: str, setting: str, imgsz: int) -> Count | None:
    """A stand-in for a missing count at `imgsz`: the same engine setting's count at the nearest counted size,
    times the ratio of pixels (counts scale with the pixels: yolo26n 320 -> 640 took 3.9-4.1x on every engine
    counted so far, LiteRT INT8 5.0x)."""
    same = [c for c in counts if (c.backend, c.precision, c.setting) == (backend, precision, setting)]
    if not same:
        return None
    near = min(same, key=lambda c: abs(math.log(c.imgsz / imgsz)))
    factor = (imgsz / near.imgsz) ** 2
    return dataclasses.replace(near, imgsz=imgsz, busiest=[round(n * factor) for n in near.busiest])


def calibration_lines(cal: Calibration | str) -> list[str]:
    if isinstance(cal, str):
        return [cal]
    measured, published = cal.ratio
    off = measured / published - 1
    lines = [
        f"Calibration on {cal.basis}, clock {cal.ghz:g} GHz, 4 cores:",
        "",
        "| engine setting | published Pi 5 ms | fitted factor (instr / core / cycle) | vs the common factor |",
        "|---|---|---|---|",
    ]
    for p in PUBLISHED:
        lines.append(
            f"| {row_label(p.backend, 'fp32', p.setting)} | {p.range_ms} | {cal.ipc[p.backend]:.2f} "
            f"| {cal.common_error[p.backend]:+.0%} |"
        )
    lines += [
        "",
        f"How well counts alone reproduce the published figures: ONNX Runtime : NCNN (fp16 arithmetic) is "
        f"{measured:.2f} in instructions and {published:.2f} in published ms, {off:+.0%} "
        f"({'within' if abs(off) <= 0.25 else 'outside'} 25%). "
        + (
            "Counts alone would do; "
            if abs(off) <= 0.25
            else "Counts alone overstate the gap between engines (they ignore how well each engine's kernels use "
            "the core: IPC, memory stalls, 4-thread scaling), so "
        )
        + "each engine's own factor turns its counts into ms: with one common factor "
        f"({cal.common_ipc:.2f}) the estimates of the published engines would be off by the last column. "
        "Engines without a published figure (* in the tables: LiteRT) use the common factor; read their ms with "
        "that spread. Figures not reproduced here: "
        + "; ".join(f"{name} {ms} ms ({src})" for name, ms, src in UNCOUNTED)
        + ".",
    ]
    return lines


def report(counts: list[Count], command: str) -> str:
    """The markdown report: one table per core, the calibration and its error, dated, naming the command."""
    cal = calibrate(counts)
    lines = [
        "# Estimated Raspberry Pi latency: aarch64 instructions counted under emulation",
        "",
        f"Generated {datetime.date.today().isoformat()} by `{command}`. The models: `{RECIPE}` (SIZE 320 and",
        "640; /tmp/calib: `python -c \"from edgekit.eval.procedural import write_dataset as w; w('/tmp/calib', "
        "{'train': 64})\"`), counted by `nice -n 10 python benchmarks/arm_estimate.py MODEL_FOLDERS --cpus "
        "a76,a72,a53 --threads 1 --record COUNTS.json` in the userland of `WITH_OPENVINO=1 scripts/arm64_userland.sh`.",
        "",
        "An ESTIMATE, not a measurement on a Pi. M instr: guest instructions per inference of edgekit's own",
        "engine on one thread (median of the measured runs), counted under user-mode QEMU emulating the core",
        "with the device's /proc/cpuinfo and CPU ID registers (so engines pick the kernels they pick there).",
        "est. ms: the latency on the device's 4 cores, from the engine's factor fitted on published Raspberry",
        "Pi 5 figures (below). Counts ignore caches and memory stalls. The A72/A53 ms use the A76's factors at",
        "the device's clock: lower bounds. Counts with several guest threads are not used: a waiting thread",
        "spins, and what it counts depends on the host's timing (ONNX Runtime, 320, 4 threads: the calling",
        "thread counted 509 M, of which ~430 M waiting for the three workers' ~76 M each).",
        "",
    ]
    for core in CORES:
        rows = table(counts, cal, core)
        if rows:
            lines += rows + [""]
    lines += calibration_lines(cal) + fp16_file_lines(counts)
    return "\n".join(lines) + "\n"


def fp16_file_lines(counts: list[Count]) -> list[str]:
    """A note per engine whose FP16 files count within 2% of its FP32 files (same size, core and threads): the
    engine computes FP16 weights in FP32 arithmetic, so an FP16 figure published for it cannot calibrate it."""
    found = {identity(c): c for c in counts}
    same: dict[str, list[str]] = {}
    for c in counts:
        fp32 = found.get((c.model, c.imgsz, c.backend, "fp32", "", c.core, c.threads))
        if c.precision == "fp16" and not c.setting and fp32 is not None:
            if abs(c.instructions / fp32.instructions - 1) <= 0.02:
                same.setdefault(c.backend, []).append(
                    f"{c.instructions / 1e6:.1f} M vs {fp32.instructions / 1e6:.1f} M ({c.core}, {c.imgsz})"
                )
    return [
        line
        for backend, pairs in same.items()
        for line in (
            "",
            f"{ENGINE_TITLES.get(backend, backend)}: its FP16 files count what its FP32 files count "
            f"({'; '.join(pairs)}): edgekit's engine runs FP16 weights in FP32 arithmetic, so no FP16 figure "
            "(such as Arm's XNNPACK FP16 runtime above) can calibrate it.",
        )
    ]


def smoke() -> str:
    """CI: parse the recorded plugin log (one emulated process, one engine setting after another) and estimate
    from the recorded counts (no emulator)."""
    marks = parse_marks(RECORDED_LOG.read_text())
    lines = []
    for setting in range(len({t // 1000 for t in marks})):
        _, busiest, active = per_run(marks, 1, setting)
        lines.append(
            f"recorded plugin log, setting {setting}: {busiest[0] / 1e6:.1f} M instructions, {active} thread(s)"
        )
    counts = load_counts(RECORDED)
    if not counts:
        raise SystemExit(f"{RECORDED}: no recorded counts")
    return "\n".join(lines) + "\n" + report(counts, "python benchmarks/arm_estimate.py --smoke")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", type=Path, help="folders of converted artifacts (one convert each)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgekit-arm64"), help="the aarch64 userland")
    parser.add_argument("--cpus", default="a76", help=f"cores, comma-separated: {', '.join(CORES)}")
    parser.add_argument("--threads", default="1,4", help="thread counts, comma-separated")
    parser.add_argument("--precision", help="only artifacts of these precisions, comma-separated (default: all)")
    parser.add_argument("--backends", help="only these engines, comma-separated, e.g. ncnn,litert (default: all)")
    parser.add_argument("--runs", type=int, default=1, help="counted inferences per job (after one warm-up)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per emulated job")
    parser.add_argument("--record", type=Path, help="JSON file the counts are appended to (and resumed from)")
    parser.add_argument("--from", dest="source", type=Path, help="estimate from recorded counts only")
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    parser.add_argument("--logs", type=Path, help="keep each emulated process's plugin log in this folder")
    parser.add_argument("--smoke", action="store_true", help="CI: the recorded log and counts, no emulator")
    parser.add_argument("--guest", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="[{}]", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.guest:
        guest(args.guest, args.backend, json.loads(args.settings), int(args.threads), args.runs)
        return 0
    if args.smoke:
        print(smoke(), end="")
        return 0
    command = "python benchmarks/arm_estimate.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    counts = load_counts(args.source or args.record or Path("/nonexistent"))
    if args.models:
        userland = find_userland(args.work)
        if isinstance(userland, str):
            print(f"arm_estimate: skipped: {userland}")
            return 0
        done = {identity(c) for c in counts}
        cores = [c.strip() for c in args.cpus.split(",")]
        if unknown := [c for c in cores if c not in CORES]:
            parser.error(f"unknown core {unknown[0]} (known: {', '.join(CORES)})")
        threads = [int(n) for n in args.threads.split(",")]
        jobs = [j for folder in args.models for j in jobs_for(folder, cores, threads) if identity(j) not in done]
        if args.precision:
            jobs = [j for j in jobs if j.precision in args.precision.split(",")]
        if args.backends:
            jobs = [j for j in jobs if j.backend in args.backends.split(",")]
        groups: dict[tuple, list[Job]] = {}
        for job in sorted(jobs, key=lambda j: (cores.index(j.core), threads.index(j.threads), j.imgsz, j.rank)):
            groups.setdefault((job.path, job.core, job.threads), []).append(job)
        for i, group in enumerate(groups.values(), 1):
            log = None
            if args.logs:
                args.logs.mkdir(parents=True, exist_ok=True)
                first = group[0]
                log = (
                    args.logs / f"{first.model}-{first.imgsz}-{Path(first.path).name}-{first.core}-{first.threads}t.log"
                )
            for job, result in zip(group, userland.count(group, args.runs, args.timeout, log)):
                label = row_label(job.backend, job.precision, job.setting)
                name = f"[{i}/{len(groups)}] {job.model} {job.imgsz} {label}"
                where = f"on {job.core}, {job.threads} thread(s)"
                if isinstance(result, str):
                    print(f"{name} {where}: failed: {result}", flush=True)
                    continue
                counts.append(result)
                print(f"{name} {where}: {result.instructions / 1e6:.1f} M instructions (busiest thread; total "
                      f"{statistics.median(result.total) / 1e6:.1f} M)", flush=True)  # fmt: skip
            if args.record:
                save_counts(args.record, counts)
    text = report(counts, command)
    print(text, end="")
    if args.markdown:
        from edgekit.fileio import atomic_write_bytes

        atomic_write_bytes(args.markdown, text.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
