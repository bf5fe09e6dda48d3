"""A PNG of a profile, drawn with OpenCV (no plotting library on the device): frame time over the run, and the
SoC temperature and ARM clock sampled during it, with labelled axes and units."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from edgekit.errors import EdgekitError
from edgekit.fileio import atomic_write_bytes
from edgekit.runtimes.profile import ProfileReport

WIDTH, HEIGHT = 1280, 850
LEFT, RIGHT = 110, 110
FONT = cv2.FONT_HERSHEY_SIMPLEX
INK, GRID = (40, 40, 40), (225, 225, 225)
BLUE, RED, GREEN, ORANGE = (200, 110, 30), (40, 40, 210), (40, 150, 40), (120, 200, 255)


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values covering lo..hi (steps of 1, 2 or 5 times a power of ten)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks = [round(math.floor(lo / step) * step, 10)]
    while ticks[-1] < hi - 1e-12:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _text(img, text, org, scale=0.55, color=INK, thick=1, anchor="left") -> None:
    (w, h), _ = cv2.getTextSize(text, FONT, scale, thick)
    x, y = org
    if anchor == "right":
        x -= w
    elif anchor == "center":
        x -= w // 2
    cv2.putText(img, text, (int(x), int(y + h // 2)), FONT, scale, color, thick, cv2.LINE_AA)


def _vertical_text(img, text, center, color=INK, scale=0.6) -> None:
    (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
    patch = np.full((h + base + 4, w + 4, 3), 255, np.uint8)
    cv2.putText(patch, text, (2, h + 2), FONT, scale, color, 1, cv2.LINE_AA)
    patch = cv2.rotate(patch, cv2.ROTATE_90_COUNTERCLOCKWISE)
    ph, pw = patch.shape[:2]
    x, y = int(center[0] - pw / 2), int(center[1] - ph / 2)
    region = img[y : y + ph, x : x + pw]
    np.minimum(region, patch[: region.shape[0], : region.shape[1]], out=region)


class _Axes:
    def __init__(self, img, top, bottom, xlim, ylim):
        self.img, self.top, self.bottom = img, top, bottom
        self.left, self.right = LEFT, WIDTH - RIGHT
        self.xlim, self.ylim = xlim, ylim

    def x(self, v):
        lo, hi = self.xlim
        return self.left + (v - lo) / (hi - lo or 1) * (self.right - self.left)

    def y(self, v, ylim=None):
        lo, hi = ylim or self.ylim
        return self.bottom - (v - lo) / (hi - lo or 1) * (self.bottom - self.top)

    def frame(self, xticks, yticks, xlabel, ylabel, color=INK, side="left"):
        img = self.img
        for t in xticks:
            px = int(self.x(t))
            cv2.line(img, (px, self.top), (px, self.bottom), GRID, 1)
            _text(img, f"{t:g}", (px, self.bottom + 16), 0.5, anchor="center")
        for t in yticks:
            py = int(self.y(t))
            if side == "left":
                cv2.line(img, (self.left, py), (self.right, py), GRID, 1)
                _text(img, f"{t:g}", (self.left - 8, py), 0.5, color, anchor="right")
            else:
                _text(img, f"{t:g}", (self.right + 8, py), 0.5, color)
        cv2.rectangle(img, (self.left, self.top), (self.right, self.bottom), INK, 1)
        _text(img, xlabel, ((self.left + self.right) // 2, self.bottom + 42), 0.6, anchor="center")
        cx = self.left - 78 if side == "left" else self.right + 78
        _vertical_text(img, ylabel, (cx, (self.top + self.bottom) // 2), color)

    def polyline(self, xs, ys, color, ylim=None, thickness=2):
        pts = np.array([[self.x(a), self.y(b, ylim)] for a, b in zip(xs, ys)], np.float64)
        if len(pts) == 1:
            cv2.circle(self.img, tuple(int(v) for v in pts[0]), 3, color, -1, cv2.LINE_AA)
        elif len(pts):
            cv2.polylines(self.img, [np.round(pts).astype(np.int32)], False, color, thickness, cv2.LINE_AA)


def render_profile(report: ProfileReport) -> np.ndarray:
    """The profile plot as a BGR image."""
    img = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    lat = report.latency
    title = (f"{Path(report.model).name}: {report.backend} {report.precision} {report.imgsz[0]}x{report.imgsz[1]}, "
             f"threads {report.threads or 'default'}, device {report.device or 'unknown'}")
    _text(img, title, (WIDTH // 2, 24), 0.7, thick=2, anchor="center")
    _text(img, f"p50 {lat.p50:.2f} ms   p90 {lat.p90:.2f} ms   p99 {lat.p99:.2f} ms   mean {lat.mean:.2f} ms"
               f"   {lat.fps:.1f} FPS   (pre {report.stages['pre']:.2f} + infer {report.stages['infer']:.2f}"
               f" + post {report.stages['post']:.2f} ms)", (WIDTH // 2, 54), 0.55, anchor="center")
    times = [r["t_s"] for r in report.runs]
    frame_ms = [r["frame_ms"] for r in report.runs]
    t_end = max([*times, *(s["t"] for s in report.telemetry), 1e-3])
    xticks = nice_ticks(0, t_end)
    xlim = (0, max(xticks[-1], 1e-3))

    yticks = nice_ticks(0, max(frame_ms) * 1.05)
    top = _Axes(img, 80, 440, xlim, (0, yticks[-1]))
    top.frame(xticks, yticks, "time since the first timed run (s)", "frame time (ms)")
    top.polyline(times, frame_ms, BLUE)
    p50y = int(top.y(lat.p50))
    for x in range(top.left, top.right, 14):
        cv2.line(img, (x, p50y), (min(x + 7, top.right), p50y), INK, 1)
    _text(img, f"p50 {lat.p50:.2f} ms", (top.right - 6, p50y - 12), 0.5, anchor="right")

    samples = report.telemetry
    temps = [(s["t"], s["temp_c"]) for s in samples if s["temp_c"] is not None]
    clocks = [(s["t"], s["arm_mhz"]) for s in samples if s["arm_mhz"] is not None]
    bottom_top, bottom_bottom = 510, 750
    if not temps and not clocks:
        cv2.rectangle(img, (LEFT, bottom_top), (WIDTH - RIGHT, bottom_bottom), INK, 1)
        _text(img, "no SoC temperature or ARM clock readings on this machine", (WIDTH // 2, (bottom_top +
              bottom_bottom) // 2), 0.7, anchor="center")
        _text(img, "time since the first timed run (s)", (WIDTH // 2, bottom_bottom + 42), 0.6, anchor="center")
    else:
        lo_t = min([v for _, v in temps] or [0])
        hi_t = max([v for _, v in temps] or [1])
        tticks = nice_ticks(math.floor(lo_t - 2), math.ceil(hi_t + 2))
        bottom = _Axes(img, bottom_top, bottom_bottom, xlim, (tticks[0], tticks[-1]))
        for i, s in enumerate(samples):  # shade from each sample that reports throttling or capping now
            if s["throttled"] and s["throttled"] & 0b1111:
                end = samples[i + 1]["t"] if i + 1 < len(samples) else s["t"]
                x1, x2 = int(bottom.x(s["t"])), max(int(bottom.x(end)), int(bottom.x(s["t"])) + 3)
                cv2.rectangle(img, (max(x1, bottom.left), bottom_top + 1), (min(x2, bottom.right),
                              bottom_bottom - 1), ORANGE, -1)
        bottom.frame(xticks, tticks if temps else [], "time since the first timed run (s)",
                     "SoC temperature (deg C)" if temps else "", RED)
        if temps:
            bottom.polyline(*zip(*temps), RED)
        if clocks:
            lo_c = min(v for _, v in clocks)
            hi_c = max(v for _, v in clocks)
            cticks = nice_ticks(max(0.0, lo_c - 100), hi_c + 100)
            ylim = (cticks[0], cticks[-1])
            for t in cticks:
                _text(img, f"{t:g}", (bottom.right + 8, int(bottom.y(t, ylim))), 0.5, GREEN)
            _vertical_text(img, "ARM clock (MHz)", (bottom.right + 80, (bottom_top + bottom_bottom) // 2), GREEN)
            bottom.polyline(*zip(*clocks), GREEN, ylim)
    legend_y = HEIGHT - 22
    items = [(BLUE, "frame time (ms)"), (RED, "SoC temperature (deg C)"), (GREEN, "ARM clock (MHz)"),
             (ORANGE, "throttled / capped now")]
    x = LEFT
    for color, label in items:
        cv2.rectangle(img, (x, legend_y - 6), (x + 22, legend_y + 6), color, -1)
        _text(img, label, (x + 30, legend_y), 0.5)
        x += 60 + cv2.getTextSize(label, FONT, 0.5, 1)[0][0]
    return img


def save_plot(report: ProfileReport, path: str | Path) -> Path:
    """Write the profile plot as a PNG (atomically)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise EdgekitError(f"--plot writes a PNG: give a file name ending in .png, not {path.name}")
    ok, data = cv2.imencode(".png", render_profile(report))
    if not ok:
        raise EdgekitError(f"cannot encode the plot for {path}")
    atomic_write_bytes(path, data.tobytes())
    return path
