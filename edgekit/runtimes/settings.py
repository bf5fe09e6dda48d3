"""How an engine uses the CPU: its thread count, whether the machine is shared with other busy processes, and
FP16 arithmetic where the engine and CPU offer it. One value every engine, `load`, the CLI and the device
profiles pass along.

Where the detector has the machine to itself (a Raspberry Pi, a phone, an edge box), idle engine workers
spin between operators instead of sleeping and waking late for each one. With ``shared=True`` they sleep,
which is what wins when other busy processes want the same cores. Left unset (``shared=None``, the
default), the engine is opened with whichever fits the machine at that moment: :func:`busy_cores` measures
how much CPU the other processes take while the engine is opened (0.1 s), and half a core or more makes it
shared. docs/benchmarks.md (Engine settings) gives what each engine does with them and the command that
measures them (benchmarks/bench_engines.py).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from edgekit.errors import EdgekitError

logger = logging.getLogger(__name__)

BUSY_SHARED_CORES = 0.5  # other processes' CPU, in cores, at or above which an unset `shared` becomes True
BUSY_SAMPLE_S = 0.1  # how long busy_cores watches the machine as an engine with `shared` unset opens (at the
# kernel's 100 ticks a second, 0.05 s of 2 cores is 10 ticks: one stray tick of kernel time read as 0.2 cores)
_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # /proc/stat's unit (USER_HZ)


@dataclass(frozen=True)
class EngineSettings:
    """CPU settings of one engine.

    `threads`: inference threads (None: the engine's default, one per physical core). `shared`: the machine
    runs other busy processes, so idle workers sleep rather than spin (ONNX Runtime's
    ``session.intra_op.allow_spinning``, NCNN's OpenMP block time, OpenVINO's core pinning; LiteRT has no
    such switch); None: decided when the engine is opened, from the machine's load then
    (:func:`resolve_shared`). `fp16`: NCNN's FP16 storage and arithmetic where the CPU has them (ARMv8.2+);
    other engines ignore it. Raises EdgekitError for a thread count below 1.
    """

    threads: int | None = None
    shared: bool | None = None
    fp16: bool = False

    def __post_init__(self):
        if self.threads is not None and (isinstance(self.threads, bool) or int(self.threads) < 1):
            raise EdgekitError(f"threads must be a positive number, not {self.threads!r}")

    def with_threads(self, threads: int | None) -> EngineSettings:
        """These settings with `threads` where it is given (a caller's explicit count wins)."""
        return replace(self, threads=int(threads)) if threads else self


def engine_settings(settings: EngineSettings | None = None, threads: int | None = None) -> EngineSettings:
    """`settings` (default: the device case) with an explicit `threads` count applied: the one merge of the
    ``threads=`` argument callers have always passed with the settings that came later."""
    return (settings or EngineSettings()).with_threads(threads)


def busy_cores(interval: float = BUSY_SAMPLE_S, root: str | Path = "/") -> float | None:
    """How many cores' worth of CPU time the other processes spent during the next `interval` seconds, from
    /proc/stat less this process's own time (its threads count as ours, not as load: a previous engine's
    workers still spinning down, but also a second detector running in another thread, so a process that runs
    several detectors at once should open them with ``shared=True``), while this thread sleeps. Idle and I/O
    wait time do not count, nor niced processes' (nice > 0: an engine at normal priority takes the cores from
    them) or time the hypervisor gave to other machines (steal). None where /proc/stat cannot be read (not
    Linux, or a sandbox such as Android's)."""
    niced = hasattr(os, "nice") and os.nice(0) > 0  # then /proc/stat books our user time as nice, not user

    def sample() -> tuple[float, int, int] | None:
        own = os.times()
        try:
            fields = (Path(root) / "proc/stat").read_text().split("\n", 1)[0].split()
            ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
        except (OSError, ValueError, IndexError):
            return None
        user, _nice, system, _idle, _iowait, irq, softirq, _steal = ticks
        return (0.0 if niced else own.user) + own.system, user + system + irq + softirq, sum(ticks)

    first = sample()
    if first is None:
        return None
    time.sleep(interval)
    second = sample()
    if second is None or second[2] <= first[2]:
        return None
    own_ticks = (second[0] - first[0]) * _TICKS_PER_S
    cores = os.cpu_count() or 1
    return max(0.0, (second[1] - first[1] - own_ticks) / (second[2] - first[2]) * cores)


def resolve_shared(settings: EngineSettings, busy: float | None = None) -> EngineSettings:
    """`settings` with an unset `shared` decided: True when other processes keep at least
    BUSY_SHARED_CORES busy (`busy`, default: measured now by :func:`busy_cores`), else False (also where the
    load cannot be read). Settings that say `shared` already come back as they are."""
    if settings.shared is not None:
        return settings
    busy = busy_cores() if busy is None else busy
    shared = busy is not None and busy >= BUSY_SHARED_CORES
    if shared:
        logger.info("other processes keep %.1f cores busy: idle engine threads sleep (shared; --no-shared to spin)",
                    busy)
    return replace(settings, shared=shared)
