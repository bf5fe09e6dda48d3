"""The tests' one import blocker: run the `edgekit` command in a fresh interpreter where some packages cannot be
imported (as on a device that lacks them), and see which packages a run imported."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# what a device running the thin runtime does not have: the converter side's packages
CONVERTER_SIDE = ("torch", "onnx", "onnxslim", "onnxscript", "coremltools", "litert_torch", "openvino.tools", "nncf",
                  "tensorflow", "pnnx")

_SCRIPT = """
import json, sys
blocked, preload, modules_file, args = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4:]
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in blocked):
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, Blocker())
import importlib
for name in preload:
    importlib.import_module(name)
from edgekit.cli import main
try:
    code = main(args)
finally:
    if modules_file:
        open(modules_file, "w").write(json.dumps(sorted(sys.modules)))
sys.exit(code)
"""


def run_cli(
    args: Sequence[str | Path],
    blocked: Sequence[str] = (),
    *,
    preload: Sequence[str] = (),
    modules_file: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """`edgekit ARGS` in a new interpreter with the `blocked` packages (and their submodules) unimportable, after
    importing the `preload` modules; with `modules_file`, the names of every module the run imported are written
    there as a JSON list."""
    command = [sys.executable, "-c", _SCRIPT, json.dumps(list(blocked)), json.dumps(list(preload)),
               str(modules_file or ""), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def imported(modules_file: Path, packages: Sequence[str]) -> list[str]:
    """The modules of `packages` that a `run_cli(..., modules_file=...)` run imported."""
    names = json.loads(modules_file.read_text())
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in packages))
