"""An annotated MJPEG stream over HTTP with a small page (the stream, FPS and the current detections), so a
headless device is watched from a phone's browser. Standard library HTTP server; OpenCV encodes the JPEGs.

    server = MjpegServer(port=8080).start()       # binds to localhost unless host is given
    server.publish(annotated_bgr, {"fps": 12.5, "detections": found.to_list()})
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from edgekit.errors import EdgekitError

logger = logging.getLogger(__name__)
BOUNDARY = "edgekitframe"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgekit: TITLE</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0; background: #111; color: #eee; }
header { padding: .5em 1em; display: flex; gap: 1.5em; align-items: baseline; flex-wrap: wrap; }
#fps { font-size: 1.6em; font-variant-numeric: tabular-nums; }
img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
ul { list-style: none; padding: 0 1em; margin: .5em 0; columns: 2; }
li { font-variant-numeric: tabular-nums; }
.dim { color: #999; }
</style></head>
<body>
<header><strong>TITLE</strong><span id="fps">-- FPS</span><span id="frames" class="dim"></span>
<span id="status" class="dim">connecting</span></header>
<img id="stream" src="/stream.mjpg" alt="live detections">
<ul id="detections"></ul>
<script>
async function poll() {
  try {
    const r = await fetch('/stats.json', {cache: 'no-store'});
    const s = await r.json();
    document.getElementById('fps').textContent = s.fps.toFixed(1) + ' FPS';
    document.getElementById('frames').textContent = 'frame ' + s.frames +
      (s.infer_ms != null ? ', inference ' + s.infer_ms.toFixed(1) + ' ms' : '');
    const list = document.getElementById('detections');
    list.replaceChildren(...s.detections.map(d => {
      const li = document.createElement('li');
      li.className = 'detection';
      li.textContent = d.label + ' ' + (d.confidence * 100).toFixed(0) + '%';
      return li;
    }));
    document.getElementById('status').textContent = s.detections.length + ' detection(s)';
  } catch (e) {
    document.getElementById('status').textContent = 'reconnecting';
  }
  setTimeout(poll, 500);
}
poll();
</script>
</body></html>
"""


class MjpegServer:
    """Serves `/` (the page), `/stream.mjpg` (multipart JPEG), `/frame.jpg` (the latest frame) and
    `/stats.json` (whatever was last published with the frame) from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, title: str = "edgekit", quality: int = 80):
        self.host, self.port, self.title, self.quality = host, port, title, quality
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._stats: dict[str, Any] = {"fps": 0.0, "frames": 0, "detections": []}
        self._closing = False
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where the page is served."""
        host = "localhost" if self.host in ("127.0.0.1", "localhost", "") else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> MjpegServer:
        """Bind and serve in a background thread; a port in use is a one-line EdgekitError."""
        handler = _handler(self)
        try:
            self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        except OSError as exc:
            raise EdgekitError(f"cannot serve on {self.host}:{self.port}: {exc.strerror or exc}") from None
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="edgekit-mjpeg", daemon=True)
        self._thread.start()
        return self

    def publish(self, image: np.ndarray, stats: dict[str, Any] | None = None) -> None:
        """Encode a BGR frame and hand it to every viewer; `stats` (JSON-ready) is served at /stats.json."""
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise EdgekitError("cannot encode the frame as JPEG")
        with self._cond:
            self._jpeg = data.tobytes()
            self._seq += 1
            if stats is not None:
                self._stats = {**self._stats, **stats}
            self._cond.notify_all()

    def stats(self) -> dict[str, Any]:
        """The statistics last published."""
        with self._cond:
            return dict(self._stats)

    def next_frame(self, after: int, timeout: float = 5.0) -> tuple[int, bytes | None]:
        """Wait for a frame newer than sequence number `after`; (seq, jpeg), jpeg None on timeout or close."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after or self._closing, timeout)
            if self._closing or self._seq <= after:
                return after, None
            return self._seq, self._jpeg

    def stop(self) -> None:
        """Close every stream and stop serving."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _handler(server: MjpegServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, fmt: str, *args: Any) -> None:
            logger.debug("%s %s", self.address_string(), fmt % args)

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path in ("/", "/index.html"):
                self._send(PAGE.replace("TITLE", server.title).encode(), "text/html; charset=utf-8")
            elif path == "/stats.json":
                self._send(json.dumps(server.stats()).encode(), "application/json")
            elif path == "/frame.jpg":
                _, jpeg = server.next_frame(0, timeout=5.0)
                if jpeg is None:
                    self.send_error(503, "no frame yet")
                else:
                    self._send(jpeg, "image/jpeg")
            elif path == "/stream.mjpg":
                self._stream()
            else:
                self.send_error(404)

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            seq = 0
            try:
                while True:
                    seq, jpeg = server.next_frame(seq, timeout=5.0)
                    if jpeg is None:
                        if server._closing:
                            return
                        time.sleep(0.05)
                        continue
                    self.wfile.write(
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                        + jpeg
                        + b"\r\n"
                    )
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler
