"""Verification: an artifact's outputs against the source model's on the same inputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgekit.errors import EdgekitError

FP32_TOLERANCE = {
    "boxes": 1e-3,
    "scores": 1e-4,
    "detections_boxes": 1e-3,
    "detections_scores": 1e-4,
    "topk_unmatched": 0,
}
FP16_TOLERANCE = {
    "boxes": 1e-2,
    "scores": 1e-2,
    "detections_boxes": 1e-2,
    "detections_scores": 1e-2,
    "topk_unmatched": 0,
}


@dataclass
class Verification:
    """How an artifact compared with its source: max absolute differences per output against tolerances,
    and for INT8 the detection agreement (``extra``) against minimums."""

    backend: str
    inputs: int
    max_abs: dict[str, float] = field(default_factory=dict)
    mean_abs: dict[str, float] = field(default_factory=dict)
    tolerance: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)
    minimum: dict[str, float] = field(default_factory=dict)
    skipped: str | None = None  # why the artifact could not be run here (e.g. CoreML off macOS)

    @property
    def passed(self) -> bool:
        return all(self.max_abs[k] <= self.tolerance.get(k, np.inf) for k in self.max_abs) and all(
            self.extra.get(k, -np.inf) >= v for k, v in self.minimum.items()
        )

    def failures(self) -> str:
        parts = [
            f"{k} {v:.3g} > {self.tolerance[k]}" for k, v in self.max_abs.items() if v > self.tolerance.get(k, np.inf)
        ]
        parts += [
            f"{k} {self.extra.get(k, float('nan')):.3g} < {v}"
            for k, v in self.minimum.items()
            if not self.extra.get(k, -np.inf) >= v
        ]
        return ", ".join(parts)

    def summary(self) -> str:
        """One line: the figures that decide, and the verdict."""
        parts = [f"{k} {v:.2g}" for k, v in self.max_abs.items()]
        parts += [
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in self.extra.items()
            if not k.startswith("reference_")
        ]
        verdict = "  ok" if self.passed else "  FAIL"
        if self.skipped:
            verdict += f" ({self.skipped})"
        return ", ".join(parts) + verdict

    def as_dict(self) -> dict:
        doc = {
            "backend": self.backend,
            "inputs": self.inputs,
            "max_abs": {k: float(f"{v:.3g}") for k, v in self.max_abs.items()},
            "tolerance": self.tolerance,
            "passed": self.passed,
            **{k: float(f"{v:.4g}") for k, v in self.extra.items()},
        }
        if self.minimum:
            doc["minimum"] = self.minimum
        if self.skipped:
            doc["skipped"] = self.skipped
        return doc

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
            floor = self.minimum.get(name)
            verdict = "" if floor is None else ("  ok" if value >= floor else "  FAIL")
            rows.append(f"{name:<12} {value:>11.4g} {'':>12} {'>= ' + str(floor) if floor else '':>10}{verdict}")
        return "\n".join(rows)


def compare(
    reference: Callable[[np.ndarray], dict[str, np.ndarray]],
    candidate: Callable[[np.ndarray], dict[str, np.ndarray]],
    inputs: Sequence[np.ndarray],
    tolerance: dict[str, float],
    backend: str,
) -> Verification:
    """Run both on every input and record the differences of each named output.

    ``detections`` ([B, K, 6] top-k rows) are checked tie-aware when the reference also gives the full
    per-anchor output (``_anchor_boxes``, ``_anchor_scores``): every artifact row must be a genuine
    (anchor, class) pair of the source — score and box within tolerance — and the selected scores must
    equal the reference's top-k scores. Among equal scores (uniform letterbox padding gives many) any
    pick is right, so row order and the choice among ties are not differences. Rows that are no such
    pair count as ``topk_unmatched``.
    """
    result = Verification(backend=backend, inputs=len(inputs))
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}

    def record(name: str, diff: np.ndarray) -> None:
        result.max_abs[name] = max(result.max_abs.get(name, 0.0), float(diff.max()) if diff.size else 0.0)
        sums[name] = sums.get(name, 0.0) + float(diff.sum())
        counts[name] = counts.get(name, 0) + diff.size

    for x in inputs:
        ref, got = reference(x), candidate(x)
        for name, value in ref.items():
            if name.startswith("_"):
                continue
            if name not in got:
                raise EdgekitError(f"verification: the artifact has no output '{name}'")
            a, b = np.asarray(value, np.float64), np.asarray(got[name], np.float64)
            if a.shape != b.shape:
                raise EdgekitError(f"verification: output '{name}' has shape {b.shape}, the source gives {a.shape}")
            if name == "detections" and "_anchor_scores" in ref:
                tol = tolerance.get("detections_scores", 1e-4)
                for i in range(len(a)):
                    boxes, scores, unmatched = match_detections(
                        a[i], b[i], np.asarray(ref["_anchor_boxes"][i]), np.asarray(ref["_anchor_scores"][i]), tol
                    )
                    record("detections_boxes", boxes)
                    record("detections_scores", scores)
                    record("topk_unmatched", np.array([unmatched], np.float64))
            else:
                record(name, np.abs(a - b))
    result.tolerance = {k: v for k, v in tolerance.items() if k in result.max_abs}
    result.mean_abs = {k: sums[k] / max(counts[k], 1) for k in sums}
    return result


def match_detections(
    ref: np.ndarray, got: np.ndarray, anchor_boxes: np.ndarray, anchor_scores: np.ndarray, score_tol: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Check [K, 6] top-k rows against the source's per-anchor boxes [A, 4] and scores [A, C].

    Returns each artifact row's box error to the closest source anchor of that class and score, the
    differences between the two sorted score lists, and how many rows match no source pair at all.
    """
    score_diff = np.abs(np.sort(ref[:, 4])[::-1] - np.sort(got[:, 4])[::-1])
    box_errors, unmatched = [], 0
    for row in got:
        cls = int(row[5])
        if not 0 <= cls < anchor_scores.shape[1]:
            unmatched += 1
            continue
        candidates = np.flatnonzero(np.abs(anchor_scores[:, cls] - row[4]) <= max(score_tol, 1e-6))
        if not candidates.size:
            unmatched += 1
            continue
        box_errors.append(np.abs(anchor_boxes[candidates] - row[:4]).max(1).min())
    return np.asarray(box_errors), score_diff, unmatched
