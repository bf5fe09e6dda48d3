"""Both heads of an end-to-end checkpoint, validated side by side (`edgekit val CHECKPOINT --both-heads`).

YOLO26 and YOLOv10 carry a one-to-one branch (NMS-free) and a one-to-many branch (with NMS); which one Ultralytics runs
for a file depends on how its head was saved (see ``families/ultralytics.py``). This measures both on the same
labelled data, so a user picks with numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgekit.converters.source_detector import SourceDetector, open_source_detector
from edgekit.errors import EdgekitError
from edgekit.eval.datasets import Dataset
from edgekit.eval.settings import VAL
from edgekit.eval.val import ValReport, check_classes, save_plots, validate


@dataclass
class HeadComparison:
    """One validation report per head (label -> report), and the head the checkpoint runs by default."""

    model: str
    default: str
    reports: dict[str, ValReport]
    notes: list[str]  # the input size each ran at, and why

    def table(self) -> str:
        """One row per head: mAP50-95, mAP50, precision, recall, inference ms per image; the default marked."""
        lines = [f"{'head':<20} {'P':>7} {'R':>7} {'mAP50':>7} {'mAP50-95':>9} {'ms/image':>9}"]
        for head, r in self.reports.items():
            ms = f"{sum(r.ms.values()):>9.1f}" if r.ms else f"{'-':>9}"
            lines.append(
                f"{head:<20} {r.precision:>7.3f} {r.recall:>7.3f} {r.map50:>7.3f} {r.map50_95:>9.3f} {ms}"
                + ("  (default)" if head == self.default else "")
            )
        lines.append(
            f"default: {self.default}, the head {Path(self.model).name} runs in Ultralytics; convert with --nms for "
            "the one-to-many head, --topk graph|runtime for the one-to-one head"
        )
        return "\n".join(lines)

    def save_plots(self, folder: str | Path) -> list[Path]:
        """Each head's PR curve and confusion matrix, in `folder`/one-to-one and `folder`/one-to-many."""
        return [p for head, r in self.reports.items() for p in save_plots(r, Path(folder) / head.split()[0])]

    def as_dict(self) -> dict:
        """Plain JSON types: the default head and each head's full report."""
        return {"model": self.model, "default": self.default,
                "heads": {head: r.as_dict() for head, r in self.reports.items()}}


def head_detectors(
    spec: str | Path, imgsz: int | Sequence[int] | None = None, **source_options
) -> tuple[list[SourceDetector], str]:
    """A SourceDetector per head of an end-to-end checkpoint (one-to-one with top-k in the graph, then
    one-to-many + NMS) and the head the checkpoint runs by default. Raises EdgekitError for a model with one
    head, and as ``open_source_detector`` does."""
    one_to_one = open_source_detector(spec, imgsz, topk="graph", **source_options)
    source = one_to_one.source
    if not source.head:
        raise EdgekitError(
            f"{Path(str(spec)).name}: a {source.family} {source.variant} has one output head; comparing heads is for "
            "end-to-end checkpoints (YOLO26, YOLOv10)"
        )
    one_to_many = open_source_detector(spec, imgsz, nms=True, **source_options)
    return [one_to_one, one_to_many], source.default_head


def validate_heads(
    spec: str | Path,
    dataset: Dataset,
    imgsz: int | Sequence[int] | None = None,
    *,
    conf: float = VAL.conf,
    iou: float = VAL.iou,
    max_det: int = VAL.max_det,
    progress: bool = True,
    **source_options,
) -> HeadComparison:
    """Validate each head of an end-to-end checkpoint on `dataset` (as `edgekit val` does, at `imgsz` or the
    checkpoint's training size). `source_options` as ``open_source`` takes them (``names``...). Raises
    EdgekitError for a model with one head or a class count that differs from the dataset's."""
    detectors, default = head_detectors(spec, imgsz, **source_options)
    check_classes(Path(str(spec)).name, detectors[0].names, dataset.source or "", dataset)
    reports = {
        d.source.head: validate(d, dataset, conf=conf, iou=iou, max_det=max_det, progress=progress, model=str(spec))
        for d in detectors
    }
    return HeadComparison(str(spec), default, reports, detectors[0].notes[:1])
