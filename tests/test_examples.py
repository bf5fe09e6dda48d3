"""The example scripts: each runs with --help and says what to install; each is exercised on a real video (or,
for the Pi camera, through the picamera2 stand-in); the stream page is checked in real headless Chromium."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
import pytest

from edgekit.assets import shapes_model

from videos import write_shapes_video

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
STANDINS = Path(__file__).parent / "standins"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def env(*extra: Path, **variables: str) -> dict:
    paths = [str(p) for p in extra] + [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **variables}


def example(name: str, *args, extra=(), timeout=120, **variables) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env(*extra, **variables))


@pytest.fixture(scope="module")
def shapes_video(tmp_path_factory):
    return write_shapes_video(tmp_path_factory.mktemp("video") / "shapes.mp4", frames=20)


@pytest.mark.parametrize("name", ["pi_camera_detect.py", "webcam_detect.py", "video_to_mp4.py", "stream_server.py"])
def test_example_help_and_install_header(name):
    done = example(name, "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage:"), done.stderr
    header = (EXAMPLES / name).read_text().split('"""')[1]
    assert "Install on the" in header and "pip install" in header


def test_video_to_mp4_annotates_every_frame(tmp_path, shapes_video):
    out = tmp_path / "annotated.mp4"
    done = example("video_to_mp4.py", shapes_model(), shapes_video, out)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}: 20 frames" in done.stderr
    src, ann = cv2.VideoCapture(str(shapes_video)), cv2.VideoCapture(str(out))
    assert int(ann.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    ok1, first_src = src.read()
    ok2, first_ann = ann.read()
    assert ok1 and ok2 and first_ann.shape == first_src.shape
    assert np.abs(first_ann.astype(int) - first_src).max() > 100  # boxes and the status line are drawn


def test_video_to_mp4_ctrl_c_leaves_a_playable_video(tmp_path, shapes_video):
    out = tmp_path / "annotated.mp4"
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "video_to_mp4.py"), str(shapes_model()), str(shapes_video),
                             str(out), "--loop"], stderr=subprocess.PIPE, text=True, env=env())
    for line in proc.stderr:
        if line.startswith("frame 60:"):  # three passes of the looping file
            break
    else:
        raise AssertionError("the example ended before it was interrupted")
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, rest
    written = int(re.search(r"wrote .*: (\d+) frames \(interrupted\)", rest).group(1))
    cap = cv2.VideoCapture(str(out))
    assert written > 60 and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == written
    decoded = 0
    while cap.read()[0]:
        decoded += 1
    assert decoded == written and not list(tmp_path.glob("*.part*"))


def test_video_to_mp4_bad_input_is_one_line(tmp_path):
    done = example("video_to_mp4.py", shapes_model(), tmp_path / "missing.mp4", tmp_path / "out.mp4")
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        f"edgekit: error: source not found: {tmp_path / 'missing.mp4'}"
    ]
    assert not (tmp_path / "out.mp4").exists()


def test_webcam_detect_headless(shapes_video):
    done = example("webcam_detect.py", shapes_model(), shapes_video, "--frames", 5)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 5 and all("circle" in line and "triangle" in line and "FPS" in line for line in lines)


def test_webcam_detect_camera_that_cannot_open():
    done = example("webcam_detect.py", shapes_model(), "9")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("edgekit: error: cannot open camera 9: /dev/video9")


def test_pi_camera_detect_through_the_standin(tmp_path, shapes_video):
    out = tmp_path / "pi.mp4"
    done = example("pi_camera_detect.py", "--frames", 4, "--record", out, "--main", "640x480", extra=[STANDINS],
                   PICAMERA2_STANDIN_VIDEO=str(shapes_video))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 4 and all("circle" in line for line in lines)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 640


def _start_stream_server(video: Path, *options: str) -> tuple[subprocess.Popen, str, str]:
    """The running script, the address it printed and what it printed before."""
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "stream_server.py"), str(shapes_model()), str(video),
                             "--loop", "--port", "0", *options], stderr=subprocess.PIPE, text=True, env=env())
    before = ""
    while (line := proc.stderr.readline()) and not line.startswith("serving "):
        before += line
    found = re.search(r" at (http://\S+)", line)
    if not found:
        proc.kill()
        raise AssertionError(before + line + proc.stderr.read())
    return proc, found.group(1), before


def _listening_addresses(port: int) -> list[str]:
    """The IPv4 addresses a TCP port listens on, from /proc/net/tcp."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.append(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads listening sockets from Linux's /proc/net/tcp")
def test_stream_server_binds_to_localhost_and_stops_on_ctrl_c(shapes_video):
    proc, url, _ = _start_stream_server(shapes_video)
    try:
        assert url.startswith("http://localhost:")
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert _listening_addresses(port) == ["127.0.0.1"]
        time.sleep(1.0)
        frame = urllib.request.urlopen(url + "frame.jpg", timeout=10).read()
        assert cv2.imdecode(np.frombuffer(frame, np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in err and "Traceback" not in err


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads listening sockets from Linux's /proc/net/tcp")
def test_stream_server_beyond_localhost_requires_the_token_it_prints(shapes_video):
    proc, url, before = _start_stream_server(shapes_video, "--host", "0.0.0.0")
    try:
        address = urlsplit(url)
        token = parse_qs(address.query)["token"][0]
        assert before == "" and address.hostname not in ("localhost", "0.0.0.0") and len(token) >= 22
        assert _listening_addresses(address.port) == ["0.0.0.0"]
        here = f"http://127.0.0.1:{address.port}/frame.jpg"
        for query in ("", "?token=" + token[::-1]):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(here + query, timeout=10)
            assert refused.value.code == 401
        frame = urllib.request.urlopen(f"{here}?token={token}", timeout=10).read()
        assert cv2.imdecode(np.frombuffer(frame, np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err


def test_stream_server_without_a_token_says_so(shapes_video):
    proc, url, before = _start_stream_server(shapes_video, "--host", "0.0.0.0", "--no-token")
    try:
        assert "?token" not in url
        assert before == ("edgekit: warning: serving on 0.0.0.0 without a token: anyone who can reach it watches "
                          "the camera\n")
        port = urlsplit(url).port
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/stats.json", timeout=10).status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    both = example("stream_server.py", "--token", "abcdefgh", "--no-token")
    assert both.returncode == 2 and "argument --no-token: not allowed with argument --token" in both.stderr
    short = example("stream_server.py", shapes_model(), shapes_video, "--host", "0.0.0.0", "--token", "abc")
    assert short.returncode == 1 and short.stderr.strip().splitlines()[-1] == (
        "edgekit: error: token 'abc' is not 8-128 characters of letters, digits and . _ ~ - (leave it out for a "
        "random one)")


def test_stream_page_in_headless_chromium(shapes_video):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    proc, url, _ = _start_stream_server(shapes_video, "--token", "browser-check-token")  # as a phone opens it
    assert url.endswith("/?token=browser-check-token")
    try:
        with sync_api.sync_playwright() as p, __import__("tempfile").TemporaryDirectory() as profile:
            browser = p.chromium.launch_persistent_context(profile, executable_path=chromium, headless=True,
                                                           args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=30000)
            assert page.evaluate("document.getElementById('stream').naturalWidth") == 640
            page.wait_for_selector("li.detection", timeout=30000)
            page.wait_for_function("!document.getElementById('fps').textContent.startsWith('--')", timeout=30000)
            labels = page.locator("li.detection").all_text_contents()
            assert {re.sub(r" \d+%$", "", t) for t in labels} == {"circle", "square", "triangle"}
            assert float(page.text_content("#fps").split()[0]) > 0
            # frames keep arriving: the drifting scene changes the picture between two screenshots
            first = page.locator("#stream").screenshot()
            for _ in range(50):
                time.sleep(0.2)
                if page.locator("#stream").screenshot() != first:
                    break
            else:
                raise AssertionError("the stream image never changed")
            browser.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
