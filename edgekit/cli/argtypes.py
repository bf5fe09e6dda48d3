"""The argparse value types the verbs share: each turns one command-line word into a checked value or says,
in one line, what it expected."""

from __future__ import annotations

import argparse
from pathlib import Path


def fraction(text: str) -> float:
    """A number in 0..1 (a confidence or IoU threshold)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a value in 0..1, got {value}")
    return value


def positive(text: str) -> int:
    """An integer above 0 (runs, threads, sizes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def imgsz(text: str) -> list[int]:
    """An input size: SIZE, or HEIGHT,WIDTH (HEIGHTxWIDTH) in pixels; returns one or two positive ints."""
    parts = text.replace("x", ",").split(",")
    try:
        values = [int(p) for p in parts if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SIZE or HEIGHT,WIDTH, got {text!r}") from None
    if len(values) not in (1, 2) or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected SIZE or HEIGHT,WIDTH in pixels, each above 0, got {text!r}")
    return values


def names(text: str) -> list[str]:
    """Class names: comma-separated, or a file with one name per line (blank lines ignored)."""
    path = Path(text)
    if path.is_file():
        lines = [line.strip() for line in path.read_text().splitlines()]
        return [line for line in lines if line]
    return [n.strip() for n in text.split(",") if n.strip()]


def items(text: str) -> list[str]:
    """Comma-separated words (class ids or names), blanks dropped."""
    return [c.strip() for c in text.split(",") if c.strip()]


def thread_list(text: str) -> list[int]:
    """Thread counts like 1,2,4: positive integers."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2,4, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive thread counts like 1,2,4, got {text!r}")
    return values


def add_shared(parser: argparse.ArgumentParser) -> None:
    """The --shared / --no-shared switches of every verb that opens an engine (EngineSettings.shared; neither:
    decided from the machine's load when the engine opens)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--shared", action="store_const", const=True, default=None,
        help="the machine runs other busy processes: idle engine threads sleep instead of spin-waiting "
             "(default: sleep if other processes keep half a core or more busy when the engine opens, else spin)",
    )
    group.add_argument(
        "--no-shared", dest="shared", action="store_const", const=False,
        help="the detector has the cores to itself: idle engine threads spin-wait between operators",
    )
