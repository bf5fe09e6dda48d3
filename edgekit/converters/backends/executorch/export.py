"""ExecuTorch programs from the deploy module: ``torch.export`` -> ``to_edge_transform_and_lower`` with the XNNPACK
partitioner -> a .pte; INT8 through PT2E (torchao's ``prepare_pt2e``/``convert_pt2e`` with ExecuTorch's
``XNNPACKQuantizer``: int8 per-channel symmetric weights, static int8 activations) with the decode region in float.

Where ExecuTorch documents this flow: https://pytorch.org/executorch/stable/backends-xnnpack.html. The edgekit
metadata is a constant method of the program (``METHOD``, returning the JSON string): see :func:`write_program`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from edgekit.converters.backends.decode_region import fx_decode_region, is_fx_weighted
from edgekit.errors import EdgekitError, first_line, require
from edgekit.logs import silenced
from edgekit.runtimes.executorch import METHOD

METADATA_RESERVE = 4096  # bytes the metadata slot holds beyond the first document (verification, accuracy)


def export_program(model: torch.nn.Module, sample: torch.Tensor) -> torch.export.ExportedProgram:
    """`model` (NCHW float input like `sample`, [1, C, H, W]) captured by ``torch.export`` (static shapes)."""
    if not isinstance(model, torch.fx.GraphModule):  # a captured graph (PT2E's output) refuses .eval()
        model = model.eval()
    try:
        with silenced(), torch.no_grad():
            return torch.export.export(model, (sample,), strict=False)
    except Exception as exc:  # torch.export raises many kinds for an unexportable graph
        raise EdgekitError(f"torch.export could not capture the model: {first_line(exc, typed=True)}") from None


def write_program(program: torch.export.ExportedProgram, meta_json: str, target: Path) -> None:
    """Lower `program` to XNNPACK and serialize it to the .pte `target`, with `meta_json` as the ``METHOD``
    constant method (a flatbuffer string kept ``METADATA_RESERVE`` bytes wider than the document, so that
    :func:`set_pte_metadata` can rewrite it in place)."""
    require("executorch.exir", "executorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with silenced():
        edge = to_edge_transform_and_lower(
            program, partitioner=[XnnpackPartitioner()], constant_methods={METHOD: _slot(meta_json)}
        )
        target.write_bytes(edge.to_executorch().buffer)


def _slot(meta_json: str, width: int | None = None) -> str:
    text = meta_json.encode()
    width = len(text) + METADATA_RESERVE if width is None else width
    if len(text) > width:
        raise EdgekitError(f"the metadata ({len(text)} bytes) outgrew its {width}-byte slot in the .pte")
    return meta_json + " " * (width - len(text))


def set_pte_metadata(path: Path, meta_json: str) -> None:
    """Replace the ``METHOD`` document of the .pte at `path` with `meta_json`, in place: the flatbuffer string keeps
    its length (trailing spaces, which JSON ignores). Raises EdgekitError when the file has no such slot or the
    document does not fit it."""
    from edgekit.runtimes.executorch import ExecuTorchEngine

    old = ExecuTorchEngine(path).metadata().get(METHOD)
    if old is None:
        raise EdgekitError(f"{path.name} has no '{METHOD}' method to hold edgekit's metadata")
    data = path.read_bytes()
    encoded = old.encode()
    if data.count(encoded) != 1:
        raise EdgekitError(f"{path.name}: the '{METHOD}' document is not one string in the program")
    start = data.index(encoded)
    end = start + len(encoded)
    while end < len(data) and data[end] == ord(" "):  # the slot's padding
        end += 1
    path.write_bytes(data[:start] + _slot(meta_json, end - start).encode() + data[end:])


def quantize_module(
    model: torch.nn.Module, sample: torch.Tensor, calibration: Iterable[np.ndarray], exclude: Sequence[str] = ()
) -> torch.fx.GraphModule:
    """Static INT8 of `model` for XNNPACK (PT2E): per-channel symmetric int8 weights, int8 activations whose ranges
    are calibrated on `calibration` ([1, C, H, W] float32 tensors preprocessed as the runtime does); the decode
    region and the nodes named in `exclude` stay float. Returns the quantized graph (q/dq nodes around int8
    layers, float nodes keeping the names :func:`export_program` gives them); :func:`export_program` it to lower."""
    require("executorch.backends.xnnpack", "executorch")
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    class FloatRegionQuantizer(XNNPACKQuantizer):
        """XNNPACKQuantizer whose annotations skip the float nodes: its node filter does not reach every pattern
        (concatenations are annotated regardless), so their annotations are removed after it ran."""

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            for node in model.graph.nodes:
                if node.name in floats:
                    node.meta.pop("quantization_annotation", None)
            return model

    graph = export_program(model, sample).module()
    floats = fx_decode_region(graph.graph) | set(exclude)
    quantizer = FloatRegionQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    quantizer.set_filter_function(lambda node: node.name not in floats)
    with silenced(), torch.no_grad():
        prepared = prepare_pt2e(graph, quantizer)
        for x in calibration:
            prepared(torch.from_numpy(x))
        return convert_pt2e(prepared)


def quantizable_layers(graph: torch.fx.Graph) -> list[tuple[str, list[str], str]]:
    """(node, activation input nodes, node) of every weighted layer outside the decode region: the layers the
    accuracy search may keep in float, named as the graph names them."""
    region = fx_decode_region(graph)
    layers = []
    for node in graph.nodes:
        if node.op == "call_function" and is_fx_weighted(node) and node.name not in region:
            inputs = [n.name for n in node.all_input_nodes if n.op != "get_attr"][:1]
            layers.append((node.name, inputs, node.name))
    return layers


def node_values(
    module: torch.fx.GraphModule, names: Sequence[str], inputs: Sequence[np.ndarray]
) -> list[dict[str, np.ndarray]]:
    """The values of the named nodes of `module` for each input (a torch.fx interpreter that keeps them)."""
    wanted = set(names)

    class Keeper(torch.fx.Interpreter):
        def run_node(self, node):
            value = super().run_node(node)
            if node.name in wanted and isinstance(value, torch.Tensor):
                found[node.name] = value.detach().numpy().copy()
            return value

    values = []
    with torch.no_grad():
        for x in inputs:
            found: dict[str, np.ndarray] = {}
            Keeper(module).run(torch.from_numpy(x))
            values.append(found)
    return values


def pte_ranking(
    model: torch.nn.Module, sample: torch.Tensor, quantized: torch.fx.GraphModule, inputs: Sequence[np.ndarray]
) -> list[str]:
    """Weighted layers ordered by the error their quantization adds (converters.accuracy.rank_by_error), measured
    on `inputs` in torch: the float graph against `quantized` (:func:`quantize_module`; q/dq nodes simulate int8)."""
    from edgekit.converters.accuracy import rank_by_error

    graph = export_program(model, sample).module()
    layers = quantizable_layers(graph.graph)
    names = sorted({t for _, sources, output in layers for t in [*sources, output]})
    return rank_by_error(node_values(graph, names, inputs), node_values(quantized, names, inputs), layers)
