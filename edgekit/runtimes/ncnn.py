"""The NCNN engine: a folder NAME_ncnn/ holding model.param + model.bin and edgekit's metadata.json.

NCNN files have no metadata slot, so the folder is the artifact. Input and output blob names are read
from the .param file (inputs: the tops of ``Input`` layers; outputs: blobs no layer consumes, in file
order). NCNN runs one image at a time: a [1, C, H, W] feed becomes a [C, H, W] Mat, and every output
gets its batch axis back.

By default the engine computes in FP32 (fp16 storage and arithmetic off), so results match the verified
figures; an INT8 folder's int8 convolutions (``int8_scale_term`` set, int8 weights) run in integer
arithmetic with NCNN's own kernels and everything else in FP32. ``EngineSettings(fp16=True)`` (the
Raspberry Pi 5 profile asks for it) turns on NCNN's FP16 storage and arithmetic where the CPU has FP16
arithmetic (ARMv8.2+, e.g. the Pi 5's Cortex-A76; about half the instructions, benchmarks/arm_estimate.md)
and the file stays within FP16 tolerance of its FP32 run there (edgekit.runtimes.fp16_check: checked once,
when the file opens); otherwise it stays in FP32 and says why (``fp16_reason``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, MetadataError, require
from edgekit.limits import METADATA_BYTES, PARAM_BYTES, parse_json, read_text
from edgekit.logs import get_logger
from edgekit.meta import KEY, from_json
from edgekit.runtimes.engine import Engine, TensorSpec
from edgekit.runtimes.fp16_check import Fp16Check, check_fp16
from edgekit.runtimes.settings import EngineSettings

logger = get_logger("edgekit.runtime")

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


def _count(field: str) -> int | None:
    return int(field) if field.isascii() and field.isdigit() and len(field) <= 9 else None


def layer_counts(fields: list[str]) -> tuple[int, int]:
    """The layer and blob counts of a .param's second line (its split fields); EdgekitError if it is not two
    non-negative integers."""
    counts = [_count(f) for f in fields]
    if len(counts) != 2 or None in counts:
        raise EdgekitError(f"not an NCNN .param file (expected magic {PARAM_MAGIC} and layer/blob counts)")
    return counts[0], counts[1]


def param_layers(text: str) -> list[tuple[str, str, list[str], list[str]]]:
    """(type, name, bottom blobs, top blobs) of every layer of a .param text; EdgekitError if it is none."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or lines[0] != [PARAM_MAGIC]:
        raise EdgekitError(f"not an NCNN .param file (expected magic {PARAM_MAGIC} and layer/blob counts)")
    layer_counts(lines[1])
    layers = []
    for fields in lines[2:]:
        counts = [_count(f) for f in fields[2:4]]
        if len(fields) < 4 or None in counts:
            raise EdgekitError(f"malformed NCNN layer line: {' '.join(fields)[:120]}")
        kind, name, (bottoms, tops) = fields[0], fields[1], counts
        if 4 + bottoms + tops > len(fields):
            raise EdgekitError(f"NCNN layer {name[:60]} names fewer blobs than its counts ({bottoms} + {tops})")
        layers.append((kind, name, fields[4 : 4 + bottoms], fields[4 + bottoms : 4 + bottoms + tops]))
    return layers


def read_param(path: Path) -> str:
    """The text of an NCNN .param, refused by size (PARAM_BYTES) before it is read; EdgekitError when it is
    too large or not UTF-8."""
    return read_text(path, PARAM_BYTES, "an NCNN .param")


def param_io(text: str) -> tuple[list[str], list[str]]:
    """Input blob names (tops of Input layers) and output blob names (blobs no layer consumes), file order."""
    layers = param_layers(text)
    consumed = {blob for _, _, bottoms, _ in layers for blob in bottoms}
    inputs = [top for kind, _, _, tops in layers if kind == "Input" for top in tops]
    outputs = [top for kind, _, _, tops in layers if kind != "Input" for top in tops if top not in consumed]
    return inputs, outputs


class NCNNEngine(Engine):
    """Runs an NCNN model (.param + .bin) on the CPU with the `ncnn` package.

    `threads`: worker threads (NCNN's default: the big cores). ``settings.fp16``: FP16 storage and arithmetic
    where this CPU has FP16 arithmetic and the file passes the FP16 check (module docstring); ``fp16_active``
    says what runs, ``fp16_check`` holds the check's figures. On a ``shared`` machine the OpenMP workers sleep
    as soon as a layer ends (``openmp_blocktime`` 0, NCNN's default being 20 ms of spinning).
    `fp16_storage` / `fp16_arithmetic`: NCNN's raw switches, unchecked (for measurements). Raises
    EdgekitError for a missing or unreadable file, MissingExtraError when ncnn is not installed.
    """

    backend = "ncnn"

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        fp16_storage: bool = False,
        fp16_arithmetic: bool = False,
        settings: EngineSettings | None = None,
    ):
        super().__init__(path, threads, settings)
        ncnn = require("ncnn", "ncnn")
        self._ncnn = ncnn
        param = param_file(self.path)
        weights = param.with_suffix(".bin")
        if not weights.is_file():
            raise EdgekitError(f"{param}: the weights file {weights.name} is missing")
        try:
            inputs, outputs = param_io(read_param(param))
        except EdgekitError as exc:
            raise EdgekitError(f"{param}: not a loadable NCNN model ({exc})") from None
        self._files = (param, weights)
        self.net = self._open(bool(fp16_storage), bool(fp16_arithmetic))
        self.meta_text = self._read_metadata(param.parent / METADATA_NAME)
        imgsz, channels = self._imgsz(), self._channels()
        shape = (1, channels, *imgsz) if imgsz else (1, channels, None, None)
        self._inputs = [TensorSpec(name, shape, "float32") for name in inputs]
        self._outputs = [TensorSpec(name, (1, None, None), "float32") for name in outputs]
        self.fp16_active = bool(fp16_storage or fp16_arithmetic)
        self.fp16_check: Fp16Check | None = None
        self.fp16_reason = ""
        if self.settings.fp16 and not self.fp16_active:
            self._try_fp16()

    def _open(self, fp16_storage: bool, fp16_arithmetic: bool):
        """An ncnn.Net of the files with the given FP16 switches (vulkan off, the engine's threads)."""
        param, weights = self._files
        net = self._ncnn.Net()
        opt = net.opt
        opt.use_vulkan_compute = False
        opt.use_fp16_storage = opt.use_fp16_packed = fp16_storage
        opt.use_fp16_arithmetic = fp16_arithmetic
        if self.threads:
            opt.num_threads = int(self.threads)
        if self.settings.shared:
            opt.openmp_blocktime = 0
        if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
            raise EdgekitError(f"{param}: not a loadable NCNN model (layers this ncnn does not know, or a bad .bin)")
        return net

    def _try_fp16(self) -> None:
        """Switch to FP16 storage and arithmetic if this CPU has FP16 arithmetic and the file keeps FP16
        tolerance on the package's sample scene; otherwise stay in FP32. Logs the outcome either way."""
        if not self._ncnn.cpu_support_arm_asimdhp():
            self.fp16_reason = "FP32: this CPU has no FP16 arithmetic"
        elif self.meta_text is None:
            self.fp16_reason = "FP32: no edgekit metadata to preprocess the FP16 check's image with"
        else:
            feeds = self._check_feeds()
            fast = self._open(True, True)
            self.fp16_check = check_fp16(lambda: self._run(self.net, feeds), lambda: self._run(fast, feeds))
            if self.fp16_check.passed:
                self.net, self.fp16_active = fast, True
            self.fp16_reason = f"{'FP16' if self.fp16_active else 'FP32'}: {self.fp16_check.summary()}"
        logger.info("%s: %s", self.path.name, self.fp16_reason)

    def _check_feeds(self) -> dict[str, np.ndarray]:
        """The package's sample scene, preprocessed as the file's metadata says."""
        from edgekit.assets import sample_image
        from edgekit.images import read_image
        from edgekit.runtimes.preprocess import preprocess

        try:
            meta = from_json(self.meta_text or "")
        except MetadataError as exc:
            raise EdgekitError(f"{self.path}: unreadable metadata ({exc})") from None
        x, _ = preprocess(read_image(sample_image()), meta.input, tuple(meta.imgsz))
        return {self._inputs[0].name: x}

    @staticmethod
    def _read_metadata(path: Path) -> str | None:
        if not path.is_file():
            return None
        return read_text(path, METADATA_BYTES, "metadata")

    def _imgsz(self) -> tuple[int, int] | None:
        """The input size the metadata names (NCNN's Input layer written by pnnx carries none)."""
        try:
            size = parse_json(self.meta_text, "metadata")["imgsz"] if self.meta_text else None
            return (int(size[0]), int(size[1])) if isinstance(size, list) and len(size) == 2 else None
        except (EdgekitError, LookupError, TypeError, ValueError, OverflowError):
            return None

    def _channels(self) -> int:
        """The image channels the metadata names (1 for a grayscale model), else 3."""
        try:
            channels = parse_json(self.meta_text, "metadata")["input"]["channels"] if self.meta_text else 3
        except (EdgekitError, LookupError, TypeError):
            return 3
        return channels if channels in (1, 3) else 3

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one image: feeds are [1, C, H, W] float32; outputs come back with a leading batch axis of 1."""
        return self._run(self.net, feeds)

    def _run(self, net, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ncnn = self._ncnn
        arrays = {}
        for spec in self._inputs:
            value = np.asarray(feeds[spec.name])
            if value.ndim != 4 or value.shape[0] != 1:
                raise EdgekitError(f"NCNN runs one image at a time: '{spec.name}' is {value.shape}, not [1, C, H, W]")
            arrays[spec.name] = np.ascontiguousarray(value[0], dtype=np.float32)  # alive until extracted
        with net.create_extractor() as ex:
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
