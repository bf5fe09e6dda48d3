"""`edgekit inspect`: what a model file holds, or what a checkpoint costs."""

from __future__ import annotations

import argparse
import json
import sys

from edgekit.cli.argtypes import imgsz


def run(args: argparse.Namespace) -> int:
    """Describe a model file (metadata, tensors, size, ONNX operators) or a checkpoint/architecture
    (parameters and GFLOPs of its training and deploy forms)."""
    from edgekit.runtimes.engine import is_artifact

    if is_artifact(args.model):
        from edgekit.runtimes.artifact_report import format_artifact_report, inspect_artifact

        report = inspect_artifact(args.model)
        print(json.dumps(report, indent=2) if args.json else format_artifact_report(report))
        return 0
    from edgekit.converters.opening import check_converter_side

    check_converter_side(args.model)
    from edgekit.converters.source_report import format_source_report, inspect_source

    report = inspect_source(args.model, args.imgsz, arch=args.arch, log=sys.stderr)
    print(json.dumps(report, indent=2) if args.json else format_source_report(report))
    return 0


def add_parser(verbs) -> None:
    """Add `inspect` and its options to the verbs of the `edgekit` parser."""
    p = verbs.add_parser(
        "inspect",
        help="show a model file's metadata, tensors and operators, or a checkpoint's size and cost",
        description=run.__doc__,
    )
    p.add_argument("model", help="model file, checkpoint, or built-in architecture name")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--imgsz", type=imgsz, help="input size for GFLOPs (default 640)")
    p.add_argument("--arch", help="DAMO-YOLO: the variant of a state_dict checkpoint")
    p.set_defaults(func=run)
