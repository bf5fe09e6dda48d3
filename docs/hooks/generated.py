"""mkdocs hook: the parts of the docs that are generated from the code at build time, so they cannot drift.

A page asks for generated text with a line of its own:

    <!-- generated: metadata-table -->        the artifact metadata fields, from the dataclasses of edgekit.meta
    <!-- generated: test-tiers -->            the pytest markers and default selection, from pyproject.toml
    <!-- generated: command edgekit ARGS -->  the output of `edgekit ARGS`, run on this checkout

The metadata table takes each stored field's name, JSON type and default from the dataclasses, asks the reader
(`edgekit.meta.from_dict`) which fields a file must carry and which values it accepts, and takes only the one-line
meaning from `MEANINGS` below: a field without a meaning, or a meaning for a field the schema no longer has,
fails the build.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import shlex
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the docs extra installs tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MARKER = re.compile(r"^<!-- generated: (?P<what>[a-z-]+)(?: (?P<args>.*?))? -->$", re.MULTILINE)

# One line per stored field of the metadata document (dotted paths as in the JSON). Everything else in the
# table comes from edgekit/meta.py.
MEANINGS = {
    "family": "model family, e.g. `yolov9`, `yolo26`, `damo`",
    "variant": "the architecture within the family, e.g. `gelan-c`, `yolo26n`, `damoyolo-s`",
    "classes": "class names; the index is the class id",
    "imgsz": "`[height, width]` of the network input",
    "task": "what the model does; other tasks (segment, pose, OBB) are refused with a message naming the task",
    "input.name": "name of the input tensor",
    "input.layout": "tensor layout (NCHW for ONNX / OpenVINO, NHWC where the format prefers it)",
    "input.dtype": "element type the input tensor takes",
    "input.color": "channel order the network expects",
    "input.range": "pixel range after scaling: `[0, 1]` or `[0, 255]`",
    "input.mean": "per-channel mean subtracted after scaling (optional)",
    "input.std": "per-channel standard deviation divided by after the mean (optional)",
    "input.letterbox.align": "where the scaled image sits in the input: centred, or top-left with padding at "
    "the bottom and right",
    "input.letterbox.pad_value": "value of the padding pixels (0..255)",
    "input.letterbox.keep_ratio": "scale to fit keeping the aspect ratio and pad (`true`), or stretch to the "
    "input size (`false`: DAMO-YOLO since v0.3.0, MediaPipe phone files)",
    "input.letterbox.rounding": "how the scaled size is made whole",
    "input.quant": "`[scale, zero_point]` of an integer input tensor (required for int8 inputs)",
    "input.channels": "3 (colour, in `color` order) or 1 (grayscale: the frame's luminance)",
    "outputs.kind": "what the outputs hold (see the output kinds below)",
    "outputs.names": "output tensor names, in the order the kind lists them (default: the kind's own names)",
    "outputs.normalized": "boxes in 0..1 of the network input (the contract); `false`: input pixels",
    "outputs.quant": "`{name: [scale, zero_point]}` of integer output tensors",
    "decode.method": "`nms` for the NMS families, `topk` for NMS-free heads decoded in the runtime, `none` "
    "where the graph already selected the rows (the reader's default for those kinds)",
    "decode.conf": "default confidence threshold (0..1)",
    "decode.iou": "default NMS IoU threshold (0..1)",
    "decode.max_det": "most detections kept per image (> 0)",
    "decode.agnostic": "class-agnostic NMS",
    "decode.multi_label": "one box may be kept for several classes (the field's validation setting)",
    "precision": "numeric precision of the artifact",
    "stride": "the largest stride: inputs of dynamic models should be multiples of it",
    "source.file": "file name of the checkpoint the artifact was converted from",
    "source.sha256": "SHA-256 of that checkpoint",
    "source.edgekit": "edgekit version that converted it",
    "verification": "how the artifact compared with its source model when it was written: max differences and "
    "tolerances (FP32 / FP16), or detection agreement (INT8: mAP, `score_max_diff`, `conf_agreement`)",
    "random_weights": "`true` when converted from an architecture name: seeded random weights, the file detects "
    "nothing useful (`predict` and `inspect` warn)",
    "accuracy": "INT8 measured on labelled data: mAP50-95 of the file and of its FP32 source, the drop, the "
    "`--max-drop` budget, the layers kept in float to meet it, and the speed-up over FP32 on the same backend",
    "schema": "metadata schema version; a newer schema than the reader knows is refused with a clear message",
}

_BOGUS = "\x00not-a-value"


def _json_type(hint: Any) -> str:
    """A type hint of edgekit.meta as the JSON type a file stores."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kept = [a for a in args if a is not type(None)]
        text = " or ".join(_json_type(a) for a in kept)
        return f"{text} or null" if len(kept) < len(args) else text
    if origin is tuple:
        return "[" + ", ".join(_json_type(a) for a in args) + "]"
    if origin is list:
        return f"list of {_json_type(args[0])}"
    if origin is dict:
        return "object" if args[1] is Any else f"object of {_json_type(args[1])}"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if hint in names:
        return names[hint]
    raise ValueError(f"the docs hook cannot name the JSON type of {hint!r}: teach _json_type")


def _dataclass_of(hint: Any) -> type | None:
    for candidate in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(candidate):
            return candidate
    return None


def _walk(cls: type, prefix: str = "") -> list[tuple[str, Any, type]]:
    """(dotted path, type hint, owning dataclass) of every leaf field, depth first, in declaration order."""
    hints = typing.get_type_hints(cls)
    leaves = []
    for f in dataclasses.fields(cls):
        nested = _dataclass_of(hints[f.name])
        if nested is not None:
            leaves += _walk(nested, f"{prefix}{f.name}.")
        else:
            leaves.append((prefix + f.name, hints[f.name], cls))
    return leaves


def _sample(meta: types.ModuleType) -> dict[str, Any]:
    """A complete, valid stored document: every optional section present, so each field can be taken away."""
    doc = meta.ModelMeta(
        family="yolov9", variant="gelan-c", classes=["person", "car"], imgsz=(640, 640),
        source=meta.SourceInfo(file="gelan-c.pt", sha256="0" * 64, edgekit="0"),
        verification={"passed": True}, accuracy={"drop": 0.1},
    ).to_dict()
    doc["input"]["mean"] = doc["input"]["std"] = [0.5, 0.5, 0.5]
    doc["input"]["quant"] = [1 / 255, 0]
    doc["outputs"]["quant"] = {"scores": [1 / 255, 0]}
    return doc


def _locate(doc: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    *parents, key = path.split(".")
    for part in parents:
        doc = doc[part]
    return doc, key


def _read(meta: types.ModuleType, doc: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return meta.from_dict(doc).to_dict(), None
    except meta.MetadataError as exc:
        return None, str(exc)


def _reader_default(meta: types.ModuleType, sample: dict[str, Any], path: str) -> str:
    """What the reader does when a file omits the field: 'required', or the value it takes (as JSON)."""
    doc = copy.deepcopy(sample)
    parent, key = _locate(doc, path)
    del parent[key]
    stored, error = _read(meta, doc)
    if error is not None:
        if "is missing" not in error:
            raise ValueError(f"removing metadata field {path!r} fails for another reason: {error}")
        section = path.rsplit(".", 1)[0] if "." in path else ""
        return f"required (in `{section}`)" if section else "required"
    parent, key = _locate(stored, path)
    value = parent[key]
    text = "null" if value is None else repr(value).replace("'", '"').replace("True", "true").replace("False", "false")
    return f"`{text}`"


def _allowed(meta: types.ModuleType, sample: dict[str, Any], path: str, hint: Any) -> str:
    """The values the reader accepts for a string field ('' when it takes any string)."""
    if hint is not str:
        return ""
    doc = copy.deepcopy(sample)
    parent, key = _locate(doc, path)
    parent[key] = _BOGUS
    _, error = _read(meta, doc)
    if error is None:
        return "any"
    found = re.search(r"must be one of (.*), got ", error)
    if found is None:
        raise ValueError(f"the reader refused a bogus {path!r} without naming the allowed values: {error}")
    return ", ".join(f"`{v}`" for v in found.group(1).split(", "))


def metadata_table() -> str:
    """The stored metadata fields as Markdown tables, one per section, each under its dataclass's docstring."""
    from edgekit import meta

    sample = _sample(meta)
    leaves = [leaf for leaf in _walk(meta.ModelMeta) if _has(sample, leaf[0])]
    paths = [path for path, _, _ in leaves]
    missing = sorted(set(paths) - set(MEANINGS))
    stale = sorted(set(MEANINGS) - set(paths))
    if missing or stale:
        raise ValueError(
            f"docs/hooks/generated.py MEANINGS is out of step with edgekit/meta.py: fields without a meaning "
            f"{missing}, meanings of fields the schema no longer stores {stale}"
        )
    sections: dict[str, list[tuple[str, Any, type]]] = {}
    for leaf in leaves:
        sections.setdefault(leaf[0].rpartition(".")[0], []).append(leaf)
    out: list[str] = []
    for where, rows in sections.items():
        owner = rows[0][2]
        doc = " ".join((owner.__doc__ or "").split()).replace("``", "`")
        out += ["", f"**`{where or 'top level'}`** ({owner.__name__}): {doc}", "",
                "| field | JSON type | when absent | allowed | meaning |", "|---|---|---|---|---|"]
        for path, hint, _ in rows:
            cells = [f"`{path}`", _json_type(hint), _reader_default(meta, sample, path),
                     _allowed(meta, sample, path, hint), MEANINGS[path]]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    out += ["", f"Schema version {meta.SCHEMA}, stored under the key `{meta.KEY}`. Generated from "
            "`edgekit/meta.py` when these docs were built."]
    return "\n".join(out).strip("\n")


def _has(doc: dict[str, Any], path: str) -> bool:
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return False
        doc = doc[part]
    return True


def marker_list() -> str:
    """The pytest markers and the default selection, as pyproject.toml declares them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    lines = [f"- default selection (`addopts`): `{config.get('addopts', '')}`"]
    for marker in config.get("markers", []):
        name, _, text = marker.partition(":")
        lines.append(f"- `{name.strip()}`: {text.strip()}")
    return "\n".join(lines)


def command(args: str) -> str:
    """`edgekit ARGS` run on this checkout, as a console block (a failing command fails the build)."""
    argv = shlex.split(args)
    if not argv or argv[0] != "edgekit":
        raise ValueError(f"generated commands start with 'edgekit', got {args!r}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    code = "import sys; from edgekit.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, *argv[1:]], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"`{args}` failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return f"```console\n$ {args}\n{done.stdout.rstrip()}\n```"


def render(markdown: str) -> str:
    """Replace every generated-text marker in a page."""

    def one(match: re.Match[str]) -> str:
        what, args = match.group("what"), match.group("args")
        if what == "metadata-table":
            return metadata_table()
        if what == "test-tiers":
            return marker_list()
        if what == "command":
            return command(args or "")
        raise ValueError(f"unknown generated block {what!r}")

    return MARKER.sub(one, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """mkdocs hook entry point."""
    return render(markdown)
