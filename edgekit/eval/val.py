"""`edgekit val`: a model's COCO accuracy on a labelled split, at the field's val settings (``settings.VAL``).

Anything that maps an image to Detections can be validated: a runtime Detector (every artifact format) or
the torch wrapper of a checkpoint the converters provide. Matching and averaging are pycocotools'::

    detector = edgekit.load("yolo26n.onnx")
    report = validate(detector, load_dataset("scenes/data.yaml"))
    print(report.table())          # mAP50-95, mAP50, P, R, per-class AP
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.detections import Detections, box_iou
from edgekit.errors import EdgekitError
from edgekit.eval.datasets import Dataset
from edgekit.eval.metrics import MapResult, mean_average_precision
from edgekit.eval.settings import VAL

MATRIX_CONF, MATRIX_IOU = 0.25, 0.45


@dataclass
class ClassAP:
    """One class's row: AP50-95, AP50 (NaN without ground truth) and its ground-truth count."""

    name: str
    ap50_95: float
    ap50: float
    instances: int


@dataclass
class ValReport:
    """What `validate` measured. Times are mean milliseconds per image (preprocess, inference, decode)."""

    map50_95: float
    map50: float
    precision: float
    recall: float
    classes: list[ClassAP]
    images: int
    instances: int
    backgrounds: int
    conf: float
    iou: float
    max_det: int
    ms: dict[str, float] = field(default_factory=dict)
    model: str = ""
    data: str = ""
    metrics: MapResult | None = field(default=None, repr=False)
    confusion: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        """The report as plain JSON types (per-class AP as a list of rows)."""

        def num(v: float) -> float | None:
            return None if np.isnan(v) else round(float(v), 4)

        return {
            "model": self.model,
            "data": self.data,
            "images": self.images,
            "instances": self.instances,
            "backgrounds": self.backgrounds,
            "map50_95": num(self.map50_95),
            "map50": num(self.map50),
            "precision": num(self.precision),
            "recall": num(self.recall),
            "conf": self.conf,
            "iou": self.iou,
            "max_det": self.max_det,
            "ms_per_image": {k: round(v, 3) for k, v in self.ms.items()},
            "classes": [
                {"name": c.name, "ap50_95": num(c.ap50_95), "ap50": num(c.ap50), "instances": c.instances}
                for c in self.classes
            ],
        }

    def table(self) -> str:
        """The report as the text table `edgekit val` prints."""
        lines = [
            f"{'class':<16} {'images':>7} {'instances':>9} {'P':>7} {'R':>7} {'mAP50':>7} {'mAP50-95':>9}",
            f"{'all':<16} {self.images:>7} {self.instances:>9} {self.precision:>7.3f} {self.recall:>7.3f} "
            f"{self.map50:>7.3f} {self.map50_95:>9.3f}",
        ]
        for c in self.classes:
            if c.instances:
                lines.append(
                    f"{c.name[:16]:<16} {'':>7} {c.instances:>9} {'':>7} {'':>7} {c.ap50:>7.3f} {c.ap50_95:>9.3f}"
                )
        if self.ms:
            lines.append(
                "speed: " + ", ".join(f"{k} {v:.2f} ms" for k, v in self.ms.items()) + " per image"
            )
        return "\n".join(lines)


Predict = Callable[..., Detections]


def validate(
    detect: Predict,
    dataset: Dataset,
    *,
    conf: float = VAL.conf,
    iou: float = VAL.iou,
    max_det: int = VAL.max_det,
    progress: bool = True,
    model: str = "",
    multi_label: bool = VAL.multi_label,
) -> ValReport:
    """Run `detect` (called as ``detect(image, conf=, iou=, max_det=)`` on a BGR HxWx3 uint8 image) over every
    image of `dataset` and evaluate with pycocotools.

    Class ids of `detect` must be the dataset's (same count and order). NMS models decode multi-label (every
    class above `conf` of an anchor is a candidate), as YOLOv9's and Ultralytics' val do, when `detect` has a
    ``multi_label`` switch (a Detector does). Per-image stage times are taken from ``detect.timings`` when it
    has them. Raises EdgekitError for an unreadable image.
    """
    from tqdm import tqdm

    from edgekit.images import read_image

    predictions, truths = [], []
    totals = {"pre": 0.0, "infer": 0.0, "post": 0.0}
    timed = 0
    with labels_per_anchor(detect, multi_label):
        for item in tqdm(dataset.items, desc="val", unit="image", disable=not progress, file=sys.stderr, leave=False):
            image = read_image(item.image)
            found = detect(image, conf=conf, iou=iou, max_det=max_det)
            timings = getattr(detect, "timings", None)
            if timings is not None:
                timed += 1
                for key in totals:
                    totals[key] += float(getattr(timings, key, 0.0))
            predictions.append(found)
            truths.append(item.truth(*image.shape[:2]))
    metrics = mean_average_precision(predictions, truths, len(dataset.names), max_det)
    counts = metrics.class_instances or [0] * len(dataset.names)
    classes = [
        ClassAP(name, metrics.per_class[c], metrics.per_class_ap50[c], int(counts[c]))
        for c, name in enumerate(dataset.names)
    ]
    return ValReport(
        map50_95=metrics.map50_95,
        map50=metrics.map50,
        precision=metrics.precision,
        recall=metrics.recall,
        classes=classes,
        images=len(dataset.items),
        instances=metrics.instances,
        backgrounds=dataset.backgrounds,
        conf=conf,
        iou=iou,
        max_det=max_det,
        ms={k: v / timed for k, v in totals.items()} if timed else {},
        model=model,
        data=str(dataset.source or ""),
        metrics=metrics,
        confusion=confusion_matrix(predictions, truths, len(dataset.names)),
    )


def check_classes(model: str, names: Sequence[str], data: str | Path, dataset: Dataset) -> None:
    """Raise EdgekitError when a model's class count differs from the dataset's: its AP would mean nothing.
    `model` and `data` name the two in the message."""
    if len(names) != len(dataset.names):
        raise EdgekitError(
            f"{model} has {len(names)} classes, the dataset {data} has {len(dataset.names)}; "
            "validate on data labelled with the model's classes"
        )


@contextlib.contextmanager
def labels_per_anchor(detect, multi_label: bool) -> Iterator[None]:
    """Set a detector's ``multi_label`` switch for the duration (detectors without one are left alone)."""
    saved = getattr(detect, "multi_label", None)
    if saved is not None:
        detect.multi_label = multi_label
    try:
        yield
    finally:
        if saved is not None:
            detect.multi_label = saved


def confusion_matrix(
    predictions: list[Detections], truths: list[Detections], num_classes: int,
    conf: float = MATRIX_CONF, iou: float = MATRIX_IOU,
) -> np.ndarray:
    """[C+1, C+1] counts, rows predicted class, columns true class, the last row and column background.

    Detections above `conf` are matched to ground truth by IoU >= `iou` regardless of class, best pairs
    first, one to one (the way detection confusion matrices are drawn by the YOLO trainers).
    """
    matrix = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    for pred, truth in zip(predictions, truths):
        kept = pred[pred.confidence > conf]
        p_boxes, p_cls, t_boxes, t_cls = kept.xyxy, kept.class_id, truth.xyxy, truth.class_id
        matched_p, matched_t = set(), set()
        if len(p_boxes) and len(t_boxes):
            overlaps = box_iou(p_boxes, t_boxes)
            pairs = np.argwhere(overlaps >= iou)
            order = np.argsort(-overlaps[pairs[:, 0], pairs[:, 1]], kind="stable")
            for i, j in pairs[order]:
                if i in matched_p or j in matched_t:
                    continue
                matched_p.add(i)
                matched_t.add(j)
                matrix[p_cls[i], t_cls[j]] += 1
        for i in set(range(len(p_boxes))) - matched_p:
            matrix[p_cls[i], num_classes] += 1
        for j in set(range(len(t_boxes))) - matched_t:
            matrix[num_classes, t_cls[j]] += 1
    return matrix


def save_plots(report: ValReport, folder: str | Path) -> list[Path]:
    """Write ``pr_curve.png`` (precision over recall per class at IoU 0.5, and their mean) and
    ``confusion_matrix.png`` (normalized by true class) into `folder`; returns the paths.

    Needs matplotlib (the ``val`` extra).
    """
    from edgekit.errors import require
    from edgekit.fileio import atomic_path

    require("matplotlib", "val")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = [c.name for c in report.classes]
    written = []

    fig, ax = plt.subplots(figsize=(8, 6), dpi=120)
    recall = np.linspace(0, 1, 101)
    curves = report.metrics.pr_curve if report.metrics is not None else None
    if curves is not None:
        shown = [c for c, row in enumerate(report.classes) if row.instances]
        for c in shown:
            ax.plot(recall, curves[c], linewidth=1, label=f"{names[c]} {report.classes[c].ap50:.3f}")
        if shown:
            mean = curves[shown].mean(0)
            ax.plot(recall, mean, linewidth=3, color="blue", label=f"all classes {report.map50:.3f} mAP@0.5")
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.set_title(f"Precision-Recall curve (IoU 0.5): {Path(report.model).name}")
    ax.legend(loc="lower left", fontsize=8)
    with atomic_path(folder / "pr_curve.png") as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    written.append(folder / "pr_curve.png")

    matrix = report.confusion if report.confusion is not None else np.zeros((len(names) + 1,) * 2)
    normalized = matrix / np.maximum(matrix.sum(0, keepdims=True), 1)
    labels = names + ["background"]
    fig, ax = plt.subplots(figsize=(8, 7), dpi=120)
    image = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                color = "white" if normalized[i, j] > 0.5 else "black"
                ax.text(j, i, f"{normalized[i, j]:.2f}", ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("True")
    ax.set_ylabel("Predicted")
    ax.set_title(f"Confusion matrix (normalized by true class; conf > {MATRIX_CONF}, IoU >= {MATRIX_IOU})")
    fig.colorbar(image, ax=ax, fraction=0.046)
    with atomic_path(folder / "confusion_matrix.png") as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    written.append(folder / "confusion_matrix.png")
    return written
