"""edgekit's log and the silencing of other libraries' chatter.

Library code logs to the ``edgekit`` logger (``logging.getLogger("edgekit")``); the CLI prints its INFO
lines to stdout, as plain lines. Heavy backends (litert-torch, ai-edge-quantizer, NNCF, coremltools,
onnxruntime's quantizer) print progress and warnings of their own: :func:`silenced` keeps them off the
terminal while they run, unless ``EDGEKIT_VERBOSE`` is set; their errors still raise.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import TextIO

LOGGER = logging.getLogger("edgekit")
LOGGER.addHandler(logging.NullHandler())
VERBOSE_ENV = "EDGEKIT_VERBOSE"


def get_logger(name: str = "edgekit") -> logging.Logger:
    """The edgekit logger (or a child of it, e.g. ``edgekit.convert``)."""
    return logging.getLogger(name)


class _Below(logging.Filter):
    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


@contextlib.contextmanager
def shown(info: bool = False, info_stream: TextIO | None = None) -> Iterator[None]:
    """While inside, print edgekit's warnings and errors on stderr (``edgekit: warning: ...``) and, with
    `info`, its INFO lines as plain lines on `info_stream` (default stdout: what the CLI does for a
    conversion's progress)."""
    handlers: list[logging.Handler] = []
    warn = logging.StreamHandler(sys.stderr)
    warn.setFormatter(logging.Formatter("edgekit: %(levelname_lower)s: %(message)s"))
    warn.setLevel(logging.WARNING)
    warn.addFilter(_lower_level_name)
    handlers.append(warn)
    if info:
        lines = logging.StreamHandler(info_stream or sys.stdout)
        lines.setFormatter(logging.Formatter("%(message)s"))
        lines.setLevel(logging.INFO)
        lines.addFilter(_Below(logging.WARNING))
        handlers.append(lines)
    saved = LOGGER.level, LOGGER.propagate
    for handler in handlers:
        LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO if info else logging.WARNING)
    LOGGER.propagate = False
    try:
        yield
    finally:
        for handler in handlers:
            LOGGER.removeHandler(handler)
        LOGGER.setLevel(saved[0])
        LOGGER.propagate = saved[1]


def _lower_level_name(record: logging.LogRecord) -> bool:
    record.levelname_lower = record.levelname.lower()
    return True


@contextlib.contextmanager
def silenced(stderr: bool = True) -> Iterator[None]:
    """Keep other libraries' prints, warnings and log records (below ERROR) off the terminal.

    stdout is always captured; stderr too unless `stderr` is False, at the file-descriptor level, so the
    lines native code writes (absl, XNNPACK, oneDNN) are caught as well. Exceptions pass through. Does
    nothing when the ``EDGEKIT_VERBOSE`` environment variable is set (``edgekit --verbose``), and nothing
    outside the main thread.
    """
    if os.environ.get(VERBOSE_ENV) or threading.current_thread() is not threading.main_thread():
        # what it swaps (sys.stdout, fd 2, logging.disable, the warning filters) is process-wide: swapped from
        # two threads at once, the second save would capture the first's replacement and never restore
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sink = io.StringIO()
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            if stderr:
                with contextlib.redirect_stderr(sink), _native_stderr_silenced():
                    yield
            else:
                yield
    finally:
        logging.disable(previous)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null while inside (what C++ libraries write to)."""
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else 2
        saved = os.dup(fd)
    except (OSError, ValueError, AttributeError):  # no real stderr (embedded, some test runners)
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            if sys.__stderr__ is not None:
                sys.__stderr__.flush()
            os.dup2(null.fileno(), fd)
            try:
                yield
            finally:
                os.dup2(saved, fd)
    finally:
        os.close(saved)
