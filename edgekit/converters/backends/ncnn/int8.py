"""NCNN INT8, written by edgekit in the form NCNN's own ``ncnn2table`` + ``ncnn2int8`` write.

What an INT8 convolution is to NCNN (ncnn ``src/layer/convolution.cpp``, ``convolutiondepthwise.cpp``):
parameter 8 (``int8_scale_term``) is set (2 for Convolution, 1 for ConvolutionDepthWise), its weights are
stored as int8 in the .bin (tag 0x000D4B38), and after the float bias come the per-output-channel (per-group)
weight scales and the one scale of its input blob. A scale maps float to int8: ``q = round(x * scale)``
clipped to [-127, 127], so ``scale = 127 / threshold``. NCNN quantizes the float input at the layer, runs
the integer convolution, and gives a float output (bias and fused activation in float); every other layer
stays float.

- weight scales: per output channel, ``127 / max |w|`` (symmetric);
- activation scales: from the calibration images run through the FP32 model with NCNN itself; the
  threshold is the 99.999th percentile of ``|x|`` (percentile calibration: H. Wu et al., "Integer
  Quantization for Deep Learning Inference", arXiv:2004.09602). NCNN's ``ncnn2table`` defaults to the KL
  threshold (Migacz, GTC 2017); on the trained YOLO26n fixture at 320 it cost 2.7 mAP50-95 points where
  the percentile costs 0.4 (max |x|: 0.9);
- the decode region stays float: the layers after the last weighted convolutions on the way to the outputs
  are not convolutions except a fixed-weight one (the DFL integral), which is found by the module name rule
  of :mod:`edgekit.converters.backends.decode_region` in the deploy model and located in the .param by its
  weights (pnnx renames layers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from edgekit.converters.backends.decode_region import is_fixed_weight_layer
from edgekit.converters.backends.ncnn.model_file import Layer, NcnnModel, WeightArray

INT8_LAYERS = ("Convolution", "ConvolutionDepthWise")  # the weighted layers written in int8
WEIGHTED = (*INT8_LAYERS, "InnerProduct", "Deconvolution", "DeconvolutionDepthWise")
INT8_SCALE_TERM = {"Convolution": 2, "ConvolutionDepthWise": 1}
QMAX = 127
HISTOGRAM_BINS = 2048
CLIP_FRACTION = 0.99999  # activation thresholds: the 99.999th percentile of |x| over the calibration images


def fixed_weight_layers(model: NcnnModel, deploy: nn.Module) -> set[str]:
    """Names of the NCNN convolutions that are the deploy model's fixed-weight decode convolutions (modules
    named as ``decode_region.is_fixed_weight_layer`` says), matched by their weights."""
    fixed = [
        m.weight.detach().float().numpy().ravel()
        for name, m in deploy.named_modules()
        if isinstance(m, nn.Conv2d) and is_fixed_weight_layer(name)
    ]
    return {
        layer.name
        for layer in model.layers
        if layer.kind in WEIGHTED
        and any(w.shape == layer.weights[0].values.shape and np.array_equal(w, layer.weights[0].values) for w in fixed)
    }


def ncnn_decode_region(model: NcnnModel, fixed: set[str]) -> set[str]:
    """Names of the layers between the last weighted layers and the outputs (walked up from the outputs,
    stopping at weighted layers other than the fixed-weight ones)."""
    producer = model.producers()
    consumed = {b for layer in model.layers for b in layer.bottoms}
    stack = [t for layer in model.layers for t in layer.tops if t not in consumed]
    region: set[str] = set()
    while stack:
        layer = producer.get(stack.pop())
        if layer is None or layer.name in region or (layer.kind in WEIGHTED and layer.name not in fixed):
            continue
        region.add(layer.name)
        stack.extend(layer.bottoms)
    return region


def is_grouped(layer: Layer) -> bool:
    """A grouped convolution that is not depthwise (1 < group < channels)."""
    return layer.kind == "ConvolutionDepthWise" and layer.get(7, 1) != layer.get(0, 0)


def int8_candidates(model: NcnnModel, fixed: set[str]) -> list[Layer]:
    """The convolutions INT8 quantizes: every Convolution and depthwise convolution outside the decode region.

    Grouped convolutions stay float: the ``ncnn`` wheel's x86 int8 grouped convolution (ConvolutionDepthWise
    with 1 < group < channels, run as one Convolution per group) returns wrong values with NCNN's default packed
    layout (relative error 1.0 where the same file with ``use_packing_layout`` off is within 1 %; ncnn
    1.0.20261020), and YOLOv9's box branch has them."""
    skip = ncnn_decode_region(model, fixed) | fixed
    return [
        layer for layer in model.layers
        if layer.kind in INT8_LAYERS and layer.name not in skip and not is_grouped(layer)
    ]


def weight_scales(layer: Layer) -> np.ndarray:
    """Per-output-channel (per-group for ConvolutionDepthWise) scales ``127 / max |w|`` (1 for all-zero
    channels), float32 [num_output] or [group]."""
    groups = layer.get(7, 1) if layer.kind == "ConvolutionDepthWise" else layer.get(0, 0)
    absmax = np.abs(layer.weights[0].values.reshape(groups, -1)).max(1)
    return np.where(absmax > 0, QMAX / np.maximum(absmax, 1e-30), 1.0).astype(np.float32)


def to_int8(values: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """``round(x * scale)`` (half away from zero, as NCNN rounds) clipped to [-127, 127]; `values` [G, ...]
    rows each with its scale."""
    scaled = values.reshape(len(scales), -1).astype(np.float64) * scales[:, None]
    return np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5), -QMAX, QMAX).astype(np.int8).ravel()


def percentile_threshold(histogram: np.ndarray, bin_width: float, fraction: float = CLIP_FRACTION) -> float:
    """The |x| (same unit as `bin_width`) below which `fraction` of the histogram's counts lie (upper bin edge)."""
    counts = np.cumsum(histogram)
    if counts[-1] == 0:
        return bin_width * len(histogram)
    return (int(np.searchsorted(counts, fraction * counts[-1])) + 1) * bin_width


@dataclass
class BlobStats:
    """The histogram of |x| of one blob over the calibration images, HISTOGRAM_BINS bins over [0, absmax]."""

    absmax: float = 0.0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(HISTOGRAM_BINS, np.int64))

    def add(self, values: np.ndarray) -> None:
        """Count the non-zero |values|, widening the range (and merging the bins counted so far) as needed."""
        a = np.abs(values[values != 0]).astype(np.float64)
        if not a.size:
            return
        top = float(a.max())
        if top > self.absmax:
            if self.absmax > 0:
                moved = ((np.arange(HISTOGRAM_BINS) + 0.5) * (self.absmax / top)).astype(np.int64)
                self.histogram = np.bincount(moved, self.histogram, HISTOGRAM_BINS).astype(np.int64)
            self.absmax = top
        index = np.minimum((a / self.absmax * HISTOGRAM_BINS).astype(np.int64), HISTOGRAM_BINS - 1)
        self.histogram += np.bincount(index, minlength=HISTOGRAM_BINS)


def blob_values(engine, blobs: Sequence[str], inputs: Iterable[np.ndarray]) -> Iterable[dict[str, np.ndarray]]:
    """The values of the named blobs of an NCNN model (an ``NCNNEngine``) for each [1, C, H, W] input, one
    dict per input (each blob as NCNN gives it, without a batch axis)."""
    import ncnn

    name = engine.inputs[0].name
    for x in inputs:
        array = np.ascontiguousarray(x[0], dtype=np.float32)
        with engine.net.create_extractor() as ex:
            ex.set_light_mode(False)
            ex.input(name, ncnn.Mat(array))
            values = {}
            for blob in blobs:
                status, mat = ex.extract(blob)
                if status == 0:
                    values[blob] = np.array(mat)
            yield values


def activation_scales(engine, layers: Sequence[Layer], calibration: Sequence[np.ndarray]) -> dict[str, float]:
    """The input scale (``127 / threshold``) of each layer, from the FP32 model (`engine`) on the calibration
    tensors: one pass building each input blob's histogram of |x|, then its percentile threshold."""
    blobs = sorted({layer.bottoms[0] for layer in layers})
    stats = {b: BlobStats() for b in blobs}
    for values in blob_values(engine, blobs, calibration):
        for blob, v in values.items():
            stats[blob].add(v)
    scales = {}
    for blob, s in stats.items():
        threshold = percentile_threshold(s.histogram, s.absmax / HISTOGRAM_BINS) if s.absmax > 0 else 0.0
        scales[blob] = QMAX / threshold if threshold > 0 else 1.0
    return {layer.name: scales[layer.bottoms[0]] for layer in layers}


def quantize_layers(model: NcnnModel, input_scales: dict[str, float]) -> NcnnModel:
    """A copy of the float `model` with the layers named in `input_scales` in int8: int8 weights, the
    int8_scale_term parameter, the weight scales and the input scale after the bias."""
    layers = []
    for layer in model.layers:
        if layer.name not in input_scales:
            layers.append(layer)
            continue
        scales = weight_scales(layer)
        weights = [WeightArray(to_int8(layer.weights[0].values, scales), True), *layer.weights[1:]]
        weights += [WeightArray(scales, False), WeightArray(np.float32([input_scales[layer.name]]), False)]
        params = {**layer.params, "8": str(INT8_SCALE_TERM[layer.kind])}
        layers.append(Layer(layer.kind, layer.name, layer.bottoms, layer.tops, params, weights))
    return NcnnModel(layers, model.blob_count)


def write_int8(model: NcnnModel, input_scales: dict[str, float], folder: Path, names: tuple[str, str]) -> None:
    """Write the INT8 form of `model` (the layers of `input_scales` quantized) as folder/names[0] and names[1]."""
    folder.mkdir(parents=True, exist_ok=True)
    quantize_layers(model, input_scales).write(folder / names[0], folder / names[1])


def ncnn_ranking(fp32_engine, int8_engine, layers: Sequence[Layer], inputs: Sequence[np.ndarray]) -> list[str]:
    """The quantized layers ordered by the error their quantization adds in the INT8 model, measured on
    `inputs` (see converters.accuracy.rank_by_error)."""
    from edgekit.converters.accuracy import rank_by_error

    triples = [(layer.name, list(layer.bottoms), layer.tops[0]) for layer in layers]
    blobs = sorted({b for _, bottoms, top in triples for b in [*bottoms, top]})
    return rank_by_error(
        list(blob_values(fp32_engine, blobs, inputs)), list(blob_values(int8_engine, blobs, inputs)), triples
    )


__all__ = [
    "activation_scales",
    "fixed_weight_layers",
    "int8_candidates",
    "ncnn_decode_region",
    "ncnn_ranking",
    "percentile_threshold",
    "quantize_layers",
    "weight_scales",
    "write_int8",
]
