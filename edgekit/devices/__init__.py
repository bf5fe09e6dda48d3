"""Where an artifact runs: frame sources (images, folders, videos, cameras)."""

from edgekit.devices.sources import Frame, Source, read_image

__all__ = ["Frame", "Source", "read_image"]
