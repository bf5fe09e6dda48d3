"""Checks every layer shares: an input size given as one number or height,width; sizes that the model's stride
divides; a class count that must match the model's. One wording each, wherever the user meets it."""

from __future__ import annotations

from collections.abc import Sequence

from edgekit.errors import EdgekitError


def image_size(imgsz: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) in pixels from one size (square) or a height,width pair.

    Raises:
        EdgekitError: not one or two whole numbers, or a size that is not positive.
    """
    values = [imgsz] if isinstance(imgsz, int) else list(imgsz)
    if len(values) not in (1, 2) or not all(isinstance(v, int) or float(v).is_integer() for v in values):
        raise EdgekitError(f"image size must be one number or height,width; got {values}")
    size = (int(values[0]), int(values[-1]))
    if min(size) <= 0:
        raise EdgekitError(f"image size must be positive; got {list(size)}")
    return size


def check_stride(imgsz: int | Sequence[int], stride: int) -> tuple[int, int]:
    """(height, width) of `imgsz` after checking that the model's `stride` (its largest downsampling, pixels)
    divides both sides.

    Raises:
        EdgekitError: a side is not positive or not a multiple of `stride`.
    """
    size = image_size(imgsz)
    if any(s % stride for s in size):
        raise EdgekitError(f"image size {list(size)} must be positive multiples of the model's stride {stride}")
    return size


def check_class_count(given: int, expected: int, what: str, hint: str = "") -> None:
    """Raise EdgekitError ``"{given} {what}, the model has {expected} classes[; hint]"`` when the counts differ
    (e.g. ``check_class_count(len(names), nc, "class names given")``)."""
    if given != expected:
        raise EdgekitError(f"{given} {what}, the model has {expected} classes" + (f"; {hint}" if hint else ""))
