"""ONNX export: torch module in export form -> simplified ONNX with metadata, verified, written atomically."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import torch

from edgekit.converters.verify import FP16_TOLERANCE, FP32_TOLERANCE, Verification, compare
from edgekit.errors import EdgekitError
from edgekit.fileio import atomic_path
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
    half: bool = False,
    simplify: bool = True,
) -> onnx.ModelProto:
    """Trace `module` on `sample` into `target`: named I/O, onnxslim, optional FP16 weights, metadata."""
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
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
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
    if half:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = convert_float_to_float16(model, keep_io_types=True)
    if simplify or half:  # onnxslim also restores the topological order the fp16 pass leaves unsorted
        import onnxslim

        with contextlib.redirect_stdout(io.StringIO()):
            model = onnxslim.slim(model)
    model.producer_name, model.producer_version = "edgekit", meta.source.edgekit if meta.source else ""
    set_onnx_metadata(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return model


def write_onnx_artifact(
    module: torch.nn.Module,
    meta: ModelMeta,
    out: str | Path,
    reference: Callable[[np.ndarray], dict[str, np.ndarray]],
    inputs: Sequence[np.ndarray],
    *,
    opset: int = MIN_OPSET,
    dynamic: bool = False,
    half: bool = False,
    log: Callable[[str], None] = print,
) -> tuple[Path, Verification]:
    """Export, verify against `reference` on `inputs` with ONNX Runtime, store the result, rename into place.

    Out of tolerance raises EdgekitError and leaves no file behind.
    """
    from edgekit.runtimes.ort import OnnxRuntimeEngine

    out = Path(out)
    meta = replace(meta, precision="fp16" if half else "fp32", verification=None)
    sample = torch.from_numpy(np.asarray(inputs[0], np.float32))
    with atomic_path(out) as tmp:
        model = export_onnx(module, sample, tmp, meta, opset=opset, dynamic=dynamic, half=half)
        engine = OnnxRuntimeEngine(tmp)
        result = compare(
            reference,
            lambda x: engine.run({meta.input.name: np.asarray(x, np.float32)}),
            inputs,
            FP16_TOLERANCE if half else FP32_TOLERANCE,
            backend="onnxruntime",
        )
        log(result.table())
        if not result.passed:
            failed = ", ".join(
                f"{k} {v:.3g} > {result.tolerance[k]}"
                for k, v in result.max_abs.items()
                if v > result.tolerance.get(k, np.inf)
            )
            raise EdgekitError(f"verification failed for {out.name}: {failed}; nothing was written")
        set_onnx_metadata(model, replace(meta, verification=result.as_dict()))
        onnx.save(model, str(tmp))
    return out, result
