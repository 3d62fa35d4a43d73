"""Merge many captures into one stream per link type, so that one Zeek run reads them all.

Each capture is shifted in time into a window of its own, and windows are a day apart: every
connection of one capture has timed out (and been removed by Zeek) before the next capture's
first packet, even when both share a 5-tuple. Zeek must run with ``max_timer_expires=0`` so that
all overdue timers fire before the next packet. Feature values do not change: they depend on
time differences only, and the shift is undone for reported timestamps.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path

from cato.capture.pcapio import Capture, write_packet, write_pcap_header

#: Shifted streams start here (2001-09-09); pcap seconds are unsigned 32-bit.
STREAM_START_NS = 1_000_000_000 * 1_000_000_000
#: Gap between two captures: far above Zeek's longest inactivity timeout (5 min for TCP).
GAP_NS = 86_400 * 1_000_000_000
#: A capture spanning longer than this (corrupt timestamps) gets a stream of its own, unshifted.
MAX_SPAN_NS = 30 * 86_400 * 1_000_000_000


@dataclass
class Segment:
    """Where one capture's packets of one link type lie in a merged stream."""

    capture: str
    start_ns: int  # shifted time of its earliest packet
    end_ns: int  # shifted time of its latest packet
    offset_ns: int  # shifted = original + offset
    packets: int


@dataclass
class MergedStream:
    """One pcap file holding segments of several captures, all of one link type."""

    path: Path
    linktype: int
    segments: list[Segment] = field(default_factory=list)
    _cursor_ns: int = STREAM_START_NS
    _starts: list[int] = field(default_factory=list)

    def add(self, cap: Capture, packets: list, out) -> Segment:
        lo = min(p.ts_ns for p in packets)
        hi = max(p.ts_ns for p in packets)
        offset = self._cursor_ns - lo
        for p in packets:
            write_packet(out, p.ts_ns + offset, p.data, p.orig_len)
        seg = Segment(cap.path, lo + offset, hi + offset, offset, len(packets))
        self.segments.append(seg)
        self._starts.append(seg.start_ns)
        self._cursor_ns = seg.end_ns + GAP_NS
        return seg

    def segment_at(self, shifted_ts: float) -> Segment | None:
        """The segment holding a shifted timestamp in seconds (as Zeek logs it)."""
        ts_ns = round(shifted_ts * 1e9)
        i = bisect.bisect_right(self._starts, ts_ns + 1_000) - 1
        if i < 0:
            return None
        seg = self.segments[i]
        return seg if ts_ns <= seg.end_ns + 1_000 else None


def merge_captures(captures: list[Capture], workdir: Path, stem: str) -> list[MergedStream]:
    """Write ``captures`` into merged pcap files under ``workdir``, one per link type (and one per
    capture whose timestamps span too long to shift safely)."""
    streams: dict[int, MergedStream] = {}
    files: dict[int, object] = {}
    alone: list[MergedStream] = []
    try:
        for cap in captures:
            by_link: dict[int, list] = {}
            for p in cap.packets:
                by_link.setdefault(p.linktype, []).append(p)
            for linktype, packets in by_link.items():
                span = max(p.ts_ns for p in packets) - min(p.ts_ns for p in packets)
                if span > MAX_SPAN_NS:
                    path = workdir / f"{stem}-alone{len(alone)}-{linktype}.pcap"
                    ms = MergedStream(path, linktype, _cursor_ns=min(p.ts_ns for p in packets))
                    with open(path, "wb") as out:
                        write_pcap_header(out, linktype)
                        ms.add(cap, packets, out)
                    alone.append(ms)
                    continue
                if linktype not in streams:
                    path = workdir / f"{stem}-{linktype}.pcap"
                    streams[linktype] = MergedStream(path, linktype)
                    files[linktype] = open(path, "wb")
                    write_pcap_header(files[linktype], linktype)
                streams[linktype].add(cap, packets, files[linktype])
    finally:
        for f in files.values():
            f.close()
    return list(streams.values()) + alone
