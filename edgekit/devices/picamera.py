"""Raspberry Pi cameras through picamera2: a main stream for display and a small "lores" stream at the model's
input size for inference, with detections drawn onto the main stream in picamera2's pre-callback.

picamera2 exists only on Raspberry Pi OS (it needs libcamera's Python bindings), so it is imported when a
camera is opened, never at module import. Colour formats, as numpy sees them: ``RGB888`` is B,G,R per
pixel (OpenCV's order), ``BGR888`` is R,G,B, ``XRGB8888`` is B,G,R,X, ``XBGR8888`` is R,G,B,X, and
``YUV420`` is an I420 planar buffer whose rows may be padded to a stride.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from edgekit.detections import Detections
from edgekit.errors import EdgekitError

FORMATS = ("RGB888", "BGR888", "XRGB8888", "XBGR8888", "YUV420")


def to_bgr(array: np.ndarray, fmt: str, size: tuple[int, int]) -> np.ndarray:
    """An HxWx3 BGR uint8 copy of a picamera2 array in format `fmt`; `size` is the stream's (width, height)."""
    width, height = size
    if fmt == "RGB888":
        out = array[:height, :width, :3]
    elif fmt == "BGR888":
        out = array[:height, :width, 2::-1]
    elif fmt == "XRGB8888":
        out = array[:height, :width, :3]
    elif fmt == "XBGR8888":
        out = array[:height, :width, 2::-1]
    elif fmt == "YUV420":
        rows = height * 3 // 2
        if array.ndim != 2 or array.shape[0] < rows:
            raise EdgekitError(f"a YUV420 {width}x{height} buffer has {rows} rows; got shape {array.shape}")
        out = cv2.cvtColor(np.ascontiguousarray(array[:rows]), cv2.COLOR_YUV2BGR_I420)[:, :width]
    else:
        raise EdgekitError(f"unsupported picamera2 format {fmt!r} (edgekit reads {', '.join(FORMATS)})")
    return np.ascontiguousarray(out)


def lores_size(main: tuple[int, int], imgsz: int | tuple[int, int]) -> tuple[int, int]:
    """The (width, height) of a lores stream with the main stream's aspect that fits the model input
    (even numbers, as the ISP requires): the letterbox then pads it, and no pixel is scaled twice."""
    ih, iw = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    w, h = main
    scale = min(iw / w, ih / h, 1.0)
    return max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2)


class PiCamera:
    """One Raspberry Pi camera: `capture()` gives the lores stream as BGR for inference, `capture_main()` the
    main stream as BGR, and `show(detections)` sets what the pre-callback draws on the main stream (preview,
    recordings). `module` is the picamera2 module (imported here when not given)."""

    def __init__(
        self,
        index: int = 0,
        *,
        main: tuple[int, int] = (1280, 720),
        imgsz: int | tuple[int, int] = 320,
        main_format: str = "XRGB8888",
        lores_format: str = "YUV420",
        fps: float = 30.0,
        preview: bool = False,
        module: ModuleType | Any | None = None,
    ):
        for fmt in (main_format, lores_format):
            if fmt not in FORMATS:
                raise EdgekitError(f"unsupported picamera2 format {fmt!r} (edgekit reads {', '.join(FORMATS)})")
        self.index, self.fps, self.preview = index, fps, preview
        self.main, self.main_format = tuple(main), main_format
        self.lores, self.lores_format = lores_size(self.main, imgsz), lores_format
        self._module = module
        self._overlay: Detections | None = None
        self._lock = threading.Lock()
        self._capturing = threading.Lock()
        self.cam = None

    def open(self) -> PiCamera:
        """Configure and start the camera; a missing picamera2 or camera is a one-line EdgekitError."""
        module = self._module
        if module is None:
            try:
                import picamera2 as module
            except ImportError:
                raise EdgekitError(
                    "picamera2 is not installed: it exists on Raspberry Pi OS only (sudo apt install "
                    "python3-picamera2; in a venv, create it with --system-site-packages)"
                ) from None
        self._mapped = module.MappedArray
        try:
            self.cam = module.Picamera2(self.index)
        except (IndexError, RuntimeError) as exc:
            raise EdgekitError(f"cannot open Raspberry Pi camera {self.index}: {exc}") from None
        config = self.cam.create_video_configuration(
            main={"size": self.main, "format": self.main_format},
            lores={"size": self.lores, "format": self.lores_format},
            controls={"FrameRate": self.fps},
        )
        self.cam.configure(config)
        self.cam.pre_callback = self._draw
        self.cam.start(show_preview=self.preview)
        return self

    def capture(self) -> np.ndarray:
        """The next lores frame as BGR (the model's input, before the letterbox)."""
        with self._capturing:  # the capture thread and the main thread never call picamera2 at once
            array = self.cam.capture_array("lores")
        return to_bgr(array, self.lores_format, self.lores)

    def capture_main(self) -> np.ndarray:
        """The next main-stream frame as BGR, with the overlay drawn."""
        with self._capturing:
            array = self.cam.capture_array("main")
        return to_bgr(array, self.main_format, self.main)

    def show(self, detections: Detections | None) -> None:
        """Detections in lores pixels, drawn on every main-stream frame from now on (None clears them)."""
        with self._lock:
            self._overlay = detections

    def _draw(self, request) -> None:
        with self._lock:
            found = self._overlay
        if found is None or not len(found):
            return
        sx, sy = self.main[0] / self.lores[0], self.main[1] / self.lores[1]
        scaled = replace(found, xyxy=found.xyxy * np.array([sx, sy, sx, sy], np.float32),
                         image_size=(self.main[1], self.main[0]))
        with self._mapped(request, "main") as mapped:
            mapped.array[...] = scaled.draw(mapped.array)

    def close(self) -> None:
        """Stop and release the camera."""
        if self.cam is not None:
            with self._capturing:  # a capture in progress finishes first, and none starts while stopping
                try:
                    self.cam.stop()
                finally:
                    self.cam.close()
                    self.cam = None

    def __enter__(self) -> PiCamera:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
