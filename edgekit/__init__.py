"""edgekit: deploy real-time object detectors to CPUs, phones and the Raspberry Pi."""

__version__ = "0.1.0"

from edgekit.detections import Detections
from edgekit.errors import EdgekitError
from edgekit.runtimes import Detector, load

__all__ = ["Detections", "Detector", "EdgekitError", "__version__", "load"]
