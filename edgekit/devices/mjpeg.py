"""An annotated MJPEG stream over HTTP with a small page (the stream, FPS and the current detections), so a
headless device is watched from a phone's browser. Standard library HTTP server; OpenCV encodes the JPEGs.

    server = MjpegServer(port=8080).start()       # binds to localhost unless host is given
    server.publish(annotated_bgr, {"fps": 12.5, "detections": found.to_list()})
    print(server.url)                             # with ?token=... when bound beyond loopback

Who may watch is `stream_access`'s rule (a token by default beyond loopback). What a client may cost is
bounded: at most `max_clients` streams at once and `CONNECTIONS_PER_CLIENT` times as many connections (a
viewer's page polls the statistics, and browsers open spare connections ahead of time); over either cap, 503.
Every connection has `client_timeout` seconds to send its request and to take each frame whole: a client
that stops reading is dropped once the `SEND_BUFFER_BYTES` the kernel holds for it are full. The camera loop
never waits for a client: `publish` swaps in the newest JPEG under a lock no client holds while sending, and
each stream sends the newest frame whenever it is ready for one, skipping the frames it was too slow for.
"""

from __future__ import annotations

import html
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from edgekit.devices.stream_access import access_token, is_loopback, lan_address, token_matches, with_token
from edgekit.errors import EdgekitError

logger = logging.getLogger(__name__)
BOUNDARY = "edgekitframe"
MAX_CLIENTS = 4
CONNECTIONS_PER_CLIENT = 4
CLIENT_TIMEOUT_S = 5.0
RETRY_AFTER_S = 5
SEND_BUFFER_BYTES = 256 * 1024  # per stream, in the kernel: a few frames, so a stalled client shows within a second
BUSY = f"HTTP/1.0 503 Service Unavailable\r\nRetry-After: {RETRY_AFTER_S}\r\nContent-Length: 0\r\n\r\n".encode()
UNAUTHORISED = b"401: this stream needs the token in the address the server printed (?token=...)\n"

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
<img id="stream" src="stream.mjpgQUERY" alt="live detections">
<ul id="detections"></ul>
<script>
async function poll() {
  try {
    const r = await fetch('stats.jsonQUERY', {cache: 'no-store'});
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


@dataclass
class ServerCounts:
    """What a server did since it started (a snapshot; `MjpegServer.counts()`)."""

    streaming: int = 0  # streams open now
    unauthorised: int = 0  # requests answered 401
    refused: int = 0  # connections and streams over the caps, answered 503
    timed_out: int = 0  # streams dropped for not taking a frame within client_timeout


class MjpegServer:
    """Serves `/` (the page), `/stream.mjpg` (multipart JPEG), `/frame.jpg` (the latest frame) and
    `/stats.json` (whatever was last published with the frame) from background threads.

    `token` / `no_token`: see `stream_access.access_token` (the token in force is `self.token` once started).
    `max_clients`: streams at once (>= 1). `client_timeout`: seconds a client has to send its request and to
    take each frame (> 0). Bad values raise EdgekitError.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, title: str = "edgekit", quality: int = 80, *,
                 token: str | None = None, no_token: bool = False, max_clients: int = MAX_CLIENTS,
                 client_timeout: float = CLIENT_TIMEOUT_S):
        if max_clients < 1:
            raise EdgekitError(f"max clients must be at least 1, not {max_clients}")
        if not client_timeout > 0:
            raise EdgekitError(f"client timeout must be above 0 s, not {client_timeout}")
        self.host, self.port, self.title, self.quality = host, port, title, quality
        self.max_clients, self.client_timeout = max_clients, client_timeout
        self._token_choice = token, no_token
        self.token: str | None = None
        self._bound = host
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._stats: dict[str, Any] = {"fps": 0.0, "frames": 0, "detections": []}
        self._counts = ServerCounts()
        self._counts_lock = threading.Lock()
        self._streams = threading.BoundedSemaphore(max_clients)
        self._closing = False
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where the page is served, with the token when one is required: the address to open on a phone
        (this machine's address on its network when bound to every interface)."""
        if is_loopback(self._bound):
            host = "localhost"
        elif self._bound in ("", "0.0.0.0"):
            host = lan_address() or socket.gethostname()
        else:
            host = self._bound
        return with_token(f"http://{host}:{self.port}/", self.token)

    def start(self) -> MjpegServer:
        """Bind and serve in a background thread; a port in use or a bad token is a one-line EdgekitError."""
        try:
            httpd = _HttpServer((self.host, self.port), _handler(self), self.max_clients * CONNECTIONS_PER_CLIENT,
                                self._count)
        except OSError as exc:
            raise EdgekitError(f"cannot serve on {self.host}:{self.port}: {exc.strerror or exc}") from None
        self._bound, self.port = httpd.server_address[:2]
        try:
            self.token = access_token(self._bound, *self._token_choice)
        except EdgekitError:
            httpd.server_close()
            raise
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="edgekit-mjpeg", daemon=True)
        self._thread.start()
        return self

    def publish(self, image: np.ndarray, stats: dict[str, Any] | None = None) -> None:
        """Encode a BGR frame and make it the newest; `stats` (JSON-ready) is served at /stats.json.
        Never waits for a client."""
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise EdgekitError("cannot encode the frame as JPEG")
        jpeg = data.tobytes()
        with self._cond:
            self._jpeg = jpeg
            self._seq += 1
            if stats is not None:
                self._stats = {**self._stats, **stats}
            self._cond.notify_all()

    def stats(self) -> dict[str, Any]:
        """The statistics last published."""
        with self._cond:
            return dict(self._stats)

    def counts(self) -> ServerCounts:
        """Streams open now, and the requests refused or dropped so far."""
        with self._counts_lock:
            return ServerCounts(**asdict(self._counts))

    def _count(self, name: str, by: int = 1) -> None:
        with self._counts_lock:
            setattr(self._counts, name, getattr(self._counts, name) + by)

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


class _HttpServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once; one more is answered 503 without a thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int,
                 count: Callable[[str], None]):
        self._slots = threading.BoundedSemaphore(max_connections)
        self._count = count
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._count("refused")
            _refuse(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("client %s: %r", client_address, sys.exc_info()[1])


def _refuse(request: socket.socket) -> None:
    """Answer 503 without waiting: a client that does not read gets nothing."""
    try:
        request.setblocking(False)
        request.send(BUSY)
    except OSError:
        pass


def _handler(server: MjpegServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        timeout = server.client_timeout  # on the socket: reading the request and sending each response

        def log_message(self, fmt: str, *args: Any) -> None:
            line = fmt % args
            if server.token:
                line = line.replace(server.token, "<token>")
            logger.debug("%s %s", self.address_string(), line)

        def _send(self, body: bytes, kind: str, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if not token_matches(self.path, server.token):
                server._count("unauthorised")
                self._send(UNAUTHORISED, "text/plain; charset=utf-8", status=401)
                return
            path = self.path.split("?")[0]
            if path in ("/", "/index.html"):
                query = with_token("", server.token)
                page = PAGE.replace("TITLE", html.escape(server.title)).replace("QUERY", query)
                self._send(page.encode(), "text/html; charset=utf-8")
            elif path == "/stats.json":
                self._send(json.dumps(server.stats()).encode(), "application/json")
            elif path == "/frame.jpg":
                _, jpeg = server.next_frame(0, timeout=5.0)
                if jpeg is None:
                    self.send_error(503, "no frame yet")
                else:
                    self._send(jpeg, "image/jpeg")
            elif path == "/stream.mjpg":
                if server._streams.acquire(blocking=False):
                    server._count("streaming")
                    try:
                        self._stream()
                    finally:
                        server._count("streaming", -1)
                        server._streams.release()
                else:
                    server._count("refused")
                    self.log_request(503)
                    self.wfile.write(BUSY)
            else:
                self.send_error(404)

        def _stream(self) -> None:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
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
            except TimeoutError:
                server._count("timed_out")
                logger.debug("dropped %s: took no frame within %.1f s", self.address_string(), server.client_timeout)
            except OSError:
                return

    return Handler
