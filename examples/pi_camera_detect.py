"""Detect objects with a Raspberry Pi camera through picamera2: the model runs on a small "lores" stream at its
own input size, and boxes are drawn onto the full-resolution main stream in picamera2's callback (preview
window or recording).

Install on the Raspberry Pi (Raspberry Pi OS bookworm, 64-bit):

    sudo apt install -y python3-picamera2            # picamera2 and libcamera come with the OS, not from pip
    python3 -m venv --system-site-packages ~/edgekit && . ~/edgekit/bin/activate
    pip install "edgekit[onnxruntime]"               # or "edgekit[litert]" for .tflite models (Pi Zero 2 W)

Run:

    python pi_camera_detect.py model.onnx --preview           # a window on the Pi's desktop
    python pi_camera_detect.py model.onnx --frames 100        # headless: prints what it sees
    python pi_camera_detect.py model.onnx --record out.mp4    # the annotated main stream to a file (Ctrl-C stops)
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import edgekit
from edgekit.devices.loop import FpsMeter, VideoOut
from edgekit.devices.profiles import detect_device
from edgekit.devices.sources import Source
from edgekit.interrupts import Interrupts


def size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Install: see the top of this file.")
    parser.add_argument("model", nargs="?", help="model file (default: edgekit's demo model)")
    parser.add_argument("--camera", type=int, default=0, help="camera number (default 0)")
    parser.add_argument("--main", type=size, default=(1280, 720), help="main (display) stream WxH (default 1280x720)")
    parser.add_argument("--lores-format", default="YUV420", help="lores format: YUV420 (every Pi) or RGB888 (Pi 5)")
    parser.add_argument("--preview", action="store_true", help="show a preview window with the boxes")
    parser.add_argument("--record", metavar="MP4", help="write the annotated main stream to this file")
    parser.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: until Ctrl-C)")
    parser.add_argument("--conf", type=float, help="confidence threshold (default: the model's)")
    parser.add_argument("--device", help="device profile for threads (default: detected)")
    parser.add_argument("--threads", type=int, help="inference threads (default: the profile's)")
    args = parser.parse_args()

    from edgekit.assets import default_model

    try:
        device = args.device or detect_device().profile
        detector = edgekit.load(args.model or default_model(), threads=args.threads, device=device)
        source = Source(f"picamera:{args.camera}", picamera={
            "main": args.main, "imgsz": detector.meta.imgsz, "lores_format": args.lores_format,
            "preview": args.preview,
        })
        print(f"{detector!r} on Raspberry Pi camera {args.camera} ({device or 'no device profile'})", file=sys.stderr)
        meter = FpsMeter()
        with contextlib.ExitStack() as stack:
            recording = stack.enter_context(VideoOut(args.record, 30.0)) if args.record else None
            interrupts = stack.enter_context(Interrupts())
            try:
                for frame in source:
                    interrupts.check()  # a Ctrl-C some library swallowed still stops the loop
                    found = detector(frame.image, conf=args.conf)
                    source.camera.show(found)  # drawn on the main stream by the pre-callback
                    meter.tick()
                    if recording is not None:
                        recording.write(source.camera.capture_main())
                    counts = ", ".join(f"{n} {name}" for name, n in found.counts().items()) or "nothing"
                    print(f"frame {frame.index}: {counts}  {meter.fps:.1f} FPS "
                          f"(infer {detector.timings.infer:.1f} ms)", flush=True)
                    interrupts.check()
                    if args.frames and meter.frames >= args.frames:
                        break
            except KeyboardInterrupt:
                print("stopped", file=sys.stderr)
        if recording is not None and recording.frames:
            print(f"wrote {args.record} ({recording.frames} frames)", file=sys.stderr)
    except edgekit.EdgekitError as exc:
        print(f"edgekit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the loop started (loading the model, opening the source)
        print("stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
