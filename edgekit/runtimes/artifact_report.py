"""What `edgekit inspect` says about a model file: its format, size and hash, the metadata it carries (or why
none was read), its tensors and, for ONNX, its operators; built as plain data and formatted as text."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from edgekit.errors import MetadataError
from edgekit.fileio import sha256_file, size_bytes
from edgekit.runtimes.detector import read_meta
from edgekit.runtimes.engine import open_engine


def inspect_artifact(path: str | Path) -> dict[str, Any]:
    """The report of a model file or folder (JSON-ready): file, format, size_mb, sha256, backend, the metadata
    and where it came from (or metadata_error), inputs and outputs (name, shape, dtype) and, for ONNX, the
    IR version, producer, opsets, node and initializer counts and operator counts.

    Raises EdgekitError when the file cannot be opened by any engine.
    """
    path = Path(path)
    engine = open_engine(path)
    size = size_bytes(path)
    report: dict[str, Any] = {
        "file": str(path),
        "format": path.suffix.lstrip(".") or engine.backend,
        "size_mb": round(size / 1e6, 3),
        "sha256": sha256_file(path),
        "backend": engine.backend,
    }
    try:
        meta = read_meta(engine)
        if meta.random_weights:
            logging.getLogger("edgekit").warning(
                f"{path.name} was converted from an architecture name: its weights are random"
            )
        report["metadata_origin"] = meta.origin
        report["metadata"] = meta.to_dict()
    except MetadataError as exc:
        report["metadata_origin"] = None
        report["metadata_error"] = str(exc)
    report["inputs"] = [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in engine.inputs]
    report["outputs"] = [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in engine.outputs]
    if path.suffix.lower() == ".onnx":
        from edgekit.runtimes.onnx_graph import summarize_onnx

        summary = summarize_onnx(path)
        report["onnx"] = {
            "ir_version": summary.ir_version,
            "producer": summary.producer,
            "opsets": summary.opsets,
            "nodes": sum(summary.ops.values()),
            "initializers": summary.initializers,
            "ops": dict(summary.ops.most_common()),
        }
    return report


def _fit(letterbox: dict) -> str:
    if not letterbox.get("keep_ratio", True):
        return "stretched to the input size"
    return f"letterbox {letterbox['align']} pad {letterbox['pad_value']} ({letterbox.get('rounding', 'round')})"


def format_artifact_report(report: dict[str, Any]) -> str:
    """The report of `inspect_artifact` as the text `edgekit inspect` prints, one labelled line per fact."""
    lines = [f"{report['file']}  ({report['format']}, {report['size_mb']:.2f} MB, backend {report['backend']})"]
    meta = report.get("metadata")
    if meta:
        lines.append(
            f"model      {meta['family']} {meta['variant']}  task {meta['task']}  precision {meta['precision']}"
            f"  (metadata: {report['metadata_origin']})"
        )
        classes = meta["classes"]
        lines.append(f"classes    {len(classes)}: {', '.join(classes[:10])}{' ...' if len(classes) > 10 else ''}")
        inp = meta["input"]
        lines.append(
            f"input      {inp['name']} {meta['imgsz'][0]}x{meta['imgsz'][1]} {inp['layout']} {inp['dtype']}"
            f" {inp['color']} range {inp['range']}"
            f" {_fit(inp['letterbox'])}"
        )
        out, dec = meta["outputs"], meta["decode"]
        lines.append(f"outputs    {out['kind']} {out['names']} ({'normalized' if out['normalized'] else 'pixels'})")
        lines.append(f"decode     {dec['method']} conf {dec['conf']} iou {dec['iou']} max_det {dec['max_det']}")
        if meta.get("source"):
            src = meta["source"]
            lines.append(f"source     {src['file']} sha256 {src['sha256'][:12]} edgekit {src['edgekit']}")
        if meta.get("verification"):
            lines.append(f"verified   {json.dumps(meta['verification'])}")
        if meta.get("random_weights"):
            lines.append("weights    RANDOM: converted from an architecture name, not a trained checkpoint")
    else:
        lines.append(f"metadata   none ({report.get('metadata_error', '')})")
    for kind in ("inputs", "outputs"):
        for t in report[kind]:
            lines.append(f"{kind[:-1]:<10} {t['name']} {t['shape']} {t['dtype']}")
    if "onnx" in report:
        o = report["onnx"]
        opsets = ", ".join(f"{k} {v}" for k, v in o["opsets"].items())
        lines.append(
            f"onnx       ir {o['ir_version']}, opsets {opsets}, producer {o['producer'] or '?'}, "
            f"{o['nodes']} nodes, {o['initializers']} initializers"
        )
        lines.append("ops        " + ", ".join(f"{k} {v}" for k, v in o["ops"].items()))
    return "\n".join(lines)
