"""`edgekit predict`: detect objects in an image, folder, video, camera or stream; print, save or both."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgekit.cli.argtypes import add_shared, fraction, imgsz, items, names, positive


def run(args: argparse.Namespace) -> int:
    """Run a model on an image, folder, video or camera; print, save or stream the detections."""
    from edgekit.detections import class_ids
    from edgekit.devices.loop import check_not_source_folder, model_and_source, predict
    from edgekit.devices.sources import Source
    from edgekit.fileio import check_output_folder
    from edgekit.runtimes.detector import load
    from edgekit.runtimes.settings import EngineSettings

    model, source_spec = model_and_source(args.model, args.source)
    detector = load(
        model, backend=args.backend, threads=args.threads, settings=EngineSettings(shared=args.shared),
        imgsz=args.imgsz, names=args.names, device=args.device,
    )
    for option in ("conf", "iou", "max_det"):
        if getattr(args, option) is not None:
            setattr(detector, option, getattr(args, option))
    if args.agnostic:
        detector.agnostic = True
    if args.classes:
        detector.classes = class_ids(args.classes, detector.names)
    save = Path(args.save) if args.save else None
    if save is not None:
        check_output_folder(save, "--save")
    source = Source(source_spec)
    if save is not None:
        check_not_source_folder(save, source, "--save")
    log = sys.stderr if args.json else sys.stdout
    print(f"{model.name}: {detector!r}", file=log)
    if detector.device is not None:
        from edgekit.devices.profiles import run_notes

        meta = detector.meta
        for note in run_notes(detector.device, detector.engine.threads, detector.engine.backend, meta.precision,
                              meta.imgsz):
            print(f"device {detector.device.name}: {note}", file=log)
    done = predict(detector, source, save=save, as_json=args.json, out=sys.stdout, log=log)
    if done.frames:
        print(done.summary(), file=log)
    if source.skipped:
        print(f"edgekit: error: {len(source.skipped)} unreadable image(s) skipped", file=sys.stderr)
        return 1
    if done.interrupted:
        print("edgekit: interrupted", file=sys.stderr)
        return 130
    return 0


def add_parser(verbs) -> None:
    """Add `predict` and its options to the verbs of the `edgekit` parser."""
    p = verbs.add_parser(
        "predict", help="detect objects in images, folders, videos or a camera", description=run.__doc__
    )
    p.add_argument("model", nargs="?", help="model file (default: the embedded demo model)")
    p.add_argument("source", nargs="?", help="image, folder, video file or camera index (default: a sample image)")
    p.add_argument("--conf", type=fraction, help="confidence threshold (default: the model's, usually 0.25)")
    p.add_argument("--iou", type=fraction, help="NMS IoU threshold (default: the model's)")
    p.add_argument("--max-det", type=positive, help="maximum detections per image")
    p.add_argument("--classes", type=items, help="comma-separated class ids or names to keep")
    p.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")
    p.add_argument("--save", metavar="DIR", help="write annotated images / video to DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object per frame to stdout")
    p.add_argument("--threads", type=positive, help="inference threads (default: the backend's)")
    add_shared(p)
    p.add_argument("--backend", help="force a backend, e.g. openvino for an .onnx file (default: by file type)")
    p.add_argument("--imgsz", type=imgsz, help="input size for models without metadata, or dynamic ones")
    p.add_argument("--names", type=names, help="class names (comma-separated or a file, one per line)")
    p.add_argument("--device", help="take threads, engine and hints from a device profile (see: edgekit devices)")
    p.set_defaults(func=run)
