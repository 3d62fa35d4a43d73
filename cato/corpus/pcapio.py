"""Reading pcap and pcapng captures, writing classic pcap.

cato feeds Zeek many small captures merged into one stream (Zeek takes one capture per run and
starts in 0.1-0.3 s), so it reads captures itself: every link type, pcapng included, with clear
errors naming the file and the cause.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D
#: libpcap refuses larger records for most link types.
MAX_SNAPLEN = 262144


class CaptureError(Exception):
    """A capture cato cannot read; names the file and the cause."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class Packet:
    linktype: int
    ts_ns: int
    data: bytes
    orig_len: int


@dataclass
class Capture:
    """All packets of one capture file, in file order."""

    path: str
    packets: list[Packet] = field(default_factory=list)
    #: Set when the file ended inside a record: the packets before it are kept.
    truncated: str | None = None


def read_capture(path: str | Path) -> Capture:
    """Read a pcap or pcapng file; raise :class:`CaptureError` if it cannot be read at all."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise CaptureError(path, f"cannot read file: {e.strerror or e}") from None
    if len(raw) < 4:
        raise CaptureError(path, f"not a capture: only {len(raw)} bytes")
    magic_le = struct.unpack_from("<I", raw)[0]
    cap = Capture(str(path))
    if magic_le == PCAPNG_SHB:
        _read_pcapng(raw, cap)
    elif magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or struct.unpack_from(">I", raw)[0] in (
        PCAP_MAGIC_US,
        PCAP_MAGIC_NS,
    ):
        _read_pcap(raw, cap)
    else:
        raise CaptureError(path, f"not a pcap or pcapng file (magic 0x{raw[:4].hex()})")
    return cap


def read_captures(named: list[tuple[str, str | Path]]) -> tuple[list[Capture], list[tuple[str, str]]]:
    """Read (name, path) captures: those with packets (``path`` set to the name), and (name, reason)
    for each one that cannot be read at all."""
    caps, failed = [], []
    for name, path in named:
        try:
            cap = read_capture(path)
        except CaptureError as e:
            failed.append((name, e.reason))
            continue
        cap.path = name
        caps.append(cap)
    return caps, failed


def _read_pcap(raw: bytes, cap: Capture) -> None:
    if len(raw) < 24:
        raise CaptureError(cap.path, "truncated pcap file header")
    for endian in ("<", ">"):
        magic = struct.unpack_from(endian + "I", raw)[0]
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            break
    scale = 1000 if magic == PCAP_MAGIC_US else 1
    _, _, _, _, _, network = struct.unpack_from(endian + "HHiIII", raw, 4)
    linktype = network & 0x03FFFFFF
    rec = struct.Struct(endian + "IIII")
    off, end = 24, len(raw)
    packets = cap.packets
    while off < end:
        if off + 16 > end:
            cap.truncated = f"file ends inside a packet header at byte {off}"
            return
        sec, frac, caplen, origlen = rec.unpack_from(raw, off)
        off += 16
        if caplen > MAX_SNAPLEN:
            if not packets:
                raise CaptureError(cap.path, f"first packet claims {caplen} bytes (corrupt file)")
            cap.truncated = f"packet {len(packets) + 1} claims {caplen} bytes (corrupt record)"
            return
        if off + caplen > end:
            cap.truncated = f"file ends inside packet {len(packets) + 1}"
            return
        packets.append(Packet(linktype, sec * 1_000_000_000 + frac * scale, raw[off:off + caplen], origlen))
        off += caplen


def _read_pcapng(raw: bytes, cap: Capture) -> None:
    off, end = 0, len(raw)
    endian = "<"
    interfaces: list[tuple[int, int, int]] = []  # (linktype, ticks per second, offset seconds)
    packets = cap.packets
    last_ts = 0
    while off < end:
        if off + 12 > end:
            cap.truncated = f"file ends inside a block header at byte {off}"
            return
        btype = struct.unpack_from(endian + "I", raw, off)[0]
        if btype == PCAPNG_SHB:
            bom = raw[off + 8:off + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                endian = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                endian = ">"
            else:
                raise CaptureError(cap.path, f"bad pcapng byte-order magic at byte {off}")
            interfaces = []
        blen = struct.unpack_from(endian + "I", raw, off + 4)[0]
        if blen < 12 or blen % 4:
            if not packets:
                raise CaptureError(cap.path, f"corrupt pcapng block length {blen} at byte {off}")
            cap.truncated = f"corrupt pcapng block length {blen} at byte {off}"
            return
        if off + blen > end:
            cap.truncated = f"file ends inside a pcapng block at byte {off}"
            return
        body = off + 8
        if btype == 1:  # Interface Description Block
            linktype = struct.unpack_from(endian + "H", raw, body)[0]
            tps, tsoff = 1_000_000, 0
            opt, opt_end = body + 8, off + blen - 4
            while opt + 4 <= opt_end:
                code, olen = struct.unpack_from(endian + "HH", raw, opt)
                if code == 0:
                    break
                val = raw[opt + 4:opt + 4 + olen]
                if code == 9 and olen >= 1:  # if_tsresol
                    v = val[0]
                    tps = 2 ** (v & 0x7F) if v & 0x80 else 10 ** v
                elif code == 14 and olen >= 8:  # if_tsoffset
                    tsoff = struct.unpack_from(endian + "q", val)[0]
                opt += 4 + olen + (-olen % 4)
            interfaces.append((linktype, tps, tsoff))
        elif btype in (6, 2):  # Enhanced / obsolete Packet Block
            if btype == 6:
                iface, hi, lo, caplen, origlen = struct.unpack_from(endian + "IIIII", raw, body)
                data_off = body + 20
            else:
                iface, _, hi, lo, caplen, origlen = struct.unpack_from(endian + "HHIIII", raw, body)
                data_off = body + 20
            if iface >= len(interfaces):
                raise CaptureError(cap.path, f"packet on undeclared interface {iface} at byte {off}")
            if data_off + caplen > off + blen - 4 or caplen > MAX_SNAPLEN:
                cap.truncated = f"corrupt packet block at byte {off}"
                return
            linktype, tps, tsoff = interfaces[iface]
            ticks = (hi << 32) | lo
            ts_ns = (ticks * 1_000_000_000) // tps + tsoff * 1_000_000_000
            last_ts = ts_ns
            packets.append(Packet(linktype, ts_ns, raw[data_off:data_off + caplen], origlen))
        elif btype == 3:  # Simple Packet Block: no timestamp, first interface
            if not interfaces:
                raise CaptureError(cap.path, f"simple packet block before any interface at byte {off}")
            origlen = struct.unpack_from(endian + "I", raw, body)[0]
            caplen = min(origlen, blen - 16)
            packets.append(Packet(interfaces[0][0], last_ts, raw[body + 4:body + 4 + caplen], origlen))
        off += blen


PCAP_HEADER = struct.Struct("<IHHiIII")
PCAP_RECORD = struct.Struct("<IIII")


def write_pcap_header(out: BinaryIO, linktype: int) -> None:
    out.write(PCAP_HEADER.pack(PCAP_MAGIC_US, 2, 4, 0, 0, MAX_SNAPLEN, linktype))


def write_packet(out: BinaryIO, ts_ns: int, data: bytes, orig_len: int) -> None:
    usec_total = ts_ns // 1000
    sec, usec = divmod(usec_total, 1_000_000)
    out.write(PCAP_RECORD.pack(sec, usec, len(data), max(orig_len, len(data))))
    out.write(data)


def iter_linktypes(cap: Capture) -> Iterator[int]:
    seen: set[int] = set()
    for p in cap.packets:
        if p.linktype not in seen:
            seen.add(p.linktype)
            yield p.linktype
