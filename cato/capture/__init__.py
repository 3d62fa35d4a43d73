"""Reading captures and merging them into Zeek input streams."""

from cato.capture.merge import MergedStream, Segment, merge_captures
from cato.capture.pcapio import Capture, CaptureError, Packet, read_capture, read_captures

__all__ = ["Capture", "CaptureError", "MergedStream", "Packet", "Segment", "merge_captures", "read_capture", "read_captures"]
