"""The MJPEG stream server's access rules and limits, on real loopback sockets with real HTTP clients: the token
(random beyond loopback, given on loopback, opted out with a warning), 401 and nothing else without it, the
caps on streams and connections, clients that send nothing or stop reading dropped while the camera loop keeps
its pace; and the load benchmark (benchmarks/bench_stream.py) in a short run."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgekit.assets import shapes_image
from edgekit.devices.mjpeg import UNAUTHORISED, MjpegServer
from edgekit.devices.stream_access import TOKEN_PATTERN
from edgekit.errors import EdgekitError

ROOT = Path(__file__).resolve().parents[1]
RSS_TARGET_MB = 8.0  # as benchmarks/bench_stream.py
PATHS = ("/", "/index.html", "/stats.json", "/frame.jpg", "/stream.mjpg", "/nothing-here")


def get(port: int, path: str) -> tuple[int, bytes]:
    """GET over http.client; (status, body) (a 200 stream's body is left unread)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        streaming = response.status == 200 and response.getheader("Content-Type", "").startswith("multipart/")
        return response.status, b"" if streaming else response.read()
    finally:
        conn.close()


def status_or_refused(port: int, path: str) -> int:
    """The status of GET `path`, or -1 when the server closed the connection without one."""
    try:
        return get(port, path)[0]
    except (OSError, http.client.HTTPException):
        return -1


def stream(port: int, query: str = "", rcvbuf: int | None = None) -> tuple[socket.socket, bytes]:
    """A raw socket that asked for /stream.mjpg; (socket, the response's first 12 bytes)."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /stream.mjpg{query} HTTP/1.0\r\n\r\n".encode())
    return sock, sock.recv(12)


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until the server closes, then close."""
    with sock:
        return b"".join(iter(lambda: sock.recv(65536), b""))


def wait_for(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class Camera:
    """Publishes the shapes photo, drifting, at `fps` from a thread; records each publish call's duration."""

    def __init__(self, server: MjpegServer, fps: float = 30.0):
        image = cv2.imread(str(shapes_image()))
        shifts = [np.float32([[1, 0, i - 5], [0, 1, 0]]) for i in range(10)]
        self.frames = [cv2.warpAffine(image, m, image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE) for m in shifts]
        self.server, self.period = server, 1.0 / fps
        self.times: list[tuple[float, float]] = []  # (when, seconds publish took)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        tick = time.perf_counter()
        while not self._stop.is_set():
            start = time.perf_counter()
            self.server.publish(self.frames[len(self.times) % len(self.frames)])
            self.times.append((start, time.perf_counter() - start))
            tick = max(tick + self.period, time.perf_counter())  # a stall loses frames, as a live camera does
            time.sleep(max(0.0, tick - time.perf_counter()))

    def rate(self, since: float, until: float) -> float:
        """Frames published per second between two perf_counter times."""
        return sum(since <= t < until for t, _ in self.times) / (until - since)

    def __enter__(self) -> Camera:
        self._thread.start()
        wait_for(lambda: self.times, 5)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


@contextlib.contextmanager
def serving(**options):
    server = MjpegServer(port=0, **options).start()
    try:
        with Camera(server) as camera:
            yield server, camera
    finally:
        server.stop()


def test_loopback_needs_no_token():
    with serving() as (server, _):
        assert server.token is None and server.url == f"http://localhost:{server.port}/"
        status, page = get(server.port, "/")
        assert status == 200 and b'src="stream.mjpg"' in page and b"fetch('stats.json'" in page
        assert get(server.port, "/frame.jpg")[1][:2] == b"\xff\xd8"


def test_a_given_token_is_required_and_a_missing_or_wrong_one_gets_401_and_nothing_else():
    token = "phone-1234_abcd"
    with serving(token=token) as (server, _):
        assert server.url == f"http://localhost:{server.port}/?token={token}"
        bad = ["", "?token=", "?token=phone-1234_abcX", f"?token={token[:-1]}", f"?token={token}x",
               f"?other={token}", "?token=%FF%FE", f"?TOKEN={token}"]
        for path in PATHS:
            for query in bad:
                assert get(server.port, path + query) == (401, UNAUTHORISED), path + query
        assert server.counts().unauthorised == len(PATHS) * len(bad)
        sock, head = stream(server.port, "?token=nope-nope-nope")
        assert head == b"HTTP/1.0 401" and read_to_end(sock).endswith(b"\r\n\r\n" + UNAUTHORISED)

        status, page = get(server.port, f"/?token={token}")
        assert status == 200
        assert f'src="stream.mjpg?token={token}"'.encode() in page and f"stats.json?token={token}".encode() in page
        assert get(server.port, f"/stats.json?token={token}")[0] == 200
        assert get(server.port, f"/frame.jpg?token={token}")[1][:2] == b"\xff\xd8"
        assert get(server.port, f"/stream.mjpg?token={token}")[0] == 200
        assert get(server.port, f"/nothing-here?token={token}")[0] == 404


def test_beyond_loopback_a_random_token_is_required_and_shown_in_the_url():
    first = MjpegServer(host="0.0.0.0", port=0).start()
    second = MjpegServer(host="0.0.0.0", port=0).start()
    try:
        assert TOKEN_PATTERN.fullmatch(first.token) and len(first.token) >= 22 and first.token != second.token
        host = first.url.split("//")[1].split(":")[0]
        assert host not in ("localhost", "0.0.0.0", "127.0.0.1")
        assert first.url == f"http://{host}:{first.port}/?token={first.token}"
        assert get(first.port, "/") == (401, UNAUTHORISED)
        assert get(first.port, f"/?token={second.token}") == (401, UNAUTHORISED)
        assert get(first.port, f"/?token={first.token}")[0] == 200
    finally:
        first.stop()
        second.stop()


def test_no_token_beyond_loopback_is_explicit_and_warned(caplog):
    with caplog.at_level(logging.WARNING, logger="edgekit"), serving(host="0.0.0.0", no_token=True) as (server, _):
        assert server.token is None and "?token" not in server.url
        assert get(server.port, "/frame.jpg")[0] == 200
    assert "without a token: anyone who can reach it watches the camera" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edgekit"), serving(no_token=True):
        pass
    assert caplog.text == ""


@pytest.mark.parametrize("options, message", [
    ({"token": "short"}, "token 'short' is not 8-128 characters of letters, digits and . _ ~ -"),
    ({"token": "has a space"}, "token 'has a space' is not 8-128 characters"),
    ({"token": "a-good-token", "no_token": True}, "a token and no token at once: give one or the other"),
    ({"max_clients": 0}, "max clients must be at least 1, not 0"),
    ({"client_timeout": 0}, "client timeout must be above 0 s, not 0"),
])
def test_bad_settings_are_one_line_errors(options, message):
    with pytest.raises(EdgekitError, match=message.replace(".", r"\.")):
        MjpegServer(port=0, **options).start()


def test_streams_over_the_cap_get_503_until_one_leaves():
    with serving(max_clients=2) as (server, _):
        viewers = [stream(server.port) for _ in range(2)]
        assert [head for _, head in viewers] == [b"HTTP/1.0 200"] * 2
        sock, head = stream(server.port)
        assert head == b"HTTP/1.0 503" and b"Retry-After: 5" in read_to_end(sock)
        assert server.counts().streaming == 2 and server.counts().refused == 1
        assert get(server.port, "/frame.jpg")[0] == 200  # short requests still served
        viewers[0][0].close()
        assert wait_for(lambda: server.counts().streaming == 1, 10)
        again, head = stream(server.port)
        assert head == b"HTTP/1.0 200"
        for sock in [again, viewers[1][0]]:
            sock.close()


def test_connections_over_the_cap_are_refused_and_silent_ones_dropped_after_the_timeout():
    with serving(max_clients=1, client_timeout=1.0) as (server, _):
        silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(4)]
        refused = status_or_refused(server.port, "/")  # the fifth connection: 503 at once, or closed before it
        assert refused in (503, -1)
        assert server.counts().refused >= 1
        start = time.monotonic()
        assert [s.recv(100) for s in silent] == [b""] * 4  # each closed by the server: no request in time
        assert time.monotonic() - start < 5
        assert wait_for(lambda: status_or_refused(server.port, "/") == 200, 5)
        for s in silent:
            s.close()


def test_a_client_that_stops_reading_is_dropped_and_stalls_neither_the_camera_nor_other_viewers():
    with serving(client_timeout=1.0) as (server, camera):
        slow, head = stream(server.port, rcvbuf=4096)  # asks, then never reads again
        assert head == b"HTTP/1.0 200"
        viewer = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        viewer.request("GET", "/stream.mjpg")
        body = viewer.getresponse()
        start = time.perf_counter()
        taken = 0
        while server.counts().timed_out == 0 and time.perf_counter() - start < 30:
            taken += len(body.read(4096))
        dropped = time.perf_counter()
        assert server.counts().timed_out == 1, "the slow client was never dropped"
        assert wait_for(lambda: server.counts().streaming == 1, 5)
        assert taken > 0.5 * (dropped - start) * 30 * 20_000  # the viewer kept getting frames (about 30 KB each)
        rate = camera.rate(start, dropped)
        slowest = max(d for t, d in camera.times if start <= t < dropped)
        assert rate > 27 and slowest < 0.25, (rate, slowest)
        viewer.close()
        slow.close()


def test_load_benchmark_short_run(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_stream.py"), "--seconds", "2",
                           "--churn", "4", "--client-timeout", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    r = json.loads(out.read_text())
    assert r["load"]["fps"] >= 0.9 * r["baseline"]["fps"]
    assert r["load"]["rss_mb"] - r["baseline"]["rss_mb"] < RSS_TARGET_MB
    assert set(r["unauthorised_statuses"]) == {"401"} and not r["unauthorised_leaks"]
    assert r["slow_dropped_after_s"] is not None and r["max_streaming"] <= 4 and r["viewer_frames"] > 0
    assert done.stdout.count("\nok ") == 5
