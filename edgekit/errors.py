"""User-facing errors and lazy imports of optional backends."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


class EdgekitError(Exception):
    """A problem the user can fix; the CLI prints it on one line and exits non-zero."""


class MetadataError(EdgekitError):
    """An artifact's metadata is missing, malformed or inconsistent with the model."""


class MissingExtraError(EdgekitError):
    """An optional backend is not installed."""


# extras whose main package must be installed without its dependencies (see pyproject.toml)
NO_DEPS = {"mediapipe": 'pip install --no-deps "mediapipe>=0.10.21"'}


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or explain which edgekit extra provides it.

    Import-time chatter of heavy backends (coremltools reports every optional piece it lacks) is kept off
    the terminal; a real failure still raises.
    """
    try:
        if module in sys.modules:
            return sys.modules[module]
        from edgekit.logs import silenced

        with silenced():
            return importlib.import_module(module)
    except ImportError as exc:
        also = f" && {NO_DEPS[extra]}" if extra in NO_DEPS else ""
        raise MissingExtraError(
            f"{module} is not installed ({exc}); install it with: pip install 'edgekit[{extra}]'{also}"
        ) from None


def first_line(exc: BaseException, limit: int = 300, *, typed: bool = False) -> str:
    """The first non-empty line of an exception's message, at most `limit` characters: what a one-line error
    shows of a library's multi-line message. The exception's type name where the message is empty; with
    `typed`, always prefixed by it (``"RuntimeError: ..."``) for errors that are not edgekit's own."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0][:limit] if lines else ""
    if typed:
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text or type(exc).__name__
