"""What `edgekit inspect` says about a checkpoint or architecture name: parameters and GFLOPs of its training
form, the reference's own deploy form and the form edgekit exports, and the deploy transforms applied."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import torch

from edgekit.checks import check_stride
from edgekit.converters.families import open_source
from edgekit.converters.source import DEFAULT_IMGSZ
from edgekit.models.facts import count_gflops, count_params

FORMS = ("training", "deploy", "exported")


def inspect_source(
    spec: str | Path, imgsz: int | Sequence[int] | None = None, *, arch: str | None = None, log: TextIO | None = None
) -> dict[str, Any]:
    """The report of a checkpoint (JSON-ready): source, family, variant, classes, imgsz [HEIGHT, WIDTH],
    params and GFLOPs (at `imgsz`, SIZE or HEIGHT,WIDTH pixels; default 640, where the field quotes GFLOPs) of each
    form in FORMS, and the deploy
    transforms. Progress lines go to `log` (default stderr): making the deploy form takes a while.

    Raises EdgekitError when `spec` opens as no family, or `imgsz` is not a multiple of the model's stride.
    """
    log = log or sys.stderr
    source = open_source(spec, arch=arch)
    height, width = check_stride(DEFAULT_IMGSZ if imgsz is None else imgsz, source.stride)
    size = height if height == width else (height, width)
    print(f"inspect  {source.family} {source.variant}: making the deploy form ...", file=log, flush=True)
    with torch.no_grad():
        exported = source.make_deploy()
        deploy = source.reference_deploy() if source.reference_deploy else exported
    forms = {}
    for form, model in zip(FORMS, (source.training, deploy, exported)):
        print(f"inspect  counting the {form} form's GFLOPs at {size} ...", file=log, flush=True)
        forms[form] = {"params": count_params(model), "gflops": round(count_gflops(model, size), 3)}
    return {
        "source": str(spec),
        "family": source.family,
        "variant": source.variant,
        "classes": len(source.classes),
        "imgsz": [height, width],
        **forms,
        "deploy_transforms": source.notes,
    }


def format_source_report(report: dict[str, Any]) -> str:
    """The report of `inspect_source` as the text `edgekit inspect` prints."""
    h, w = report["imgsz"]
    size = h if h == w else (h, w)
    lines = [f"{report['source']}: {report['family']} {report['variant']}, {report['classes']} classes"]
    for form in FORMS:
        f = report[form]
        lines.append(f"{form:<9} {f['params'] / 1e6:8.3f} M params  {f['gflops']:8.2f} GFLOPs at {size}")
    lines.append("(deploy: the reference's own deploy form; exported: what edgekit writes, every BatchNorm folded)")
    lines += [f"transform {note}" for note in report["deploy_transforms"]]
    return "\n".join(lines)

