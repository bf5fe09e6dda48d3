"""The frame loop's pieces: the one atomic video writer (kept when the block ends well or Ctrl-C is caught in
it, nothing left by an error or an empty recording) and `predict`'s loop over a real video."""

import io
import signal

import cv2
import numpy as np
import pytest

import edgekit
from edgekit.assets import shapes_model
from edgekit.devices.loop import VideoOut, predict
from edgekit.devices.sources import Source
from edgekit.interrupts import Interrupts

from videos import write_shapes_video


def frame(value: int, size=(160, 120)) -> np.ndarray:
    return np.full((size[1], size[0], 3), value, np.uint8)


def frames_of(path):
    cap = cv2.VideoCapture(str(path))
    shapes = []
    while (image := cap.read()[1]) is not None:
        shapes.append(image.shape)
    return shapes, cap.get(cv2.CAP_PROP_FPS)


def test_video_is_renamed_into_place_with_every_frame(tmp_path):
    with VideoOut(tmp_path / "out.mp4", lambda: 12.0) as out:
        for i in range(5):
            out.write(frame(40 * i))
        out.write(frame(200, size=(320, 240)))  # another size: resized to the first frame's
        assert not (tmp_path / "out.mp4").exists()  # still the temporary file
    shapes, fps = frames_of(tmp_path / "out.mp4")
    assert shapes == [(120, 160, 3)] * 6 and fps == pytest.approx(12.0) and out.frames == 6
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_nothing_recorded_leaves_nothing(tmp_path):
    with VideoOut(tmp_path / "out.mp4") as out:
        pass
    assert out.frames == 0 and list(tmp_path.iterdir()) == []


def test_an_error_leaves_nothing_and_ctrl_c_inside_keeps_the_video(tmp_path):
    with pytest.raises(ValueError), VideoOut(tmp_path / "bad.mp4") as out:
        out.write(frame(100))
        raise ValueError("failed half way")
    assert list(tmp_path.iterdir()) == []
    with VideoOut(tmp_path / "kept.mp4") as out:
        try:
            out.write(frame(100))
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
    assert frames_of(tmp_path / "kept.mp4")[0] == [(120, 160, 3)]


class CtrlCAt:
    """A real detector whose `at`-th call is interrupted, as a Ctrl-C during inference would be."""

    def __init__(self, at: int):
        self.detector, self.at, self.calls = edgekit.load(shapes_model()), at, 0

    def __getattr__(self, name):
        return getattr(self.detector, name)

    def __call__(self, image):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.detector(image)


class SwallowedCtrlCAt(CtrlCAt):
    """A real detector during whose `at`-th call a real SIGINT arrives and is swallowed, as a library's handler
    or a finalizer the garbage collector runs at that moment would drop its KeyboardInterrupt."""

    def __call__(self, image):
        self.calls += 1
        if self.calls == self.at:
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                pass
        return self.detector(image)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_shapes_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames=6)


def test_predict_saves_the_annotated_video_and_ctrl_c_keeps_it(tmp_path, video):
    out, log = io.StringIO(), io.StringIO()
    done = predict(edgekit.load(shapes_model()), Source(video), save=tmp_path / "all", as_json=True, out=out, log=log)
    assert (done.frames, done.interrupted) == (6, False) and len(out.getvalue().splitlines()) == 6
    assert len(frames_of(tmp_path / "all" / "clip.mp4")[0]) == 6
    done = predict(CtrlCAt(4), Source(video), save=tmp_path / "cut", out=out, log=log)
    assert (done.frames, done.interrupted) == (3, True) and done.summary().startswith("3 frame(s): mean pre")
    assert len(frames_of(tmp_path / "cut" / "clip.mp4")[0]) == 3
    with pytest.raises(KeyboardInterrupt):  # interrupted before a frame was recorded: nothing is left
        predict(CtrlCAt(1), Source(video), save=tmp_path / "none", out=out, log=log)
    assert not (tmp_path / "none").exists() or list((tmp_path / "none").iterdir()) == []


def test_a_ctrl_c_swallowed_during_a_frame_still_ends_the_loop(tmp_path, video):
    done = predict(SwallowedCtrlCAt(2), Source(video), save=tmp_path / "cut", out=io.StringIO(), log=io.StringIO())
    assert (done.frames, done.interrupted) == (2, True)  # that frame finished; the loop stopped before the next
    assert len(frames_of(tmp_path / "cut" / "clip.mp4")[0]) == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is Python's own again
    done = predict(SwallowedCtrlCAt(6), Source(video), out=io.StringIO(), log=io.StringIO())  # the last frame
    assert (done.frames, done.interrupted) == (6, True)


def test_interrupts_leave_an_ignored_or_a_programs_own_sigint_alone():
    def own(signum, frame):
        pass

    try:
        for handler in (signal.SIG_IGN, own):
            signal.signal(signal.SIGINT, handler)
            with Interrupts() as interrupts:
                assert signal.getsignal(signal.SIGINT) is handler
                signal.raise_signal(signal.SIGINT)
                interrupts.check()  # nothing counted: the SIGINT was not ours to handle
            assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    with Interrupts():
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler  # stands in for Python's own
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
