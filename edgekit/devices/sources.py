"""Where frames come from, behind one iterator: an image, a folder of images, a video file, a camera (USB
index or Raspberry Pi camera via picamera2), or a network stream (RTSP/HTTP URL).

Live sources (cameras, streams) are read on a capture thread that keeps only the latest frame, so inference
never falls behind; a camera or stream that drops is reopened with backoff.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.images import is_image_file, read_image

CHECKPOINT_SUFFIXES = {".pt", ".pth", ".ckpt"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".ts"}
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
logger = logging.getLogger(__name__)


@dataclass
class Frame:
    """One BGR uint8 image and where it came from."""

    image: np.ndarray
    name: str
    index: int


@dataclass
class Backoff:
    """Waits between reconnection attempts: `first` seconds, doubling up to `longest`; gives up after
    `give_up` seconds without a frame (None: never)."""

    first: float = 0.5
    longest: float = 8.0
    give_up: float | None = 60.0

    def delays(self) -> Iterator[float]:
        """The successive waits, until the give-up time is spent."""
        delay, spent = self.first, 0.0
        while self.give_up is None or spent < self.give_up:
            wait = delay if self.give_up is None else min(delay, self.give_up - spent)
            yield wait
            spent += wait
            delay = min(delay * 2, self.longest)


class LatestFrame:
    """A capture thread that reads frames as fast as the source delivers them and keeps only the newest.

    `read` returns (ok, image) like cv2.VideoCapture.read; `reopen` is called after a failed read and
    returns False when the source is gone for good (the thread then ends the stream). `pace` (frames per
    second) paces a file like the camera it stands in for.
    """

    def __init__(
        self,
        read: Callable[[], tuple[bool, np.ndarray | None]],
        reopen: Callable[[], bool],
        pace: float | None = None,
    ):
        self._read, self._reopen, self._pace = read, reopen, pace
        self._cond = threading.Condition()
        self._image: np.ndarray | None = None
        self._seq = 0
        self._taken = 0
        self.dropped = 0
        self.error: BaseException | None = None
        self._done = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgekit-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_time = time.perf_counter()
        try:
            while not self._stop.is_set():
                ok, image = self._read()
                if not ok or image is None:
                    if self._stop.is_set() or not self._reopen():
                        break
                    next_time = time.perf_counter()
                    continue
                if self._pace:
                    next_time += 1.0 / self._pace
                    delay = next_time - time.perf_counter()
                    if delay > 0:
                        self._stop.wait(delay)
                with self._cond:
                    if self._seq > self._taken:
                        self.dropped += 1
                    self._image, self._seq = image, self._seq + 1
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the consumer, who raises it in its own thread
            self.error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def get(self, timeout: float | None = None) -> np.ndarray | None:
        """The newest frame not yet returned, waiting for one; None when the source has ended."""
        with self._cond:
            ready = self._cond.wait_for(lambda: self._seq > self._taken or self._done, timeout)
            if self.error is not None:
                raise self.error
            if not ready or self._seq <= self._taken:
                return None
            self._taken = self._seq
            return self._image

    def stop(self) -> None:
        """Stop the thread (it finishes its current read) and wait for it."""
        self._stop.set()
        self._thread.join(timeout=10)


def _is_stream(text: str) -> bool:
    return text.lower().startswith(STREAM_SCHEMES)


def _quiet_opencv() -> None:
    """OpenCV logs every failed open on stderr; edgekit says what failed in its own one line."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own messages (read when it first starts)
    logging_mod = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_mod is not None:
        logging_mod.setLogLevel(logging_mod.LOG_LEVEL_SILENT)


class Source:
    """Iterates the frames of an image, a folder, a video file, a camera or a stream as `Frame`s.

    `kind` is image, folder, video, camera (USB index), stream (RTSP/HTTP URL) or picamera (``picamera`` or
    ``picamera:N``, Raspberry Pi cameras through picamera2). Options:

    - `live`: read on a capture thread keeping only the newest frame (default for cameras and streams; a
      video file read live is paced at its own frame rate, as a camera would deliver it);
    - `loop`: start a video file again at its end (demos, soak tests);
    - `backoff`: how a dropped camera or stream (or a looping file that disappears) is reopened;
    - `timeout`: seconds to wait for a stream to open or deliver a frame;
    - `picamera`: options for the picamera2 adapter (see `edgekit.devices.picamera.PiCamera`).
    """

    def __init__(
        self,
        spec: str | Path | int,
        *,
        live: bool | None = None,
        loop: bool = False,
        backoff: Backoff | None = None,
        timeout: float = 10.0,
        picamera: dict | None = None,
    ):
        self.spec = spec
        self.fps: float | None = None
        self.loop, self.timeout = loop, timeout
        self.backoff = backoff or Backoff()
        self.picamera_options = picamera or {}
        self.camera = None  # the PiCamera adapter while a picamera source runs
        self.reconnects = 0
        self.dropped = 0
        text = str(spec)
        path = Path(text)
        if isinstance(spec, int) or text.isdigit():
            self.kind, self.index = "camera", int(text)
        elif text == "picamera" or text.startswith("picamera:"):
            self.kind, self.index = "picamera", int(text.partition(":")[2] or 0)
        elif _is_stream(text):
            self.kind = "stream"
        elif path.is_dir():
            self.kind = "folder"
            self.files = sorted(p for p in path.iterdir() if is_image_file(p))
            if not self.files:
                raise EdgekitError(f"no images in folder: {path}")
        elif not path.exists() and any(c in text for c in "*?["):  # a glob, as `yolo predict` takes
            self.kind = "folder"
            found = sorted(Path(p) for p in glob.glob(text, recursive=True))
            self.files = [p for p in found if p.is_file() and is_image_file(p)]
            if not self.files:
                raise EdgekitError(f"no images match {text}")
        elif path.suffix.lower() in CHECKPOINT_SUFFIXES:
            raise EdgekitError(
                f"{path.name} is a training checkpoint, not a model edgekit runs: convert it first "
                f"(edgekit convert {text}), then predict with the file that writes"
            )
        elif not path.exists():
            raise EdgekitError(f"source not found: {path}")
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            self.kind = "video"
        elif is_image_file(path):
            self.kind = "image"
        else:
            raise EdgekitError(
                f"unsupported source type '{path.suffix}': give an image, a folder of images, a video, a camera "
                "index, picamera or a stream URL"
            )
        self.live = live if live is not None else self.kind in ("camera", "stream", "picamera")
        self.skipped: list[str] = []

    @property
    def stem(self) -> str:
        """A short name for outputs made from this source (file stem, camera0, picamera0, stream)."""
        if self.kind in ("camera", "picamera"):
            return f"{self.kind}{self.index}"
        if self.kind == "stream":
            return "stream"
        return Path(str(self.spec)).stem

    @property
    def description(self) -> str:
        """What this source is, in words, for messages."""
        if self.kind == "camera":
            return f"camera {self.index}"
        if self.kind == "picamera":
            return f"Raspberry Pi camera {self.index}"
        return f"{self.kind} {self.spec}"

    def __iter__(self) -> Iterator[Frame]:
        if self.kind == "image":
            yield Frame(read_image(self.spec), Path(self.spec).name, 0)
        elif self.kind == "folder":
            for i, file in enumerate(self.files):
                try:
                    image = read_image(file)
                except EdgekitError as exc:
                    print(f"edgekit: skipping {exc}", file=sys.stderr)
                    self.skipped.append(file.name)
                    continue
                yield Frame(image, file.name, i)
        elif self.kind == "picamera":
            yield from self._picamera()
        else:
            yield from self._capture()

    # OpenCV: video files, USB cameras, streams

    def _open(self) -> cv2.VideoCapture:
        """Open the capture once; EdgekitError says which source and why not."""
        _quiet_opencv()
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.timeout * 1000),
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.timeout * 1000)]
        if self.kind == "camera":
            cap = cv2.VideoCapture(self.index)
        elif self.kind == "stream":
            start = time.perf_counter()
            cap = cv2.VideoCapture(str(self.spec), cv2.CAP_FFMPEG, timeouts)
            if not cap.isOpened():
                waited = time.perf_counter() - start
                if waited >= self.timeout * 0.9:
                    raise EdgekitError(f"stream {self.spec} did not answer within {self.timeout:g} s (timed out)")
                raise EdgekitError(f"cannot open stream {self.spec}: the server refused it or sent no video")
        else:
            if not Path(str(self.spec)).is_file():
                raise EdgekitError(f"video {self.spec} is gone")
            cap = cv2.VideoCapture(str(self.spec))
        if not cap.isOpened():
            raise EdgekitError(self._open_failure())
        return cap

    def _open_failure(self) -> str:
        if self.kind != "camera":
            return f"cannot open video {self.spec}: OpenCV cannot decode this file (is it a complete video?)"
        node = Path(f"/dev/video{self.index}")
        if sys.platform.startswith("linux") and not node.exists():
            found = sorted(str(p) for p in Path("/dev").glob("video*"))
            present = f"present: {', '.join(found)}" if found else "no /dev/video* device at all"
            return f"cannot open camera {self.index}: {node} does not exist ({present}); is the camera plugged in?"
        if sys.platform.startswith("linux") and not os.access(node, os.R_OK | os.W_OK):
            return f"cannot open camera {self.index}: no permission on {node} (add your user to the 'video' group)"
        return (f"cannot open camera {self.index}: the device exists but did not start (in use by another "
                "program, or a format it does not support)")

    def _reopen(self, cap_holder: list) -> bool:
        """Release and reopen after a failed read, waiting with backoff; False when the source is gone or
        has ended (a video file that does not loop)."""
        cap_holder[0].release()
        if self.kind == "video" and not self.loop:
            return False
        if self.kind == "video" and Path(str(self.spec)).is_file():
            cap_holder[0] = self._open()  # a looping file at its end: start again at once
            return True
        for delay in self.backoff.delays():
            logger.warning("lost %s; reopening in %.1f s", self.description, delay)
            time.sleep(delay)
            try:
                cap_holder[0] = self._open()
            except EdgekitError as exc:
                logger.info("%s", exc)
                continue
            self.reconnects += 1
            logger.warning("reopened %s", self.description)
            return True
        raise EdgekitError(f"lost {self.description} and it did not come back within {self.backoff.give_up:g} s")

    def _capture(self) -> Iterator[Frame]:
        cap = [self._open()]
        fps = cap[0].get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else 30.0
        stem = f"camera{self.index}" if self.kind == "camera" else Path(str(self.spec)).name
        count = 0
        reader = None
        try:
            if self.live:
                pace = self.fps if self.kind == "video" else None
                reader = LatestFrame(lambda: cap[0].read(), lambda: self._reopen(cap), pace)
                while True:
                    image = reader.get(timeout=None)
                    if image is None:
                        break
                    self.dropped = reader.dropped
                    yield Frame(image, f"{stem}#{count}", count)
                    count += 1
            else:
                while True:
                    ok, image = cap[0].read()
                    if not ok:
                        if self._reopen(cap):
                            continue
                        break
                    yield Frame(image, f"{stem}#{count}", count)
                    count += 1
        finally:
            if reader is not None:
                reader.stop()
            cap[0].release()
        if count == 0:
            raise EdgekitError(f"no frames could be decoded from {stem}")

    # picamera2: Raspberry Pi cameras

    def _picamera(self) -> Iterator[Frame]:
        from edgekit.devices.picamera import PiCamera

        with PiCamera(self.index, **self.picamera_options) as camera:
            self.camera = camera
            self.fps = camera.fps
            try:
                if not self.live:
                    for count in range(sys.maxsize):
                        yield Frame(camera.capture(), f"picamera{self.index}#{count}", count)
                    return
                reader = LatestFrame(lambda: (True, camera.capture()), lambda: False)
                try:
                    count = 0
                    while (image := reader.get()) is not None:
                        self.dropped = reader.dropped
                        yield Frame(image, f"picamera{self.index}#{count}", count)
                        count += 1
                finally:
                    reader.stop()
            finally:
                self.camera = None
