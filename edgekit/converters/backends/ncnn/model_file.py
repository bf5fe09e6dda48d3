"""An NCNN model (.param text + .bin weights) read into layers whose parameters and weight arrays can be
changed and written back: what the INT8 writer edits.

The .bin holds each layer's arrays in layer order, as the layer's ``load_model`` reads them (ncnn
``src/layer/*.cpp``, ``src/modelbin.cpp``): a *tagged* array starts with a 4-byte tag naming its storage
(0: float32, 0x000D4B38: int8 padded to 4 bytes, 0x01306B47: float16), a *raw* one is bare float32. Which
arrays a layer has follows from its type and parameters (:func:`weight_layout`); a file that does not add
up to its size is refused rather than misread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtimes.ncnn import PARAM_MAGIC, layer_counts, param_layers, read_param

TAG_FLOAT32 = 0
TAG_INT8 = 0x000D4B38
TAG_FLOAT16 = 0x01306B47


@dataclass
class WeightArray:
    """One array of a layer's weights: float32 or int8 values, tagged (type 0 in ncnn's ModelBin) or raw."""

    values: np.ndarray
    tagged: bool

    def to_bytes(self) -> bytes:
        if not self.tagged:
            return np.ascontiguousarray(self.values, "<f4").tobytes()
        if self.values.dtype == np.int8:
            data = self.values.tobytes()
            return np.uint32(TAG_INT8).astype("<u4").tobytes() + data + b"\0" * (-len(data) % 4)
        return np.uint32(TAG_FLOAT32).astype("<u4").tobytes() + np.ascontiguousarray(self.values, "<f4").tobytes()


@dataclass
class Layer:
    """One layer of a .param: type, name, blobs, its ``key=value`` parameters (text, file order) and weights."""

    kind: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[str, str] = field(default_factory=dict)
    weights: list[WeightArray] = field(default_factory=list)

    def get(self, key: int, default: int) -> int:
        """Integer parameter `key` (ncnn's ``pd.get(key, default)``); EdgekitError when it is not an integer."""
        value = self.params.get(str(key), default)
        try:
            return int(value)
        except ValueError:
            raise EdgekitError(f"{self.name}: parameter {key}={str(value)[:40]} is not an integer") from None

    def line(self) -> str:
        head = [self.kind, self.name, str(len(self.bottoms)), str(len(self.tops)), *self.bottoms, *self.tops]
        return " ".join(head + [f"{k}={v}" for k, v in self.params.items()])


def weight_layout(layer: Layer) -> list[tuple[int, bool]]:
    """(element count, tagged) of each array the layer's ``load_model`` reads, for the float layers pnnx
    writes; EdgekitError for a layer type with weights this reader does not know."""
    kind, get = layer.kind, layer.get
    if kind in ("Convolution", "ConvolutionDepthWise", "Deconvolution", "DeconvolutionDepthWise"):
        if get(8, 0) or get(19, 0):
            raise EdgekitError(f"{layer.name}: already quantized or with dynamic weights; expected a float model")
        return [(get(6, 0), True)] + ([(get(0, 0), False)] if get(5, 0) else [])
    if kind == "InnerProduct":
        if get(8, 0):
            raise EdgekitError(f"{layer.name}: already quantized; expected a float model")
        return [(get(2, 0), True)] + ([(get(0, 0), False)] if get(1, 0) else [])
    if kind == "MemoryData":
        dims = [d for d in (get(0, 0), get(1, 0), get(11, 0), get(2, 0)) if d]
        return [(math.prod(dims), get(21, 1) == 0)] if dims else []
    if kind == "BatchNorm":
        return [(get(0, 0), False)] * 4
    if kind == "Scale":
        size = get(0, 0)
        return ([(size, False)] if size != -233 else []) + ([(size, False)] if get(1, 0) else [])
    if kind == "PReLU":
        return [(get(0, 0), False)]
    if kind == "LayerNorm":
        return [(get(0, 0), False)] * 2 if get(2, 1) else []
    if kind in ("Embed", "Gemm", "MultiHeadAttention", "RNN", "LSTM", "GRU", "GroupNorm", "InstanceNorm", "RMSNorm",
                "Convolution1D", "Convolution3D", "Deconvolution1D", "Deconvolution3D", "SDPA"):
        raise EdgekitError(f"{layer.name}: reading the weights of NCNN {kind} layers is not supported")
    return []


def _read_array(data: memoryview, offset: int, count: int, tagged: bool, name: str) -> tuple[WeightArray, int]:
    if count < 0:
        raise EdgekitError(f"{name}: a weight array of {count} elements")
    if offset + 4 * tagged > len(data):
        raise EdgekitError(f"{name}: the .bin ends before this layer's weights")
    if tagged:
        tag = int(np.frombuffer(data, "<u4", 1, offset)[0])
        if tag != TAG_FLOAT32:
            raise EdgekitError(f"{name}: weights stored with tag {tag:#x}; expected a float32 model")
        offset += 4
    if offset + 4 * count > len(data):
        raise EdgekitError(f"{name}: the .bin ends before this layer's weights")
    values = np.frombuffer(data, "<f4", count, offset).astype(np.float32)
    return WeightArray(values, tagged), offset + 4 * count


@dataclass
class NcnnModel:
    """A float NCNN model in memory: its layers in file order and the blob count of the .param header."""

    layers: list[Layer]
    blob_count: int

    @classmethod
    def read(cls, param: Path, weights: Path) -> NcnnModel:
        """Read a float32 .param/.bin pair. Raises EdgekitError when the .bin does not match the .param."""
        text = read_param(param)
        lines = [line.split() for line in text.splitlines() if line.strip()]
        layers = []
        for (kind, name, bottoms, tops), fields in zip(param_layers(text), lines[2:]):
            pairs = [f.split("=", 1) for f in fields[4 + len(bottoms) + len(tops) :]]
            if any(len(pair) != 2 for pair in pairs):
                raise EdgekitError(f"{param.name}: layer {name[:60]} has a parameter that is not key=value")
            layers.append(Layer(kind, name, bottoms, tops, dict(pairs)))
        data = memoryview(weights.read_bytes())
        offset = 0
        for layer in layers:
            for count, tagged in weight_layout(layer):
                array, offset = _read_array(data, offset, count, tagged, layer.name)
                layer.weights.append(array)
        if offset != len(data):
            raise EdgekitError(f"{weights.name}: {len(data) - offset} bytes not accounted for by the .param's layers")
        return cls(layers, layer_counts(lines[1])[1])

    def write(self, param: Path, weights: Path) -> None:
        """Write the .param and .bin (plain writes: callers stage them in a temporary folder)."""
        head = [PARAM_MAGIC, f"{len(self.layers)} {self.blob_count}"]
        param.write_text("\n".join(head + [layer.line() for layer in self.layers]) + "\n")
        with open(weights, "wb") as f:
            for layer in self.layers:
                for array in layer.weights:
                    f.write(array.to_bytes())

    def producers(self) -> dict[str, Layer]:
        """The layer that writes each blob."""
        return {top: layer for layer in self.layers for top in layer.tops}


__all__ = ["Layer", "NcnnModel", "WeightArray", "weight_layout"]
