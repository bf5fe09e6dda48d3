"""The documentation: one page per registered format, the README's commands and links, and the docs hook that
generates the metadata table from edgekit/meta.py (it must cover every stored field and refuse to drift).
`mkdocs build --strict` itself runs in .ci/run."""

import importlib.util
import re
from pathlib import Path

import pytest

from edgekit import assets
from edgekit.converters.backends import BACKENDS
from edgekit.runtimes import load

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def hook():
    spec = importlib.util.spec_from_file_location("docs_hook", ROOT / "docs" / "hooks" / "generated.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def leaf_paths(doc: dict, prefix: str = "") -> set[str]:
    """Dotted paths of a stored metadata document; free-form sections (verification, accuracy) are leaves."""
    paths = set()
    for key, value in doc.items():
        if isinstance(value, dict) and key in ("input", "letterbox", "outputs", "decode", "source"):
            paths |= leaf_paths(value, f"{prefix}{key}.")
        else:
            paths.add(prefix + key)
    return paths


def test_every_registered_format_has_a_docs_page_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for name in BACKENDS:
        assert (ROOT / "docs" / "convert" / f"{name}.md").is_file(), name
        assert f"convert/{name}.md" in nav, name


def test_metadata_table_has_a_row_for_every_field_a_real_artifact_stores(hook):
    stored = load(assets.default_model()).meta.to_dict()
    stored["source"] = stored["source"] or {"file": "", "sha256": "", "edgekit": ""}
    table = hook.metadata_table()
    rows = set(re.findall(r"^\| `([a-z0-9_.]+)` \|", table, re.MULTILINE))
    assert rows == leaf_paths(stored)


def test_metadata_table_takes_defaults_and_choices_from_the_reader(hook):
    row = re.compile(r"^\| `([a-z0-9_.]+)` \| ([^|]+) \| ([^|]+) \| ([^|]*) \|", re.MULTILINE)
    rows = {m[0]: m[1:] for m in row.findall(hook.metadata_table())}
    assert rows["input.letterbox.pad_value"] == ("integer", "`114`", "")
    assert rows["schema"][1] == "required"
    assert rows["source.sha256"][1] == "required (in `source`)"
    assert rows["outputs.kind"][2] == "`boxes_scores`, `detections`, `packed`, `vision`, `postprocess`"


def test_metadata_table_refuses_a_field_without_a_meaning_and_a_meaning_without_a_field(hook, monkeypatch):
    fewer = dict(hook.MEANINGS)
    del fewer["decode.iou"]
    monkeypatch.setattr(hook, "MEANINGS", fewer)
    with pytest.raises(ValueError, match=r"without a meaning \['decode.iou'\]"):
        hook.metadata_table()
    monkeypatch.setattr(hook, "MEANINGS", {**hook.MEANINGS, "decode.iou": "x", "decode.gone": "x"})
    with pytest.raises(ValueError, match=r"no longer stores \['decode.gone'\]"):
        hook.metadata_table()


def test_render_fills_every_marker_and_refuses_an_unknown_one(hook):
    page = "a\n<!-- generated: test-tiers -->\nb\n"
    out = hook.render(page)
    assert "<!--" not in out and "`slow`:" in out
    with pytest.raises(ValueError, match="unknown generated block"):
        hook.render("<!-- generated: nothing -->")
    with pytest.raises(ValueError, match="start with 'edgekit'"):
        hook.render("<!-- generated: command ls -->")


def test_the_readme_is_a_front_page_whose_links_resolve():
    assert len(README.splitlines()) < 200
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert links and all((ROOT / link).is_file() for link in links), [x for x in links if not (ROOT / x).is_file()]


def test_ci_runs_the_readme_test_command_verbatim():
    quickstart = README.split("## Quickstart", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert quickstart[0] == 'pip install ".[onnxruntime]" && edgekit predict --save runs/demo'
    assert quickstart[1] in (ROOT / ".ci" / "run").read_text().splitlines()
