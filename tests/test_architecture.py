"""The package's structure: no import cycles, no arrows up the layers, and the README's recipe for adding a
backend followed once for real (a throwaway ONNX-with-external-weights backend registered from here)."""

import ast
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit import assets
from edgekit.converters.backends import BACKENDS, Backend
from edgekit.converters.convert import convert_many
from edgekit.runtimes import engine as engines
from edgekit.runtimes.ort import OnnxRuntimeEngine

ROOT = Path(edgekit.__file__).parent
# layer -> packages it must never import (DESIGN.md: arrows point down only)
FORBIDDEN = {
    "edgekit.runtimes": ("edgekit.converters", "edgekit.models", "edgekit.eval", "edgekit.cli"),
    "edgekit.devices": ("edgekit.converters", "edgekit.models", "edgekit.eval", "edgekit.cli"),
    "edgekit.meta": ("edgekit.converters", "edgekit.models", "edgekit.runtimes", "edgekit.cli"),
    "edgekit.detections": ("edgekit.converters", "edgekit.models", "edgekit.runtimes", "edgekit.cli"),
    "edgekit.models": ("edgekit.converters", "edgekit.cli"),
    "edgekit.eval": ("edgekit.converters", "edgekit.cli"),
    "edgekit.converters": ("edgekit.cli",),
}


def module_names() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        found[".".join(parts)] = path
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Every edgekit module each module imports, at module level or inside functions."""
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets.add(base)
                targets.update(f"{base}.{a.name}" for a in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]], modules: dict[str, Path]) -> list[list[str]]:
    """Strongly connected components of more than one module (package re-exports in __init__ excluded)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if modules[w].name == "__init__.py":
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def upward(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in graph.items():
        for layer, banned in FORBIDDEN.items():
            if module == layer or module.startswith(layer + "."):
                problems += [f"{module} -> {t}" for t in targets if t.startswith(banned)]
    return problems


def test_no_import_cycles_and_no_upward_imports():
    modules = module_names()
    graph = import_graph(modules)
    assert len(modules) > 50 and "edgekit.converters.backends.onnx" in graph
    assert "edgekit.converters.backends.base" in graph["edgekit.converters.backends.onnx"]
    assert cycles(graph, modules) == []
    assert upward(graph) == []


def test_the_checks_find_what_they_look_for():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    files = {k: Path(f"{k}.py") for k in graph}
    assert cycles(graph, files) == [["a", "b", "c"]]
    assert upward({"edgekit.runtimes.x": {"edgekit.models.y", "edgekit.meta"}}) == [
        "edgekit.runtimes.x -> edgekit.models.y"
    ]


def _check_duplicates():
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_duplicates", ROOT.parent / "scripts" / "check_duplicates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_block_of_six_lines_stands_twice_in_the_package():
    """One owner for every rule: the check CI runs (scripts/check_duplicates.py) finds no repeated block."""
    assert _check_duplicates().find_duplicates(ROOT) == []


def test_the_duplicate_check_finds_a_reintroduced_copy(tmp_path):
    package = tmp_path / "edgekit"
    shutil.copytree(ROOT, package, ignore=shutil.ignore_patterns("__pycache__", "assets"))
    source = (ROOT / "images.py").read_text()
    body = source[source.index("def as_image(") :]
    (package / "eval" / "copied.py").write_text("import numpy as np\n\n\n" + body.replace("as_image", "to_image"))
    (package / "models" / "tiny_configs.py").write_text((ROOT / "models" / "yolov9_configs.py").read_text())
    check = _check_duplicates()
    before = {(a, b) for a, _, b, _, _ in check.find_duplicates(ROOT)}
    after = {(a, b) for a, _, b, _, _ in check.find_duplicates(package)}
    assert after - before == {("eval/copied.py", "images.py")}  # the copy, and not the allowed config table


# --- the "how to add a backend" recipe, followed for a throwaway format -------------------------------
# 1. a Backend subclass (here instead of edgekit/converters/backends/onnxdata.py)


@dataclass(frozen=True)
class OnnxDataOptions:
    threshold: int = 0  # tensors of at least this many bytes go to the external file


class OnnxDataBackend(Backend):
    """ONNX with its weights in an external data file: a folder STEM_onnxdata/ with model.onnx + weights.bin."""

    name = "onnxdata"
    extra = "convert"
    suffix = "_onnxdata"
    directory = True
    Options = OnnxDataOptions

    def write(self, precision, tmp):
        import onnx

        from edgekit.converters.backends.onnx import fp32_onnx
        from edgekit.converters.backends.onnx.export import set_onnx_metadata
        from edgekit.converters.backends.onnx.quantize import half_onnx

        model = onnx.load(str(fp32_onnx(self.ctx)))
        if precision == "fp16":
            model = half_onnx(model)
        elif precision != "fp32":
            raise edgekit.EdgekitError(f"{self.name} offers fp32 and fp16, not {precision}")
        meta = replace(self.ctx.meta, precision=precision)
        set_onnx_metadata(model, meta)
        tmp.mkdir(parents=True)
        onnx.save(
            model, str(tmp / "model.onnx"), save_as_external_data=True, location="weights.bin",
            size_threshold=self.options.threshold,
        )
        return meta

    def engine(self, path):
        return OnnxDataEngine(path)

    def set_metadata(self, tmp, meta):
        import onnx

        from edgekit.converters.backends.onnx.export import set_onnx_metadata

        model = onnx.load(str(tmp / "model.onnx"), load_external_data=False)
        set_onnx_metadata(model, meta)
        onnx.save(model, str(tmp / "model.onnx"))


# 3. its runtime engine (here instead of edgekit/runtimes/onnxdata.py)
class OnnxDataEngine(OnnxRuntimeEngine):
    backend = "onnxdata"

    def __init__(self, path, threads=None, settings=None):
        super().__init__(Path(path) / "model.onnx", threads, settings)
        self.path = Path(path)


@pytest.fixture()
def registered(monkeypatch):
    # 2. and 3.: one registry line each
    monkeypatch.setitem(BACKENDS, "onnxdata", OnnxDataBackend)
    monkeypatch.setitem(engines.BACKENDS, "onnxdata", ("test_architecture", "OnnxDataEngine", ("_onnxdata",)))


@pytest.mark.convert
def test_a_new_backend_needs_only_its_module_and_registry_lines(registered, tmp_path):
    weights = assets.demo_checkpoint()
    results = convert_many(weights, "onnx,onnxdata", "fp32,fp16", 320, tmp_path, threshold=1024)
    assert [r.ok for r in results] == [True] * 4, [r.error for r in results]
    folder = tmp_path / "shapes_onnxdata"
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "weights.bin"]
    assert (folder / "weights.bin").stat().st_size > 2_000_000 > (folder / "model.onnx").stat().st_size
    ours = edgekit.load(folder)
    assert ours.engine.backend == "onnxdata" and ours.meta.verification["passed"]
    reference = edgekit.load(tmp_path / "shapes.onnx")
    image = assets.shapes_image()
    a, b = ours(image), reference(image)
    assert len(a) > 0 and a.labels == b.labels
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
    shutil.rmtree(folder)


@pytest.mark.convert
def test_a_failing_new_backend_target_leaves_nothing(registered, tmp_path):
    weights = assets.demo_checkpoint()
    results = convert_many(weights, "onnxdata", "int8", 320, tmp_path, calib=ROOT / "assets")
    assert not results[0].ok and "offers fp32 and fp16" in results[0].error
    assert list(tmp_path.iterdir()) == []


# --- the family registry refuses lineages it does not read, naming them ---------------------------------


@pytest.mark.parametrize(
    ("head", "named"),
    [
        ("Detect", "YOLOv5/YOLOv7 (anchor-based Detect head)"),
        ("IDetect", "YOLOv7 (IDetect head)"),
        ("DualDSegment", "YOLOv9 segmentation (DualDSegment head)"),
    ],
)
def test_other_lineages_of_the_yolov9_repository_layout_are_refused_by_name(tmp_path, head, named):
    from edgekit.converters.families import open_source
    from edgekit.errors import EdgekitError

    from checkpoints import random_yolov9, write_yolov9_checkpoint

    model = random_yolov9("gelan-t", nc=3)
    model.yaml["head"][-1] = [model.yaml["head"][-1][0], 1, head, ["nc", "anchors"]]
    model.yaml["anchors"] = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
    path = write_yolov9_checkpoint(model, tmp_path / "other.pt")
    with pytest.raises(EdgekitError) as err:
        open_source(path)
    assert str(err.value) == f"other.pt: a pickled models.yolo.DetectionModel: {named}, which edgekit does not convert"


def test_ultralytics_lineages_are_named_from_the_yaml_and_yolo12_is_refused(tmp_path):
    from edgekit.converters.families import open_source
    from edgekit.errors import EdgekitError

    from checkpoints import random_ultralytics, write_ultralytics_checkpoint

    model = random_ultralytics("yolo26n", nc=3)
    model.yaml["end2end"] = False
    for row in model.yaml["backbone"] + model.yaml["head"]:
        row[2] = "A2C2f" if row[2] == "C3k2" else row[2]
    path = write_ultralytics_checkpoint(model, tmp_path / "v12.pt")
    with pytest.raises(EdgekitError, match=r"v12.pt: an Ultralytics YOLO12 model, which edgekit does not convert"):
        open_source(path)
    gelan = open_source(write_ultralytics_checkpoint(random_ultralytics("yolov9t", nc=3), tmp_path / "t.pt"))
    assert gelan.family == "ultralytics-yolov9" and gelan.variant == "yolov9t"
