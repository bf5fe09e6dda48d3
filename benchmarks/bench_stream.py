"""The MJPEG stream server under hostile and broken clients, on loopback: does the camera loop keep its rate?

    python benchmarks/bench_stream.py [--seconds 20] [--fps 30] [--churn 8] [--video clip.mp4] [--json out.json]

The camera loop (this process's main thread) decodes a video with OpenCV (by default a 640x480 clip of the
bundled shapes photo drifting, written first) and publishes every frame to an `MjpegServer` bound to
127.0.0.1 with a token, paced at --fps (0: as fast as it can). Three phases of --seconds each, in one run:

1. baseline: one viewer (its own process) reading the stream as fast as it can;
2. load: the viewer, plus another process holding --churn clients that connect, take one frame and drop,
   over and over, one client that reads 1 byte per second, and requests with no token or a wrong one;
3. baseline again (the spread between 1 and 3 is the machine's own noise: it is shared).

Printed: the camera loop's frame rate in each phase and the load phase's against the first baseline (target:
at least 90 %), the longest `publish` call, the server's RSS at the end of each phase (target: the load phase
adds under 8 MB), the statuses the unauthorised requests got (target: every one 401, with no page, frame or
statistics in the body), when the slow client was dropped, and the most streams open at once (at most
--max-clients). Exit status 1 when a target is missed. Clients use raw sockets and http.client.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from edgekit.devices.mjpeg import CLIENT_TIMEOUT_S, MAX_CLIENTS, UNAUTHORISED, MjpegServer

RATE_TARGET = 0.90
RSS_TARGET_MB = 8.0
PATHS = ("/", "/stats.json", "/frame.jpg", "/stream.mjpg")


def rss_mb() -> float:
    """This process's resident set size now, from /proc/self/status (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def write_clip(path: Path, frames: int = 60) -> Path:
    """The bundled shapes photo drifting a few pixels per frame, 640x480 mp4v."""
    from edgekit.assets import shapes_image

    image = cv2.imread(str(shapes_image()))
    h, w = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for i in range(frames):
        shift = np.float32([[1, 0, (i % 20) - 10], [0, 1, (i % 7) - 3]])
        writer.write(cv2.warpAffine(image, shift, (w, h), borderMode=cv2.BORDER_REPLICATE))
    writer.release()
    return path


def open_stream(port: int, query: str, rcvbuf: int | None = None, timeout: float = 10.0) -> socket.socket:
    """GET /stream.mjpg over a raw socket (the response unread); `rcvbuf` shrinks the receive buffer first."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /stream.mjpg{query} HTTP/1.0\r\n\r\n".encode())
    return sock


def read_status(reader) -> int:
    """The status of an HTTP response, its headers consumed; 0 when the server closed without one."""
    line = reader.readline()
    if not line:
        return 0
    status = int(line.split()[1])
    while reader.readline() not in (b"\r\n", b""):
        pass
    return status


def read_part(reader) -> bytes:
    """One JPEG of a multipart stream (after the status and headers)."""
    length = 0
    while (line := reader.readline()) != b"\r\n":
        if not line:
            raise ConnectionError("stream ended")
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    jpeg = reader.read(length)
    reader.readline()
    return jpeg


def viewer(port: int, query: str, ready, stop, out) -> None:
    """One client reading the stream as fast as it can; sets `ready` at its first frame, puts what it took."""
    sock = open_stream(port, query)
    reader = sock.makefile("rb")
    assert read_status(reader) == 200
    read_part(reader)
    ready.set()
    frames = size = 0
    while not stop.is_set():
        size += len(read_part(reader))
        frames += 1
    sock.close()
    out.put({"viewer_frames": frames, "viewer_bytes": size})


def _churn(port: int, query: str, stop, statuses: Counter, lock: threading.Lock) -> None:
    while not stop.is_set():
        try:
            sock = open_stream(port, query, timeout=5.0)
            with sock, sock.makefile("rb") as reader:
                status = read_status(reader)
                if status == 200:
                    read_part(reader)
        except OSError:
            status = -1  # refused over the connection cap: reset or closed before a status line
        with lock:
            statuses[status] += 1


def _slow(port: int, query: str, stop, result: dict) -> None:
    sock = open_stream(port, query, rcvbuf=4096)
    result["slow_status"] = sock.recv(12).decode()  # "HTTP/1.0 200" at once, then 1 byte per second
    result["slow_bytes_read"] = 0
    with sock:
        while not stop.wait(1.0):
            try:
                if not sock.recv(1):
                    break
                result["slow_bytes_read"] += 1
            except OSError:
                break


def _unauthorised(port: int, token: str, stop, statuses: Counter, leaks: list, lock: threading.Lock) -> None:
    wrong = secrets.token_urlsafe(len(token))[: len(token)]
    queries = ("", f"?token={wrong}", f"?token={token[:-1]}", "?token=")
    while not stop.is_set():
        for path in PATHS:
            for query in queries:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5.0)
                try:
                    conn.request("GET", path + query)
                    response = conn.getresponse()
                    status, body = response.status, response.read()
                except OSError:
                    status, body = -1, b""
                finally:
                    conn.close()
                with lock:
                    statuses[status] += 1
                    if status != 401 or body != UNAUTHORISED:
                        leaks.append(f"{path}{query}: {status}, {body[:40]!r}")


def load(port: int, token: str, churn: int, ready, stop, out) -> None:
    """The hostile and broken clients, as threads of one process; sets `ready` once all started, puts what
    each saw when `stop` is set."""
    query = f"?token={token}"
    lock = threading.Lock()
    churned: Counter = Counter()
    unauthorised: Counter = Counter()
    leaks: list[str] = []
    slow: dict = {}
    slow_thread = threading.Thread(target=_slow, args=(port, query, stop, slow))
    slow_thread.start()
    while "slow_status" not in slow:  # the slow client holds a stream before the churn competes for them
        time.sleep(0.01)
    threads = [slow_thread]
    threads += [threading.Thread(target=_churn, args=(port, query, stop, churned, lock)) for _ in range(churn)]
    threads += [threading.Thread(target=_unauthorised, args=(port, token, stop, unauthorised, leaks, lock))
                for _ in range(2)]
    for thread in threads[1:]:
        thread.start()
    ready.set()
    for thread in threads:
        thread.join()
    out.put({"churn_statuses": dict(churned), "unauthorised_statuses": dict(unauthorised),
             "unauthorised_leaks": leaks[:10], **slow})


class Camera:
    """A video decoded with OpenCV, looped, published at `fps` (0: unpaced) by the calling thread."""

    def __init__(self, video: Path, server: MjpegServer, fps: float):
        self.cap = cv2.VideoCapture(str(video))
        if not self.cap.isOpened():
            raise SystemExit(f"cannot open {video}")
        self.server, self.period = server, (1.0 / fps if fps else 0.0)
        self.frames = 0

    def run(self, seconds: float, every: float = 0.1, watch=None, until=None) -> dict:
        """Publish for `seconds` (or until the event `until` is set, `seconds` at most); `watch()` is called every
        `every` s. Returns the phase's figures."""
        start = next_tick = time.perf_counter()
        next_watch, frames, worst = start, 0, 0.0
        while (now := time.perf_counter()) - start < seconds and not (until and until.is_set()):
            ok, image = self.cap.read()
            if not ok:
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            t0 = time.perf_counter()
            self.server.publish(image, {"frames": self.frames})
            worst = max(worst, time.perf_counter() - t0)
            frames += 1
            self.frames += 1
            if watch and now >= next_watch:
                watch()
                next_watch = now + every
            if self.period:
                # a live camera drops the frames a late loop missed: no catching up after a stall
                next_tick = max(next_tick + self.period, time.perf_counter())
                time.sleep(max(0.0, next_tick - time.perf_counter()))
        elapsed = time.perf_counter() - start
        return {"fps": frames / elapsed, "publish_max_ms": worst * 1000, "rss_mb": rss_mb()}


def measure(video: Path, seconds: float, fps: float, churn: int, max_clients: int, client_timeout: float) -> dict:
    """The three phases; a dict of every figure. The camera keeps publishing between phases, while clients
    start and leave (a client waiting for a frame must get one to notice it should stop)."""
    spawn = multiprocessing.get_context("spawn")
    server = MjpegServer(port=0, token=secrets.token_urlsafe(16), max_clients=max_clients,
                         client_timeout=client_timeout).start()
    camera = Camera(video, server, fps)
    seen = {"max_streaming": 0, "slow_dropped_after_s": None}
    load_started = [0.0]

    def watch() -> None:
        counts = server.counts()
        seen["max_streaming"] = max(seen["max_streaming"], counts.streaming)
        if counts.timed_out and seen["slow_dropped_after_s"] is None and load_started[0]:
            seen["slow_dropped_after_s"] = round(time.perf_counter() - load_started[0], 2)

    results: dict = {}
    out = spawn.Queue()
    viewing, viewer_stop, loading, load_stop = spawn.Event(), spawn.Event(), spawn.Event(), spawn.Event()
    query = f"?token={server.token}"
    view = spawn.Process(target=viewer, args=(server.port, query, viewing, viewer_stop, out), daemon=True)
    hostile = spawn.Process(target=load, args=(server.port, server.token, churn, loading, load_stop, out),
                            daemon=True)
    try:
        view.start()
        camera.run(120.0, until=viewing)
        camera.run(1.0)
        results["baseline"] = camera.run(seconds, watch=watch)
        hostile.start()
        camera.run(120.0, until=loading)
        load_started[0] = time.perf_counter()
        results["load"] = camera.run(seconds, watch=watch)
        load_stop.set()
        camera.run(30.0, until=_Ended(hostile))
        camera.run(1.0)
        results["baseline_again"] = camera.run(seconds, watch=watch)
        results["frame_bytes"] = len(server.next_frame(0, timeout=0)[1] or b"")
        viewer_stop.set()
        camera.run(30.0, until=_Ended(view))
        while not out.empty():
            results.update(out.get(timeout=5))
    finally:
        load_stop.set()
        viewer_stop.set()
        server.stop()
    missing = {"viewer_frames", "churn_statuses"} - results.keys()
    if missing:
        raise SystemExit(f"a client process ended without its figures ({', '.join(sorted(missing))}): see above")
    results.update(seen, counts=vars(server.counts()))
    return results


class _Ended:
    """`is_set()` once a process has ended (for `Camera.run(until=...)`)."""

    def __init__(self, process):
        self.process = process

    def is_set(self) -> bool:
        return not self.process.is_alive()


def verdicts(r: dict, max_clients: int) -> list[tuple[str, bool]]:
    """Each target as (line, met)."""
    ratio = r["load"]["fps"] / r["baseline"]["fps"]
    growth = r["load"]["rss_mb"] - r["baseline"]["rss_mb"]
    unauthorised = sum(r["unauthorised_statuses"].values())
    return [
        (f"frame rate under load {r['load']['fps']:.1f} fps = {ratio:.1%} of one-client {r['baseline']['fps']:.1f} "
         f"fps (again after: {r['baseline_again']['fps']:.1f}); target >= {RATE_TARGET:.0%}", ratio >= RATE_TARGET),
        (f"server RSS {r['baseline']['rss_mb']:.1f} MB after baseline, {r['load']['rss_mb']:.1f} MB after load "
         f"({growth:+.1f} MB), {r['baseline_again']['rss_mb']:.1f} MB after; target < +{RSS_TARGET_MB:g} MB",
         growth < RSS_TARGET_MB),
        (f"unauthorised requests: {unauthorised}, statuses {r['unauthorised_statuses']}; anything but a bare 401: "
         f"{len(r['unauthorised_leaks'])}", unauthorised > 0 and not r["unauthorised_leaks"]),
        (f"1 byte/s client ({r['slow_status']}) dropped {r['slow_dropped_after_s']} s into the load (read "
         f"{r['slow_bytes_read']} B); server counts {r['counts']}", r["slow_dropped_after_s"] is not None),
        (f"most streams at once {r['max_streaming']} (cap {max_clients}); churn statuses {r['churn_statuses']}",
         r["max_streaming"] <= max_clients and r["churn_statuses"].get(200, 0) > 0),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase (default 20)")
    parser.add_argument("--fps", type=float, default=30.0, help="camera loop pace (default 30; 0: unpaced)")
    parser.add_argument("--churn", type=int, default=8, help="clients connecting and dropping (default 8)")
    parser.add_argument("--max-clients", type=int, default=MAX_CLIENTS)
    parser.add_argument("--client-timeout", type=float, default=CLIENT_TIMEOUT_S)
    parser.add_argument("--video", type=Path, help="video to publish (default: a clip of the shapes photo)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    load_avg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, load average {load_avg} (1, 5, 15 min), "
          f"python {platform.python_version()}, opencv {cv2.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video or write_clip(Path(tmp) / "shapes.mp4")
        r = measure(video, args.seconds, args.fps, args.churn, args.max_clients, args.client_timeout)
    r["load_average_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"camera loop: {'unpaced' if not args.fps else f'paced at {args.fps:g} fps'}, frames of "
          f"{r['frame_bytes'] / 1024:.0f} KiB; {args.seconds:g} s per phase; {args.churn} churning clients, "
          f"max clients {args.max_clients}, client timeout {args.client_timeout:g} s")
    print(f"viewer took {r['viewer_frames']} frames; longest publish: baseline {r['baseline']['publish_max_ms']:.1f}"
          f" ms, load {r['load']['publish_max_ms']:.1f} ms")
    missed = 0
    for line, met in verdicts(r, args.max_clients):
        print(("ok    " if met else "MISSED ") + line)
        missed += not met
    print(f"load average after: {r['load_average_after']}")
    if args.json:
        args.json.write_text(json.dumps(r, indent=1))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
