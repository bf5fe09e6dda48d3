"""The NCNN engine: a folder NAME_ncnn/ holding model.param + model.bin and edgekit's metadata.json.

NCNN files have no metadata slot, so the folder is the artifact. Input and output blob names are read
from the .param file (inputs: the tops of ``Input`` layers; outputs: blobs no layer consumes, in file
order). NCNN runs one image at a time: a [1, C, H, W] feed becomes a [C, H, W] Mat, and every output
gets its batch axis back.

By default the engine computes in FP32 (fp16 storage and arithmetic off), so results match the verified
figures; an INT8 folder's int8 convolutions (``int8_scale_term`` set, int8 weights) run in integer
arithmetic with NCNN's own kernels and everything else in FP32; on CPUs with FP16 arithmetic (ARMv8.2+,
e.g. the Raspberry Pi 5's Cortex-A76) turn both on for speed, at FP16's precision.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, require
from edgekit.meta import KEY
from edgekit.runtimes.engine import Engine, TensorSpec

PARAM_MAGIC = "7767517"
PARAM_NAME = "model.param"  # inside the artifact folder, beside model.bin
BIN_NAME = "model.bin"
METADATA_NAME = "metadata.json"


def param_file(path: Path) -> Path:
    """The .param of an NCNN model given the file or the folder that holds exactly one."""
    if path.is_dir():
        found = sorted(path.glob("*.param"))
        if len(found) != 1:
            raise EdgekitError(f"{path}: expected one NCNN .param in the folder, found {len(found)}")
        return found[0]
    return path


def param_layers(text: str) -> list[tuple[str, str, list[str], list[str]]]:
    """(type, name, bottom blobs, top blobs) of every layer of a .param text; EdgekitError if it is none."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or lines[0] != [PARAM_MAGIC] or len(lines[1]) != 2:
        raise EdgekitError(f"not an NCNN .param file (expected magic {PARAM_MAGIC} and layer/blob counts)")
    layers = []
    for fields in lines[2:]:
        if len(fields) < 4:
            raise EdgekitError(f"malformed NCNN layer line: {' '.join(fields)[:120]}")
        kind, name, bottoms, tops = fields[0], fields[1], int(fields[2]), int(fields[3])
        layers.append((kind, name, fields[4 : 4 + bottoms], fields[4 + bottoms : 4 + bottoms + tops]))
    return layers


def param_io(text: str) -> tuple[list[str], list[str]]:
    """Input blob names (tops of Input layers) and output blob names (blobs no layer consumes), file order."""
    layers = param_layers(text)
    consumed = {blob for _, _, bottoms, _ in layers for blob in bottoms}
    inputs = [top for kind, _, _, tops in layers if kind == "Input" for top in tops]
    outputs = [top for kind, _, _, tops in layers if kind != "Input" for top in tops if top not in consumed]
    return inputs, outputs


class NCNNEngine(Engine):
    """Runs an NCNN model (.param + .bin) on the CPU with the `ncnn` package.

    `threads`: worker threads (NCNN's default: the big cores). `fp16_storage` / `fp16_arithmetic`: NCNN's
    FP16 switches, off by default (exact FP32, as verified). Raises EdgekitError for a missing or
    unreadable file, MissingExtraError when ncnn is not installed.
    """

    backend = "ncnn"

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        fp16_storage: bool = False,
        fp16_arithmetic: bool = False,
    ):
        super().__init__(path, threads)
        ncnn = require("ncnn", "ncnn")
        self._ncnn = ncnn
        param = param_file(self.path)
        weights = param.with_suffix(".bin")
        if not weights.is_file():
            raise EdgekitError(f"{param}: the weights file {weights.name} is missing")
        try:
            inputs, outputs = param_io(param.read_text())
        except (EdgekitError, ValueError, UnicodeDecodeError) as exc:
            raise EdgekitError(f"{param}: not a loadable NCNN model ({exc})") from None
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.use_vulkan_compute = False
        opt.use_fp16_storage = opt.use_fp16_packed = bool(fp16_storage)
        opt.use_fp16_arithmetic = bool(fp16_arithmetic)
        if threads:
            opt.num_threads = int(threads)
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(weights)) != 0:
            raise EdgekitError(f"{param}: not a loadable NCNN model (layers this ncnn does not know, or a bad .bin)")
        self.meta_text = self._read_metadata(param.parent / METADATA_NAME)
        imgsz, channels = self._imgsz(), self._channels()
        shape = (1, channels, *imgsz) if imgsz else (1, channels, None, None)
        self._inputs = [TensorSpec(name, shape, "float32") for name in inputs]
        self._outputs = [TensorSpec(name, (1, None, None), "float32") for name in outputs]

    @staticmethod
    def _read_metadata(path: Path) -> str | None:
        if not path.is_file():
            return None
        return path.read_text(encoding="utf-8")

    def _imgsz(self) -> tuple[int, int] | None:
        """The input size the metadata names (NCNN's Input layer written by pnnx carries none)."""
        try:
            size = json.loads(self.meta_text)["imgsz"] if self.meta_text else None
        except (ValueError, KeyError, TypeError):
            return None
        return (int(size[0]), int(size[1])) if isinstance(size, list) and len(size) == 2 else None

    def _channels(self) -> int:
        """The image channels the metadata names (1 for a grayscale model), else 3."""
        try:
            channels = json.loads(self.meta_text)["input"]["channels"] if self.meta_text else 3
        except (ValueError, KeyError, TypeError):
            return 3
        return channels if channels in (1, 3) else 3

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one image: feeds are [1, C, H, W] float32; outputs come back with a leading batch axis of 1."""
        ncnn = self._ncnn
        arrays = {}
        for spec in self._inputs:
            value = np.asarray(feeds[spec.name])
            if value.ndim != 4 or value.shape[0] != 1:
                raise EdgekitError(f"NCNN runs one image at a time: '{spec.name}' is {value.shape}, not [1, C, H, W]")
            arrays[spec.name] = np.ascontiguousarray(value[0], dtype=np.float32)  # alive until extracted
        with self.net.create_extractor() as ex:
            for name, array in arrays.items():
                ex.input(name, ncnn.Mat(array))
            results = {}
            for spec in self._outputs:
                status, mat = ex.extract(spec.name)
                if status != 0:
                    raise EdgekitError(f"{self.path}: NCNN failed to compute output '{spec.name}' (status {status})")
                results[spec.name] = np.array(mat)[None]
        return results

    def metadata(self) -> dict[str, str]:
        return {KEY: self.meta_text} if self.meta_text else {}
