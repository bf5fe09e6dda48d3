"""Whether a model keeps FP16 tolerance when an engine computes in FP16 on this CPU: checked where it runs.

NCNN's FP16 storage and arithmetic (on by NCNN's own default on ARMv8.2 cores such as the Raspberry Pi 5's
Cortex-A76: about half the instructions of FP32, benchmarks/arm_estimate.md) change a model's numbers the way
an FP16 file does, but only on a CPU with FP16 arithmetic: an x86 build machine runs the same switches in
FP32, so a conversion there cannot check them. The check therefore runs on the device, when the engine opens
the file: the FP32 and the FP16 form of the same file run on one fixed input (the package's sample scene,
preprocessed as the metadata says) and every output must stay within ``FP16_TOLERANCE`` of the FP32 form,
the tolerance an FP16 file is verified at when it is converted. A file that fails runs in FP32.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgekit.tolerances import FP16_TOLERANCE

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Fp16Check:
    """The outcome of :func:`check_fp16`: max |FP16 - FP32| per output, the tolerance, the verdict."""

    passed: bool
    max_abs: dict[str, float] = field(default_factory=dict)
    tolerance: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: the verdict and each output's max difference against its tolerance."""
        parts = ", ".join(f"{k} {v:.3g} (tolerance {self.tolerance.get(k, float('inf')):g})"
                          for k, v in self.max_abs.items())
        return f"{'within' if self.passed else 'outside'} FP16 tolerance: {parts}"


def check_fp16(
    fp32: Callable[[], Outputs], fp16: Callable[[], Outputs], tolerance: dict[str, float] | None = None
) -> Fp16Check:
    """Run both forms once and compare every output element-wise.

    `fp32` / `fp16`: each runs the model on the same input and returns its outputs by name (float arrays of
    equal shapes). `tolerance`: max absolute difference per output name (default ``FP16_TOLERANCE``; an
    output it does not name must match exactly). Raises ValueError when the two forms' outputs differ in
    names or shapes (not the same model).
    """
    tolerance = dict(FP16_TOLERANCE if tolerance is None else tolerance)
    reference, candidate = fp32(), fp16()
    if set(reference) != set(candidate):
        raise ValueError(f"outputs differ: {sorted(reference)} vs {sorted(candidate)}")
    max_abs = {}
    for name, value in reference.items():
        a, b = np.asarray(value, np.float64), np.asarray(candidate[name], np.float64)
        if a.shape != b.shape:
            raise ValueError(f"output '{name}': shape {b.shape} in FP16, {a.shape} in FP32")
        max_abs[name] = float(np.abs(a - b).max()) if a.size else 0.0
    passed = all(v <= tolerance.get(k, 0.0) for k, v in max_abs.items())
    return Fp16Check(passed, max_abs, {k: tolerance.get(k, 0.0) for k in max_abs})
