"""A stand-in for picamera2 (which exists only on Raspberry Pi OS) offering exactly the calls edgekit's
adapter makes: Picamera2(num), create_video_configuration(main=, lores=, controls=), configure, pre_callback,
start(show_preview=), capture_array(name), stop, close, and MappedArray(request, name).

It renders the bundled photo (or frames of the video in $PICAMERA2_STANDIN_VIDEO) into the configured main
and lores buffers in their formats (YUV420 rows padded to a stride of 64) and runs pre_callback on each
request before handing the array out, as picamera2 does.
"""

from __future__ import annotations

import os
import time

import cv2
import numpy as np

from edgekit.assets import shapes_image

instances: list = []


class _Request:
    def __init__(self, buffers):
        self.buffers = buffers


class MappedArray:
    def __init__(self, request, stream):
        self.array = request.buffers[stream]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _encode(bgr: np.ndarray, fmt: str) -> np.ndarray:
    h, w = bgr.shape[:2]
    if fmt == "YUV420":
        stride = -(-w // 64) * 64
        padded = cv2.copyMakeBorder(bgr, 0, 0, 0, stride - w, cv2.BORDER_CONSTANT)
        return cv2.cvtColor(padded, cv2.COLOR_BGR2YUV_I420)
    order = {"RGB888": bgr, "BGR888": bgr[..., ::-1], "XRGB8888": bgr, "XBGR8888": bgr[..., ::-1]}[fmt]
    if fmt.startswith("X"):
        order = np.concatenate([order, np.full((h, w, 1), 255, np.uint8)], axis=2)
    return np.ascontiguousarray(order)


class Picamera2:
    def __init__(self, camera_num=0):
        self.camera_num, self.pre_callback, self.calls = camera_num, None, []
        self._video = None
        if os.environ.get("PICAMERA2_STANDIN_VIDEO"):
            self._video = cv2.VideoCapture(os.environ["PICAMERA2_STANDIN_VIDEO"])
        instances.append(self)

    def create_video_configuration(self, main, lores, controls):
        self.calls.append("create_video_configuration")
        return {"main": main, "lores": lores, "controls": controls}

    def configure(self, config):
        self.calls.append("configure")
        self.config = config

    def start(self, show_preview=False):
        self.calls.append(("start", show_preview))

    def _scene(self) -> np.ndarray:
        if self._video is None:
            return cv2.imread(str(shapes_image()))
        time.sleep(1 / 30)  # a camera delivers frames at its frame rate
        ok, image = self._video.read()
        if not ok:
            self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._video.read()
        return image

    def capture_array(self, name="main"):
        self.calls.append(("capture_array", name))
        scene = self._scene()
        buffers = {}
        for stream in ("main", "lores"):
            w, h = self.config[stream]["size"]
            bgr = cv2.resize(scene, (w, h), interpolation=cv2.INTER_AREA)
            buffers[stream] = _encode(bgr, self.config[stream]["format"])
        request = _Request(buffers)
        if self.pre_callback is not None:
            self.pre_callback(request)
        return request.buffers[name].copy()

    def stop(self):
        self.calls.append("stop")

    def close(self):
        self.calls.append("close")
