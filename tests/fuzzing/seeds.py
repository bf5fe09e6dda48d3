"""The seed corpus: for each target, small files of its format as edgekit (or the exporter it reads) writes
them. Built once into a folder outside the repository (``python -m fuzzing seeds DIR``; the runner builds
what is missing), from the repository's assets and fixtures and edgekit's own writers, in a few seconds.
Every seed stays under MAX_LEN so the fuzzer never truncates one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SCENES = FIXTURES / "families" / "scenes"
ULTRALYTICS = FIXTURES / "ultralytics"
MAX_LEN = 1 << 20  # the largest input a target is given: "a file under 1 MB"


def _stripped_onnx(source: Path, out: Path) -> None:
    """An ONNX artifact with its weights emptied: the graph, opsets and metadata exactly as written."""
    import onnx

    model = onnx.load(str(source), load_external_data=False)
    for tensor in model.graph.initializer:
        tensor.ClearField("raw_data")
        for name in ("float_data", "int64_data", "int32_data", "double_data"):
            tensor.ClearField(name)
    out.write_bytes(model.SerializeToString())


def onnx_seeds(folder: Path) -> None:
    from edgekit.assets import HERE

    for name in ("shapes.onnx", "yolo26n.onnx"):
        _stripped_onnx(HERE / name, folder / name)


def tflite_seeds(folder: Path) -> None:
    from edgekit.converters.backends.tflite.export import finalize_tflite, read_model, write_model
    from edgekit.meta import ModelMeta, OutputSpec

    source = ULTRALYTICS / "tiny26.tflite"
    shutil.copy(source, folder / "ultralytics.tflite")  # Ultralytics' appended zip of metadata.json included
    meta = ModelMeta("ultralytics", "tiny26", ["circle", "square", "triangle"], (160, 160),
                     outputs=OutputSpec(kind="packed", names=["output0"]))
    edgekit_file = folder / "edgekit.tflite"
    shutil.copy(source, edgekit_file)
    finalize_tflite(edgekit_file, "images", ["output0"], meta.to_json())
    model = read_model(edgekit_file)  # the same graph with its weights emptied: a seed a hundred times smaller
    kept = {entry.buffer for entry in model.metadata}
    for index, buffer in enumerate(model.buffers):
        if index not in kept:
            buffer.data = None
    write_model(model, folder / "stripped.tflite")


def ncnn_seeds(folder: Path) -> None:
    from edgekit.converters.backends.ncnn.model_file import Layer, NcnnModel, WeightArray

    from fuzzing.targets import BIN_SEPARATOR

    rng = np.random.default_rng(0)

    def weights(count: int, tagged: bool) -> WeightArray:
        return WeightArray(rng.standard_normal(count).astype(np.float32), tagged)

    layers = [
        Layer("Input", "in0", [], ["in0"], {"0": "32", "1": "32", "2": "3"}),
        Layer("Convolution", "conv_0", ["in0"], ["1"], {"0": "4", "1": "3", "3": "2", "4": "1", "5": "1", "6": "108"},
              [weights(108, True), weights(4, False)]),
        Layer("Swish", "silu_0", ["1"], ["2"]),
        Layer("Split", "splitncnn_0", ["2"], ["3", "4"]),
        Layer("ConvolutionDepthWise", "convdw_0", ["3"], ["5"],
              {"0": "4", "1": "3", "4": "1", "5": "1", "6": "36", "7": "4"}, [weights(36, True), weights(4, False)]),
        Layer("BatchNorm", "bn_0", ["4"], ["6"], {"0": "4"}, [weights(4, False) for _ in range(4)]),
        Layer("BinaryOp", "add_0", ["5", "6"], ["7"], {"0": "0"}),
        Layer("MemoryData", "pnnx_fold_0", [], ["8"], {"0": "2", "1": "4"}, [weights(8, False)]),
        Layer("Pooling", "gap_0", ["7"], ["9"], {"0": "1", "4": "1"}),
        Layer("InnerProduct", "fc_0", ["9"], ["10"], {"0": "2", "1": "1", "2": "8"},
              [weights(8, True), weights(2, False)]),
        Layer("Concat", "cat_0", ["10", "8"], ["out0"], {"0": "0"}),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        param, weights_file = Path(tmp) / "model.param", Path(tmp) / "model.bin"
        NcnnModel(layers, 12).write(param, weights_file)
        text, data = param.read_bytes(), weights_file.read_bytes()
    (folder / "model").write_bytes(text + BIN_SEPARATOR + data)
    (folder / "param-only").write_bytes(text)


def yaml_seeds(folder: Path) -> None:
    shutil.copy(ULTRALYTICS / "tiny26_openvino_model" / "metadata.yaml", folder / "metadata.yaml")
    shutil.copy(SCENES / "data.yaml", folder / "data.yaml")


def metadata_seeds(folder: Path) -> None:
    from edgekit.assets import HERE
    from edgekit.meta import KEY, DecodeSpec, InputSpec, ModelMeta, OutputSpec, SourceInfo
    from edgekit.runtimes.onnx_graph import _fields

    for n, (number, _, value) in enumerate(_fields(memoryview((HERE / "shapes.onnx").read_bytes()))):
        if number == 14:  # ModelProto.metadata_props: key 1, value 2
            entry = {k: bytes(v).decode() for k, _, v in _fields(value)}
            if entry.get(1) == KEY:
                (folder / f"shapes-{n}.json").write_text(entry[2])
    int8 = ModelMeta(
        "yolov9", "t", ["person", "car"], (640, 640), precision="int8",
        input=InputSpec(layout="NHWC", dtype="int8", quant=(0.0039, -128)),
        outputs=OutputSpec(kind="boxes_scores", names=["boxes", "scores"], quant={"boxes": (0.004, -128)}),
        decode=DecodeSpec(conf=0.3, iou=0.5), source=SourceInfo("yolov9-t.pt", "0" * 64, "0.1.0"),
        verification={"max_abs": 1e-4}, accuracy={"map": 0.4},
    )
    (folder / "int8.json").write_text(int8.to_json())
    e2e = ModelMeta("ultralytics", "yolo26n", ["a"], (320, 256), outputs=OutputSpec(kind="detections",
                    names=["detections"]), decode=DecodeSpec(method="none"))
    (folder / "detections.json").write_text(e2e.to_json())
    props = {"description": "Ultralytics YOLO26n model", "author": "Ultralytics", "stride": "32", "task": "detect",
             "imgsz": "[640, 640]", "names": "{0: 'person', 1: 'car'}", "args": "{'half': False, 'nms': False}"}
    (folder / "ultralytics.json").write_text(json.dumps(props))


def labels_seeds(folder: Path) -> None:
    files = sorted((SCENES / "labels" / "val").glob("*.txt"))
    for label in [f for f in files if f.stat().st_size][:4]:
        shutil.copy(label, folder / label.name)


def coco_seeds(folder: Path) -> None:
    from fuzzing.targets import COCO_IMAGES

    data = json.loads((SCENES / "annotations" / "instances_val.json").read_text())
    images = [e for e in data["images"] if e["file_name"] in COCO_IMAGES]
    ids = {e["id"] for e in images}
    data.update(images=images, annotations=[a for a in data["annotations"] if a["image_id"] in ids])
    (folder / "instances_val.json").write_text(json.dumps(data))


def tiny_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints of a few small modules, pickled as tests/checkpoints.py pickles the families' (module
    classes under the reference repositories' names; trainer state beside them)."""
    import torch
    from torch import nn

    from edgekit.models import yolov9_blocks as B

    from checkpoints import stand_in_modules, ultralytics_names, write_damo_checkpoint, write_yolov9_checkpoint

    torch.manual_seed(0)
    yolov9 = nn.Sequential(B.Conv(3, 4, 3, 2), B.Conv(4, 8, 1, 1), B.Concat(1))
    ultralytics = nn.Sequential(B.Conv(3, 8, 3, 2), B.DFL(4))
    paths = [write_yolov9_checkpoint(yolov9, folder / "yolov9.pt"),
             write_damo_checkpoint(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)), folder / "damo.pth")]
    half = ultralytics.half()
    ckpt = {"date": "2026-01-14T00:00:00", "version": "8.4.0", "epoch": -1, "model": half, "ema": None,
            "train_args": {"task": "detect", "imgsz": 640}, "train_metrics": {"metrics/mAP50-95(B)": 0.4}}
    with stand_in_modules([half], ultralytics_names()):
        torch.save(ckpt, folder / "ultralytics.pt")
    return [*paths, folder / "ultralytics.pt"]


def checkpoint_seeds(folder: Path) -> None:
    tiny_checkpoints(folder)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "onnx": onnx_seeds,
    "tflite": tflite_seeds,
    "ncnn": ncnn_seeds,
    "yaml": yaml_seeds,
    "metadata": metadata_seeds,
    "labels": labels_seeds,
    "coco": coco_seeds,
    "checkpoint": checkpoint_seeds,
}


def build(target: str, folder: Path) -> Path:
    """Write target's seeds into `folder`/`target` (once: an existing folder is kept) and return that folder."""
    out = folder / target
    if out.is_dir() and any(out.iterdir()):
        return out
    staging = folder / f".{target}.part"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    BUILDERS[target](staging)
    too_large = [p.name for p in staging.iterdir() if p.stat().st_size > MAX_LEN]
    if too_large:
        raise RuntimeError(f"seeds over {MAX_LEN} bytes for {target}: {too_large}")
    staging.rename(out)
    return out
