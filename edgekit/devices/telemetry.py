"""Device telemetry sampled while a model runs: SoC temperature, ARM clock and Raspberry Pi throttling flags.

Read from the kernel's files (thermal zones, cpufreq) and `vcgencmd get_throttled` where that exists; every
reader takes a `root` so tests parse copies of a real device's files.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

# bit -> meaning, from the Raspberry Pi documentation of `vcgencmd get_throttled`
THROTTLE_BITS = {
    0: "under-voltage",
    1: "arm frequency capped",
    2: "throttled",
    3: "soft temperature limit",
    16: "under-voltage occurred",
    17: "arm frequency capping occurred",
    18: "throttling occurred",
    19: "soft temperature limit occurred",
}


@dataclass
class Sample:
    """One telemetry reading; a value the device does not offer is None."""

    t: float  # seconds since sampling started
    temp_c: float | None
    arm_mhz: float | None
    throttled: int | None

    @property
    def flags(self) -> list[str]:
        """The throttling flags set in this sample."""
        return throttle_flags(self.throttled)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def thermal_zone(root: str | Path = "/") -> Path | None:
    """The thermal zone of the SoC: the first whose type names the CPU or SoC, else the first zone."""
    zones = sorted(Path(root, "sys/class/thermal").glob("thermal_zone*"))
    zones = [z for z in zones if (z / "temp").exists()]
    for zone in zones:
        if any(word in (_read(zone / "type") or "").lower() for word in ("cpu", "soc", "x86_pkg")):
            return zone
    return zones[0] if zones else None


def read_temperature(root: str | Path = "/", zone: Path | None = None) -> float | None:
    """SoC temperature in degrees Celsius, or None where no thermal zone is readable."""
    zone = zone or thermal_zone(root)
    text = _read(zone / "temp") if zone else None
    try:
        return int(text) / 1000.0 if text else None
    except ValueError:
        return None


def read_arm_clock(root: str | Path = "/", cpu: int = 0) -> float | None:
    """Current clock of a CPU core in MHz (cpufreq's scaling_cur_freq), or None."""
    text = _read(Path(root, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq"))
    try:
        return int(text) / 1000.0 if text else None
    except ValueError:
        return None


def parse_throttled(text: str) -> int | None:
    """The bit field of `vcgencmd get_throttled` output (``throttled=0x50005``), or None if unreadable."""
    _, sep, value = text.strip().partition("=")
    try:
        return int(value, 16) if sep else None
    except ValueError:
        return None


def throttle_flags(value: int | None) -> list[str]:
    """The names of the bits set in a get_throttled value."""
    return [name for bit, name in THROTTLE_BITS.items() if value and value >> bit & 1]


def vcgencmd_throttled(command: str = "vcgencmd") -> int | None:
    """Run `vcgencmd get_throttled` where it exists (Raspberry Pi OS); None elsewhere or on failure."""
    exe = shutil.which(command)
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_throttled(done.stdout) if done.returncode == 0 else None


@dataclass
class TelemetrySampler:
    """Samples temperature, clock and throttling on a background thread until stopped.

    Use as a context manager around the work to observe; `samples` holds the readings. `throttled`
    is the function that reads the throttling bits (vcgencmd by default; tests give a fixture reader).
    """

    interval: float = 0.5
    root: str | Path = "/"
    throttled: Callable[[], int | None] = vcgencmd_throttled
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._zone = thermal_zone(self.root)
        self._start = time.perf_counter()
        self._has_vcgencmd = self.throttled() is not None

    def sample(self) -> Sample:
        """Take one reading now and keep it."""
        reading = Sample(
            round(time.perf_counter() - self._start, 4),
            read_temperature(self.root, self._zone),
            read_arm_clock(self.root),
            self.throttled() if self._has_vcgencmd else None,
        )
        self.samples.append(reading)
        return reading

    @property
    def available(self) -> bool:
        """Whether this machine offers any of the readings."""
        return self._zone is not None or read_arm_clock(self.root) is not None or self._has_vcgencmd

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TelemetrySampler:
        self._start = time.perf_counter()
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="edgekit-telemetry", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def summary(self) -> dict:
        """Min / max temperature and clock over the samples, and every throttling flag seen."""
        temps = [s.temp_c for s in self.samples if s.temp_c is not None]
        clocks = [s.arm_mhz for s in self.samples if s.arm_mhz is not None]
        bits = 0
        for s in self.samples:
            bits |= s.throttled or 0
        return {
            "samples": len(self.samples),
            "temp_c": [min(temps), max(temps)] if temps else None,
            "arm_mhz": [min(clocks), max(clocks)] if clocks else None,
            "throttled": hex(bits) if self._has_vcgencmd else None,
            "flags": throttle_flags(bits),
        }

    def to_list(self) -> list[dict]:
        """The samples as plain data."""
        return [asdict(s) for s in self.samples]
