"""Soak: the camera loop (live capture thread, detector, drawing) on a looping video file for 10,000 frames.
Memory must not grow, and a source that disappears mid-run is reopened while the loop goes on."""

import gc
import threading

import pytest

from edgekit.assets import shapes_model
from edgekit.devices.sources import Backoff, Source
from edgekit.runtimes.detector import load
from edgekit.runtimes.profile import current_rss_mb

from videos import write_shapes_video

FRAMES = 10_000


@pytest.mark.slow
def test_camera_loop_10000_frames_without_growth_and_with_a_drop(tmp_path):
    # a 500 FPS file: the live reader paces it like a (fast) camera without slowing the soak down
    video = write_shapes_video(tmp_path / "camera.mp4", frames=50, fps=500)
    away = tmp_path / "unplugged.mp4"
    detector = load(shapes_model())
    source = Source(video, live=True, loop=True, backoff=Backoff(first=0.1, longest=0.5, give_up=30))
    baseline = None
    frames = 0
    found_any = 0
    for frame in source:
        found = detector(frame.image)
        found.draw(frame.image)
        found_any += len(found) > 0
        frames += 1
        if frames == 1000:
            gc.collect()
            baseline = current_rss_mb()
        if frames == 5000:  # the camera is unplugged for a second
            video.rename(away)
            threading.Timer(1.0, away.rename, args=(video,)).start()
        if frames == FRAMES:
            break
    gc.collect()
    growth = current_rss_mb() - baseline
    print(f"{frames} frames, RSS {baseline:.1f} -> {baseline + growth:.1f} MB, {source.reconnects} reconnect(s), "
          f"{source.dropped} dropped by the live reader")
    assert frames == FRAMES and found_any == FRAMES
    assert source.reconnects >= 1
    assert growth < 5.0
