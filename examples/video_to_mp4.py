"""Write an annotated copy of a video (or of a camera or stream) as MP4: every frame, boxes and labels drawn,
FPS in the corner. Ctrl-C stops early and still leaves a finalized, playable file.

Install on the device:

    pip install "edgekit[onnxruntime]"          # numpy, OpenCV (headless) and ONNX Runtime; no torch

Run:

    python video_to_mp4.py model.onnx clip.mp4 annotated.mp4
    python video_to_mp4.py model.onnx 0 camera.mp4 --frames 300     # ten seconds of camera 0
"""

from __future__ import annotations

import argparse
import sys

import edgekit
from edgekit.devices.loop import FpsMeter, VideoOut, draw_status
from edgekit.devices.sources import Source
from edgekit.interrupts import Interrupts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Install: see the top of this file.")
    parser.add_argument("model", help="model file")
    parser.add_argument("source", help="video file, camera index or stream URL")
    parser.add_argument("output", help="the annotated MP4 to write")
    parser.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: until the end)")
    parser.add_argument("--loop", action="store_true", help="start a video file again at its end (until Ctrl-C)")
    parser.add_argument("--conf", type=float, help="confidence threshold (default: the model's)")
    parser.add_argument("--device", help="device profile for threads (see: edgekit devices)")
    parser.add_argument("--threads", type=int, help="inference threads")
    args = parser.parse_args()

    try:
        detector = edgekit.load(args.model, threads=args.threads, device=args.device)
        source = Source(args.source, loop=args.loop, live=False)  # every frame of a file, in order
        meter = FpsMeter()
        interrupted = False
        with VideoOut(args.output, lambda: source.fps) as out, Interrupts() as interrupts:
            try:
                for frame in source:
                    interrupts.check()  # a Ctrl-C some library swallowed still stops the loop
                    found = detector(frame.image, conf=args.conf)
                    meter.tick()
                    out.write(draw_status(found.draw(frame.image), f"{meter.fps:.1f} FPS  {len(found)} objects"))
                    if meter.frames % 30 == 1:
                        print(f"frame {frame.index}: {len(found)} objects, {meter.fps:.1f} FPS", file=sys.stderr)
                    interrupts.check()
                    if args.frames and meter.frames >= args.frames:
                        break
            except KeyboardInterrupt:
                if not out.frames:
                    raise
                interrupted = True
        if not out.frames:
            raise edgekit.EdgekitError(f"no frames in {args.source}")
        print(f"wrote {args.output}: {out.frames} frames{' (interrupted)' if interrupted else ''}", file=sys.stderr)
    except edgekit.EdgekitError as exc:
        print(f"edgekit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the loop started (loading the model, opening the source)
        print("stopped", file=sys.stderr)
        return 130
    return 130 if interrupted else 0


if __name__ == "__main__":
    raise SystemExit(main())
