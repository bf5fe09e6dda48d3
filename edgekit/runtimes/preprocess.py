"""Image to input tensor, driven only by the artifact's metadata (letterbox, color, range, layout, dtype)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from edgekit.meta import InputSpec


@dataclass(frozen=True)
class LetterboxInfo:
    """How a source image sits in the network input, to map boxes back to source pixels."""

    scale: float  # network pixels per source pixel (horizontal)
    pad: tuple[int, int]  # (left, top) padding in network pixels
    source_size: tuple[int, int]  # (height, width)
    input_size: tuple[int, int]  # (height, width)
    scale_y: float | None = None  # vertical scale when it differs (stretched, not letterboxed)

    @property
    def scales(self) -> tuple[float, float]:
        """(horizontal, vertical) network pixels per source pixel."""
        return self.scale, self.scale if self.scale_y is None else self.scale_y


def letterbox(
    image: np.ndarray,
    size: tuple[int, int],
    align: str = "center",
    pad_value: int = 114,
    keep_ratio: bool = True,
    rounding: str = "round",
) -> tuple[np.ndarray, LetterboxInfo]:
    """Fit `image` into `size` (h, w): scaled keeping its aspect ratio and padded, or stretched.

    `rounding` is how the scaled size is made whole: ``round`` (Ultralytics, YOLOv9) or ``floor``
    (DAMO-YOLO's keep-ratio resize).
    """
    h, w = image.shape[:2]
    (new_w, new_h), info = fit(image.shape[:2], size, align, keep_ratio, rounding)
    resized = image if (new_w, new_h) == (w, h) else cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if not keep_ratio:
        return resized, info
    left, top = info.pad
    right, bottom = size[1] - new_w - left, size[0] - new_h - top
    if left or top or right or bottom:
        resized = cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(pad_value,) * 3)
    return resized, info


def fit(
    source_size: tuple[int, int],
    size: tuple[int, int],
    align: str = "center",
    keep_ratio: bool = True,
    rounding: str = "round",
) -> tuple[tuple[int, int], LetterboxInfo]:
    """Where a (h, w) image goes in a `size` (h, w) input: its scaled (width, height) and the LetterboxInfo."""
    h, w = source_size
    out_h, out_w = size
    if not keep_ratio:
        return (out_w, out_h), LetterboxInfo(out_w / w, (0, 0), (h, w), (out_h, out_w), out_h / h)
    scale = min(out_h / h, out_w / w)
    whole = math.floor if rounding == "floor" else round
    new_w, new_h = min(out_w, max(1, int(whole(w * scale)))), min(out_h, max(1, int(whole(h * scale))))
    left, top = ((out_w - new_w) // 2, (out_h - new_h) // 2) if align == "center" else (0, 0)
    return (new_w, new_h), LetterboxInfo(scale, (left, top), (h, w), (out_h, out_w))


class Preprocessor:
    """Letterbox + tensor for one model, written in place into a tensor reused from call to call.

    Every input without mean/std (what edgekit and Ultralytics artifacts take): the image is resized once
    into a reused buffer and converted straight into the content window of the reused tensor, and the
    padding is written only when the frame geometry changes. float32 is a multiply per channel plane;
    integer inputs (uint8 raw, or int8/uint8 quantized with a scale and zero point) are a 256-entry lookup
    table computed with :func:`to_tensor`'s own arithmetic. Other inputs (float16, mean/std) go through
    :func:`preprocess`. The tensor returned is the same array every call: it holds the last frame only (copy
    it to keep it). Results equal :func:`preprocess`'s exactly.
    """

    def __init__(self, spec: InputSpec, imgsz: tuple[int, int]):
        self.spec = spec
        self.imgsz = (int(imgsz[0]), int(imgsz[1]))
        plain = spec.mean is None and spec.std is None
        self._scale = np.float32(1.0 / 255.0 if spec.range[1] == 1.0 else 1.0)
        self._lut: np.ndarray | None = None
        if plain and spec.dtype in ("uint8", "int8") and (spec.quant is not None or spec.dtype == "uint8"):
            levels = np.arange(256, dtype=np.uint8).reshape(1, 256, 1)
            self._lut = to_tensor(np.repeat(levels, 3, axis=2), replace(spec, layout="NHWC"), rgb=True)[0, 0, :, 0]
        self.in_place = (
            plain and spec.channels == 3 and (self._lut is not None or (spec.dtype == "float32" and spec.quant is None))
        )
        self._tensor: np.ndarray | None = None
        self._resized: np.ndarray | None = None
        self._geometry: tuple | None = None

    def _convert(self, pixels: np.ndarray, out: np.ndarray) -> None:
        if self._lut is None:
            np.multiply(pixels, self._scale, out=out, dtype=np.float32)
        else:
            written = cv2.LUT(pixels, self._lut.reshape(1, 256), dst=out)
            if not np.shares_memory(written, out):  # OpenCV could not write in place
                out[...] = written

    def __call__(self, image: np.ndarray, rgb: bool = False) -> tuple[np.ndarray, LetterboxInfo]:
        """One HxWx3 uint8 image (BGR unless `rgb`) -> (tensor [1,3,H,W] or [1,H,W,3], LetterboxInfo)."""
        if not self.in_place:
            return preprocess(image, self.spec, self.imgsz, rgb)
        spec, (out_h, out_w) = self.spec, self.imgsz
        lb = spec.letterbox
        (new_w, new_h), info = fit(image.shape[:2], self.imgsz, lb.align, lb.keep_ratio, lb.rounding)
        nchw = spec.layout == "NCHW"
        geometry = (new_w, new_h, info.pad, lb.pad_value)
        if self._geometry != geometry:
            shape = (1, 3, out_h, out_w) if nchw else (1, out_h, out_w, 3)
            if self._lut is None:
                self._tensor = np.full(shape, np.float32(lb.pad_value) * self._scale, np.float32)
            else:
                self._tensor = np.full(shape, self._lut[lb.pad_value], self._lut.dtype)
            self._resized = np.empty((new_h, new_w, 3), np.uint8)
            self._geometry = geometry
        if image.shape[:2] == (new_h, new_w):
            resized = image
        else:
            resized = cv2.resize(image, (new_w, new_h), dst=self._resized, interpolation=cv2.INTER_LINEAR)
        left, top = info.pad
        window = (slice(top, top + new_h), slice(left, left + new_w))
        swap = (spec.color == "RGB") != rgb
        if nchw:
            channels = cv2.split(resized)
            for plane, channel in zip(self._tensor[0], channels[::-1] if swap else channels):
                self._convert(channel, plane[window])
        else:
            if swap:
                resized = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
            self._convert(resized, self._tensor[0][window])
        return self._tensor, info


def to_tensor(image: np.ndarray, spec: InputSpec, rgb: bool = False) -> np.ndarray:
    """Turn one letterboxed HxWx3 uint8 image into a batch-of-one tensor as `spec` describes (a one-channel
    model gets the image's luminance, as cv2.COLOR_BGR2GRAY computes it)."""
    if spec.channels == 1:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY if rgb else cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        image = gray[:, :, None]
        x = image if spec.dtype == "uint8" and spec.quant is None else np.multiply(
            image, np.float32(1.0 / 255.0 if spec.range[1] == 1.0 else 1.0), dtype=np.float32
        )
        x = (x.transpose(2, 0, 1) if spec.layout == "NCHW" else x)[None]
        x = np.ascontiguousarray(x)
        if spec.mean is not None:
            x = x - np.float32(spec.mean[0])
        if spec.std is not None:
            x = x / np.float32(spec.std[0])
        if spec.quant is not None:
            return quantize(x, spec.quant, spec.dtype)
        return x.astype(np.float16) if spec.dtype == "float16" else x
    swap = (spec.color == "RGB") != rgb
    raw = spec.dtype == "uint8" and spec.quant is None
    scale = np.float32(1.0 / 255.0 if spec.range[1] == 1.0 else 1.0)
    if spec.layout == "NCHW":
        channels = cv2.split(image)  # per-channel planes: contiguous reads and writes, fastest on small CPUs
        if swap:
            channels = channels[::-1]
        if raw:
            return np.stack(channels)[None]
        x = np.empty((1, 3, *image.shape[:2]), np.float32)
        for plane, channel in zip(x[0], channels):
            np.multiply(channel, scale, out=plane, dtype=np.float32)
    else:
        if swap:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if raw:
            return np.ascontiguousarray(image)[None]
        x = np.multiply(image, scale, dtype=np.float32)[None]
    if spec.mean is not None or spec.std is not None:
        shape = (1, 3, 1, 1) if spec.layout == "NCHW" else (1, 1, 1, 3)
        if spec.mean is not None:
            x -= np.asarray(spec.mean, np.float32).reshape(shape)
        if spec.std is not None:
            x /= np.asarray(spec.std, np.float32).reshape(shape)
    if spec.quant is not None:
        return quantize(x, spec.quant, spec.dtype)
    if spec.dtype == "float16":
        return x.astype(np.float16)
    return x


def quantize(x: np.ndarray, quant: tuple[float, int], dtype: str) -> np.ndarray:
    """Affine-quantize float values to int8/uint8 with (scale, zero_point)."""
    scale, zero_point = quant
    info = np.iinfo(dtype)
    q = np.round(x / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, quant: tuple[float, int]) -> np.ndarray:
    """Inverse of :func:`quantize`."""
    scale, zero_point = quant
    return (q.astype(np.float32) - zero_point) * np.float32(scale)


def preprocess(
    image: np.ndarray, spec: InputSpec, imgsz: tuple[int, int], rgb: bool = False
) -> tuple[np.ndarray, LetterboxInfo]:
    """Letterbox and convert one HxWx3 uint8 image (BGR unless `rgb`) for the network."""
    lb = spec.letterbox
    boxed, info = letterbox(image, imgsz, lb.align, lb.pad_value, lb.keep_ratio, lb.rounding)
    return to_tensor(boxed, spec, rgb), info
