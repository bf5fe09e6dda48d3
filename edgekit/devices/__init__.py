"""Where an artifact runs: device profiles, frame sources (images, folders, videos, cameras, streams,
picamera2), telemetry (temperature, clocks, throttling) and an MJPEG stream server."""

from edgekit.devices.profiles import PROFILES, DeviceProfile, detect_device, get_profile
from edgekit.devices.sources import Backoff, Frame, Source

__all__ = ["PROFILES", "Backoff", "DeviceProfile", "Frame", "Source", "detect_device", "get_profile"]
