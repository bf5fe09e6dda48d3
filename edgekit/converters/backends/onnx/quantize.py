"""ONNX FP16 and INT8, and the decode region INT8 leaves in float.

The decode region is what lies after the last weighted convolution on the way to the outputs (DFL
softmax and integral, anchor arithmetic, sigmoid, top-k...). Quantizing it would share one scale between
pixel-scale box arithmetic and probabilities, the field's most reported INT8 failure. It is found by
walking the graph up from the outputs and stopping at convolutions, so no per-family name tables are
needed; a convolution inside the region with fixed weights (the DFL integral) does not stop the walk
(:mod:`edgekit.converters.backends.decode_region` says which).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from edgekit.converters.backends.decode_region import is_fixed_weight_layer
from edgekit.logs import silenced

WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMulInteger", "ConvInteger"}


def _is_boundary(node: onnx.NodeProto) -> bool:
    return node.op_type in WEIGHTED and not is_fixed_weight_layer(node.name)


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


def quantize_onnx(
    source: Path, target: Path, calibration: list[np.ndarray], exclude: Sequence[str] = ()
) -> None:
    """Static INT8 (QDQ): per-channel int8 weights, uint8 activations calibrated on `calibration`
    (preprocessed [1, 3, H, W] float32 tensors), the decode region and the nodes named in `exclude` left in
    float."""
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
            nodes_to_exclude=onnx_decode_region(model) + list(exclude),
            extra_options={"WeightSymmetric": True},
        )


SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Constant", "ConstantOfShape", "Range", "Cast", "Slice",
             "Reshape", "Flatten", "Identity"}


def onnx_layers(model: onnx.ModelProto) -> list[tuple[str, list[str], str]]:
    """(node name, activation inputs, output) of every node the quantizer may quantize outside the decode
    region (convolutions, and the adds, multiplies, concatenations, pools between them): the layers the
    accuracy search may keep in float."""
    region = set(onnx_decode_region(model))
    weights = {i.name for i in model.graph.initializer}
    return [
        (node.name, [i for i in node.input if i and i not in weights], node.output[0])
        for node in model.graph.node
        if node.op_type not in SHAPE_OPS and node.name not in region and not is_fixed_weight_layer(node.name)
    ]


def tensor_values(path: Path, names: Sequence[str], inputs: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The values of the named intermediate tensors of the ONNX model at `path` for each input, made graph
    outputs of an in-memory copy and run by ONNX Runtime."""
    import onnxruntime as ort

    model = onnx.load(str(path))
    present = {out for node in model.graph.node for out in node.output} | {i.name for i in model.graph.input}
    existing = {o.name for o in model.graph.output}
    for name in names:
        if name in present and name not in existing:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
            existing.add(name)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    wanted = [o.name for o in session.get_outputs() if o.name in set(names)]
    values = []
    for x in inputs:
        outs = session.run(wanted, {input_name: x})
        values.append(dict(zip(wanted, outs)))
    for x, value in zip(inputs, values):
        if input_name in names:
            value[input_name] = x
    return values


def onnx_ranking(fp32: Path, int8: Path, inputs: Sequence[np.ndarray]) -> list[str]:
    """Convolution nodes of the FP32 model ordered by the error their quantization adds in the INT8 one
    (see converters.accuracy.rank_by_error), measured on `inputs`."""
    from edgekit.converters.accuracy import rank_by_error

    layers = onnx_layers(onnx.load(str(fp32)))
    names = sorted({t for _, inputs, output in layers for t in [*inputs, output]})
    return rank_by_error(tensor_values(fp32, names, inputs), tensor_values(int8, names, inputs), layers)
