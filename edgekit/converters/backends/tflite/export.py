"""TFLite export with litert-torch (no TensorFlow) and ai-edge-quantizer.

The graph takes NHWC input, as phones and LiteRT expect; optionally uint8 pixels with the 0..1 scaling
inside the graph. FP16 stores float16 weights; INT8 is full integer (weights and activations, int8
input and outputs) calibrated on images preprocessed exactly as the runtime does. Input and output
tensors are renamed to the contract's names and the edgekit metadata is stored in the flatbuffer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from edgekit.converters.backends.decode_region import is_fixed_weight_layer
from edgekit.errors import EdgekitError, require
from edgekit.logs import silenced
from edgekit.meta import KEY

WEIGHTED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}
FP16_RECIPE = [
    {
        "regex": ".*",
        "operation": "*",
        "algorithm_key": "float_casting",
        "op_config": {
            "weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
            "compute_precision": "FLOAT",
            "explicit_dequantize": True,
        },
    }
]


class NHWCInput(torch.nn.Module):
    """Takes NHWC input (float 0..1, or uint8 0..255 when `uint8`) and feeds the NCHW model."""

    def __init__(self, model: torch.nn.Module, uint8: bool = False):
        super().__init__()
        self.model = model
        self.uint8 = uint8

    def forward(self, x):
        x = x.permute(0, 3, 1, 2)
        if self.uint8:
            x = x.float() * (1.0 / 255.0)
        return self.model(x)


def export_tflite(
    model: torch.nn.Module, imgsz: tuple[int, int], target: Path, uint8_input: bool = False, channels: int = 3
) -> None:
    """Convert the deploy module (NCHW, export form, `channels` input planes) into an NHWC .tflite at `target`."""
    litert_torch = require("litert_torch", "tflite")
    h, w = imgsz
    sample = torch.zeros(1, h, w, channels, dtype=torch.uint8 if uint8_input else torch.float32)
    with silenced():
        edge = litert_torch.convert(NHWCInput(model, uint8_input).eval(), (sample,))
        edge.export(str(target))


def quantize_tflite(
    source: Path,
    target: Path,
    precision: str,
    calibration: list[np.ndarray] | None = None,
    exclude: Sequence[str] = (),
) -> None:
    """FP16 weights, or full INT8 calibrated on `calibration` (NHWC float inputs), from an FP32 .tflite; the
    decode region and the ops whose output tensors are named in `exclude` stay in float."""
    require("ai_edge_quantizer", "tflite")
    from ai_edge_quantizer import quantizer, recipe

    with silenced():
        if precision == "fp16":
            qt = quantizer.Quantizer(str(source), FP16_RECIPE)
            result = qt.quantize()
        elif precision == "int8":
            rules = recipe.static_wi8_ai8()
            for name in [*tflite_decode_region(source), *exclude]:  # later rules win: these stay float
                rules.append({"regex": "^" + re.escape(name) + ";$", "operation": "*", "algorithm_key": "no_quantize"})
            qt = quantizer.Quantizer(str(source), rules)
            signature = next(iter(_signatures(source)))
            input_name = _signatures(source)[signature]["inputs"][0]
            calibrated = qt.calibrate({signature: [{input_name: x} for x in calibration]})
            result = qt.quantize(with_minmax_ranges(calibrated, source, input_name, calibration))
        else:
            raise EdgekitError(f"unknown precision {precision}")
        result.export_model(str(target), overwrite=True)


def activation_ranges(path: Path, input_name: str, calibration: list[np.ndarray]) -> dict[str, tuple[float, float]]:
    """The true (min, max) over `calibration` of every activation of the float .tflite at `path` (the input
    and every op output), by name."""
    from edgekit.runtimes.litert import interpreter_class

    with silenced():
        interpreter = interpreter_class()(model_path=str(path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    model = read_model(path)
    graph = model.subgraphs[0]
    wanted = {int(i) for i in graph.inputs} | {int(t) for op in graph.operators for t in op.outputs}
    details = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    names = {graph.tensors[i].name.decode(): i for i in wanted}
    inputs = interpreter.get_input_details()
    index = next((d["index"] for d in inputs if d["name"] == input_name), inputs[0]["index"])
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for x in calibration:
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        for name in names:
            if name not in details:
                continue
            value = interpreter.get_tensor(details[name])
            if value.size == 0 or not np.issubdtype(value.dtype, np.floating):
                continue
            low[name] = min(low.get(name, np.inf), float(value.min()))
            high[name] = max(high.get(name, -np.inf), float(value.max()))
    return {name: (low[name], high[name]) for name in low}


def with_minmax_ranges(qsvs: dict, path: Path, input_name: str, calibration: list[np.ndarray]) -> dict:
    """ai-edge-quantizer's calibration result with every activation range replaced by its true min/max.

    The quantizer keeps a moving average of each batch's min and max (smoothing 0.95), so a tail that only
    a few images reach — the positive class logits of a trained detector — is averaged away, and the
    sigmoid behind an int8 logit range ending near 0 can never exceed about 0.5. Min/max over the whole
    calibration set is what TFLite's own converter and ONNX Runtime's default calibration do.
    """
    ranges = activation_ranges(path, input_name, calibration)
    updated = dict(qsvs)
    for name, (low, high) in ranges.items():
        if name in updated and updated[name] and "min" in updated[name] and "max" in updated[name]:
            entry = dict(updated[name])
            entry["min"] = np.full_like(np.asarray(entry["min"]), low)
            entry["max"] = np.full_like(np.asarray(entry["max"]), high)
            updated[name] = entry
    return updated


def tflite_decode_region(path: Path) -> list[str]:
    """Output tensor names of the ops between the last convolutions and the graph outputs (kept float)."""
    schema = require("ai_edge_litert.schema_py_generated", "tflite")
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    graph = model.subgraphs[0]
    kinds = {v: k for k, v in schema.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    producer = {t: op for op in graph.operators for t in op.outputs}
    region, seen, stack = [], set(), list(graph.outputs)
    while stack:
        op = producer.get(stack.pop())
        if op is None or id(op) in seen:
            continue
        code = model.operatorCodes[op.opcodeIndex]
        name = graph.tensors[op.outputs[0]].name.decode()
        fixed = is_fixed_weight_layer(name)  # the DFL: part of the decode
        if kinds.get(max(code.builtinCode, code.deprecatedBuiltinCode)) in WEIGHTED_OPS and not fixed:
            continue
        seen.add(id(op))
        region.append(graph.tensors[op.outputs[0]].name.decode())
        stack.extend(i for i in op.inputs if i >= 0)
    return region


def _signatures(path: Path) -> dict:
    from edgekit.runtimes.litert import interpreter_class

    return interpreter_class()(model_path=str(path)).get_signature_list()


def finalize_tflite(path: Path, input_name: str, output_names: list[str], meta_json: str) -> None:
    """Name the input and outputs as the contract does and store `meta_json` as the ``edgekit`` metadata."""
    schema = require("ai_edge_litert.schema_py_generated", "tflite")
    model = read_model(path)
    graph = model.subgraphs[0]
    if len(graph.outputs) != len(output_names):
        raise EdgekitError(f"the TFLite graph has {len(graph.outputs)} outputs, the contract names {len(output_names)}")
    graph.tensors[graph.inputs[0]].name = input_name.encode()
    for index, name in zip(graph.outputs, output_names):
        graph.tensors[index].name = name.encode()
    for signature in model.signatureDefs or []:
        if signature.inputs:
            signature.inputs[0].name = input_name.encode()
        by_tensor = dict(zip(graph.outputs, output_names))
        for item in signature.outputs or []:
            if item.tensorIndex in by_tensor:
                item.name = by_tensor[item.tensorIndex].encode()
    data = np.frombuffer(meta_json.encode(), dtype=np.uint8)
    entries = [m for m in (model.metadata or []) if m.name != KEY.encode()]
    existing = next((m for m in (model.metadata or []) if m.name == KEY.encode()), None)
    if existing is not None:
        model.buffers[existing.buffer].data = data
        entries.append(existing)
    else:
        buffer = schema.BufferT()
        buffer.data = data
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = KEY.encode()
        entry.buffer = len(model.buffers) - 1
        entries.append(entry)
    model.metadata = entries
    write_model(model, path)


def read_model(path: Path):
    """The .tflite flatbuffer as mutable objects (ai-edge-litert's schema), tensor data kept inside buffers."""
    schema = require("ai_edge_litert.schema_py_generated", "tflite")
    raw = path.read_bytes()
    model = schema.ModelT.InitFromPackedBuf(raw, 0)
    for buffer in model.buffers or []:  # quantizers may append tensor data after the flatbuffer: bring it inside
        if buffer.offset and buffer.offset > 1 and buffer.data is None:
            buffer.data = np.frombuffer(raw[buffer.offset : buffer.offset + buffer.size], dtype=np.uint8)
            buffer.offset = buffer.size = 0
    return model


def write_model(model, path: Path) -> None:
    """Pack `model` back into a .tflite file at `path`."""
    flatbuffers = require("flatbuffers", "tflite")
    size = sum(len(b.data) for b in model.buffers or [] if b.data is not None)
    builder = flatbuffers.Builder(size + (1 << 16))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


def io_quantization(path: Path) -> tuple[tuple[float, int] | None, dict[str, tuple[float, int]]]:
    """(input quant, output quant by position name) of a finalized .tflite; None / {} for float tensors."""
    from edgekit.runtimes.litert import LiteRTEngine

    engine = LiteRTEngine(path)
    return engine.inputs[0].quant, {o.name: o.quant for o in engine.outputs if o.quant}


def tflite_layers(path: Path) -> list[tuple[str, list[str], str]]:
    """(output tensor name, activation input names, output tensor name) of every op outside the decode region:
    the ops the accuracy search may keep in float (named by their output tensor, as quantizer rules are)."""
    model = read_model(path)
    graph = model.subgraphs[0]
    region = set(tflite_decode_region(path))
    constant = {i for i, t in enumerate(graph.tensors) if model.buffers[t.buffer].data is not None}
    layers = []
    for op in graph.operators:
        if not len(op.outputs):
            continue
        output = graph.tensors[op.outputs[0]].name.decode()
        if output in region:
            continue
        inputs = [graph.tensors[i].name.decode() for i in op.inputs if i >= 0 and i not in constant]
        layers.append((output, inputs, output))
    return layers


def tflite_tensor_values(path: Path, names: Sequence[str], inputs: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The named tensors of the .tflite at `path` for each NHWC float input, dequantized to float where the
    file holds them as integers (the input itself is quantized as the file expects)."""
    from edgekit.runtimes.litert import interpreter_class

    with silenced():
        interpreter = interpreter_class()(model_path=str(path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    details = {d["name"]: d for d in interpreter.get_tensor_details()}
    feed = interpreter.get_input_details()[0]
    wanted = [n for n in names if n in details]
    values = []
    for x in inputs:
        if np.issubdtype(feed["dtype"], np.integer):
            scale, zero = feed["quantization"]
            info = np.iinfo(feed["dtype"])
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(feed["dtype"])
        interpreter.set_tensor(feed["index"], x)
        interpreter.invoke()
        found = {}
        for name in wanted:
            d = details[name]
            value = interpreter.get_tensor(d["index"])
            if np.issubdtype(value.dtype, np.integer):
                scale, zero = d["quantization"]
                if not scale:
                    continue
                value = (value.astype(np.float32) - zero) * scale
            found[name] = value
        values.append(found)
    return values


def tflite_ranking(fp32: Path, int8: Path, inputs: Sequence[np.ndarray]) -> list[str]:
    """Ops of the float file ordered by the error their quantization adds in the INT8 one (see
    converters.accuracy.rank_by_error), measured on NHWC `inputs`."""
    from edgekit.converters.accuracy import rank_by_error

    layers = tflite_layers(fp32)
    names = sorted({t for _, sources, output in layers for t in [*sources, output]})
    return rank_by_error(tflite_tensor_values(fp32, names, inputs), tflite_tensor_values(int8, names, inputs), layers)
