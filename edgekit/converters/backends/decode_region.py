"""Which layers belong to the decode region that INT8 leaves in float: the one rule every backend's walk uses.

Each backend finds the region by walking its own graph up from the outputs and stopping at weighted layers
(convolutions); see :mod:`edgekit.converters.backends.onnx.quantize` for why. One kind of weighted layer does
not stop the walk: a convolution with fixed weights that is part of decoding itself, the DFL expectation over
distance bins (Li et al., "Generalized Focal Loss", NeurIPS 2020; the ``dfl`` module of YOLOv8/YOLOv9 heads).
The exporters name it after that module: ONNX and OpenVINO ``/model.22/dfl/conv/Conv``, litert-torch
``..._DFL_dfl...``.
"""

from __future__ import annotations

import re

FIXED_WEIGHT_MODULES = frozenset({"dfl"})


def is_fixed_weight_layer(name: str) -> bool:
    """True when the layer or tensor `name` (any backend's naming) belongs to a module in
    FIXED_WEIGHT_MODULES: one of its name's alphanumeric parts, in any case, is such a module name."""
    return any(part in FIXED_WEIGHT_MODULES for part in re.split(r"[^a-z0-9]+", name.lower()))


FX_WEIGHTED = ("aten.conv", "aten.linear", "aten.matmul", "aten.addmm")  # weighted layers in a torch.export graph


def is_fx_weighted(node) -> bool:
    """True for a ``torch.export`` graph node (``torch.fx.Node``) that is a weighted layer (FX_WEIGHTED)."""
    return str(node.target).startswith(FX_WEIGHTED)


def fx_module_path(node) -> str:
    """The dotted path of the innermost module a ``torch.export`` node came from (``model.22.dfl.conv``), as
    torch.export records it, else the node's own name."""
    modules = node.meta.get("nn_module_stack") or {}
    return next(reversed(modules.values()))[0] if modules else node.name


def fx_decode_region(graph) -> set[str]:
    """Names of the nodes of a ``torch.export`` graph (``torch.fx.Graph``) between the last weighted layers and
    the outputs: the decode region a PT2E quantizer leaves in float. A layer of a FIXED_WEIGHT_MODULES
    module (by the innermost module path torch.export records) belongs to the region."""
    output = next(n for n in graph.nodes if n.op == "output")
    region: set[str] = set()
    stack = list(output.all_input_nodes)
    while stack:
        node = stack.pop()
        if node.name in region or node.op != "call_function":
            continue
        if is_fx_weighted(node) and not is_fixed_weight_layer(fx_module_path(node)):
            continue
        region.add(node.name)
        stack.extend(node.all_input_nodes)
    return region
