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

import numpy as np

from cato.corpus.pcapio import Capture, write_packet, write_pcap_header

#: Shifted streams start here (1973) and end before 2038: Zeek misreads later pcap times (seen:
#: no connections at all past 2^31 s), so a full stream ends there and a new one begins.
STREAM_START_NS = 100_000_000 * 1_000_000_000
STREAM_END_NS = (2**31 - 86_400) * 1_000_000_000
#: Gap between two captures: far above Zeek's longest inactivity timeout (5 min for TCP).
GAP_NS = 86_400 * 1_000_000_000


@dataclass
class Segment:
    """Where one capture's packets of one link type lie in a merged stream.

    Offsets are whole microseconds: Zeek reads pcap times in microseconds, so every shifted time
    is the original one (as Zeek would read it) plus the offset, exactly.
    """

    capture: str
    start_us: int  # shifted time of its earliest packet, as Zeek reads it
    end_us: int  # shifted time of its latest packet
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
    #: Shifted time of every packet in stream order, in microseconds as Zeek reads them.
    times_us: list[int] = field(default_factory=list, repr=False)

    def add(self, cap: Capture, packets: list, out) -> Segment:
        lo = min(p.ts_ns for p in packets)
        hi = max(p.ts_ns for p in packets)
        offset = self._cursor_ns - (lo - lo % 1000)
        for p in packets:
            write_packet(out, p.ts_ns + offset, p.data, p.orig_len)
            self.times_us.append((p.ts_ns + offset) // 1000)
        seg = Segment(cap.path, (lo + offset) // 1000, (hi + offset) // 1000, offset, len(packets))
        self.segments.append(seg)
        self._starts.append(seg.start_us)
        self._cursor_ns = (seg.end_us + 1) * 1000 + GAP_NS
        return seg

    def network_time_before(self, packet_index: np.ndarray) -> np.ndarray:
        """Zeek's network time (µs) just before the packet at 1-based ``packet_index`` of the stream: the
        latest time of the packets before it (network time never goes back); -2^62 for the first."""
        network = np.maximum.accumulate(np.asarray(self.times_us, dtype=np.int64))
        before = np.asarray(packet_index, dtype=np.int64) - 2
        return np.where(before >= 0, network[before.clip(0, len(network) - 1)], -(2**62))

    def segment_at(self, shifted_ts: float) -> Segment | None:
        """The segment holding a shifted timestamp in seconds (as Zeek logs it, in microseconds)."""
        ts_us = round(shifted_ts * 1e6)
        i = bisect.bisect_right(self._starts, ts_us) - 1
        if i < 0:
            return None
        seg = self.segments[i]
        return seg if ts_us <= seg.end_us else None


def merge_captures(captures: list[Capture], workdir: Path, stem: str) -> list[MergedStream]:
    """Write ``captures`` into merged pcap files under ``workdir``: one stream per link type, and a
    new one whenever a stream's time range is full (captures with timestamps decades apart exist)."""
    done: list[MergedStream] = []
    open_streams: dict[int, tuple[MergedStream, object]] = {}
    try:
        for cap in captures:
            by_link: dict[int, list] = {}
            for p in cap.packets:
                by_link.setdefault(p.linktype, []).append(p)
            for linktype, packets in by_link.items():
                lo = min(p.ts_ns for p in packets)
                span = max(p.ts_ns for p in packets) - lo
                current = open_streams.get(linktype)
                if current and current[0]._cursor_ns + span > STREAM_END_NS:
                    current[1].close()
                    done.append(current[0])
                    current = None
                if current is None:
                    path = workdir / f"{stem}-{linktype}-{len(done) + len(open_streams)}.pcap"
                    # A capture too long to shift at all keeps its own times.
                    start = STREAM_START_NS if STREAM_START_NS + span <= STREAM_END_NS else lo - lo % 1000
                    ms = MergedStream(path, linktype, _cursor_ns=start)
                    out = open(path, "wb")
                    write_pcap_header(out, linktype)
                    current = open_streams[linktype] = (ms, out)
                current[0].add(cap, packets, current[1])
    finally:
        for ms, out in open_streams.values():
            out.close()
    return done + [ms for ms, _ in open_streams.values()]
