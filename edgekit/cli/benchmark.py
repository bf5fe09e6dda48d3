"""`edgekit benchmark`: convert to every format x precision, then validate and time each artifact."""

from __future__ import annotations

import argparse

from edgekit.cli.argtypes import add_shared, imgsz, names, positive


def run(args: argparse.Namespace) -> int:
    """Convert a checkpoint once to each format x precision (--to / --precision, or a --device profile), then
    validate and time every artifact here: format, precision, size, mAP50-95, ms per frame, FPS, speed-up over
    FP32, parameters and GFLOPs. A target that fails is a row saying why."""
    from edgekit.converters.opening import check_converter_side

    check_converter_side(args.checkpoint)
    from edgekit.benchmark import run_benchmark
    from edgekit.converters.options import ConvertOptions
    from edgekit.devices.profiles import convert_targets

    targets = convert_targets(args.device, args.to, args.precision, args.imgsz, have_calibration=True,
                              default_formats="onnx,openvino,tflite,ncnn", default_precisions="fp32,fp16,int8")
    options = ConvertOptions.create(
        targets.formats, targets.precisions, targets.imgsz, args.out_dir, calib=args.calib,
        names=args.names, topk=args.topk, arch=args.arch,
    )
    report = run_benchmark(
        args.checkpoint, args.data, options, split=args.split, runs=args.runs, threads=args.threads, shared=args.shared,
        progress=not args.quiet,
    )
    if args.json:
        print(report.to_json())
    elif args.markdown:
        print(report.markdown())
    else:
        print(report.title())
        print(report.table())
    return 1 if all(r.error for r in report.rows) else 0


def add_parser(verbs) -> None:
    """Add `benchmark` and its options to the verbs of the `edgekit` parser."""
    p = verbs.add_parser(
        "benchmark", help="convert to every format, then validate and time each", description=run.__doc__
    )
    p.add_argument("checkpoint", help="checkpoint file (.pt/.pth)")
    p.add_argument("--data", required=True, help="labelled data: a YOLO data.yaml or a COCO json")
    p.add_argument("--split", default="val", help="the data.yaml split to validate on (default val)")
    p.add_argument("--to", help="formats, comma-separated (default onnx,openvino,tflite,ncnn)")
    p.add_argument("--precision", help="precisions, comma-separated (default fp32,fp16,int8)")
    p.add_argument("--device", help="formats, precisions and input size from a device profile")
    p.add_argument("--imgsz", type=imgsz, help="input size (default: the checkpoint's training size, else 640)")
    p.add_argument("--calib", help="INT8 calibration images (default: the data's own, its train split first)")
    p.add_argument("--runs", type=positive, default=50, help="timed frames per artifact (default 50)")
    p.add_argument("--threads", type=positive, help="inference threads (default: the backend's)")
    add_shared(p)
    p.add_argument("--topk", choices=["graph", "runtime"], help="end-to-end models: see convert")
    p.add_argument("--arch", help="DAMO-YOLO: the variant of a state_dict checkpoint")
    p.add_argument("--names", type=names, help="class names (comma-separated or a file, one per line)")
    p.add_argument("--out", dest="out_dir", help="keep the artifacts in this folder (default: a temporary one)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)
