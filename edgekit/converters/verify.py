"""Every check of an artifact against its source, in one place.

- element-wise: FP32/FP16 outputs against the training form's on the verification images;
- agreement: INT8 (and thresholded FP16) detections scored (mAP) against the FP32 source's as truth;
- NMS rows: in-graph NMS (ONNX, and TFLite's post-process op on phone files) against numpy's NMS,
  tie-aware;
- torch program: the exact program a backend converted, run in torch (CoreML off macOS).

Backends call these; the figures go into a :class:`Verification` stored in the artifact's metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgekit.converters.context import ExportContext
from edgekit.detections import Detections, box_iou
from edgekit.errors import EdgekitError
from edgekit.eval.metrics import mean_average_precision
from edgekit.eval.settings import VAL
from edgekit.meta import ModelMeta
from edgekit.runtimes.decode import decode_nms, decode_outputs
from edgekit.runtimes.preprocess import dequantize, preprocess
from edgekit.tolerances import FP16_TOLERANCE, FP32_TOLERANCE


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


INT8_MIN_MAP50 = 0.5  # detection agreement (ranks) below this is a failed conversion
INT8_MAX_SCORE_DIFF = 0.1  # mean |per-image max score - the source's| above this: scores compressed
INT8_MIN_CONF_AGREEMENT = 0.6  # F1 of the detections kept at the model's conf below this is a failed conversion
NMS_TOLERANCE = {"nms_boxes": 1e-3, "nms_scores": 1e-4, "nms_unmatched": 0, "nms_count_diff": 0}


def run_engine(engine, meta: ModelMeta, image: np.ndarray) -> dict[str, np.ndarray]:
    """An artifact's float outputs for one BGR image, preprocessed as its metadata says (integer outputs
    dequantized)."""
    x, _ = preprocess(image, meta.input, tuple(meta.imgsz))
    out = engine.run({meta.input.name: x})
    specs = {o.name: o for o in engine.outputs}
    return {
        name: dequantize(out[name], specs[name].quant) if specs[name].quant else np.asarray(out[name], np.float32)
        for name in meta.outputs.names
    }


def verify_elementwise(ctx: ExportContext, engine, meta: ModelMeta, precision: str) -> Verification:
    """FP32 / FP16: outputs against the training form on the verification images, element-wise."""
    tolerance = FP16_TOLERANCE if precision == "fp16" else FP32_TOLERANCE
    return compare(
        lambda i: ctx.reference_outputs(ctx.images[i], key=i),
        lambda i: run_engine(engine, meta, ctx.images[i]),
        list(range(len(ctx.images))),
        tolerance,
        backend=engine.backend,
    )


def detection_agreement(predictions: list[Detections], truths: list[Detections], classes: int) -> dict[str, float]:
    """mAP50-95 and mAP50 of `predictions` scored against `truths` (another run's detections), and how many
    reference detections there were."""
    result = mean_average_precision(predictions, truths, classes)
    return {"map50_95": result.map50_95, "map50": result.map50, "reference_detections": result.instances}


def matched_f1(reference: Detections, got: Detections, iou: float = 0.5) -> tuple[int, int, int]:
    """Greedy one-to-one matching of two detection sets of one image (same class, IoU >= `iou`, best IoU
    first). Returns (matched, reference count, artifact count)."""
    if not len(reference) or not len(got):
        return 0, len(reference), len(got)
    overlap = box_iou(reference.xyxy, got.xyxy)
    overlap[reference.class_id[:, None] != got.class_id[None, :]] = 0.0
    matched = 0
    while overlap.size and overlap.max() >= iou:
        i, j = np.unravel_index(int(overlap.argmax()), overlap.shape)
        overlap[i, :] = overlap[:, j] = 0.0
        matched += 1
    return matched, len(reference), len(got)


def verify_agreement(ctx: ExportContext, engine, meta: ModelMeta) -> Verification:
    """INT8: the artifact's detections against the FP32 source's, on the calibration images (or the
    verification images when there are none), three ways:

    - ranks: mAP of the artifact's detections (conf 0.001) with the source's at the model's conf as truth;
    - score calibration: the mean over images of |max score of the artifact - max score of the source|
      (``score_max_diff``), which a uniform squashing of scores raises while ranks stay intact;
    - the default threshold: F1 of the detections both keep at the model's conf (``conf_agreement``),
      i.e. whether the same ``--conf`` finds the same objects.
    """
    images = ctx.calibration_images() or ctx.images
    truths, predictions = [], []
    decode = meta.decode
    max_diffs, matched, n_ref, n_got = [], 0, 0, 0
    for image in images:
        ref = ctx.reference_outputs(image)
        _, info = ctx.reference_input(image)
        settings = dict(conf=VAL.conf, iou=decode.iou, max_det=decode.max_det)
        reference = decode_outputs(ctx.source_meta, ref, [info], **settings)[0]
        _, art_info = preprocess(image, meta.input, tuple(meta.imgsz))
        got = decode_outputs(meta, run_engine(engine, meta, image), [art_info], **settings)[0]
        sure = reference.filter(conf=decode.conf)  # NMS keeps no box below conf because of a lower one
        truths.append(sure)
        predictions.append(got)
        top_ref = float(reference.confidence.max()) if len(reference) else 0.0
        top_got = float(got.confidence.max()) if len(got) else 0.0
        max_diffs.append(abs(top_ref - top_got))
        m, r, g = matched_f1(sure, got.filter(conf=decode.conf))
        matched, n_ref, n_got = matched + m, n_ref + r, n_got + g
    verification = Verification(backend=engine.backend, inputs=len(images))
    verification.extra = detection_agreement(predictions, truths, len(meta.classes))
    verification.extra["conf_agreement"] = 2 * matched / (n_ref + n_got) if n_ref + n_got else 1.0
    verification.max_abs = {"score_max_diff": float(np.mean(max_diffs)) if max_diffs else 0.0}
    verification.tolerance = {"score_max_diff": INT8_MAX_SCORE_DIFF}
    if verification.extra["reference_detections"]:
        verification.minimum = {"map50": INT8_MIN_MAP50, "conf_agreement": INT8_MIN_CONF_AGREEMENT}
    return verification


def detection_rows(found: Detections) -> np.ndarray:
    """Detections as [N, 6] float64 rows (x1, y1, x2, y2, score, class), the layout of in-graph NMS outputs."""
    return np.concatenate([found.xyxy, found.confidence[:, None], found.class_id[:, None]], 1).astype(np.float64)


def match_rows(ref: np.ndarray, got: np.ndarray, score_tol: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Pair two sets of [N, 6] detection rows (box, score, class) by class and score, closest boxes first
    (equal scores, common in uniform image regions, may come out in any order). Returns the box and score
    differences of the pairs and how many rows of either side found no partner."""
    if not len(ref) or not len(got):
        return np.zeros(0), np.zeros(0), len(ref) + len(got)
    same = (ref[None, :, 5] == got[:, None, 5]) & (np.abs(ref[None, :, 4] - got[:, None, 4]) <= score_tol)
    error = np.abs(ref[None, :, :4] - got[:, None, :4]).max(-1)
    g_idx, r_idx = np.nonzero(same)
    order = np.argsort(error[g_idx, r_idx], kind="stable")
    used_g, used_r = np.zeros(len(got), bool), np.zeros(len(ref), bool)
    boxes, scores = [], []
    for gi, ri in zip(g_idx[order], r_idx[order]):
        if used_g[gi] or used_r[ri]:
            continue
        used_g[gi] = used_r[ri] = True
        boxes.append(error[gi, ri])
        scores.append(abs(ref[ri, 4] - got[gi, 4]))
    return np.asarray(boxes), np.asarray(scores), int((~used_g).sum() + (~used_r).sum())


def verify_nms(ctx: ExportContext, engine, meta: ModelMeta) -> Verification:
    """The artifact's in-graph NMS against the runtime's numpy NMS on the training form's outputs.

    Tie-aware: every kept row must be a genuine (anchor, class) candidate of the source (box and score
    within tolerance), and the kept scores must equal the numpy NMS's, so boxes that tie on score may be
    kept in either order.
    """
    decode = meta.decode
    result = Verification(backend=engine.backend, inputs=len(ctx.images))
    boxes_all, scores_all, unmatched, counts = [], [], 0, 0
    for i, image in enumerate(ctx.images):
        ref = ctx.reference_outputs(image, key=i)
        found = decode_nms(
            ref["boxes"][0], ref["scores"][0], decode.conf, decode.iou, decode.max_det,
            multi_label=ctx.source_meta.decode.multi_label,
        )
        expected = detection_rows(found)
        out = run_engine(engine, meta, image)
        rows = np.asarray(out["detections"][0], np.float64)[: int(np.asarray(out["count"]).reshape(-1)[0])]
        counts += abs(len(rows) - len(expected))
        if len(rows) != len(expected):
            continue
        b, s, u = match_detections(expected, rows, ref["boxes"][0], ref["scores"][0], 1e-4)
        boxes_all.append(b)
        scores_all.append(s)
        unmatched += u
    b = np.concatenate(boxes_all) if boxes_all else np.zeros(0)
    s = np.concatenate(scores_all) if scores_all else np.zeros(0)
    result.max_abs = {
        "nms_boxes": float(b.max()) if b.size else 0.0,
        "nms_scores": float(s.max()) if s.size else 0.0,
        "nms_unmatched": float(unmatched),
        "nms_count_diff": float(counts),
    }
    result.tolerance = dict(NMS_TOLERANCE)
    return result


def verify_rows_against_nms(
    runs: Sequence[tuple[dict[str, np.ndarray], np.ndarray]], meta: ModelMeta, score_tol: float
) -> dict[str, float]:
    """Rows an in-graph selection kept against numpy's multi-label per-class NMS on the same inputs.

    `runs` holds, per image, the selection's inputs (``boxes`` [1, A, 4] normalized xyxy, ``scores``
    [1, A, C]) and the rows it kept ([N, 6]: box, score, class). Returns the largest box and score
    differences of matched rows and how many rows found no partner (``op_*`` figures).
    """
    decode = meta.decode
    boxes_all, scores_all, unmatched = [np.zeros(0)], [np.zeros(0)], 0
    for inputs, rows in runs:
        found = decode_nms(
            inputs["boxes"][0], inputs["scores"][0], decode.conf, decode.iou, decode.max_det, multi_label=True
        )
        b, s, u = match_rows(detection_rows(found), rows.astype(np.float64), score_tol)
        boxes_all.append(b)
        scores_all.append(s)
        unmatched += u
    b, s = np.concatenate(boxes_all), np.concatenate(scores_all)
    return {
        "op_boxes": float(b.max()) if b.size else 0.0,
        "op_scores": float(s.max()) if s.size else 0.0,
        "op_unmatched": float(unmatched),
    }


def verify_torch_program(ctx: ExportContext, run: Callable[[np.ndarray], Sequence], backend: str) -> Verification:
    """A converted program run in torch (`run` maps a network input [1, 3, H, W] to its outputs, in the
    source's output order) against the training form, at FP32 tolerance."""
    names = ctx.source_meta.outputs.names

    def candidate(i: int) -> dict[str, np.ndarray]:
        x = ctx.reference_input(ctx.images[i])[0]
        return dict(zip(names, (np.asarray(t) for t in run(x))))

    return compare(
        lambda i: ctx.reference_outputs(ctx.images[i], key=i),
        candidate,
        list(range(len(ctx.images))),
        FP32_TOLERANCE,
        backend=backend,
    )
