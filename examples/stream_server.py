"""Serve live detections to a browser: an annotated MJPEG stream plus a small page with the stream, the FPS and
the current detections, so a headless Raspberry Pi is watched from a phone on the same network.

Install on the device:

    pip install "edgekit[onnxruntime]"          # numpy, OpenCV (headless) and ONNX Runtime; no torch
    sudo apt install -y python3-picamera2       # only for a Pi camera (source "picamera"; see pi_camera_detect.py)

Run, then open the printed address:

    python stream_server.py model.onnx 0                          # camera 0, on this machine only
    python stream_server.py model.onnx picamera --host 0.0.0.0    # Pi camera, reachable from the network
    python stream_server.py model.onnx clip.mp4 --loop --port 8000

It binds to localhost unless --host says otherwise. Bound beyond localhost it requires a random access token,
part of the printed address (http://192.168.1.20:8080/?token=...): open that address on the phone; requests
without it get 401. --token sets one, --no-token serves without (anyone who can reach the port sees the camera).
At most --max-clients streams at once (more get 503); a client that takes no frame for --client-timeout seconds
is dropped, and the camera loop never waits for a client.
"""

from __future__ import annotations

import argparse
import sys

import edgekit
from edgekit import logs
from edgekit.devices.loop import FpsMeter, draw_status
from edgekit.devices.mjpeg import CLIENT_TIMEOUT_S, MAX_CLIENTS, MjpegServer
from edgekit.devices.sources import Source


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Install: see the top of this file.")
    parser.add_argument("model", nargs="?", help="model file (default: edgekit's demo model)")
    parser.add_argument("source", nargs="?", default="0", help="camera index, picamera, video file or stream URL")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    access = parser.add_mutually_exclusive_group()
    access.add_argument("--token", help="access token to require (default: a random one unless bound to localhost)")
    access.add_argument("--no-token", action="store_true", help="serve beyond localhost without a token (anyone "
                        "who can reach the port sees the camera)")
    parser.add_argument("--max-clients", type=int, default=MAX_CLIENTS,
                        help=f"streams at once (default {MAX_CLIENTS}); more get 503")
    parser.add_argument("--client-timeout", type=float, default=CLIENT_TIMEOUT_S,
                        help=f"seconds a client may take to ask or to take a frame before it is dropped "
                             f"(default {CLIENT_TIMEOUT_S:g})")
    parser.add_argument("--loop", action="store_true", help="start a video file again at its end")
    parser.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: until Ctrl-C)")
    parser.add_argument("--conf", type=float, help="confidence threshold (default: the model's)")
    parser.add_argument("--device", help="device profile for threads (see: edgekit devices)")
    parser.add_argument("--threads", type=int, help="inference threads")
    args = parser.parse_args()

    from edgekit.assets import default_model

    server = None
    try:
        detector = edgekit.load(args.model or default_model(), threads=args.threads, device=args.device)
        imgsz = detector.meta.imgsz
        source = Source(args.source, live=True, loop=args.loop, picamera={"imgsz": imgsz})
        server = MjpegServer(args.host, args.port, title=f"edgekit {detector.meta.variant}", token=args.token,
                             no_token=args.no_token, max_clients=args.max_clients,
                             client_timeout=args.client_timeout)
        with logs.shown():
            server.start()
        print(f"serving {source.description} with {detector!r} at {server.url}", file=sys.stderr, flush=True)
        meter = FpsMeter()
        for frame in source:
            found = detector(frame.image, conf=args.conf)
            meter.tick()
            counts = ", ".join(f"{n} {name}" for name, n in found.counts().items()) or "nothing"
            image = draw_status(found.draw(frame.image), f"{meter.fps:.1f} FPS  {counts}")
            server.publish(image, {
                "fps": round(meter.fps, 2), "frames": meter.frames, "infer_ms": round(detector.timings.infer, 2),
                "dropped": source.dropped, "detections": found.to_list(),
            })
            if args.frames and meter.frames >= args.frames:
                break
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    except edgekit.EdgekitError as exc:
        print(f"edgekit: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
