"""The `edgekit` command: predict and inspect (more verbs arrive as they work)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from edgekit import __version__
from edgekit.errors import EdgekitError, first_line
from edgekit.runtimes.engine import is_artifact

TOPK_CHOICES = ("auto", "graph", "runtime")  # converters.families.ultralytics.TOPK_MODES, without importing torch


def _floats(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a value in 0..1, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _imgsz(text: str) -> list[int]:
    parts = text.replace("x", ",").split(",")
    try:
        values = [int(p) for p in parts if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SIZE or HEIGHT,WIDTH, got {text!r}") from None
    if len(values) not in (1, 2) or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected SIZE or HEIGHT,WIDTH, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    path = Path(text)
    if path.is_file():
        lines = [line.strip() for line in path.read_text().splitlines()]
        return [line for line in lines if line]
    return [n.strip() for n in text.split(",") if n.strip()]


def _resolve_model_and_source(model: str | None, source: str | None) -> tuple[Path, str]:
    from edgekit import assets

    if model is not None and source is None and not is_artifact(model):
        model, source = None, model
    return (
        Path(model) if model else assets.default_model(),
        source if source is not None else str(assets.sample_image()),
    )


def cmd_predict(args: argparse.Namespace) -> int:
    """Run a model on an image, folder, video or camera; print, save or stream the detections."""
    import cv2

    from edgekit.detections import class_ids
    from edgekit.devices.sources import Source
    from edgekit.fileio import atomic_write_bytes, check_output_folder
    from edgekit.runtimes.detector import load

    model, source_spec = _resolve_model_and_source(args.model, args.source)
    detector = load(
        model, backend=args.backend, threads=args.threads, imgsz=args.imgsz, names=args.names, device=args.device
    )
    if args.conf is not None:
        detector.conf = args.conf
    if args.iou is not None:
        detector.iou = args.iou
    if args.max_det is not None:
        detector.max_det = args.max_det
    if args.agnostic:
        detector.agnostic = True
    if args.classes:
        detector.classes = class_ids([c.strip() for c in args.classes.split(",") if c.strip()], detector.names)
    save = Path(args.save) if args.save else None
    if save is not None:
        check_output_folder(save, "--save")
    source = Source(source_spec)
    if save and source.kind == "folder" and save.resolve() == Path(source_spec).resolve():
        raise EdgekitError(f"--save {save} is the source folder; choose another folder so no image is overwritten")
    log = sys.stderr if args.json else sys.stdout
    print(f"{model.name}: {detector!r}", file=log)
    if detector.device is not None:
        from edgekit.devices.profiles import profile_hints

        print(f"device {detector.device.name}: {detector.engine.threads or 'default'} threads", file=log)
        hints = profile_hints(detector.device, detector.engine.backend, detector.meta.precision, detector.meta.imgsz)
        for hint in hints:
            print(f"device {detector.device.name}: {hint}", file=log)

    frames = 0
    totals = [0.0, 0.0, 0.0]
    interrupted = False
    with _video_target(save, source) as video_tmp:
        writer = None
        try:
            for frame in source:
                found = detector(frame.image)
                t = detector.timings
                frames += 1
                totals = [totals[0] + t.pre, totals[1] + t.infer, totals[2] + t.post]
                if args.json:
                    print(found.to_json(source=frame.name, frame=frame.index, timings_ms=t.as_dict()), flush=True)
                elif source.kind in ("image", "folder") or frames % 30 == 1:
                    counts = ", ".join(f"{n} {name}" for name, n in found.counts().items()) or "no detections"
                    print(
                        f"{frame.name} {frame.image.shape[1]}x{frame.image.shape[0]}: {counts} "
                        f"(pre {t.pre:.1f} ms, infer {t.infer:.1f} ms, post {t.post:.1f} ms)",
                        file=log,
                    )
                if save is None:
                    continue
                drawn = found.draw(frame.image)
                if video_tmp is None:
                    target = save / frame.name
                    ok, data = cv2.imencode(target.suffix or ".jpg", drawn)
                    if not ok:
                        raise EdgekitError(f"cannot encode {target.name}")
                    atomic_write_bytes(target, data.tobytes())
                    continue
                if writer is None:
                    h, w = drawn.shape[:2]
                    fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                    writer = cv2.VideoWriter(str(video_tmp), fourcc, source.fps or 30.0, (w, h))
                    if not writer.isOpened():
                        raise EdgekitError(f"cannot write a video to {save}")
                writer.write(drawn)
        except KeyboardInterrupt:  # Ctrl-C ends a camera or stream run; what was recorded is kept
            if video_tmp is not None and writer is None:
                raise  # nothing recorded: no empty video is left behind
            interrupted = True
        finally:
            if writer is not None:
                writer.release()
    if frames:
        pre, infer, post = (v / frames for v in totals)
        where = f", saved to {save}" if save else ""
        print(f"{frames} frame(s): mean pre {pre:.1f} ms, infer {infer:.1f} ms, post {post:.1f} ms{where}", file=log)
    if source.skipped:
        print(f"edgekit: error: {len(source.skipped)} unreadable image(s) skipped", file=sys.stderr)
        return 1
    if interrupted:
        print("edgekit: interrupted", file=sys.stderr)
        return 130
    return 0


@contextlib.contextmanager
def _video_target(save: Path | None, source) -> Iterator[Path | None]:
    """A temporary video path (renamed into `save` on success) for video and camera sources, else None."""
    if save is None or source.kind in ("image", "folder"):
        yield None
        return
    from edgekit.fileio import atomic_path

    with atomic_path(save / f"{source.stem}.mp4") as tmp:
        yield tmp


def _converter_side(spec: str | None = None) -> None:
    """Refuse a file that cannot be a checkpoint (before torch's slow import), then fail with the extra to
    install when the converter dependencies are missing."""
    from edgekit.errors import require
    from edgekit.fileio import check_checkpoint_file

    if spec is not None and (Path(spec).suffix or "/" in spec or Path(spec).exists()) and not Path(spec).is_dir():
        if not is_artifact(spec):  # an artifact gets convert's own message: it is already a model
            check_checkpoint_file(spec)

    require("torch", "convert")
    require("onnx", "convert")


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert a checkpoint (or a built-in architecture) to verified artifacts: one per format x precision."""
    _converter_side(args.checkpoint)
    from edgekit.converters.convert import convert_many
    from edgekit.converters.options import ConvertOptions, option_names

    formats, precision, size = args.to or "onnx", args.precision or "fp32", args.imgsz or [640]
    if args.device:
        from edgekit.devices.profiles import convert_plan, get_profile

        plan = convert_plan(get_profile(args.device), args.calib is not None, args.to)
        formats, precision = ",".join(plan.formats), args.precision or ",".join(plan.precisions)
        size = args.imgsz or [plan.imgsz]
        for note in plan.notes:
            print(f"device   {args.device}: {note}")
    precisions = "fp16" if args.half and precision == "fp32" else precision
    given = {name: getattr(args, name) for name in option_names() if hasattr(args, name)}
    options = ConvertOptions.create(formats, precisions, size, args.out_dir, **given)
    results = convert_many(args.checkpoint, options=options)
    failed = [r for r in results if not r.ok]
    if failed:
        what = ", ".join(f"{r.format} {r.precision}" for r in failed)
        rest = "the others were written" if len(failed) < len(results) else "nothing was written"
        print(f"edgekit: error: {len(failed)} of {len(results)} target(s) failed ({what}); {rest}", file=sys.stderr)
        return 1
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Describe a model file (metadata, tensors, size, ONNX operators) or a checkpoint/architecture
    (parameters and GFLOPs of its training and deploy forms)."""
    path = Path(args.model)
    if not is_artifact(args.model):
        return _inspect_source(args)
    from edgekit.errors import MetadataError
    from edgekit.fileio import sha256_file
    from edgekit.runtimes.detector import read_meta
    from edgekit.runtimes.engine import open_engine

    engine = open_engine(path)
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    report: dict = {
        "file": str(path),
        "format": path.suffix.lstrip(".") or engine.backend,
        "size_mb": round(size / 1e6, 3),
        "sha256": sha256_file(path),
        "backend": engine.backend,
    }
    try:
        meta = read_meta(engine)
        if meta.random_weights:
            import logging

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
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_format_inspect(report))
    return 0


def _inspect_source(args: argparse.Namespace) -> int:
    _converter_side(args.model)
    import torch

    from edgekit.converters.families import open_source
    from edgekit.models.facts import count_gflops, count_params

    source = open_source(args.model, arch=args.arch)
    imgsz = args.imgsz[0] if len(args.imgsz) == 1 else tuple(args.imgsz)
    if any(s % source.stride for s in args.imgsz):
        raise EdgekitError(f"--imgsz {args.imgsz} must be a multiple of the model's stride {source.stride}")
    print(f"inspect  {source.family} {source.variant}: making the deploy form ...", file=sys.stderr, flush=True)
    with torch.no_grad():
        exported = source.make_deploy()
        deploy = source.reference_deploy() if source.reference_deploy else exported
    forms = {}
    for form, model in (("training", source.training), ("deploy", deploy), ("exported", exported)):
        print(f"inspect  counting the {form} form's GFLOPs at {imgsz} ...", file=sys.stderr, flush=True)
        forms[form] = {"params": count_params(model), "gflops": round(count_gflops(model, imgsz), 3)}
    report = {
        "source": str(args.model),
        "family": source.family,
        "variant": source.variant,
        "classes": len(source.classes),
        "imgsz": list(args.imgsz) * (2 if len(args.imgsz) == 1 else 1),
        **forms,
        "deploy_transforms": source.notes,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['source']}: {source.family} {source.variant}, {len(source.classes)} classes")
    labels = {"training": "training", "deploy": "deploy", "exported": "exported"}
    for form in ("training", "deploy", "exported"):
        f = report[form]
        print(f"{labels[form]:<9} {f['params'] / 1e6:8.3f} M params  {f['gflops']:8.2f} GFLOPs at {imgsz}")
    print("(deploy: the reference's own deploy form; exported: what edgekit writes, every BatchNorm folded)")
    for note in source.notes:
        print(f"transform {note}")
    return 0


def _fit(letterbox: dict) -> str:
    if not letterbox.get("keep_ratio", True):
        return "stretched to the input size"
    return f"letterbox {letterbox['align']} pad {letterbox['pad_value']} ({letterbox.get('rounding', 'round')})"


def _format_inspect(report: dict) -> str:
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


def cmd_devices(args: argparse.Namespace) -> int:
    """List the device profiles (format, precision, threads, input size, each with its reason) and say which
    one fits this machine."""
    from edgekit.devices.profiles import PROFILES, describe_profile, describe_profiles, detect_device, get_profile

    detected = detect_device()
    if args.json:
        chosen = [get_profile(args.name)] if args.name else list(PROFILES.values())
        print(json.dumps({"detected": detected.to_dict(), "profiles": [p.to_dict() for p in chosen]}, indent=2))
    elif args.name:
        print(describe_profile(get_profile(args.name)))
    else:
        print(describe_profiles(detected))
    return 0


def _thread_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2,4, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive thread counts like 1,2,4, got {text!r}")
    return values


def cmd_profile(args: argparse.Namespace) -> int:
    """Profile a model file on this machine: latency percentiles and FPS, the pre / infer / post split, a threads
    sweep, per-operator times, load time, peak memory, and temperature, clock and throttling on a Raspberry Pi."""
    from edgekit.fileio import atomic_write_bytes, check_output_folder
    from edgekit.runtimes.profile import format_report, profile_model, runs_csv

    for flag, target in (("--csv", args.csv), ("--plot", args.plot)):
        if target:  # checked before the runs, not after them
            if Path(target).is_dir():
                raise EdgekitError(f"{flag} {target} is a folder; give a file name")
            check_output_folder(Path(target).parent, f"{flag} {target}: the folder")
    bars: dict = {}

    def progress(stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage not in bars:
            bars[stage] = tqdm(total=total, desc=stage, unit="run", file=sys.stderr, leave=False)
        bars[stage].update(done - bars[stage].n)
        if done == total:
            bars.pop(stage).close()

    model, _ = _resolve_model_and_source(args.model, None)
    report = profile_model(
        model,
        image=args.image,
        runs=args.runs,
        warmup=args.warmup,
        threads=args.threads,
        device=args.device,
        backend=args.backend,
        sweep=None if args.sweep is None else ([] if args.no_sweep else args.sweep),
        operators=not args.no_ops,
        progress=None if args.quiet else progress,
    )
    if args.no_sweep:
        report.sweep = []
    if args.csv:
        atomic_write_bytes(Path(args.csv), runs_csv(report).encode())
    if args.plot:
        from edgekit.runtimes.profile_plot import save_plot

        save_plot(report, args.plot)
    if args.json:
        print(report.to_json())
    else:
        print(format_report(report))
        for what, path in (("csv", args.csv), ("plot", args.plot)):
            if path:
                print(f"{what:<10} {path}")
    return 0


def cmd_val(args: argparse.Namespace) -> int:
    """Measure a model's accuracy on a labelled split: mAP50-95, mAP50, precision, recall and per-class AP (COCO
    evaluation by pycocotools, at conf 0.001 and 300 detections per image by default). MODEL is a model file of
    any format or a checkpoint (run in torch, as the converters' reference)."""
    from edgekit.errors import require
    from edgekit.eval.datasets import load_dataset
    from edgekit.eval.val import save_plots, validate
    from edgekit.fileio import atomic_write_bytes, check_output_folder

    if args.plots:
        check_output_folder(Path(args.plots), "--plots")
    if args.save_json:
        if Path(args.save_json).is_dir():
            raise EdgekitError(f"--save-json {args.save_json} is a folder; give a file name")
        check_output_folder(Path(args.save_json).parent, f"--save-json {args.save_json}: the folder")
    require("pycocotools", "val")
    dataset = load_dataset(args.data, args.split, images=args.images)
    model = args.model
    if is_artifact(model):
        from edgekit.runtimes.detector import load

        detect = load(model, backend=args.backend, threads=args.threads, imgsz=args.imgsz, names=args.names)
        classes = len(detect.names)
    else:
        _converter_side(model)
        from edgekit.converters.source_detector import open_source_detector

        detect = open_source_detector(model, args.imgsz or [640], names=args.names, arch=args.arch)
        classes = len(detect.names)
    if classes != len(dataset.names):
        raise EdgekitError(
            f"{Path(model).name} has {classes} classes, the dataset {args.data} has {len(dataset.names)}; "
            "validate on data labelled with the model's classes"
        )
    print(f"{Path(model).name}: {detect!r} on {len(dataset.items)} images of {args.data} ({args.split})",
          file=sys.stderr if args.json else sys.stdout)
    report = validate(
        detect, dataset, conf=args.conf, iou=args.iou, max_det=args.max_det, progress=not args.quiet, model=str(model)
    )
    text = json.dumps(report.as_dict(), indent=2)
    if args.save_json:
        atomic_write_bytes(Path(args.save_json), (text + "\n").encode())
    if args.json:
        print(text)
    else:
        print(report.table())
    if args.plots:
        for path in save_plots(report, args.plots):
            print(f"plot       {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Convert a checkpoint once to each format x precision (--to / --precision, or a --device profile), then
    validate and time every artifact here: format, precision, size, mAP50-95, ms per frame, FPS, speed-up over
    FP32, parameters and GFLOPs. A target that fails is a row saying why."""
    _converter_side(args.checkpoint)
    from edgekit.benchmark import run_benchmark
    from edgekit.converters.options import ConvertOptions

    formats, precision, size = args.to or "onnx,openvino,tflite", args.precision or "fp32,fp16,int8", args.imgsz
    if args.device:
        from edgekit.devices.profiles import convert_plan, get_profile

        plan = convert_plan(get_profile(args.device), True, args.to)
        formats, precision = ",".join(plan.formats), args.precision or ",".join(plan.precisions)
        size = args.imgsz or [plan.imgsz]
    options = ConvertOptions.create(
        formats, precision, size or [640], args.out_dir, calib=args.calib, names=args.names, topk=args.topk,
        arch=args.arch,
    )
    report = run_benchmark(
        args.checkpoint, args.data, options, split=args.split, runs=args.runs, threads=args.threads,
        progress=not args.quiet,
    )
    if args.json:
        print(report.to_json())
    elif args.markdown:
        print(report.markdown())
    else:
        print(f"{Path(args.checkpoint).name} at {size[0] if size else 640}, {report.images} images of {args.data}, "
              f"threads {args.threads or 'default'}")
        print(report.table())
    return 1 if all(r.error for r in report.rows) else 0


def _add_benchmark_verb(verbs) -> None:
    p = verbs.add_parser(
        "benchmark", help="convert to every format, then validate and time each", description=cmd_benchmark.__doc__
    )
    p.add_argument("checkpoint", help="checkpoint file (.pt/.pth)")
    p.add_argument("--data", required=True, help="labelled data: a YOLO data.yaml or a COCO json")
    p.add_argument("--split", default="val", help="the data.yaml split to validate on (default val)")
    p.add_argument("--to", help="formats, comma-separated (default onnx,openvino,tflite)")
    p.add_argument("--precision", help="precisions, comma-separated (default fp32,fp16,int8)")
    p.add_argument("--device", help="formats, precisions and input size from a device profile")
    p.add_argument("--imgsz", type=_imgsz, help="input size (default 640)")
    p.add_argument("--calib", help="INT8 calibration images (default: the data's own, its train split first)")
    p.add_argument("--runs", type=_positive, default=50, help="timed frames per artifact (default 50)")
    p.add_argument("--threads", type=_positive, help="inference threads (default: the backend's)")
    p.add_argument("--topk", choices=TOPK_CHOICES, default="auto", help="end-to-end models: see convert")
    p.add_argument("--arch", help="DAMO-YOLO: the variant of a state_dict checkpoint")
    p.add_argument("--names", type=_names, help="class names (comma-separated or a file, one per line)")
    p.add_argument("--out", dest="out_dir", help="keep the artifacts in this folder (default: a temporary one)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_benchmark)


def _add_val_verb(verbs) -> None:
    p = verbs.add_parser("val", help="measure a model's mAP on a labelled dataset", description=cmd_val.__doc__)
    p.add_argument("model", help="model file (any format) or checkpoint (.pt/.pth)")
    p.add_argument("--data", required=True, help="a YOLO data.yaml or a COCO json (its images beside it or --images)")
    p.add_argument("--split", default="val", help="the data.yaml split to use (default val)")
    p.add_argument("--images", help="COCO json: the image folder (default: looked for beside the json)")
    p.add_argument("--conf", type=_floats, default=0.001, help="confidence threshold (default 0.001)")
    p.add_argument("--iou", type=_floats, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--max-det", type=_positive, default=300, help="detections per image (default 300)")
    p.add_argument("--imgsz", type=_imgsz, help="input size: for checkpoints (default 640) and dynamic models")
    p.add_argument("--threads", type=_positive, help="inference threads (default: the backend's)")
    p.add_argument("--backend", help="force a backend (default: by file type)")
    p.add_argument("--names", type=_names, help="class names (comma-separated or a file, one per line)")
    p.add_argument("--arch", help="DAMO-YOLO: the variant of a state_dict checkpoint")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--save-json", metavar="FILE", help="also write the JSON report to FILE")
    p.add_argument("--plots", metavar="DIR", help="write pr_curve.png and confusion_matrix.png to DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_val)


def _add_device_verbs(verbs) -> None:
    p = verbs.add_parser(
        "devices", help="list device profiles and detect this machine", description=cmd_devices.__doc__
    )
    p.add_argument("name", nargs="?", help="show one profile in full, with the reason for each choice")
    p.add_argument("--json", action="store_true", help="print profiles and the detected machine as JSON")
    p.set_defaults(func=cmd_devices)

    p = verbs.add_parser("profile", help="measure a model's latency, stages, threads, operators and memory here",
                         description=cmd_profile.__doc__)
    p.add_argument("model", nargs="?", help="model file (default: the embedded demo model)")
    p.add_argument("--image", help="image to run on (default: the bundled sample image)")
    p.add_argument("--runs", type=_positive, default=100, help="timed runs (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="untimed warm-up runs first (default 10)")
    p.add_argument("--threads", type=_positive, help="inference threads (default: the device profile's or engine's)")
    p.add_argument("--device", help="take threads from a device profile (see: edgekit devices)")
    p.add_argument("--backend", help="force a backend (default: by file type)")
    p.add_argument("--sweep", type=_thread_list, default=None, help="thread counts to compare (default 1,2,4..cores)")
    p.add_argument("--no-sweep", action="store_true", help="skip the threads sweep")
    p.add_argument("--no-ops", action="store_true", help="skip the per-operator profile")
    p.add_argument("--json", action="store_true", help="print the whole report (every run and sample) as JSON")
    p.add_argument("--csv", metavar="FILE", help="write one row per run (times, temperature, clock) to FILE")
    p.add_argument("--plot", metavar="PNG", help="write latency over time with temperature and clock as a PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bars on stderr")
    p.set_defaults(func=cmd_profile)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgekit", description="Deploy real-time object detectors to CPUs, phones and the Raspberry Pi."
    )
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    parser.add_argument("--verbose", action="store_true", help="let other libraries' messages through")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    p = verbs.add_parser(
        "predict", help="detect objects in images, folders, videos or a camera", description=cmd_predict.__doc__
    )
    p.add_argument("model", nargs="?", help="model file (default: the embedded demo model)")
    p.add_argument("source", nargs="?", help="image, folder, video file or camera index (default: a sample image)")
    p.add_argument("--conf", type=_floats, help="confidence threshold (default: the model's, usually 0.25)")
    p.add_argument("--iou", type=_floats, help="NMS IoU threshold (default: the model's)")
    p.add_argument("--max-det", type=_positive, help="maximum detections per image")
    p.add_argument("--classes", help="comma-separated class ids or names to keep")
    p.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")
    p.add_argument("--save", metavar="DIR", help="write annotated images / video to DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object per frame to stdout")
    p.add_argument("--threads", type=_positive, help="inference threads (default: the backend's)")
    p.add_argument("--backend", help="force a backend (default: by file type)")
    p.add_argument("--imgsz", type=_imgsz, help="input size for models without metadata, or dynamic ones")
    p.add_argument("--names", type=_names, help="class names (comma-separated or a file, one per line)")
    p.add_argument("--device", help="take threads and hints from a device profile (see: edgekit devices)")
    p.set_defaults(func=cmd_predict)

    p = verbs.add_parser("convert", help="convert a checkpoint to verified artifacts", description=cmd_convert.__doc__)
    p.add_argument("checkpoint", help="checkpoint file (.pt/.pth) or built-in architecture name (e.g. yolov9-c)")
    p.add_argument(
        "--to", help="formats, comma-separated: onnx, openvino, tflite, coreml, ncnn, or all (default onnx)"
    )
    p.add_argument("--precision", help="precisions, comma-separated: fp32, fp16, int8, or all (default fp32)")
    p.add_argument("--imgsz", type=_imgsz, help="input size: SIZE or HEIGHT,WIDTH (default 640)")
    p.add_argument(
        "--device", help="pick formats, precisions and input size from a device profile (see: edgekit devices)"
    )
    p.add_argument("--half", action="store_true", help="same as --precision fp16")
    p.add_argument("--calib", help="INT8 calibration images: an image folder, a YOLO dataset yaml or a COCO json")
    p.add_argument("--calib-size", type=_positive, default=300, help="calibration images to use (default 300)")
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
    p.add_argument("--opset", type=_positive, default=17, help="ONNX opset (17 or newer)")
    p.add_argument(
        "--out", dest="out_dir", help="output folder (default: the checkpoint's folder; the current one for a name)"
    )
    p.add_argument(
        "--topk",
        choices=TOPK_CHOICES,
        default="auto",
        help="end-to-end models (YOLO26): top-k inside the graph, emitting detections [1,300,6], or in the "
        "runtime, emitting the one-to-one boxes + scores (no selection in the graph: INT8-safe); auto (default): "
        "in the graph unless a format cannot hold it (NCNN), then in the runtime for every format",
    )
    p.add_argument(
        "--nms", action="store_true", help="end-to-end models: export the one-to-many branch for NMS decoding instead"
    )
    p.add_argument("--arch", help="DAMO-YOLO: the variant (damoyolo-t/s/m/l) instead of recognising it from shapes")
    p.add_argument(
        "--keep-ratio",
        action="store_true",
        help="DAMO-YOLO: preprocess as releases before v0.3.0 did (keep aspect ratio, zero padding bottom/right) "
        "instead of stretching to the input size",
    )
    p.add_argument("--names", type=_names, help="class names (comma-separated or a file, one per line)")
    p.set_defaults(func=cmd_convert)

    p = verbs.add_parser(
        "inspect",
        help="show a model file's metadata, tensors and operators, or a checkpoint's size and cost",
        description=cmd_inspect.__doc__,
    )
    p.add_argument("model", help="model file, checkpoint, or built-in architecture name")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--imgsz", type=_imgsz, default=[640], help="input size for GFLOPs (default 640)")
    p.add_argument("--arch", help="DAMO-YOLO: the variant of a state_dict checkpoint")
    p.set_defaults(func=cmd_inspect)
    _add_val_verb(verbs)
    _add_benchmark_verb(verbs)
    _add_device_verbs(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from edgekit.logs import VERBOSE_ENV, shown

    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"
    try:
        # a conversion's progress lines go to stdout; a benchmark's to stderr (its table is the output)
        info_stream = sys.stderr if args.verb == "benchmark" else None
        with shown(info=args.verb in ("convert", "benchmark"), info_stream=info_stream):
            return args.func(args)
    except EdgekitError as exc:
        print(f"edgekit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgekit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug or an unforeseen input: one line, the traceback on request
        if args.debug:
            raise
        print(f"edgekit: error: unexpected {first_line(exc, typed=True)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
