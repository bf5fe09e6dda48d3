"""NCNN, from the deploy module with pnnx (TorchScript -> pnnx -> ncnn): FP32, FP16 storage (weights
stored as float16 in the .bin) and INT8 (written by edgekit from the FP32 conversion in NCNN's own int8 form:
:mod:`.int8`). The artifact is a folder NAME[-PRECISION]_ncnn/ with model.param, model.bin and edgekit's
metadata in metadata.json (NCNN files have no metadata slot). pnnx names the blobs in0, out0..; they are
renamed to the contract's names (``images``, ``boxes``, ``scores``) in the .param.

Not offered: in-graph NMS, and YOLO26's in-graph top-k (NCNN has no TopK layer: convert end-to-end models
with ``--topk runtime``, and the runtime does the same top-k in numpy).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import warnings
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.converters.backends.base import Backend
from edgekit.errors import EdgekitError, require
from edgekit.logs import silenced
from edgekit.meta import ModelMeta
from edgekit.models.damo_blocks import Focus
from edgekit.runtimes.ncnn import BIN_NAME, METADATA_NAME, PARAM_NAME, param_layers

PNNX_TIMEOUT_S = 1800


class PixelUnshuffleFocus(nn.Module):
    """DAMO-YOLO's Focus (strided slices + concat, which NCNN cannot slice) as pixel_unshuffle (NCNN's
    Reorg) followed by the same convolution with its input channels permuted to match: the same function."""

    def __init__(self, focus: Focus):
        super().__init__()
        self.conv = copy.deepcopy(focus.conv)
        conv = self.conv.conv
        channels = conv.in_channels // 4
        # Focus channel k*C + c holds pixel (dy, dx) = order[k] of channel c; pixel_unshuffle puts it at c*4 + dy*2 + dx
        order = ((0, 0), (1, 0), (0, 1), (1, 1))
        moved = [c * 4 + dy * 2 + dx for dy, dx in order for c in range(channels)]
        weight = torch.empty_like(conv.weight)
        weight[:, moved] = conv.weight
        conv.weight = nn.Parameter(weight, requires_grad=False)

    def forward(self, x):
        return self.conv(F.pixel_unshuffle(x, 2))


def ncnn_ready(model: nn.Module) -> nn.Module:
    """A copy of the deploy module with the blocks NCNN cannot run rewritten into equivalent ones."""
    model = copy.deepcopy(model).eval()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Focus):
                setattr(parent, name, PixelUnshuffleFocus(child))
    return model


def rename_blobs(text: str, names: dict[str, str]) -> str:
    """The .param text with blobs (and the Input layers naming them) renamed by `names`."""
    lines = text.splitlines()
    out = lines[:2]
    for fields, line in zip(param_layers(text), lines[2:]):
        kind, name, bottoms, tops = fields
        if not any(b in names for b in bottoms + tops):
            out.append(line)
            continue
        parts = line.split()
        head = [kind, names.get(name, name) if kind == "Input" else name, str(len(bottoms)), str(len(tops))]
        blobs = [names.get(b, b) for b in bottoms + tops]
        out.append(" ".join(head + blobs + parts[4 + len(bottoms) + len(tops) :]))
    return "\n".join(out) + "\n"


class NCNNBackend(Backend):
    """NCNN (.param + .bin in a folder), converted by pnnx, run by the ncnn package."""

    name = "ncnn"
    extra = "pnnx"
    suffix = "_ncnn"
    directory = True
    precisions = ("fp32", "fp16", "int8")
    graph_topk = False  # pnnx has no TopK or gather layers: end-to-end heads get their top-k in the runtime

    def torchscript(self) -> Path:
        """The deploy module (made NCNN-ready) traced to TorchScript, pnnx's input (made once)."""

        def make() -> Path:
            path = self.ctx.workdir / "ncnn" / "model.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            model = ncnn_ready(self.ctx.deploy)
            with silenced(stderr=False), warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(model, self.ctx.sample(), check_trace=False, strict=False)
            traced.save(str(path))
            return path

        return self.ctx.once("ncnn-torchscript", make)

    def _check_form(self, precision: str) -> None:
        if precision not in self.precisions:
            raise EdgekitError(f"unknown precision {precision}")
        if self.ctx.nms_in_graph:
            raise EdgekitError("in-graph NMS is not available for NCNN (no NMS layer); the runtime does NMS")
        if self.ctx.meta.outputs.kind != "boxes_scores":
            raise EdgekitError(
                f"NCNN has no top-k/gather layers for {self.ctx.meta.variant}'s in-graph top-k: convert it for NCNN "
                "with --topk runtime (boxes + scores, the runtime does the same top-k)"
            )

    def converted(self, precision: str) -> Path:
        """A folder with pnnx's conversion at `precision` (fp32 or fp16 storage), blobs renamed to the
        contract's: model.param and model.bin (made once per conversion)."""

        def make() -> Path:
            pnnx = require("pnnx", "pnnx")
            script = self.torchscript()
            work = script.parent / precision
            work.mkdir(exist_ok=True)
            h, w = self.ctx.imgsz
            param, weights = work / "model.ncnn.param", work / "model.ncnn.bin"
            command = [
                pnnx.EXEC_PATH,
                str(script),
                f"inputshape=[1,{self.ctx.meta.input.channels},{h},{w}]f32",
                f"fp16={int(precision == 'fp16')}",
                f"pnnxparam={work / 'model.pnnx.param'}",
                f"pnnxbin={work / 'model.pnnx.bin'}",
                f"pnnxpy={work / 'model_pnnx.py'}",
                f"pnnxonnx={work / 'model.pnnx.onnx'}",
                f"ncnnparam={param}",
                f"ncnnbin={weights}",
                f"ncnnpy={work / 'model_ncnn.py'}",
            ]
            done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=PNNX_TIMEOUT_S)
            if done.returncode != 0 or not param.is_file() or not weights.is_file():
                lines = (done.stderr or done.stdout).strip().splitlines()
                raise EdgekitError(
                    f"pnnx failed (exit {done.returncode}): {lines[-1][:200] if lines else 'no output'}"
                )
            text = param.read_text()
            unsupported = sorted({kind for kind, *_ in param_layers(text) if "." in kind})
            if unsupported:
                raise EdgekitError(f"pnnx left operators NCNN has no layer for: {', '.join(unsupported)}")
            meta = self.ctx.meta
            names = {"in0": meta.input.name, **{f"out{i}": n for i, n in enumerate(meta.outputs.names)}}
            folder = work / "model"
            folder.mkdir(exist_ok=True)
            (folder / PARAM_NAME).write_text(rename_blobs(text, names))
            weights.replace(folder / BIN_NAME)
            return folder

        return self.ctx.once(f"ncnn-{precision}", make)

    def write(self, precision: str, tmp: Path) -> ModelMeta:
        self._check_form(precision)
        require("ncnn", "ncnn")  # verification runs the artifact
        meta = replace(self.ctx.meta, precision=precision)
        tmp.mkdir(parents=True, exist_ok=True)
        if precision == "int8":
            meta = self._write_int8(tmp, meta)
        else:
            for name in (PARAM_NAME, BIN_NAME):
                shutil.copyfile(self.converted(precision) / name, tmp / name)
        self.set_metadata(tmp, meta)
        return meta

    def _write_int8(self, tmp: Path, meta: ModelMeta) -> ModelMeta:
        """INT8 convolutions outside the decode region (int8.py), calibrated once; with --max-drop, the
        convolutions whose quantization adds the most error kept in float, as few as the budget allows."""
        from edgekit.converters.backends.ncnn.int8 import (
            activation_scales,
            fixed_weight_layers,
            int8_candidates,
            ncnn_ranking,
            write_int8,
        )
        from edgekit.converters.backends.ncnn.model_file import NcnnModel

        base = self.converted("fp32")
        model = NcnnModel.read(base / PARAM_NAME, base / BIN_NAME)
        layers = int8_candidates(model, fixed_weight_layers(model, self.ctx.deploy))
        scales = self.ctx.once(
            "ncnn-int8-scales", lambda: activation_scales(self.engine(base), layers, self.ctx.calibration())
        )
        files = (PARAM_NAME, BIN_NAME)
        if self.ctx.accuracy is None or self.ctx.accuracy.max_drop is None:
            write_int8(model, scales, tmp, files)
            return meta
        from edgekit.converters.accuracy import RANKING_IMAGES, detector_points, search_float_layers
        from edgekit.runtimes.detector import Detector

        def quantize(exclude: list[str]) -> Path:
            path = base.parent.parent / f"int8-float{len(exclude)}"
            if not path.exists():
                write_int8(model, {k: v for k, v in scales.items() if k not in exclude}, path, files)
            return path

        def measure(path: Path) -> float:
            return detector_points(Detector(self.engine(path), meta), self.ctx.accuracy)

        calibration = self.ctx.calibration()
        few = calibration[:: max(1, len(calibration) // RANKING_IMAGES)][:RANKING_IMAGES]
        ranking = ncnn_ranking(self.engine(base), self.engine(quantize([])), layers, few)
        found = search_float_layers(
            quantize, measure, ranking, self.ctx.reference_points(), self.ctx.accuracy.max_drop
        )
        for name in files:
            shutil.copyfile(found.path / name, tmp / name)
        return replace(meta, accuracy={"map50_95": found.points, "float_layers": found.float_layers})

    def fp32_engine(self):
        return self.engine(self.converted("fp32")), replace(self.ctx.meta, precision="fp32")

    def engine(self, path: Path):
        from edgekit.runtimes.ncnn import NCNNEngine

        return NCNNEngine(path)

    def set_metadata(self, tmp: Path, meta: ModelMeta) -> None:
        staged = tmp / (METADATA_NAME + ".part")
        staged.write_text(json.dumps(json.loads(meta.to_json()), indent=2) + "\n", encoding="utf-8")
        staged.replace(tmp / METADATA_NAME)


__all__ = ["NCNNBackend", "ncnn_ready"]
