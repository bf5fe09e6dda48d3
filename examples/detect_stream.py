"""Run a detector on a camera or video and report what it sees, with live frame rates.

Copy this file onto the device next to a model (`pip install edgekit[onnxruntime]` is all it needs):

    python detect_stream.py MODEL.onnx            # camera 0
    python detect_stream.py MODEL.onnx clip.mp4 --save annotated.mp4 --threads 4
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import cv2

import edgekit
from edgekit.devices.loop import VideoOut


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("source", nargs="?", default="0", help="camera index or video file (default: camera 0)")
    parser.add_argument("--conf", type=float, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--save", help="write an annotated video here")
    parser.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: until the end)")
    args = parser.parse_args()

    try:
        detector = edgekit.load(args.model, threads=args.threads)
    except edgekit.EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cap = cv2.VideoCapture(int(args.source) if args.source.isdigit() else args.source)
    if not cap.isOpened():
        print(f"error: cannot open {args.source}", file=sys.stderr)
        return 1
    frames, start = 0, time.perf_counter()
    recording = VideoOut(args.save, cap.get(cv2.CAP_PROP_FPS) or 30.0) if args.save else contextlib.nullcontext()
    with recording:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            found = detector(frame, conf=args.conf)
            frames += 1
            t = detector.timings
            summary = ", ".join(f"{n} {label}" for label, n in found.counts().items()) or "nothing"
            print(
                f"frame {frames}: {summary}  ({t.total:.1f} ms: pre {t.pre:.1f}, infer {t.infer:.1f}, "
                f"post {t.post:.1f})",
                flush=True,
            )
            if args.save:
                recording.write(found.draw(frame))
            if args.frames and frames >= args.frames:
                break
    cap.release()
    elapsed = time.perf_counter() - start
    if frames:
        print(f"{frames} frames in {elapsed:.1f} s: {frames / elapsed:.1f} FPS end to end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
