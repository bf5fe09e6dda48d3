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
import warnings
from collections.abc import Iterator

LOGGER = logging.getLogger("edgekit")
LOGGER.addHandler(logging.NullHandler())
VERBOSE_ENV = "EDGEKIT_VERBOSE"


def get_logger(name: str = "edgekit") -> logging.Logger:
    """The edgekit logger (or a child of it, e.g. ``edgekit.convert``)."""
    return logging.getLogger(name)


@contextlib.contextmanager
def printed(level: int = logging.INFO) -> Iterator[None]:
    """While inside, print edgekit's log records of `level` and above as plain lines on stdout (what the
    CLI does); warnings and errors of other libraries stay with them."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(level)
    saved = LOGGER.level, LOGGER.propagate
    LOGGER.addHandler(handler)
    LOGGER.setLevel(level)
    LOGGER.propagate = False
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(saved[0])
        LOGGER.propagate = saved[1]


@contextlib.contextmanager
def silenced(stderr: bool = True) -> Iterator[None]:
    """Keep other libraries' prints, warnings and log records (below ERROR) off the terminal.

    stdout is always captured; stderr too unless `stderr` is False. Exceptions pass through. Does
    nothing when the ``EDGEKIT_VERBOSE`` environment variable is set.
    """
    if os.environ.get(VERBOSE_ENV):
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
                with contextlib.redirect_stderr(sink):
                    yield
            else:
                yield
    finally:
        logging.disable(previous)
