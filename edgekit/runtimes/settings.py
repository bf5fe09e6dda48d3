"""How an engine uses the CPU: its thread count, whether the machine is shared with other busy processes, and
FP16 arithmetic where the engine and CPU offer it. One value every engine, `load`, the CLI and the device
profiles pass along.

The default is the device case: the detector has the machine to itself (a Raspberry Pi, a phone, an edge
box), so idle engine workers spin between operators instead of sleeping and waking late for each one. With
``shared=True`` they sleep, which is what wins when other busy processes want the same cores.
docs/benchmarks.md (Engine settings) gives what each engine does with them and the command that measures
them (benchmarks/bench_engines.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgekit.errors import EdgekitError


@dataclass(frozen=True)
class EngineSettings:
    """CPU settings of one engine.

    `threads`: inference threads (None: the engine's default, one per physical core). `shared`: the machine
    runs other busy processes, so idle workers sleep rather than spin (ONNX Runtime's
    ``session.intra_op.allow_spinning``, NCNN's OpenMP block time, OpenVINO's core pinning; LiteRT has no
    such switch). `fp16`: NCNN's FP16 storage and arithmetic where the CPU has them (ARMv8.2+); other engines
    ignore it. Raises EdgekitError for a thread count below 1.
    """

    threads: int | None = None
    shared: bool = False
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
