"""Corpus scale: how extraction and tuning costs grow with the size of the corpus.

``make`` builds a replica of a corpus K times its size: every capture copied K times, copy i written
to ``<out>/copy{i:03d}/<its path>`` with its IPv4 unicast addresses moved (third octet + i, mod 256;
copy 0 is an identical re-write), so that no two copies are the same traffic. Addresses in
0.0.0.0/8 and 224.0.0.0/3 (multicast, reserved, 255.255.255.255) stay. The IPv4 header checksum,
TCP/UDP checksums and ICMP checksums (with the datagram an ICMP error quotes) are updated
incrementally (RFC 1624): that works on truncated packets, and a packet whose checksum was wrong
stays exactly as wrong (Zeek treats it the same in every copy). Ethernet (through VLAN tags,
PPPoE, MPLS), raw IP, Linux SLL/SLL2, NULL/loopback, PPP and Cisco HDLC are rewritten, and so are
the packets inside the tunnels Zeek opens (IP-in-IP, GRE, GTP-U, VXLAN, Geneve); other link types
and non-IPv4 packets (ARP, IPv6) are copied unchanged, as are addresses inside payloads (DHCP, DNS
answers). Copies keep their timestamps. The replica's labels.csv repeats every row per copy; its
``group`` stays the original row's group (or the original capture), so the copies of one capture
stay on one side of every split, and flow-level src_ip/dst_ip move with their copy.

``check`` runs Zeek on sampled original captures and on a moved copy of each and compares their
conn.log (connections with moved addresses, histories, bytes, packets, states) and weird.log (no new
bad checksum). ``run`` measures, per replica, the stages extract (on a fresh ``$CATO_CACHE``),
first-trial and study (both on the extraction it cached, each in a new study folder), each as its
own process: wall time, the peak RSS of its largest single process (wait4's ru_maxrss, which covers
the descendants it reaped) and the peak RSS summed over its live process tree (psutil, polled every
0.2 s: shared pages count once per process, spikes shorter than a poll are missed). Results merge
into one JSON by replica and stage, so replicas can be measured one at a time.

    python benchmarks/corpus_scale.py make --corpus ../shared/corpora/iot-sentinel --factor 10 \\
        --out /var/tmp/cato-scale/iot-sentinel-x10
    python benchmarks/corpus_scale.py check --corpus ../shared/corpora/iot-sentinel \\
        --replica /var/tmp/cato-scale/iot-sentinel-x10 --samples 5
    python benchmarks/corpus_scale.py run --replica /var/tmp/cato-scale/iot-sentinel-x1 \\
        --replica /var/tmp/cato-scale/iot-sentinel-x10 [--stages extract,first-trial,study] [--budget 50]
    python benchmarks/corpus_scale.py run --summarize-only
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import pandas as pd

try:  # only `run` needs it (the test extra has it)
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

from cato.corpus.pcapio import CaptureError, read_capture, write_packet, write_pcap_header

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance  # noqa: E402
DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "corpus_scale.json"
DEFAULT_WORKDIR = Path("/var/tmp/cato-scale/runs")
FLOW_COLUMNS = ("proto", "src_ip", "src_port", "dst_ip", "dst_port")
#: The third octet has 256 values: a larger factor would give two copies the same addresses.
MAX_FACTOR = 256
META_FILE = "REPLICA.json"

# --------------------------------------------------------------------------------------------
# Moving addresses


def _fixed(first_octet: int) -> bool:
    """0.0.0.0/8 ("this host", DHCP's source) and 224.0.0.0/3 (multicast, reserved, broadcast) keep
    their meaning only where they are: they are never moved."""
    return first_octet == 0 or first_octet >= 224


def move_ip(addr: bytes, shift: int) -> bytes:
    """The 4-byte IPv4 address ``addr`` as copy ``shift`` has it: third octet + shift, mod 256 (a
    bijection of the address space for every shift; x.y.z.255 stays the last address of its /24)."""
    if shift % 256 == 0 or _fixed(addr[0]):
        return addr
    return bytes((addr[0], addr[1], (addr[2] + shift) & 0xFF, addr[3]))


def move_ip_text(text: str, shift: int) -> str:
    """:func:`move_ip` for a dotted-quad string; anything else (IPv6, empty, junk) is returned as is."""
    parts = text.strip().split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return text
    return ".".join(map(str, move_ip(bytes(int(p) for p in parts), shift)))


def _csum_adjust(csum: int, old: bytes, new: bytes) -> int:
    """RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), over every changed 16-bit word of ``old`` -> ``new``
    (both word-aligned within the checksummed data). Needs none of the other data, so it works on
    truncated packets, and a checksum that was wrong stays wrong by the same amount."""
    s = ~csum & 0xFFFF
    for k in range(0, len(old), 2):
        m, m2 = old[k] << 8 | old[k + 1], new[k] << 8 | new[k + 1]
        if m != m2:
            s += (~m & 0xFFFF) + m2
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _u16(buf: bytearray, off: int) -> int:
    return buf[off] << 8 | buf[off + 1]


def _put16(buf: bytearray, off: int, value: int) -> None:
    buf[off], buf[off + 1] = value >> 8, value & 0xFF


#: ICMP types that quote the IP header (+ 8 bytes) of the datagram they are about.
ICMP_QUOTING = frozenset((3, 4, 5, 11, 12))
#: Tunnels Zeek decapsulates (its default ports): the inner addresses move too.
GTP_U_PORT, VXLAN_PORT, GENEVE_PORT = 2152, 4789, 6081
#: Encapsulations nested deeper than this are left as they are.
MAX_NESTING = 4


def _tunnel(buf: bytearray, proto: int, l4: int, end: int) -> tuple[str, int] | None:
    """("ip" | "eth", offset) of the packet a tunnel at ``buf[l4:end]`` carries, or None."""
    if proto == 4:  # IPv4 in IPv4
        return "ip", l4
    if proto == 17 and l4 + 16 <= end:
        ports = (_u16(buf, l4), _u16(buf, l4 + 2))
        g = l4 + 8
        if GTP_U_PORT in ports and buf[g] >> 5 == 1 and buf[g + 1] == 0xFF:  # GTPv1-U, G-PDU
            o = g + 8
            if buf[g] & 0x07 and o + 4 <= end:  # sequence number, N-PDU number, next extension type
                o, nxt = o + 4, buf[o + 3]
                while nxt and o < end:  # extension headers: length in 4-byte units, next type last
                    size = buf[o] * 4
                    if not size or o + size > end:
                        return None
                    o, nxt = o + size, buf[o + size - 1]
            return "ip", o
        if ports[1] == VXLAN_PORT:
            return "eth", g + 8
        if ports[1] == GENEVE_PORT:
            inner = g + 8 + (buf[g] & 0x3F) * 4
            ptype = _u16(buf, g + 2)
            return ("eth", inner) if ptype == 0x6558 else ("ip", inner) if ptype == 0x0800 else None
    if proto == 47 and l4 + 4 <= end:  # GRE
        flags, ptype = _u16(buf, l4), _u16(buf, l4 + 2)
        o = l4 + 4 + 4 * sum(bool(flags & bit) for bit in (0x8000, 0x2000, 0x1000))  # checksum, key, sequence
        if flags & 0x7 == 1 and flags & 0x0080:  # enhanced GRE (PPTP): acknowledgment number
            o += 4
        if ptype == 0x0800:
            return "ip", o
        if ptype == 0x6558:  # transparent Ethernet bridging
            return "eth", o
        if ptype == 0x880B and o + 4 <= end:  # PPP (PPTP)
            o += 2 if buf[o:o + 2] == b"\xff\x03" else 0
            if buf[o] == 0x21:  # protocol field compressed to one byte
                return "ip", o + 1
            return ("ip", o + 2) if buf[o:o + 2] == b"\x00\x21" else None
    return None


def _move_ipv4(buf: bytearray, o: int, end: int, shift: int, depth: int = 0) -> None:
    """Move the addresses of the IPv4 datagram at ``buf[o:end]`` (and of any packet it carries) and
    update the checksums they enter."""
    if end - o < 20 or buf[o] >> 4 != 4:
        return
    ihl = (buf[o] & 0x0F) * 4
    if ihl < 20 or o + ihl > end:
        return
    total = _u16(buf, o + 2)
    if total >= ihl:  # Ethernet padding past the datagram is not part of it (0: TSO, length unknown)
        end = min(end, o + total)
    old = bytes(buf[o + 12:o + 20])
    new = move_ip(old[:4], shift) + move_ip(old[4:], shift)
    if new != old:
        buf[o + 12:o + 20] = new
        _put16(buf, o + 10, _csum_adjust(_u16(buf, o + 10), old, new))
    if _u16(buf, o + 6) & 0x1FFF:
        return  # a later fragment: no transport header (the first one's checksum covers the pseudo-header)
    proto, l4 = buf[o + 9], o + ihl

    # What the datagram carries: an ICMP error's quoted datagram, or a tunnelled packet.
    before = after = b""
    if depth < MAX_NESTING:
        if proto == 1 and l4 + 8 <= end and buf[l4] in ICMP_QUOTING:
            inner = ("ip", l4 + 8)
        else:
            inner = _tunnel(buf, proto, l4, end)
        if inner:
            before = bytes(buf[l4:end])
            if proto == 1 and buf[l4] == 5:  # ICMP redirect: the gateway's address
                buf[l4 + 4:l4 + 8] = move_ip(bytes(buf[l4 + 4:l4 + 8]), shift)
            kind, at = inner
            (_move_ipv4 if kind == "ip" else _move_ethernet)(buf, at, end, shift, depth + 1)
            after = bytes(buf[l4:end])
            if len(before) % 2:  # the checksums pad an odd length with a zero byte
                before, after = before + b"\0", after + b"\0"
    if new == old and before == after:
        return
    # TCP and UDP checksums cover a pseudo-header with the addresses; ICMP's and GRE's only the message.
    if proto == 6 and l4 + 18 <= end:
        _put16(buf, l4 + 16, _csum_adjust(_u16(buf, l4 + 16), old + before, new + after))
    elif proto == 17 and l4 + 8 <= end and _u16(buf, l4 + 6):  # 0: sent without a checksum
        _put16(buf, l4 + 6, _csum_adjust(_u16(buf, l4 + 6), old + before, new + after) or 0xFFFF)
    elif proto == 1 and before != after:
        _put16(buf, l4 + 2, _csum_adjust(_u16(buf, l4 + 2), before, after))
    elif proto == 47 and before != after and _u16(buf, l4) & 0x8000:  # GRE with its checksum present
        _put16(buf, l4 + 4, _csum_adjust(_u16(buf, l4 + 4), before, after))


_VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100))


def _move_ethernet(buf: bytearray, o: int, end: int, shift: int, depth: int = 0) -> None:
    """Move the IPv4 packet an Ethernet frame at ``buf[o:end]`` carries: through VLAN tags (any
    number), PPPoE and MPLS, as Zeek finds it."""
    if o + 14 > end:
        return
    etype, o = _u16(buf, o + 12), o + 14
    while etype in _VLAN_TPIDS and o + 4 <= end:
        etype, o = _u16(buf, o + 2), o + 4
    if etype == 0x8864 and o + 8 <= end and _u16(buf, o + 6) == 0x0021:  # PPPoE session, PPP IPv4
        _move_ipv4(buf, o + 8, end, shift, depth)
    elif etype == 0x8847:  # MPLS: labels down to the bottom of the stack, then IP (version 4 checked)
        while o + 4 <= end:
            bottom, o = buf[o + 2] & 1, o + 4
            if bottom:
                _move_ipv4(buf, o, end, shift, depth)
                break
    elif etype == 0x0800:
        _move_ipv4(buf, o, end, shift, depth)


def _move_frame(buf: bytearray, linktype: int, shift: int) -> None:
    """Move the IPv4 packet in a frame of ``linktype``; other link types and protocols stay as they are."""
    if linktype == 1:
        _move_ethernet(buf, 0, len(buf), shift)
        return
    o = None
    if linktype in (101, 228):  # raw IP (the version nibble is checked later), raw IPv4
        o = 0
    elif linktype == 113:  # Linux cooked capture
        o = 16 if buf[14:16] == b"\x08\x00" else None
    elif linktype == 276:  # Linux cooked capture v2
        o = 20 if buf[0:2] == b"\x08\x00" else None
    elif linktype == 0:  # BSD loopback: AF_INET (2) in the capturing host's byte order
        o = 4 if buf[0:4] in (b"\x02\0\0\0", b"\0\0\0\x02") else None
    elif linktype == 108:  # OpenBSD loopback: network byte order
        o = 4 if buf[0:4] == b"\0\0\0\x02" else None
    elif linktype == 9:  # PPP, with or without the HDLC address/control bytes
        p = 2 if buf[0:2] == b"\xff\x03" else 0
        o = p + 2 if buf[p:p + 2] == b"\x00\x21" else None
    elif linktype == 104:  # Cisco HDLC
        o = 4 if buf[2:4] == b"\x08\x00" else None
    if o is not None:
        _move_ipv4(buf, o, len(buf), shift)


def move_packet(data: bytes, linktype: int, shift: int) -> bytes:
    """The packet as copy ``shift`` has it (``data`` itself when nothing moves)."""
    if shift % 256 == 0:
        return data
    buf = bytearray(data)
    try:
        _move_frame(buf, linktype, shift)
    except IndexError:  # a header cut short where the bounds checks did not foresee it: leave it be
        return data
    return data if buf == data else bytes(buf)


# --------------------------------------------------------------------------------------------
# make


@dataclass
class CopyResult:
    capture: str
    packets: int = 0
    bytes: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def copy_path(out: Path, copy: int, capture: str) -> Path:
    return out / f"copy{copy:03d}" / capture


def replicate_capture(src: str, capture: str, out: str, factor: int) -> CopyResult:
    """Write the ``factor`` copies of one capture (a process-pool task)."""
    try:
        cap = read_capture(src)
    except CaptureError as e:
        return CopyResult(capture, error=e.reason)
    res = CopyResult(capture, packets=len(cap.packets))
    if cap.truncated:
        res.notes.append(f"ends early ({cap.truncated}); its {len(cap.packets)} readable packets are copied")
    packets = cap.packets
    linktypes = collections.Counter(p.linktype for p in packets)
    if len(linktypes) > 1:  # a classic pcap has one link type
        keep = packets[0].linktype
        packets = [p for p in packets if p.linktype == keep]
        res.notes.append(f"mixes link types {dict(linktypes)}; only link type {keep} is copied "
                         f"({len(cap.packets) - len(packets)} packets left out)")
        res.packets = len(packets)
    for i in range(factor):
        dest = copy_path(Path(out), i, capture)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not packets:  # nothing to move, and the link type is only in the file's header
            shutil.copyfile(src, dest)
        else:
            linktype = packets[0].linktype
            buf = io.BytesIO()
            write_pcap_header(buf, linktype)
            for p in packets:
                write_packet(buf, p.ts_ns, move_packet(p.data, linktype, i), p.orig_len)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            tmp.write_bytes(buf.getbuffer())
            tmp.replace(dest)
        res.bytes += dest.stat().st_size
    return res


def _escapes(rel: str) -> bool:
    path = PurePosixPath(rel.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts


class Progress:
    """One status line on stderr: rewritten in place on a terminal, every 10% otherwise."""

    def __init__(self, what: str, total: int):
        self.what, self.total, self.done, self.t0 = what, total, 0, time.perf_counter()
        self.tty, self.last, self.shown = sys.stderr.isatty(), 0.0, -1

    def step(self, extra: str = "") -> None:
        self.done += 1
        now = time.perf_counter()
        decile = self.done * 10 // max(self.total, 1)
        if self.tty and (now - self.last > 0.2 or self.done == self.total):
            self.last = now
            print(f"\r  {self.what}: {self.done}/{self.total} {extra}  {now - self.t0:.1f} s ",
                  end="" if self.done < self.total else "\n", file=sys.stderr, flush=True)
        elif not self.tty and decile != self.shown:
            self.shown = decile
            print(f"  {self.what}: {self.done}/{self.total} {extra}  {now - self.t0:.1f} s", file=sys.stderr, flush=True)


def cmd_make(args: argparse.Namespace) -> int:
    corpus, out, factor = Path(args.corpus).resolve(), Path(args.out).resolve(), args.factor
    if not 1 <= factor <= MAX_FACTOR:
        sys.exit(f"--factor must be 1..{MAX_FACTOR} (copies differ in the third octet)")
    if out == corpus or corpus in out.parents:
        sys.exit(f"{out}: the replica must not be written inside the corpus {corpus}")
    if (out / "labels.csv").exists() and not args.force:
        print(f"{out}: replica already there (labels.csv exists); --force builds it again")
        return 0
    try:
        rows = pd.read_csv(corpus / "labels.csv", dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        sys.exit(f"{corpus / 'labels.csv'}: cannot read: {e}")
    for col in ("pcap", "label"):
        if col not in rows.columns:
            sys.exit(f"{corpus / 'labels.csv'}: no '{col}' column")
    rows["pcap"] = rows["pcap"].str.strip()
    flow_level = all(c in rows.columns for c in FLOW_COLUMNS)

    if args.force:  # only what make writes: a stale copy of a larger factor must not linger
        (out / "labels.csv").unlink(missing_ok=True)
        (out / META_FILE).unlink(missing_ok=True)
        for old in out.glob("copy[0-9][0-9][0-9]"):
            shutil.rmtree(old)
    out.mkdir(parents=True, exist_ok=True)

    skipped: dict[str, str] = {}
    todo = []
    for cap in dict.fromkeys(rows["pcap"]):
        if _escapes(cap):
            skipped[cap] = "path leads outside the corpus"
        elif not (corpus / cap).is_file():
            skipped[cap] = "file not found"
        else:
            todo.append(cap)

    t0 = time.perf_counter()
    done: dict[str, CopyResult] = {}
    progress = Progress(f"{corpus.name} x{factor}", len(todo))
    total_bytes = 0
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(replicate_capture, str(corpus / cap), cap, str(out), factor) for cap in todo]
        for fut in as_completed(futures):
            res = fut.result()
            if res.error:
                skipped[res.capture] = res.error
            else:
                done[res.capture] = res
                total_bytes += res.bytes
            progress.step(f"captures, {total_bytes / 2**20:,.0f} MiB written")
    wall = time.perf_counter() - t0

    for cap, why in sorted(skipped.items()):
        print(f"WARNING: {corpus / cap}: skipped, {why}; its labels.csv rows are left out", file=sys.stderr)
    for res in sorted(done.values(), key=lambda r: r.capture):
        for note in res.notes:
            print(f"note: {corpus / res.capture}: {note}", file=sys.stderr)
    if not done:
        sys.exit("no capture could be copied")

    # Rows in copy order; group ties the copies of one capture (or of one group) together.
    kept = rows[rows["pcap"].isin(done)].reset_index(drop=True)
    group = kept["pcap"].copy()
    if "group" in kept.columns:
        group = kept["group"].str.strip().where(kept["group"].str.strip() != "", group)
    parts = []
    for i in range(factor):
        part = kept.copy()
        part["pcap"] = [copy_path(Path(), i, p).as_posix() for p in kept["pcap"]]
        part["group"] = group
        if flow_level:
            for col in ("src_ip", "dst_ip"):
                part[col] = [move_ip_text(v, i) for v in kept[col]]
        parts.append(part)
    labels = pd.concat(parts, ignore_index=True)

    meta = {
        "source": str(corpus), "factor": factor, "flow_level": flow_level,
        "mapping": "copy i: IPv4 third octet + i mod 256, except 0.0.0.0/8 and 224.0.0.0/3",
        "captures": len(done), "captures_skipped": skipped, "rows": len(labels),
        "packets_per_copy": sum(r.packets for r in done.values()), "bytes": total_bytes,
        "make_s": round(wall, 2), "made": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    tmp = out / ".labels.csv.tmp"
    labels.to_csv(tmp, index=False)
    tmp.replace(out / "labels.csv")  # last: its presence means the replica is complete
    print(f"{out}: {len(done)} captures x {factor} = {len(done) * factor} files, {len(labels)} labels.csv rows, "
          f"{total_bytes / 2**20:,.1f} MiB, {meta['packets_per_copy'] * factor:,} packets in {wall:.1f} s"
          + (f" ({len(skipped)} captures skipped)" if skipped else ""))
    return 0


# --------------------------------------------------------------------------------------------
# check


def _zeek_binary(given: str | None) -> str:
    if given:
        return given
    try:
        from cato.zeek import find_zeek
        return str(find_zeek())
    except Exception:  # any failure: fall back to the usual place
        return "/opt/zeek/bin/zeek"


def zeek_logs(zeek: str, pcap: Path) -> tuple[list[dict], collections.Counter]:
    """conn.log records and weird names (counted) of one capture, from ``zeek -b`` in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="cato-scale-zeek-") as tmp:
        proc = subprocess.run([zeek, "-b", "-r", str(pcap.resolve()), "base/protocols/conn",
                               "base/frameworks/notice/weird", "LogAscii::use_json=T"],
                              cwd=tmp, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"zeek failed on {pcap} ({proc.returncode}): {proc.stderr.strip()[-2000:]}")

        def records(name: str) -> list[dict]:
            path = Path(tmp) / name
            return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []

        return records("conn.log"), collections.Counter(r.get("name") for r in records("weird.log"))


CONN_FIELDS = ("proto", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "history", "conn_state", "service",
               "orig_bytes", "resp_bytes", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes")
BAD_CHECKSUM = ("bad_IP_checksum", "bad_TCP_checksum", "bad_UDP_checksum", "bad_ICMP_checksum")


def _conn_rows(conns: list[dict], shift: int = 0) -> list[tuple]:
    rows = []
    for c in conns:
        r = {f: c.get(f) for f in CONN_FIELDS}
        for f in ("id.orig_h", "id.resp_h"):
            r[f] = move_ip_text(r[f], shift)
        rows.append(tuple(str(r[f]) for f in CONN_FIELDS))
    return sorted(rows)


def replica_factor(replica: Path) -> int:
    meta = replica / META_FILE
    if meta.exists():
        return int(json.loads(meta.read_text())["factor"])
    return len(list(replica.glob("copy[0-9][0-9][0-9]")))


def cmd_check(args: argparse.Namespace) -> int:
    corpus, replica = Path(args.corpus), Path(args.replica)
    factor = replica_factor(replica)
    if factor < 1 or not (replica / "labels.csv").exists():
        sys.exit(f"{replica}: not a replica made by `make` (no labels.csv or copy000/)")
    zeek = _zeek_binary(args.zeek)
    captures = sorted(p for p in pd.read_csv(corpus / "labels.csv", dtype=str, keep_default_na=False)["pcap"]
                      .str.strip().unique() if copy_path(replica, 0, p).is_file())
    rng = random.Random(args.seed)
    sample = rng.sample(captures, min(args.samples, len(captures)))
    failures, compared, connections = [], 0, 0
    for cap in sample:
        shift = rng.randrange(1, factor) if factor > 1 else 0
        copy = copy_path(replica, shift, cap)
        try:
            o_conn, o_weird = zeek_logs(zeek, corpus / cap)
        except RuntimeError as e:  # nothing to compare with (e.g. a pcapng mixing link types)
            print(f"SKIP {cap}: {e}")
            continue
        try:
            c_conn, c_weird = zeek_logs(zeek, copy)
        except RuntimeError as e:
            print(f"FAIL {cap} vs copy{shift:03d}: Zeek reads the original but not the copy: {e}")
            failures.append(cap)
            continue
        compared += 1
        connections += len(o_conn)
        problems = []
        if len(o_conn) != len(c_conn):
            problems.append(f"{len(o_conn)} connections in the original, {len(c_conn)} in the copy")
        if sorted(str(c.get("history")) for c in o_conn) != sorted(str(c.get("history")) for c in c_conn):
            problems.append("histories differ")
        if sorted(f"{c.get('orig_bytes')}/{c.get('resp_bytes')}" for c in o_conn) != \
                sorted(f"{c.get('orig_bytes')}/{c.get('resp_bytes')}" for c in c_conn):
            problems.append("orig/resp bytes differ")
        expected, got = _conn_rows(o_conn, shift), _conn_rows(c_conn)
        if expected != got:
            diff = sorted(set(expected) ^ set(got))[:4]
            problems.append(f"conn.log rows differ beyond the moved addresses, e.g. {diff}")
        new_bad = {n: c_weird[n] for n in BAD_CHECKSUM if c_weird[n] > o_weird[n]}
        if new_bad:
            problems.append(f"bad checksums in the copy only: {new_bad}")
        if o_weird != c_weird:
            problems.append(f"weird.log differs: original {dict(o_weird)}, copy {dict(c_weird)}")
        status = "OK  " if not problems else "FAIL"
        print(f"{status} {cap} vs copy{shift:03d}: {len(o_conn)} connections, "
              f"{sum(o_weird.values())} weirds ({', '.join(sorted(o_weird)) or 'none'})")
        for p in problems:
            print(f"       {p}")
        if problems:
            failures.append(cap)
    if failures or not compared:
        print(f"CHECK FAILED: {len(failures)} of {compared} captures differ from their copy"
              + ("" if compared else " (no capture could be compared)"), file=sys.stderr)
        return 1
    print(f"check passed: {compared} captures ({connections} connections), conn.log identical up to the "
          f"moved addresses" + (f"; {len(sample) - compared} skipped" if compared < len(sample) else ""))
    return 0


# --------------------------------------------------------------------------------------------
# run

STAGES = ("extract", "first-trial", "study")
EXTRACT_SNIPPET = ("from cato.corpus import load_corpus; from cato.dataset import load_dataset; "
                   "from pathlib import Path; import sys; "
                   "ds = load_dataset(load_corpus(sys.argv[1]), 50, Path(sys.argv[2]), jobs=int(sys.argv[3])); "
                   "print(ds.connections)")
#: Runs a stage as a Linux child subreaper: processes it orphans (cato's forkserver, which reaps the
#: extraction workers and, through them, every Zeek) are reparented to it and reaped here, so the
#: rusage wait4 reports for it covers the whole tree. It writes the command's own wall time and exit
#: status to argv[1]; stragglers are awaited for at most 60 s after the command ends.
SUBREAPER_SNIPPET = r"""
import ctypes, json, os, sys, time
subreaper = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as e:
        print(f"cannot run {sys.argv[2]}: {e}", file=sys.stderr, flush=True)
    os._exit(127)
status = wall = None
deadline = None
while True:
    try:
        p, st = os.waitpid(-1, os.WNOHANG if deadline else 0)
    except ChildProcessError:
        break
    if p == pid:
        status, wall, deadline = st, time.perf_counter() - t0, time.monotonic() + 60
    elif p == 0:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
with open(sys.argv[1], "w") as f:
    json.dump({"wall_s": wall, "returncode": os.waitstatus_to_exitcode(status), "subreaper": subreaper}, f)
sys.exit(0)
"""


@dataclass
class Measured:
    returncode: int
    wall_s: float
    largest_rss_gb: float  # wait4's ru_maxrss: the largest process of the stage's tree
    tree_rss_gb: float  # peak of the RSS summed over the live process tree (polled; shared pages count twice)
    cpu_s: float  # user + system CPU of the stage's whole tree
    stdout: str
    stderr: str


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:  # gone between listing and reading
            pass
    return total


def measure(cmd: list[str], env: dict[str, str], cwd: Path, log_stem: Path, poll_s: float = 0.2) -> Measured:
    """Run ``cmd`` to its end: wall time, peak RSS of its largest process and of its whole tree."""
    out_path, err_path = log_stem.with_suffix(".stdout"), log_stem.with_suffix(".stderr")
    status_path = log_stem.with_suffix(".status.json")
    status_path.unlink(missing_ok=True)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        # Own session: Ctrl-C here stops the whole stage (Zeek workers included), nothing else.
        proc = subprocess.Popen([sys.executable, "-c", SUBREAPER_SNIPPET, str(status_path), *cmd],
                                stdout=out, stderr=err, env=env, cwd=cwd, start_new_session=True)
        peak = [0]
        stop = threading.Event()

        def poll() -> None:
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not stop.is_set():
                peak[0] = max(peak[0], _tree_rss(root))
                stop.wait(poll_s)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            _, wstatus, usage = os.wait4(proc.pid, 0)  # the rusage covers every process it reaped
        except KeyboardInterrupt:
            os.killpg(proc.pid, signal.SIGTERM)
            raise
        finally:
            stop.set()
        poller.join()
    try:
        status = json.loads(status_path.read_text())
    except (OSError, ValueError):  # the wrapper itself died
        status = {"wall_s": 0.0, "returncode": os.waitstatus_to_exitcode(wstatus) or 1, "subreaper": False}
    if not status.get("subreaper"):
        print("  note: no child subreaper (not Linux?): processes the stage orphans escape the rusage",
              file=sys.stderr)
    return Measured(status["returncode"], status["wall_s"] or 0.0, usage.ru_maxrss * 1024 / 1e9, peak[0] / 1e9,
                    usage.ru_utime + usage.ru_stime,
                    out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))


def _load_results(path: Path) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    return {"about": "benchmarks/corpus_scale.py run: cost of extraction and tuning against corpus size",
            "replicas": {}}


def _save_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(path)


def _cato_cli() -> str:
    here = Path(sys.executable).parent / "cato"
    return str(here) if here.exists() else (shutil.which("cato") or "cato")


def stage_command(stage: str, replica: Path, work: Path, jobs: int, budget: int) -> list[str]:
    if stage == "extract":
        return [sys.executable, "-c", EXTRACT_SNIPPET, str(replica), str(work / "cache"), str(jobs)]
    if stage == "first-trial":
        return [_cato_cli(), "tune", str(replica), "--study", str(work / "S1"), "--budget", "1",
                "--no-baselines", "--jobs", str(jobs), "--seed", "0"]
    return [_cato_cli(), "tune", str(replica), "--study", str(work / f"S{budget}"), "--budget", str(budget),
            "--jobs", str(jobs), "--seed", "0"]


def cmd_run(args: argparse.Namespace) -> int:
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        sys.exit(f"unknown stage(s) {', '.join(sorted(unknown))}; stages are {', '.join(STAGES)}")
    results = _load_results(args.out)
    if args.summarize_only:
        print(markdown_table(results))
        return 0
    if psutil is None:
        sys.exit("`run` needs psutil: .venv/bin/pip install 'psutil>=5.9' (it is in the test extra)")
    if not args.replica:
        sys.exit("give at least one --replica (or --summarize-only)")
    failed = 0
    host = {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "commit": provenance.git_commit()}
    for replica in map(lambda p: Path(p).resolve(), args.replica):
        name = replica.name
        if not (replica / "labels.csv").exists():
            print(f"ERROR: {replica}: no labels.csv, skipped", file=sys.stderr)
            failed += 1
            continue
        work = args.workdir / name
        if "extract" in stages:  # a fresh cache: the extract stage measures a cold extraction
            shutil.rmtree(work / "cache", ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CATO_CACHE": str(work / "cache")}
        entry = results["replicas"].setdefault(name, {"stages": {}})
        entry["path"] = str(replica)
        meta = replica / META_FILE
        if meta.exists():
            m = json.loads(meta.read_text())
            entry.update({k: m[k] for k in ("source", "factor", "captures", "bytes") if k in m})
        for stage in STAGES:
            if stage not in stages:
                continue
            if stage != "extract":  # a study directory is resumed if it exists: start each one anew
                shutil.rmtree(work / ("S1" if stage == "first-trial" else f"S{args.budget}"), ignore_errors=True)
            cmd = stage_command(stage, replica, work, args.jobs, args.budget)
            print(f"[{name}] {stage}: {' '.join(cmd[:2]) if stage == 'extract' else ' '.join(cmd)}", flush=True)
            m = measure(cmd, env, work, work / stage)
            rec = {"ok": m.returncode == 0, "returncode": m.returncode, "wall_s": round(m.wall_s, 2),
                   "cpu_s": round(m.cpu_s, 2),
                   "largest_process_peak_rss_gb": round(m.largest_rss_gb, 3),
                   "tree_peak_rss_gb": round(m.tree_rss_gb, 3), "jobs": args.jobs,
                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **host}
            if stage == "extract" and m.returncode == 0:
                try:
                    entry["connections"] = int(m.stdout.strip().splitlines()[-1])
                    rec["connections"] = entry["connections"]
                    rec["us_per_conn"] = round(m.wall_s * 1e6 / max(entry["connections"], 1), 1)
                except (IndexError, ValueError):
                    rec["note"] = f"no connection count in its output: {m.stdout.strip()[-200:]!r}"
            if stage == "study":
                rec["budget"] = args.budget
                rec["s_per_trial"] = round(m.wall_s / args.budget, 2)
            if m.returncode:
                failed += 1
                tail = "\n".join(m.stderr.strip().splitlines()[-20:])
                rec["stderr_tail"] = tail
                print(f"  FAILED ({m.returncode}) after {m.wall_s:.1f} s; stderr tail:\n{tail}", file=sys.stderr)
            else:
                print(f"  {rec['wall_s']:.1f} s, largest process {rec['largest_process_peak_rss_gb']:.2f} GB, "
                      f"tree {rec['tree_peak_rss_gb']:.2f} GB")
            entry["stages"][stage] = rec
            _save_results(args.out, results)  # after every stage: an interrupted run keeps what it measured
    print()
    print(markdown_table(results))
    return 1 if failed else 0


def markdown_table(results: dict) -> str:
    def num(v: object, fmt: str) -> str:
        return format(v, fmt) if isinstance(v, (int, float)) else ""

    lines = ["| replica | connections | stage | wall s | µs/conn | s/trial | largest process peak RSS GB | "
             "tree peak RSS GB |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    for name, entry in sorted(results.get("replicas", {}).items(),
                              key=lambda kv: (kv[1].get("factor", 0), kv[0])):
        for stage in STAGES:
            r = entry.get("stages", {}).get(stage)
            if not r:
                continue
            wall = num(r.get("wall_s"), ".1f") + ("" if r.get("ok") else " (failed)")
            lines.append(f"| {name} | {num(entry.get('connections'), ',d')} | {stage} | {wall} | "
                         f"{num(r.get('us_per_conn'), ',.0f')} | {num(r.get('s_per_trial'), '.1f')} | "
                         f"{num(r.get('largest_process_peak_rss_gb'), '.2f')} | {num(r.get('tree_peak_rss_gb'), '.2f')} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# tile: a replica's dataset without extracting it (for replicas too large to extract here)


def cmd_tile(args: argparse.Namespace) -> int:
    """Write the dataset of ``--replica`` (K copies of the corpus whose extracted dataset is in
    ``--from-cache``) into ``--workdir``'s cache for that replica, by repeating the 1x dataset K times.

    A copy's vectors are the original's but for a few (on the 10x replica 3% of connections differ in
    some value at depth 50: Zeek's timers and ties move with the addresses), so the tiled dataset has
    the replica's size and structure, which is what its tuning stages' time and memory depend on."""
    import numpy as np
    import pandas as pd
    from cato.corpus import load_corpus
    from cato.dataset.multidepth import dataset_key

    replica = args.replica.resolve()
    factor = json.loads((replica / "REPLICA.json").read_text())["factor"]
    sources = [p for p in (args.from_cache / "datasets").iterdir() if (p / "meta.json").exists()]
    if len(sources) != 1:
        sys.exit(f"{args.from_cache}/datasets: expected one dataset, found {len(sources)}")
    src = sources[0]
    meta = json.loads((src / "meta.json").read_text())
    if meta["max_depth"] != 50:
        sys.exit(f"{src}: max depth {meta['max_depth']}, not 50")
    t0 = time.perf_counter()
    key = dataset_key(load_corpus(replica), 50)
    root = args.workdir / replica.name / "cache" / "datasets" / key[:32]
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    n = meta["connections"]
    for path in sorted(src.glob("*.npy")):
        values = np.load(path, mmap_mode="r")
        per_row = values.ndim == 2  # [rows, connections] files tile along connections; [connections] ones too
        shape = (values.shape[0], n * factor) if per_row else (n * factor,)
        out = np.lib.format.open_memmap(root / path.name, mode="w+", dtype=values.dtype, shape=shape)
        for k in range(factor):
            if per_row:
                out[:, k * n:(k + 1) * n] = values
            else:
                out[k * n:(k + 1) * n] = values
            out.flush()
        del out
    ids = pd.read_parquet(src / "ids.parquet")
    copies = [ids.assign(capture=f"copy{k:03d}/" + ids["capture"]) for k in range(factor)]
    pd.concat(copies, ignore_index=True).to_parquet(root / "ids.parquet", index=False)
    (root / "meta.json").write_text(json.dumps({**meta, "key": key, "connections": n * factor,
                                                "tiled_from": str(src), "factor": factor}))
    print(f"{root}: {n * factor:,} connections, {sum(p.stat().st_size for p in root.iterdir()) / 2**30:.1f} GiB "
          f"in {time.perf_counter() - t0:.0f} s")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    mk = sub.add_parser("make", help="build a replica corpus K times the size")
    mk.add_argument("--corpus", required=True, type=Path, help="corpus folder (labels.csv and captures)")
    mk.add_argument("--factor", required=True, type=int, help=f"copies of every capture (1..{MAX_FACTOR})")
    mk.add_argument("--out", required=True, type=Path, help="replica folder (created)")
    mk.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    mk.add_argument("--force", action="store_true", help="build again even if OUT/labels.csv exists")
    mk.set_defaults(func=cmd_make)

    ck = sub.add_parser("check", help="compare Zeek's conn.log of sampled originals and moved copies")
    ck.add_argument("--corpus", required=True, type=Path)
    ck.add_argument("--replica", required=True, type=Path)
    ck.add_argument("--samples", type=int, default=5)
    ck.add_argument("--seed", type=int, default=0)
    ck.add_argument("--zeek", help="Zeek binary (default: $ZEEK, PATH, /opt/zeek/bin/zeek)")
    ck.set_defaults(func=cmd_check)

    rn = sub.add_parser("run", help="measure extract / first trial / study on each replica")
    rn.add_argument("--replica", action="append", default=[], help="replica folder (repeatable)")
    rn.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {','.join(STAGES)}")
    rn.add_argument("--budget", type=int, default=50, help="trials of the study stage (default 50)")
    rn.add_argument("--jobs", type=int, default=2, help="--jobs of the extraction and of cato tune (default 2)")
    rn.add_argument("--out", type=Path, default=DEFAULT_RESULTS, help="results JSON (merged by replica and stage)")
    rn.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                    help="caches and study folders, one subfolder per replica (default %(default)s)")
    rn.add_argument("--summarize-only", action="store_true", help="print the table of --out, run nothing")
    rn.set_defaults(func=cmd_run)

    tl = sub.add_parser("tile", help="a replica's dataset by repeating the 1x dataset (no extraction)")
    tl.add_argument("--replica", required=True, type=Path, help="replica folder (made by make)")
    tl.add_argument("--from-cache", required=True, type=Path, help="cato cache holding the 1x dataset")
    tl.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="as for run (default %(default)s)")
    tl.set_defaults(func=cmd_tile)

    args = ap.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
