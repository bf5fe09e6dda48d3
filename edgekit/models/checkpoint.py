"""Reading torch checkpoints without executing anything from them.

Whole-module checkpoints (YOLOv9, Ultralytics) are pickles of model objects. They are read with torch's
weights-only unpickler, which only rebuilds tensors and plain containers. Every class the pickle names
in a model namespace (``models.``, ``ultralytics.``, ``torch.nn.modules.``...) is replaced for that load
by an inert :class:`Record` that just keeps the attributes the pickle gives it: nothing from the file is
imported or called. A pickle that names anything else (``os.system``, ``builtins.eval``...) is refused
before unpickling starts.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgekit.errors import EdgekitError, first_line
from edgekit.fileio import check_checkpoint_file
from edgekit.limits import NESTING
from edgekit.models.pickle_scan import largest_allocation

# Namespaces whose classes and functions become inert records (module classes, training-time helpers).
RECORD_NAMESPACES = (
    "models.",
    "utils.",
    "ultralytics.",
    "damo.",
    "torch.nn.modules.",
    "torch.nn.utils.",
    "torch.optim.",
    "numpy.core.multiarray.",
    "numpy._core.multiarray.",
    "numpy.dtypes.",
    "__main__.",
)
ALLOCATION_LIMIT = 1 << 16  # elements a pickle may ask of a size-taking constructor (see pickle_scan)
MAX_MODULES = 20_000  # module records in one pickled model (the largest YOLO has about 1,000)
# Where trainers keep their arguments in a checkpoint: Ultralytics, then YOLOv9/YOLOv5's train.py.
TRAINING_ARGS = ("train_args", "opt")
# Single data types that also become records (their payload is plain data).
RECORD_NAMES = {
    "numpy.dtype",
    "numpy.ndarray",
    "pathlib.Path",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "argparse.Namespace",
    "types.SimpleNamespace",
    "datetime.datetime",
    "collections.defaultdict",
}


class Record:
    """An inert stand-in for a class or function named in a checkpoint.

    Calling it (the pickle's REDUCE) stores the arguments; rebuilding it (BUILD) stores the state.
    """

    _full_name = "Record"

    def __init__(self, *args: Any, **kwargs: Any):
        self.__dict__["_args"] = args
        if kwargs:
            self.__dict__["_kwargs"] = kwargs

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and (state[0] is None or isinstance(state[0], dict)):
            state, slots = state
            if isinstance(slots, dict):
                self.__dict__.update(slots)
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_state"] = state

    @property
    def type_name(self) -> str:
        """The short class name, e.g. ``Conv``."""
        return self._full_name.rsplit(".", 1)[-1]

    @property
    def children(self) -> OrderedDict:
        """Child module records, as ``_modules`` held them (empty when the pickle gave something else)."""
        found = self.__dict__.get("_modules")
        return found if isinstance(found, dict) else OrderedDict()

    def __repr__(self) -> str:
        return f"<record {self._full_name}>"


def _record_class(full_name: str) -> type[Record]:
    module, _, name = full_name.rpartition(".")
    return type(name, (Record,), {"__module__": module, "__qualname__": name, "_full_name": full_name})


def _is_record_name(name: str) -> bool:
    return name in RECORD_NAMES or name.startswith(RECORD_NAMESPACES)


@dataclass
class Checkpoint:
    """A loaded checkpoint: the top-level object, and the globals its pickle named."""

    path: Path
    data: Any
    globals: list[str] = field(default_factory=list)

    def model_record(self) -> Record:
        """The pickled model: ``ema`` if present (as the reference loaders prefer), else ``model``."""
        data = self.data
        if isinstance(data, Record):
            return data
        if isinstance(data, dict):
            for key in ("ema", "model"):
                if isinstance(data.get(key), Record):
                    return data[key]
            keys = ", ".join(map(str, list(data)[:10]))
            raise EdgekitError(f"{self.path.name}: no pickled model under 'ema' or 'model' (keys: {keys})")
        raise EdgekitError(f"{self.path.name}: holds a {type(data).__name__}, not a model checkpoint")

    def training_size(self) -> tuple[tuple[int, int], str] | None:
        """The input size (height, width) in pixels the checkpoint says it was trained at, and where it says
        so (``train_args.imgsz``: Ultralytics; ``opt.imgsz``: YOLOv9/YOLOv5's train.py), or None when it
        records none (DAMO-YOLO, state_dicts) or records something that is not a size."""
        data = self.data if isinstance(self.data, dict) else {}
        for key in TRAINING_ARGS:
            args = data.get(key)
            args = args.__dict__ if isinstance(args, Record) else args
            size = as_size(args.get("imgsz")) if isinstance(args, dict) else None
            if size is not None:
                return size, f"{key}.imgsz"
        return None


def as_size(value: Any) -> tuple[int, int] | None:
    """(height, width) from an int or a list of one or two ints (as training args record a size), or None
    for anything else."""
    values = [value] if isinstance(value, int) else list(value) if isinstance(value, (list, tuple)) else []
    if not 1 <= len(values) <= 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        return None
    return (values[0], values[-1])


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a torch checkpoint safely; module classes come back as inert records.

    Raises EdgekitError for a file that is not a readable checkpoint, whose pickle names anything outside the
    allow-list, or asks any call for more elements than the file has bytes (see :mod:`pickle_scan`)."""
    path = check_checkpoint_file(path)
    try:
        names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
        elements = largest_allocation(torch._C.PyTorchFileReader(str(path)).get_record("data.pkl"))
    except Exception as exc:  # a damaged zip or pickle surfaces as various exception types
        raise EdgekitError(f"{path.name}: unreadable checkpoint ({first_line(exc)})") from None
    if elements > ALLOCATION_LIMIT:
        raise EdgekitError(
            f"{path.name}: refused to load: its pickle asks a constructor for {elements:,} elements (at most"
            f" {ALLOCATION_LIMIT:,}); a real checkpoint's tensors come from the storages saved in the file"
        )
    refused = [n for n in names if not _is_record_name(n)]
    if refused:
        raise EdgekitError(
            f"{path.name}: refused to load: its pickle calls {', '.join(refused[:5])}, which is not model data"
            " (edgekit never runs code from a checkpoint)"
        )
    stand_ins = [(_record_class(n), n) for n in names]
    try:
        with torch.serialization.safe_globals(stand_ins):
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EdgekitError(f"{path.name}: unreadable checkpoint ({first_line(exc)})") from None
    return Checkpoint(path, data, names)


def modules(record: Record) -> list[tuple[str, Record]]:
    """Every module record under `record` with its module path (``model.3.cv1.bn``; ``""`` for `record`),
    depth first, as ``nn.Module.state_dict`` walks them (a shared child under each of its names). Raises
    EdgekitError for a pickle whose records nest deeper than NESTING levels (a circle of records does) or
    number more than MAX_MODULES (one child shared many times at every level), before walking them all."""
    found: list[tuple[str, Record]] = []
    stack = [("", record, 0)]
    while stack:
        name, current, depth = stack.pop()
        if depth > NESTING or len(found) >= MAX_MODULES:
            raise EdgekitError(
                f"the pickled model nests modules more than {NESTING} levels deep or holds more than {MAX_MODULES:,}"
            )
        found.append((name, current))
        children = [(f"{name}.{key}" if name else str(key), child) for key, child in current.children.items()]
        stack.extend((path, child, depth + 1) for path, child in reversed(children) if isinstance(child, Record))
    return found


def _tensors(table: Any) -> dict:
    return {k: v for k, v in table.items() if v is not None} if isinstance(table, dict) else {}


def state_dict(record: Record, prefix: str = "") -> OrderedDict[str, torch.Tensor]:
    """The state_dict the pickled module would have had (parameters and persistent buffers)."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, module in modules(record):
        attrs = module.__dict__
        head = f"{prefix}{name}." if name else prefix
        for key, value in _tensors(attrs.get("_parameters")).items():
            out[f"{head}{key}"] = value.detach() if isinstance(value, torch.Tensor) else value
        skip = attrs.get("_non_persistent_buffers_set") or set()
        for key, value in _tensors(attrs.get("_buffers")).items():
            if not isinstance(skip, (set, frozenset)) or key not in skip:
                out[f"{head}{key}"] = value
    return out


def find_types(record: Record) -> list[str]:
    """Full class names of a record and all its descendants, depth first."""
    return [module._full_name for _, module in modules(record)]


def class_names(value: Any, nc: int) -> list[str]:
    """Class names from a checkpoint's ``names`` (a list, or a dict keyed by class id)."""
    if isinstance(value, dict):
        return [str(value[k]) for k in sorted(value)]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(i) for i in range(nc)]


def load_strict(model: torch.nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """Load every tensor, or fail naming the missing, unexpected or mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in weights and weights[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s): {', '.join(missing[:4])}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s): {', '.join(unexpected[:4])}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es): {'; '.join(shapes[:3])}")
    if problems:
        raise EdgekitError(f"{source}: weights do not fit the architecture: {'; '.join(problems)}")
    model.load_state_dict(weights, strict=True)


def records_by_name(record: Record, prefix: str = "") -> dict[str, Record]:
    """Every module record under `record`, keyed by its module path (``model.3.cv1.bn``)."""
    return {(f"{prefix}.{name}" if prefix and name else prefix or name): module for name, module in modules(record)}


def copy_batchnorm_eps(model: torch.nn.Module, record: Record) -> int:
    """Give every BatchNorm the eps its pickled counterpart had (a state_dict does not hold it; the
    YOLO trainers set 1e-3). Returns how many were set."""
    records = records_by_name(record)
    count = 0
    for name, module in model.named_modules():
        rec = records.get(name)
        if isinstance(module, torch.nn.BatchNorm2d) and rec is not None and isinstance(rec.__dict__.get("eps"), float):
            module.eps = rec.__dict__["eps"]
            count += 1
    return count


def load_pickled_weights(model: torch.nn.Module, record: Record, weights: dict[str, torch.Tensor], source: str) -> None:
    """Load a YOLO-layout model from its pickled module record: every tensor strictly (:func:`load_strict`),
    the BatchNorm eps values, and ``model.names`` from the record's ``names`` (as many as ``model.nc``).

    Raises:
        EdgekitError: the weights do not fit, or the names do not number the model's classes.
    """
    load_strict(model, weights, source)
    copy_batchnorm_eps(model, record)
    names = class_names(record.__dict__.get("names"), model.nc)
    if len(names) != model.nc:
        raise EdgekitError(f"{source}: class-count mismatch: {len(names)} names for nc={model.nc}")
    model.names = names
