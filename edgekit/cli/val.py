"""`edgekit val`: a model's accuracy on a labelled dataset."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgekit.cli.argtypes import add_shared, fraction, imgsz, names, positive
from edgekit.eval.settings import VAL


def run(args: argparse.Namespace) -> int:
    """Measure a model's accuracy on a labelled split: mAP50-95, mAP50, precision, recall and per-class AP (COCO
    evaluation by pycocotools, at conf 0.001 and 300 detections per image by default). MODEL is a model file of
    any format or a checkpoint (run in torch, as the converters' reference)."""
    from edgekit.converters.opening import open_detector
    from edgekit.errors import require
    from edgekit.eval.datasets import load_dataset
    from edgekit.eval.val import check_classes, save_plots, validate
    from edgekit.fileio import check_output_file, check_output_folder, write_json

    if args.plots:
        check_output_folder(Path(args.plots), "--plots")
    if args.save_json:
        check_output_file(args.save_json, "--save-json")
    require("pycocotools", "val")
    dataset = load_dataset(args.data, args.split, images=args.images)
    log = sys.stderr if args.json else sys.stdout
    settings = {"conf": args.conf, "iou": args.iou, "max_det": args.max_det, "progress": not args.quiet}
    if args.both_heads:
        from edgekit.converters.heads import validate_heads
        from edgekit.converters.opening import check_converter_side

        check_converter_side(args.model)
        report = validate_heads(args.model, dataset, args.imgsz, names=args.names, **settings)
        print("\n".join(report.notes), file=log)
    else:
        from edgekit.runtimes.settings import EngineSettings

        detect = open_detector(args.model, imgsz=args.imgsz, backend=args.backend,
                               settings=EngineSettings(args.threads, args.shared), names=args.names, arch=args.arch)
        check_classes(Path(args.model).name, detect.names, args.data, dataset)
        for note in getattr(detect, "notes", ()):  # a checkpoint says which size and head it runs, and why
            print(note, file=log)
        print(f"{Path(args.model).name}: {detect!r} on {len(dataset.items)} images of {args.data} ({args.split})",
              file=log)
        report = validate(detect, dataset, model=str(args.model), **settings)
    if args.save_json:
        write_json(args.save_json, report.as_dict())
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.table())
    if args.plots:
        for path in report.save_plots(args.plots) if args.both_heads else save_plots(report, args.plots):
            print(f"plot       {path}", file=log)
    return 0


def add_parser(verbs) -> None:
    """Add `val` and its options to the verbs of the `edgekit` parser."""
    p = verbs.add_parser("val", help="measure a model's mAP on a labelled dataset", description=run.__doc__)
    p.add_argument("model", help="model file (any format) or checkpoint (.pt/.pth)")
    p.add_argument("--data", required=True, help="a YOLO data.yaml or a COCO json (its images beside it or --images)")
    p.add_argument("--split", default="val", help="the data.yaml split to use (default val)")
    p.add_argument("--images", help="COCO json: the image folder (default: looked for beside the json)")
    p.add_argument("--conf", type=fraction, default=VAL.conf, help=f"confidence threshold (default {VAL.conf})")
    p.add_argument("--iou", type=fraction, default=VAL.iou, help=f"NMS IoU threshold (default {VAL.iou})")
    p.add_argument(
        "--max-det", type=positive, default=VAL.max_det, help=f"detections per image (default {VAL.max_det})"
    )
    p.add_argument("--imgsz", type=imgsz,
                   help="input size: for checkpoints (default: their training size, else 640) and dynamic models")
    p.add_argument("--both-heads", action="store_true",
                   help="end-to-end checkpoints (YOLO26, YOLOv10): validate the one-to-one and the one-to-many + NMS "
                   "head side by side")
    p.add_argument("--threads", type=positive,
                   help="inference threads (default: the backend's; for a checkpoint, torch's)")
    add_shared(p)
    p.add_argument("--backend", help="force a backend (default: by file type)")
    p.add_argument("--names", type=names, help="class names (comma-separated or a file, one per line)")
    p.add_argument("--arch", help="DAMO-YOLO: the variant of a state_dict checkpoint")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--save-json", metavar="FILE", help="also write the JSON report to FILE")
    p.add_argument("--plots", metavar="DIR", help="write pr_curve.png and confusion_matrix.png to DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)
