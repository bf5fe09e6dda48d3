"""Frame sources: video files (in order, live, looping), the latest-frame capture thread, reconnecting with
backoff, cameras and streams that cannot be opened, an MJPEG stream that drops, and the picamera2 adapter
driven through a stand-in offering exactly the Picamera2 calls it makes."""

import queue
import socket
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from edgekit.assets import shapes_image, shapes_model
from edgekit.detections import Detections
from edgekit.devices import picamera
from edgekit.devices.mjpeg import MjpegServer
from edgekit.devices.sources import Backoff, LatestFrame, Source
from edgekit.errors import EdgekitError
from edgekit.runtimes.detector import load

from standins import picamera2 as standin_picamera2
from videos import frame_index, write_marked_video


def test_video_file_in_order_then_looping(tmp_path):
    video = write_marked_video(tmp_path / "clip.mp4", frames=12)
    source = Source(video)
    assert (source.kind, source.live) == ("video", False)
    assert [frame_index(f.image, 12) for f in source] == list(range(12))
    looped = Source(video, loop=True)
    seen = [frame_index(f.image, 12) for _, f in zip(range(30), looped)]
    assert seen == [i % 12 for i in range(30)]


def test_latest_frame_keeps_only_the_newest():
    frames: queue.Queue = queue.Queue()
    read_calls = []

    def read():
        item = frames.get()
        read_calls.append(item)
        return (item is not None, None if item is None else np.full((2, 2, 3), item, np.uint8))

    reader = LatestFrame(read, reopen=lambda: False)
    for i in range(5):
        frames.put(i)
    while len(read_calls) < 5:
        time.sleep(0.01)
    time.sleep(0.05)
    assert int(reader.get(timeout=5)[0, 0, 0]) == 4 and reader.dropped == 4
    frames.put(5)
    assert int(reader.get(timeout=5)[0, 0, 0]) == 5
    frames.put(None)  # the source ends: get() says so instead of waiting
    assert reader.get(timeout=5) is None
    reader.stop()


def test_live_video_is_paced_and_drops_frames_a_slow_consumer_misses(tmp_path):
    video = write_marked_video(tmp_path / "clip.mp4", frames=12, fps=50)
    source = Source(video, live=True)
    seen = []
    for frame in source:
        seen.append(frame_index(frame.image, 12))
        time.sleep(0.08)  # four frame intervals per frame: a consumer slower than the camera
    assert seen == sorted(seen) and seen[-1] == 11 and len(seen) < 12 and source.dropped == 12 - len(seen)
    # paced like a camera: a fast consumer cannot get 12 frames of a 50 FPS file sooner than 11 intervals
    start = time.perf_counter()
    assert len(list(Source(video, live=True))) >= 1
    assert time.perf_counter() - start >= 11 / 50


def test_backoff_doubles_and_gives_up():
    assert list(Backoff(first=0.5, longest=2, give_up=5).delays()) == [0.5, 1, 2, 1.5]
    assert next(iter(Backoff(give_up=None).delays())) == 0.5


def test_video_that_disappears_is_reopened(tmp_path, caplog):
    caplog.set_level("WARNING", logger="edgekit")  # independent of the root level other libraries may raise
    video = write_marked_video(tmp_path / "clip.mp4", frames=8)
    away = tmp_path / "moved.mp4"
    source = Source(video, loop=True, backoff=Backoff(first=0.1, longest=0.2, give_up=20))
    seen = []
    for frame in source:
        seen.append(frame_index(frame.image, 8))
        if len(seen) == 3:
            video.rename(away)
            threading.Timer(0.7, away.rename, args=(video,)).start()
        if len(seen) == 24:
            break
    assert seen == [i % 8 for i in range(24)]
    assert source.reconnects == 1 and "lost video" in caplog.text


def test_video_that_never_comes_back_ends_with_a_message(tmp_path):
    video = write_marked_video(tmp_path / "clip.mp4", frames=4)
    source = Source(video, loop=True, backoff=Backoff(first=0.05, give_up=0.3))
    with pytest.raises(EdgekitError, match=r"lost video .*clip.mp4 and it did not come back within 0.3 s"):
        for i, _ in enumerate(source):
            if i == 1:
                video.unlink()


def test_camera_that_cannot_be_opened_says_which_and_why():
    with pytest.raises(EdgekitError, match=r"cannot open camera 7: /dev/video7 does not exist"):
        list(Source(7))


def test_stream_that_never_answers_times_out():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never says a word
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/stream.mjpg"
    try:
        with pytest.raises(EdgekitError, match=r"did not answer within 1.5 s \(timed out\)"):
            list(Source(url, timeout=1.5))
    finally:
        silent.close()


def test_mjpeg_stream_that_drops_is_reopened():
    server = [MjpegServer(port=0).start()]
    port = server[0].port
    done = threading.Event()

    def publish():
        i = 0
        while not done.is_set():
            server[0].publish(np.full((120, 160, 3), 40 + i % 100, np.uint8), {"frames": i})
            i += 1
            time.sleep(0.02)

    def restart():
        time.sleep(0.8)
        server[0] = MjpegServer(port=port).start()

    threading.Thread(target=publish, daemon=True).start()
    source = Source(f"http://127.0.0.1:{port}/stream.mjpg", timeout=3, backoff=Backoff(first=0.2, give_up=15))
    assert (source.kind, source.live) == ("stream", True)
    count = 0
    try:
        for frame in source:
            assert frame.image.shape == (120, 160, 3)
            count += 1
            if count == 10:
                server[0].stop()
                threading.Thread(target=restart, daemon=True).start()
            if count == 40:
                break
    finally:
        done.set()
        server[0].stop()
    assert source.reconnects == 1


# picamera2: tests/standins/picamera2.py offers exactly the calls the adapter makes


@pytest.fixture()
def standin(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", standin_picamera2)
    standin_picamera2.instances.clear()
    return standin_picamera2


def test_picamera2_is_imported_only_when_used():
    import subprocess

    code = "import edgekit.devices.sources, edgekit.devices.picamera, sys; print('picamera2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_without_picamera2_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(EdgekitError, match="picamera2 is not installed: it exists on Raspberry Pi OS only"):
        list(Source("picamera"))


@pytest.mark.parametrize("lores_format", ["YUV420", "RGB888", "BGR888", "XRGB8888", "XBGR8888"])
def test_picamera_lores_frames_are_bgr_at_the_model_size(standin, lores_format):
    # a 288-wide lores stream: YUV420 rows are padded to a stride of 320, which must be cut off
    options = {"main": (1280, 960), "imgsz": (256, 288), "lores_format": lores_format}
    frame = next(iter(Source("picamera", live=False, picamera=options)))
    cam = standin.instances[0]
    assert cam.config["lores"] == {"size": (288, 216), "format": lores_format}
    assert cam.config["main"] == {"size": (1280, 960), "format": "XRGB8888"}
    expected = cv2.resize(cv2.imread(str(shapes_image())), (288, 216), interpolation=cv2.INTER_AREA)
    assert frame.image.shape == (216, 288, 3) and frame.image.flags.c_contiguous
    tolerance = 6 if lores_format == "YUV420" else 0  # chroma subsampling
    assert np.abs(frame.image.astype(int) - expected).mean() <= tolerance
    assert cam.calls[-2:] == ["stop", "close"]


def test_picamera_detects_on_lores_and_draws_on_main_in_the_callback(standin):
    detector = load(shapes_model())
    with picamera.PiCamera(0, main=(1280, 960), imgsz=detector.meta.imgsz, preview=True) as camera:
        found = detector(camera.capture())
        assert found.counts() == {"circle": 4, "triangle": 3, "square": 1}
        clean = camera.capture_main()
        camera.show(found)
        drawn = camera.capture_main()
        cam = camera.cam
    assert ("start", True) in cam.calls and cam.pre_callback is not None
    changed = np.any(drawn != clean, axis=2)
    # every box edge, scaled from 320x240 lores to 1280x960 main, is drawn; nothing far from the boxes changes
    boxes = found.xyxy * 4
    for x1, y1, x2, y2 in boxes:
        assert changed[int(y1) + 20 : int(y2) - 20, int(x1)].any() or changed[int(y1), int(x1) + 5 : int(x2)].any()
    inside = np.zeros_like(changed)
    for x1, y1, x2, y2 in boxes:
        right = int(max(x2, x1 + 300)) + 8  # a label may be wider than its box
        inside[max(0, int(y1) - 60) : int(y2) + 8, max(0, int(x1) - 8) : right] = True
    assert changed.any() and not changed[~inside].any()


def test_picamera_overlay_is_scaled(standin):
    with picamera.PiCamera(0, main=(640, 480), imgsz=320, main_format="RGB888") as camera:
        box = Detections(np.array([[40, 30, 120, 90]], np.float32), np.array([0.9]), np.array([0]), ["thing"])
        camera.show(box)
        drawn = camera.capture_main()
        camera.show(None)
        clean = camera.capture_main()
    diff = np.any(drawn != clean, axis=2)
    ys, xs = np.nonzero(diff)
    assert abs(xs.min() - 80) <= 3 and abs(xs.max() - 240) <= 3 and abs(ys.max() - 180) <= 3


def test_lores_size_keeps_the_main_aspect():
    assert picamera.lores_size((1280, 720), 320) == (320, 180)
    assert picamera.lores_size((640, 480), (480, 640)) == (640, 480)
    assert picamera.lores_size((2304, 1296), (320, 320)) == (320, 180)


def test_predict_on_a_stream_ctrl_c_keeps_a_playable_video(tmp_path):
    import os
    import signal
    import subprocess

    from edgekit.assets import shapes_model

    server = MjpegServer(port=0).start()
    done = threading.Event()
    scene = cv2.imread(str(shapes_image()))

    def publish():
        while not done.is_set():
            server.publish(scene)
            time.sleep(0.03)

    threading.Thread(target=publish, daemon=True).start()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(p) for p in sys.path if p])}
    proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "predict", str(shapes_model()),
                             f"http://127.0.0.1:{server.port}/stream.mjpg", "--save", str(tmp_path), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = [proc.stdout.readline() for _ in range(5)]
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        done.set()
        server.stop()
    assert proc.returncode == 130 and err.strip().endswith("edgekit: interrupted"), err
    printed = len(lines) + len(rest.splitlines())
    cap = cv2.VideoCapture(str(tmp_path / "stream.mp4"))
    count, decoded = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), []
    while (frame := cap.read()[1]) is not None:
        decoded.append(frame.shape)
    # the last printed frame may have been interrupted before it was written
    assert printed - 1 <= count == len(decoded) <= printed and set(decoded) == {scene.shape}
    assert [p.name for p in tmp_path.iterdir()] == ["stream.mp4"]
