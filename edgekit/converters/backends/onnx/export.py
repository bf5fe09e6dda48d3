"""ONNX export: a torch module in export form -> simplified ONNX with named I/O and metadata."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch

from edgekit.errors import EdgekitError
from edgekit.logs import silenced
from edgekit.meta import KEY, ModelMeta

MIN_OPSET = 17


def set_onnx_metadata(model: onnx.ModelProto, meta: ModelMeta) -> None:
    """Store `meta` under the ``edgekit`` key of the model's metadata_props (replacing any old value)."""
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != KEY]
    del model.metadata_props[:]
    for key, value in [*kept, (KEY, meta.to_json())]:
        model.metadata_props.add(key=key, value=value)


def export_onnx(
    module: torch.nn.Module,
    sample: torch.Tensor,
    target: Path,
    meta: ModelMeta,
    *,
    opset: int = MIN_OPSET,
    dynamic: bool = False,
    simplify: bool = True,
) -> onnx.ModelProto:
    """Trace `module` on `sample` into `target`: named I/O, fixed batch 1 unless `dynamic`, onnxslim, metadata."""
    if opset < MIN_OPSET:
        raise EdgekitError(f"opset {opset} is too old; edgekit exports opset {MIN_OPSET} or newer")
    names_in, names_out = [meta.input.name], list(meta.outputs.names)
    axes = None
    if dynamic:
        spatial = (
            {0: "batch", 2: "height", 3: "width"}
            if meta.input.layout == "NCHW"
            else {0: "batch", 1: "height", 2: "width"}
        )
        axes = {names_in[0]: spatial, **{n: {0: "batch"} for n in names_out}}
    module.eval()
    with silenced(stderr=False), torch.no_grad():
        torch.onnx.export(
            module,
            (sample,),
            str(target),
            input_names=names_in,
            output_names=names_out,
            opset_version=opset,
            dynamic_axes=axes,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load(str(target))
    if simplify:
        import onnxslim

        with silenced(stderr=False):
            model = onnxslim.slim(model)
    model.producer_name, model.producer_version = "edgekit", meta.source.edgekit if meta.source else ""
    set_onnx_metadata(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return model
