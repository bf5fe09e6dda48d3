"""Detect objects in a USB webcam, a video file or a network stream (RTSP/HTTP) with OpenCV, in a window or
headless. Frames are read on a capture thread that keeps only the newest, so a live camera never lags behind.

Install on the device (Raspberry Pi OS, Debian/Ubuntu, macOS, Windows):

    pip install "edgekit[onnxruntime]"          # numpy, OpenCV (headless) and ONNX Runtime; no torch
    pip install opencv-python                    # only for --show: a window needs OpenCV's GUI build

Run:

    python webcam_detect.py model.onnx                          # camera 0, headless: prints what it sees
    python webcam_detect.py model.onnx 1 --show                 # camera 1, in a window (q quits)
    python webcam_detect.py model.onnx rtsp://cam.local/stream  # an IP camera; reconnects when it drops
"""

from __future__ import annotations

import argparse
import sys

import edgekit
from edgekit.devices.loop import FpsMeter, draw_status
from edgekit.devices.sources import Source
from edgekit.interrupts import Interrupts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Install: see the top of this file.")
    parser.add_argument("model", nargs="?", help="model file (default: edgekit's demo model)")
    parser.add_argument("source", nargs="?", default="0", help="camera index, video file or stream URL (default 0)")
    parser.add_argument("--show", action="store_true", help="show a window (needs opencv-python, not -headless)")
    parser.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: until the end)")
    parser.add_argument("--conf", type=float, help="confidence threshold (default: the model's)")
    parser.add_argument("--device", help="device profile for threads (see: edgekit devices)")
    parser.add_argument("--threads", type=int, help="inference threads")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a stream (default 10)")
    args = parser.parse_args()

    import cv2

    from edgekit.assets import default_model

    try:
        detector = edgekit.load(args.model or default_model(), threads=args.threads, device=args.device)
        source = Source(args.source, timeout=args.timeout)
        print(f"{detector!r} on {source.description}", file=sys.stderr)
        meter = FpsMeter()
        with Interrupts() as interrupts:
            try:
                for frame in source:
                    interrupts.check()  # a Ctrl-C some library swallowed still stops the loop
                    found = detector(frame.image, conf=args.conf)
                    meter.tick()
                    counts = ", ".join(f"{n} {name}" for name, n in found.counts().items()) or "nothing"
                    line = f"{meter.fps:.1f} FPS  {counts}"
                    if args.show:
                        cv2.imshow("edgekit", draw_status(found.draw(frame.image), line))
                        if cv2.waitKey(1) & 0xFF == ord("q"):
                            break
                    else:
                        print(f"frame {frame.index}: {counts}  {meter.fps:.1f} FPS "
                              f"(infer {detector.timings.infer:.1f} ms, {source.dropped} dropped)", flush=True)
                    interrupts.check()
                    if args.frames and meter.frames >= args.frames:
                        break
            except KeyboardInterrupt:
                print("stopped", file=sys.stderr)
            finally:
                if args.show:
                    cv2.destroyAllWindows()
    except edgekit.EdgekitError as exc:
        print(f"edgekit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the loop started (loading the model, opening the source)
        print("stopped", file=sys.stderr)
        return 130
    except cv2.error as exc:
        print(f"edgekit: error: cannot show a window ({exc.err}); install opencv-python or drop --show",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
