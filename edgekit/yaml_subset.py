"""The block-style YAML subset that exporters write for metadata, read without a YAML library (the thin runtime
carries none): Ultralytics' ``metadata.yaml`` beside an OpenVINO model, and block-style dataset yamls."""

from __future__ import annotations

from typing import Any

from edgekit.errors import EdgekitError
from edgekit.limits import NESTING, literal


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", "~", ""):
        return None
    try:
        return literal(text)
    except ValueError:
        return text


def _key(text: str) -> Any:
    """A map key: a scalar, or its text where the scalar cannot be one (a list)."""
    value = _scalar(text)
    try:
        hash(value)
    except TypeError:
        return text.strip()
    return value


def parse_simple_yaml(text: str) -> dict[str, Any]:
    """The block-style YAML subset exporters write for metadata (Ultralytics' ``metadata.yaml``): nested
    ``key: value`` maps by indentation, ``- item`` lists of scalars, plain or quoted scalars. The thin runtime
    carries no YAML library; anything beyond this subset is skipped, not guessed. Raises EdgekitError for maps
    nested more than NESTING levels deep."""
    lines = [(len(raw) - len(raw.lstrip(" ")), raw.strip()) for raw in text.splitlines()]
    lines = [(indent, line) for indent, line in lines if line and not line.startswith(("#", "%", "---"))]

    def block(start: int, indent: int, depth: int = 1) -> tuple[Any, int]:
        if depth > NESTING:
            raise EdgekitError(f"YAML document nested more than {NESTING} levels deep")
        if start < len(lines) and lines[start][1].startswith("- "):
            items = []
            i = start
            while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                items.append(_scalar(lines[i][1][2:]))
                i += 1
            return items, i
        mapping: dict[Any, Any] = {}
        i = start
        while i < len(lines) and lines[i][0] == indent:
            key, sep, value = lines[i][1].partition(":")
            if not sep:
                i += 1
                continue
            key_value = _key(key)
            if value.strip():
                mapping[key_value] = _scalar(value)
                i += 1
            elif i + 1 < len(lines) and lines[i + 1][0] > indent:
                mapping[key_value], i = block(i + 1, lines[i + 1][0], depth + 1)
            elif i + 1 < len(lines) and lines[i + 1][0] == indent and lines[i + 1][1].startswith("- "):
                mapping[key_value], i = block(i + 1, indent, depth + 1)  # a list at the key's own indentation
            else:
                mapping[key_value] = None
                i += 1
        return mapping, i

    parsed, _ = block(0, lines[0][0]) if lines else ({}, 0)
    return parsed if isinstance(parsed, dict) else {}
