"""The frame loop and the small pieces every camera loop needs: a frame-rate meter, a status line drawn on
frames, the one video writer (atomic: finalized and playable however the loop ends, Ctrl-C included, and
nothing left behind by an error or an empty recording), and `predict`'s loop over a source."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.fileio import atomic_path, atomic_write_bytes
from edgekit.interrupts import Interrupts

if TYPE_CHECKING:
    from edgekit.detections import Detections
    from edgekit.devices.sources import Frame, Source
    from edgekit.runtimes.detector import Detector, Timings


class FpsMeter:
    """Frames per second over a sliding window of the last `window` frames."""

    def __init__(self, window: int = 30):
        self.window = window
        self._times: list[float] = []
        self.frames = 0

    def tick(self) -> float:
        """Count one frame now; returns the current rate."""
        self._times.append(time.perf_counter())
        self._times = self._times[-(self.window + 1) :]
        self.frames += 1
        return self.fps

    @property
    def fps(self) -> float:
        """The current rate (0 until two frames were counted)."""
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)


def draw_status(image: np.ndarray, text: str) -> np.ndarray:
    """Draw a one-line status (FPS, counts) in the top-left corner, in place; returns the image."""
    scale = max(0.5, image.shape[0] / 720)
    thick = max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(image, (0, 0), (w + 12, h + base + 12), (0, 0, 0), -1)
    cv2.putText(image, text, (6, h + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return image


class VideoOut:
    """An MP4 (mp4v) recording, used as ``with VideoOut(path, fps) as out: out.write(frame)``.

    Frames go to a temporary file beside `path` that is renamed onto it when the block ends normally (end
    of input, or a Ctrl-C caught inside the block): a finalized, playable video. An exception leaving the
    block removes it, and a recording of no frames leaves no file at all. The writer opens at the first
    frame, at that frame's size (a later frame of another size is resized to it); `fps` may be a function
    asked then, since a source knows its rate only once it is open.
    """

    def __init__(self, path: str | Path, fps: float | Callable[[], float | None] = 30.0):
        self.path = Path(path)
        self.fps = fps
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (width, height), once the first frame is written
        self._stack = contextlib.ExitStack()
        self._writer: cv2.VideoWriter | None = None

    def write(self, image: np.ndarray) -> None:
        """Append one BGR frame (HxWx3 uint8)."""
        h, w = image.shape[:2]
        if self._writer is None:
            self._open((w, h))
        if (w, h) != self.size:
            image = cv2.resize(image, self.size)
        self._writer.write(image)
        self.frames += 1

    def _open(self, size: tuple[int, int]) -> None:
        fps = self.fps() if callable(self.fps) else self.fps
        tmp = self._stack.enter_context(atomic_path(self.path))
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps or 30.0, size)
        self._stack.callback(writer.release)  # released before atomic_path renames or removes the file
        if not writer.isOpened():
            raise EdgekitError(f"cannot write a video to {self.path}")
        self._writer, self.size = writer, size

    def __enter__(self) -> VideoOut:
        return self

    def __exit__(self, *exc_info) -> bool:
        return self._stack.__exit__(*exc_info)


def model_and_source(model: str | None, source: str | None) -> tuple[Path, str]:
    """What `edgekit predict [MODEL] [SOURCE]` runs: a lone argument that is not a model file is the source;
    the model defaults to the embedded demo model, the source to the bundled sample image."""
    from edgekit import assets
    from edgekit.runtimes.engine import is_artifact

    if model is not None and source is None and not is_artifact(model):
        model, source = None, model
    return (
        Path(model) if model else assets.default_model(),
        source if source is not None else str(assets.sample_image()),
    )


def check_not_source_folder(save: Path, source: Source, what: str = "--save") -> None:
    """Raise EdgekitError before any frame is read when `save` is the folder the source reads (its images
    would be overwritten); `what` names it in the message."""
    if source.kind == "folder" and save.resolve() == Path(str(source.spec)).resolve():
        raise EdgekitError(f"{what} {save} is the source folder; choose another folder so no image is overwritten")


def frame_line(frame: Frame, found: Detections, t: Timings) -> str:
    """One frame as `predict` prints it: name, size, counts per class and the stage times."""
    counts = ", ".join(f"{n} {name}" for name, n in found.counts().items()) or "no detections"
    return (f"{frame.name} {frame.image.shape[1]}x{frame.image.shape[0]}: {counts} "
            f"(pre {t.pre:.1f} ms, infer {t.infer:.1f} ms, post {t.post:.1f} ms)")


@dataclass
class PredictRun:
    """What a predict loop did: frames, summed stage times (ms), where it saved, whether Ctrl-C ended it."""

    frames: int = 0
    pre: float = 0.0
    infer: float = 0.0
    post: float = 0.0
    saved: Path | None = None
    interrupted: bool = False

    def summary(self) -> str:
        """The closing line: frames and mean stage times (call only when a frame was seen)."""
        pre, infer, post = (v / self.frames for v in (self.pre, self.infer, self.post))
        where = f", saved to {self.saved}" if self.saved else ""
        return f"{self.frames} frame(s): mean pre {pre:.1f} ms, infer {infer:.1f} ms, post {post:.1f} ms{where}"


def predict(
    detector: Detector,
    source: Source,
    *,
    save: Path | None = None,
    as_json: bool = False,
    out: TextIO | None = None,
    log: TextIO | None = None,
) -> PredictRun:
    """Detect on every frame of `source` and report each one: a JSON line per frame on `out` (`as_json`), or a
    text line on `log` for every image and every 30th video or camera frame. With `save`, annotated images
    are written there under their own names, a video or camera as `<source stem>.mp4` (see VideoOut).

    Ctrl-C ends the loop and keeps what was recorded (the run says `interrupted`); before the first frame of
    a video was recorded it propagates, leaving nothing. Streams default to stdout / stderr.
    """
    out = out or sys.stdout
    log = log or sys.stderr
    run = PredictRun(saved=save)
    video = save is not None and source.kind not in ("image", "folder")
    recording = VideoOut(save / f"{source.stem}.mp4", lambda: source.fps) if video else contextlib.nullcontext()
    with recording, Interrupts() as interrupts:
        try:
            for frame in source:
                interrupts.check()  # a Ctrl-C some code swallowed while the frame was read still ends the loop
                found = detector(frame.image)
                t = detector.timings
                run.frames += 1
                run.pre, run.infer, run.post = run.pre + t.pre, run.infer + t.infer, run.post + t.post
                if as_json:
                    print(found.to_json(source=frame.name, frame=frame.index, timings_ms=t.as_dict()), file=out,
                          flush=True)
                elif source.kind in ("image", "folder") or run.frames % 30 == 1:
                    print(frame_line(frame, found, t), file=log)
                if save is not None:
                    drawn = found.draw(frame.image)
                    if video:
                        recording.write(drawn)
                    else:
                        _save_image(save / frame.name, drawn)
                interrupts.check()  # ... or during this one: kept, then the loop ends without waiting for another
        except KeyboardInterrupt:
            if video and not recording.frames:
                raise
            run.interrupted = True
    return run


def _save_image(target: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(target.suffix or ".jpg", image)
    if not ok:
        raise EdgekitError(f"cannot encode {target.name}")
    atomic_write_bytes(target, data.tobytes())
