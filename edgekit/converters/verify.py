"""Verification: an artifact's outputs against the source model's on the same inputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgekit.errors import EdgekitError

FP32_TOLERANCE = {"boxes": 1e-3, "scores": 1e-4, "detections": 1e-3}
FP16_TOLERANCE = {"boxes": 1e-2, "scores": 1e-2, "detections": 1e-2}


@dataclass
class Verification:
    """Max absolute differences per output over `inputs` inputs, against per-output tolerances."""

    backend: str
    inputs: int
    max_abs: dict[str, float] = field(default_factory=dict)
    mean_abs: dict[str, float] = field(default_factory=dict)
    tolerance: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(self.max_abs[k] <= self.tolerance.get(k, np.inf) for k in self.max_abs)

    def as_dict(self) -> dict:
        return {
            "backend": self.backend,
            "inputs": self.inputs,
            "max_abs": {k: float(f"{v:.3g}") for k, v in self.max_abs.items()},
            "tolerance": self.tolerance,
            "passed": self.passed,
            **{k: float(f"{v:.4g}") for k, v in self.extra.items()},
        }

    def table(self) -> str:
        """A small printable table: output, max |diff|, mean |diff|, tolerance, verdict."""
        rows = [f"{'output':<12} {'max |diff|':>11} {'mean |diff|':>12} {'tolerance':>10}  result"]
        for name, value in self.max_abs.items():
            tol = self.tolerance.get(name)
            ok = tol is None or value <= tol
            rows.append(
                f"{name:<12} {value:>11.3g} {self.mean_abs.get(name, 0):>12.3g} "
                f"{tol if tol is not None else '-':>10}  {'ok' if ok else 'FAIL'}"
            )
        for name, value in self.extra.items():
            rows.append(f"{name:<12} {value:>11.4g}")
        return "\n".join(rows)


def compare(
    reference: Callable[[np.ndarray], dict[str, np.ndarray]],
    candidate: Callable[[np.ndarray], dict[str, np.ndarray]],
    inputs: Sequence[np.ndarray],
    tolerance: dict[str, float],
    backend: str,
) -> Verification:
    """Run both on every input and record the element-wise differences of each named output."""
    result = Verification(backend=backend, inputs=len(inputs), tolerance=dict(tolerance))
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for x in inputs:
        ref, got = reference(x), candidate(x)
        for name, value in ref.items():
            if name not in got:
                raise EdgekitError(f"verification: the artifact has no output '{name}'")
            a, b = np.asarray(value, np.float64), np.asarray(got[name], np.float64)
            if a.shape != b.shape:
                raise EdgekitError(f"verification: output '{name}' has shape {b.shape}, the source gives {a.shape}")
            diff = np.abs(a - b)
            result.max_abs[name] = max(result.max_abs.get(name, 0.0), float(diff.max()) if diff.size else 0.0)
            sums[name] = sums.get(name, 0.0) + float(diff.sum())
            counts[name] = counts.get(name, 0) + diff.size
    result.mean_abs = {k: sums[k] / max(counts[k], 1) for k in sums}
    return result
