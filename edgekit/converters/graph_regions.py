"""The decode region of an exported graph: what lies after the last weighted convolution on the way to
the outputs (DFL softmax and integral, anchor arithmetic, sigmoid, top-k...).

INT8 quantizers leave this region in float: quantizing it shares one scale between pixel-scale box
arithmetic and probabilities, the field's most reported INT8 failure. Found by walking the graph up from
the outputs and stopping at convolutions, so no per-family name tables are needed. A convolution inside
the region with fixed weights (the DFL integral, named ``dfl``) does not stop the walk.
"""

from __future__ import annotations

import onnx

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


def openvino_decode_region(model) -> list[str]:
    """Friendly names of the OpenVINO ops between the last weighted convolutions and the results."""
    region: list[str] = []
    seen: set[int] = set()
    stack = list(model.get_results())
    while stack:
        op = stack.pop()
        for port in op.inputs():
            src = port.get_source_output().get_node()
            if id(src) in seen:
                continue
            seen.add(id(src))
            kind = src.get_type_name()
            if kind in ("Convolution", "GroupConvolution") and "/dfl/" not in src.get_friendly_name():
                continue
            if kind not in ("Constant", "Parameter"):
                region.append(src.get_friendly_name())
            stack.append(src)
    return region
