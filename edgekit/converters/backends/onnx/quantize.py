"""ONNX FP16 and INT8, and the decode region INT8 leaves in float.

The decode region is what lies after the last weighted convolution on the way to the outputs (DFL
softmax and integral, anchor arithmetic, sigmoid, top-k...). Quantizing it would share one scale between
pixel-scale box arithmetic and probabilities, the field's most reported INT8 failure. It is found by
walking the graph up from the outputs and stopping at convolutions, so no per-family name tables are
needed; a convolution inside the region with fixed weights (the DFL integral, named ``dfl``) does not
stop the walk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from edgekit.logs import silenced

WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMulInteger", "ConvInteger"}


def _is_boundary(node: onnx.NodeProto) -> bool:
    return node.op_type in WEIGHTED and "/dfl/" not in node.name


def onnx_decode_region(model: onnx.ModelProto) -> list[str]:
    """Names of the ONNX nodes between the last weighted convolutions and the graph outputs."""
    producer = {out: node for node in model.graph.node for out in node.output}
    region: list[str] = []
    seen: set[str] = set()
    stack = [o.name for o in model.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen or _is_boundary(node):
            continue
        seen.add(node.name)
        region.append(node.name)
        stack.extend(node.input)
    return region


def half_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 weights and compute, float32 inputs and outputs; selection ops stay in float32."""
    import onnxslim
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with silenced():
        model = convert_float_to_float16(model, keep_io_types=True, op_block_list=["NonMaxSuppression", "TopK"])
        return onnxslim.slim(model)  # also restores the topological order the fp16 pass leaves unsorted


def quantize_onnx(source: Path, target: Path, calibration: list[np.ndarray]) -> None:
    """Static INT8 (QDQ): per-channel int8 weights, uint8 activations calibrated on `calibration`
    (preprocessed [1, 3, H, W] float32 tensors), the decode region left in float."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(source))
    name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {name: x}

    with silenced():
        quantize_static(
            str(source),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=onnx_decode_region(model),
            extra_options={"WeightSymmetric": True},
        )
