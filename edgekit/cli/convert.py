"""`edgekit convert`: a checkpoint (or a built-in architecture) to verified artifacts."""

from __future__ import annotations

import argparse
import sys

from edgekit.cli.argtypes import imgsz, names, positive


def run(args: argparse.Namespace) -> int:
    """Convert a checkpoint (or a built-in architecture) to verified artifacts: one per format x precision."""
    from edgekit.converters.opening import check_converter_side

    check_converter_side(args.checkpoint)
    from edgekit.converters.convert import convert_many, failures_line
    from edgekit.converters.options import ConvertOptions, option_names
    from edgekit.devices.profiles import convert_targets

    targets = convert_targets(args.device, args.to, args.precision, args.imgsz, have_calibration=args.calib is not None,
                              default_formats="onnx", default_precisions="fp32")
    for note in targets.notes:
        print(f"device   {args.device}: {note}")
    precisions = "fp16" if args.half and targets.precisions == "fp32" else targets.precisions
    given = {name: getattr(args, name) for name in option_names() if hasattr(args, name)}
    options = ConvertOptions.create(targets.formats, precisions, targets.imgsz, args.out_dir,
                                    **given)
    results = convert_many(args.checkpoint, options=options)
    failed = failures_line(results)
    if failed:
        print(f"edgekit: error: {failed}", file=sys.stderr)
        return 1
    return 0


def add_parser(verbs) -> None:
    """Add `convert` and its options to the verbs of the `edgekit` parser."""
    p = verbs.add_parser("convert", help="convert a checkpoint to verified artifacts", description=run.__doc__)
    p.add_argument("checkpoint", help="checkpoint file (.pt/.pth) or built-in architecture name (e.g. yolov9-c)")
    p.add_argument(
        "--to", help="formats, comma-separated: onnx, openvino, tflite, coreml, ncnn, executorch, or all (default onnx)"
    )
    p.add_argument("--precision", help="precisions, comma-separated: fp32, fp16, int8, or all (default fp32)")
    p.add_argument(
        "--imgsz", type=imgsz,
        help="input size: SIZE or HEIGHT,WIDTH (default: the size the checkpoint was trained at, else 640)",
    )
    p.add_argument(
        "--device", help="pick formats, precisions and input size from a device profile (see: edgekit devices)"
    )
    p.add_argument("--half", action="store_true", help="same as --precision fp16")
    p.add_argument("--calib", help="INT8 calibration images: an image folder, a YOLO dataset yaml or a COCO json")
    p.add_argument("--calib-size", type=positive, default=300, help="calibration images to use (default 300)")
    p.add_argument(
        "--max-drop",
        type=float,
        help="INT8: the mAP50-95 points it may lose on labelled data; the most sensitive layers stay in float "
        "until the measured drop fits (needs --val-data or a labelled --calib)",
    )
    p.add_argument(
        "--val-data",
        help="INT8: labelled held-out data (YOLO data.yaml or COCO json) its mAP50-95 drop is measured on",
    )
    p.add_argument(
        "--nms-in-graph",
        action="store_true",
        help="NMS inside the graph (ONNX, OpenVINO): outputs detections [1,K,6] and count",
    )
    p.add_argument(
        "--coreml-nms",
        action="store_true",
        help="CoreML: a pipeline with NonMaximumSuppression that Apple's Vision framework runs directly",
    )
    p.add_argument(
        "--uint8-input", action="store_true", help="TFLite: take uint8 NHWC pixels, the 0..1 scaling inside the graph"
    )
    p.add_argument(
        "--phone",
        action="store_true",
        help="TFLite for MediaPipe Tasks ObjectDetector: TFLite_Detection_PostProcess and MediaPipe metadata",
    )
    p.add_argument("--dynamic", action="store_true", help="dynamic batch and image size (default: fixed batch 1)")
    p.add_argument("--opset", type=positive, default=17, help="ONNX opset (17 or newer)")
    p.add_argument(
        "--out", dest="out_dir", help="output folder (default: the checkpoint's folder; the current one for a name)"
    )
    p.add_argument(
        "--topk",
        choices=["graph", "runtime"],
        help="end-to-end models (YOLO26, YOLOv10): the one-to-one head, top-k inside the graph, emitting detections "
        "[1,300,6], or in the runtime, emitting boxes + scores (no selection in the graph: INT8-safe). Default: "
        "the head the checkpoint runs in Ultralytics (one-to-one, graph, unless saved with end2end=False)",
    )
    p.add_argument(
        "--nms", action="store_true", help="end-to-end models: export the one-to-many head for NMS decoding"
    )
    p.add_argument("--arch", help="DAMO-YOLO: the variant (damoyolo-t/s/m/l) instead of recognising it from shapes")
    p.add_argument(
        "--keep-ratio",
        action="store_true",
        help="DAMO-YOLO: preprocess as releases before v0.3.0 did (keep aspect ratio, zero padding bottom/right) "
        "instead of stretching to the input size",
    )
    p.add_argument("--names", type=names, help="class names (comma-separated or a file, one per line)")
    p.set_defaults(func=run)
