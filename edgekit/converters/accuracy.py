"""INT8 under an accuracy budget: the measured mAP50-95 drop of an INT8 artifact against its FP32 source on
labelled held-out images, and the search that keeps the most sensitive layers in float until it fits.

Figures are in mAP50-95 *points* (0..100), the unit ``--max-drop`` takes. The reference is the checkpoint
run in float32 torch with the artifact's own preprocessing and decoding, in its deploy form (the module every
artifact is exported from, checked against the training form: see ``source_detector``; every FP32 artifact
equals it to ~1e-5), measured once per conversion.

Sensitivity is measured, not guessed: each quantized layer's contribution to the error is the relative
error of its output against the float model's minus the error already present at its input, on a few
calibration images; the search keeps the top 1, 2, 4... layers of that ranking in float, re-quantizes and
re-measures, then bisects down to the fewest layers that meet the budget. OpenVINO uses NNCF's
``quantize_with_accuracy_control`` instead (its own ranking and search, same budget and data).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.detections import Detections
from edgekit.errors import EdgekitError
from edgekit.eval.datasets import Dataset, load_dataset, read_yaml
from edgekit.eval.metrics import mean_average_precision
from edgekit.eval.settings import VAL
from edgekit.logs import get_logger
from edgekit.meta import ModelMeta
from edgekit.runtimes.decode import decode_outputs
from edgekit.runtimes.preprocess import preprocess

log = get_logger("edgekit.convert")

RANKING_IMAGES = 8  # calibration images the per-layer errors are measured on
TIMED_RUNS = 20


class AccuracyBudgetError(EdgekitError):
    """The INT8 drop could not be brought within --max-drop (the message says what was reached)."""


@dataclass
class AccuracyData:
    """Labelled held-out images (loaded once) and the budget; ``max_drop`` None only measures."""

    dataset: Dataset
    images: list[np.ndarray]
    truths: list[Detections]
    max_drop: float | None = None
    reference: float | None = None  # mAP50-95 points of the FP32 source, measured once
    prepared: dict = field(default_factory=dict, repr=False)  # (input spec, size) -> preprocessed inputs

    @property
    def name(self) -> str:
        return Path(self.dataset.source).name if self.dataset.source else "val"


def load_accuracy_data(spec: str | Path, num_classes: int, max_drop: float | None, split: str = "val") -> AccuracyData:
    """Read a labelled split (YOLO data.yaml or COCO json) for measuring INT8 drops.

    Raises EdgekitError when it cannot be read, is empty, or its class count differs from the model's.
    """
    from edgekit.images import read_image

    dataset = load_dataset(spec, split)
    if len(dataset.names) != num_classes:
        raise EdgekitError(
            f"{spec}: {len(dataset.names)} classes, the model has {num_classes}: validation data must be labelled "
            "with the model's classes"
        )
    images, truths = [], []
    for item in dataset.items:
        image = read_image(item.image)
        images.append(image)
        truths.append(item.truth(*image.shape[:2]))
    return AccuracyData(dataset, images, truths, max_drop)


def labelled_splits(spec: str | Path | None) -> tuple[int, list[str]] | None:
    """For a calibration spec that is a labelled dataset (a YOLO yaml or COCO json with labelled images): its
    class count and the splits it has (val, train, test order); None for anything else."""
    if spec is None or Path(spec).suffix.lower() not in (".yaml", ".yml", ".json"):
        return None
    try:
        if Path(spec).suffix.lower() == ".json":
            splits = ["val"]
        else:
            data = read_yaml(Path(spec))
            splits = [s for s in ("val", "train", "test") if data.get(s)]
        dataset = load_dataset(spec, splits[0]) if splits else None
    except EdgekitError:
        return None
    if dataset is None or not dataset.instances:
        return None
    return len(dataset.names), splits


def prepared_inputs(meta: ModelMeta, data: AccuracyData) -> list:
    """(input tensor, letterbox info) of every image as `meta`'s input spec wants it (made once per spec)."""
    key = (repr(meta.input), tuple(meta.imgsz))
    if key not in data.prepared:
        data.prepared[key] = [preprocess(image, meta.input, tuple(meta.imgsz)) for image in data.images]
    return data.prepared[key]


def map_points(
    run: Callable[[np.ndarray], dict[str, np.ndarray]],
    meta: ModelMeta,
    data: AccuracyData,
    indices: Sequence[int] | None = None,
) -> float:
    """mAP50-95 in points of a model given as `run` (a preprocessed input tensor -> its float outputs by name)
    on the data (or the images at `indices`), decoded as `meta` says at the val settings (``VAL``, as
    `edgekit val`). Inputs are preprocessed once per conversion and kept on `data`."""
    prepared = prepared_inputs(meta, data)
    picks = range(len(prepared)) if indices is None else indices
    predictions, truths = [], []
    for i in picks:
        tensor, info = prepared[i]
        predictions += decode_outputs(
            meta, run(tensor), [info], conf=VAL.conf, iou=VAL.iou, max_det=VAL.max_det, multi_label=VAL.multi_label
        )
        truths.append(data.truths[i])
    return 100.0 * mean_average_precision(predictions, truths, len(data.dataset.names), VAL.max_det).map50_95


def detector_points(detect, data: AccuracyData) -> float:
    """mAP50-95 in points of a Detector-like callable over the data, at the val settings (as `edgekit val`)."""
    from edgekit.eval.val import labels_per_anchor

    predictions = []
    with labels_per_anchor(detect, VAL.multi_label):
        for image in data.images:
            predictions.append(detect(image, conf=VAL.conf, iou=VAL.iou, max_det=VAL.max_det))
    return 100.0 * mean_average_precision(predictions, data.truths, len(data.dataset.names), VAL.max_det).map50_95


def median_latency_ms(engine, meta: ModelMeta, runs: int = TIMED_RUNS) -> float:
    """Median inference time (ms) of `engine` on one zero-filled input of the shape and type it takes."""
    spec = engine.inputs[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
    if len(shape) == 4 and meta.input.layout == "NCHW":
        shape[2:] = meta.imgsz
    elif len(shape) == 4:
        shape[1:3] = meta.imgsz
    feed = {spec.name: np.zeros(shape, np.dtype(spec.dtype) if spec.dtype else np.float32)}
    engine.infer(feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        engine.infer(feed)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


@dataclass
class SearchResult:
    """What the accuracy-controlled search settled on."""

    path: Path
    float_layers: list[str]
    points: float
    tried: list[tuple[int, float]] = field(default_factory=list)  # (layers in float, mAP50-95 points)


def search_float_layers(
    quantize: Callable[[list[str]], Path],
    measure: Callable[[Path], float],
    ranking: Sequence[str],
    reference: float,
    max_drop: float,
) -> SearchResult:
    """Fewest top-ranked layers kept in float for which ``reference - measure(quantize(layers)) <= max_drop``.

    Tries 0, 1, 2, 4 ... layers, then bisects between the last failing and the first passing count.
    Raises AccuracyBudgetError when even every ranked layer in float misses the budget.
    """
    tried: dict[int, tuple[Path, float]] = {}

    def attempt(count: int) -> float:
        path = quantize(list(ranking[:count]))
        points = measure(path)
        tried[count] = (path, points)
        log.info(f"accuracy {count} layer(s) in float: mAP50-95 {points:.2f} (drop {reference - points:.2f})")
        return points

    count, low = 0, -1
    while reference - attempt(count) > max_drop:
        low = count
        if count >= len(ranking):
            best = max(tried, key=lambda c: tried[c][1])
            raise AccuracyBudgetError(
                f"--max-drop {max_drop:g} not met: the best INT8 reached mAP50-95 {tried[best][1]:.2f} against "
                f"{reference:.2f} in float (drop {reference - tried[best][1]:.2f} points, {best} layer(s) in float)"
            )
        count = 1 if count == 0 else min(count * 2, len(ranking))
    high = count
    while high - low > 1:
        middle = (low + high) // 2
        if reference - attempt(middle) <= max_drop:
            high = middle
        else:
            low = middle
    path, points = tried[high]
    return SearchResult(path, list(ranking[:high]), points, sorted((c, p) for c, (_, p) in tried.items()))


def rank_by_error(
    float_values: Sequence[dict[str, np.ndarray]],
    quant_values: Sequence[dict[str, np.ndarray]],
    layers: Sequence[tuple[str, Sequence[str], str]],
) -> list[str]:
    """Layers ordered by the error they add, largest first.

    `layers` are (layer name, input tensors, output tensor); the values are those tensors per image in the
    float and the quantized model. A layer's contribution is the relative L2 error of its output minus the
    largest of its inputs' (the error it adds, not the error it inherits).
    """

    def error(name: str) -> float:
        total, norm = 0.0, 0.0
        for f, q in zip(float_values, quant_values):
            if name not in f or name not in q:
                return 0.0
            a, b = f[name].astype(np.float64).ravel(), q[name].astype(np.float64).ravel()
            if a.shape != b.shape:
                return 0.0
            total += float(((a - b) ** 2).sum())
            norm += float((a**2).sum())
        return (total / norm) ** 0.5 if norm > 0 else 0.0

    cache: dict[str, float] = {}
    scores = []
    for layer, sources, output in layers:
        for name in [*sources, output]:
            if name not in cache:
                cache[name] = error(name)
        inherited = max((cache[s] for s in sources), default=0.0)
        scores.append((cache[output] - inherited, layer))
    return [layer for score, layer in sorted(scores, key=lambda s: -s[0])]
