"""cato's compact wire form: a batch of vectors (Zeek -> worker) or of verdicts (worker -> Zeek) as one
block, column by column, so that neither side handles a value at a time. The native engine's plugin
writes vector blocks and reads verdict blocks (``plugin/src/Block.cc``); the worker reads and writes them
here with numpy. A block travels base64-encoded, as the one string argument of ``Cato::vector_block`` or
``Cato::verdict_block``: a plain string on every transport (Broker's binary form, Zeek's WebSocket JSON,
the cluster backends).

Layout, little-endian, n rows::

    "CATO"  u8 version (1)  u8 kind (1 vectors, 2 verdicts)  u32 n  u16 len + schema (UTF-8)
    vectors:  u16 n_features
    verdicts: u16 n_labels, then each label as u16 len + UTF-8
    columns, n of each, in this order:
      uid     24 bytes, NUL-padded
      orig_h  16 bytes (IPv4 mapped into IPv6)      resp_h  16 bytes
      orig_p  u16                                    resp_p  u16
      proto   u8 (IP protocol: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6)
    vectors:  features  f32 (n x n_features, row by row; NaN: the feature does not apply)
    verdicts: label     u16 (index into the labels)  score  f32

The schema is the package's schema hash (empty outside a compiled package). A block that is not exactly
this (truncated, trailing bytes, another version or kind) is refused with ``BlockError``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import struct
from dataclasses import dataclass
from typing import Sequence

import numpy as np

MAGIC = b"CATO"
VERSION = 1
VECTORS, VERDICTS = 1, 2
UID_WIDTH = 24
_HEAD = struct.Struct("<4sBBI")
_U16 = struct.Struct("<H")
#: The connection's endpoint columns: name, numpy type, values per row.
ENDPOINT_COLUMNS = (("uid", f"S{UID_WIDTH}", 1), ("orig_h", "u1", 16), ("resp_h", "u1", 16),
                    ("orig_p", "<u2", 1), ("resp_p", "<u2", 1), ("proto", "u1", 1))
_PROTO = {"tcp": 6, "udp": 17}
_TRANSPORT = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}


class BlockError(ValueError):
    """A block that is not one: what is wrong, and where."""


@dataclass(frozen=True)
class Endpoints:
    """The uid and endpoints of n connections, column by column (as a block carries them)."""
    uid: np.ndarray      # S24
    orig_h: np.ndarray   # (n, 16) u1
    resp_h: np.ndarray
    orig_p: np.ndarray   # u2
    resp_p: np.ndarray
    proto: np.ndarray    # u1

    def __len__(self) -> int:
        return len(self.uid)

    def columns(self) -> list[np.ndarray]:
        return [self.uid, self.orig_h, self.resp_h, self.orig_p, self.resp_p, self.proto]

    def uids(self) -> list[str]:
        return [u.decode() for u in self.uid]

    def conn_ids(self) -> list[tuple[str, str, str, str, int]]:
        """(orig_h, orig_p, resp_h, resp_p, proto) as Zeek writes them: ``'10.0.0.1'``, ``'80/tcp'``."""
        out = []
        for oh, op, rh, rp, pr in zip(self.orig_h, self.orig_p, self.resp_h, self.resp_p, self.proto):
            t = _TRANSPORT.get(int(pr), "unknown")
            out.append((_address(oh), f"{op}/{t}", _address(rh), f"{rp}/{t}", int(pr)))
        return out

    @classmethod
    def concatenate(cls, parts: Sequence["Endpoints"]) -> "Endpoints":
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate(cols) for cols in zip(*(p.columns() for p in parts))))

    @classmethod
    def of(cls, rows: Sequence[tuple[str, str, int, str, int, str]]) -> "Endpoints":
        """From (uid, orig_h, orig_p, resp_h, resp_p, transport) rows: for tests and benchmarks."""
        def addr(a: str) -> np.ndarray:
            ip = ipaddress.ip_address(a)
            packed = ip.packed if ip.version == 6 else b"\0" * 10 + b"\xff\xff" + ip.packed
            return np.frombuffer(packed, "u1")
        return cls(np.array([r[0].encode() for r in rows], f"S{UID_WIDTH}"),
                   np.array([addr(r[1]) for r in rows], "u1").reshape(len(rows), 16),
                   np.array([addr(r[3]) for r in rows], "u1").reshape(len(rows), 16),
                   np.array([r[2] for r in rows], "<u2"), np.array([r[4] for r in rows], "<u2"),
                   np.array([_PROTO.get(r[5], 1) for r in rows], "u1"))


def _address(packed: np.ndarray) -> str:
    ip = ipaddress.IPv6Address(packed.tobytes())
    return str(ip.ipv4_mapped or ip)


@dataclass(frozen=True)
class VectorBlock:
    schema: str
    endpoints: Endpoints
    features: np.ndarray  # (n, n_features) float32, NaN where a feature does not apply


@dataclass(frozen=True)
class VerdictBlock:
    schema: str
    labels: list[str]
    endpoints: Endpoints
    label: np.ndarray   # u2, index into labels
    score: np.ndarray   # f32


def _text(s: str) -> bytes:
    b = s.encode()
    if len(b) > 0xFFFF:
        raise BlockError(f"a text of {len(b)} bytes does not fit a block")
    return _U16.pack(len(b)) + b


def _head(kind: int, n: int, schema: str) -> bytes:
    return _HEAD.pack(MAGIC, VERSION, kind, n) + _text(schema)


def _encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def encode_vectors(block: VectorBlock) -> str:
    n, f = block.features.shape
    parts = [_head(VECTORS, n, block.schema), _U16.pack(f)]
    parts += [np.ascontiguousarray(c).tobytes() for c in block.endpoints.columns()]
    parts.append(np.ascontiguousarray(block.features, "<f4").tobytes())
    return _encode(b"".join(parts))


def encode_verdicts(block: VerdictBlock) -> str:
    parts = [_head(VERDICTS, len(block.label), block.schema), _U16.pack(len(block.labels))]
    parts += [_text(label) for label in block.labels]
    parts += [np.ascontiguousarray(c).tobytes() for c in block.endpoints.columns()]
    parts += [np.ascontiguousarray(block.label, "<u2").tobytes(), np.ascontiguousarray(block.score, "<f4").tobytes()]
    return _encode(b"".join(parts))


class _Reader:
    def __init__(self, raw: bytes) -> None:
        self.raw, self.at = raw, 0

    def fail(self, what: str) -> BlockError:
        return BlockError(f"{what} (at byte {self.at} of {len(self.raw)})")

    def take(self, n: int, what: str) -> bytes:
        if len(self.raw) - self.at < n:
            raise self.fail(f"truncated: {what} needs {n} bytes")
        b = self.raw[self.at:self.at + n]
        self.at += n
        return b

    def u16(self, what: str) -> int:
        return _U16.unpack(self.take(2, what))[0]

    def text(self, what: str) -> str:
        try:
            return self.take(self.u16(what), what).decode()
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not UTF-8") from None

    def columns(self, n: int, extra: Sequence[tuple[str, str, int]]) -> list[np.ndarray]:
        spec = list(ENDPOINT_COLUMNS) + list(extra)
        need = sum(n * per * np.dtype(t).itemsize for _, t, per in spec)
        if len(self.raw) - self.at != need:
            raise self.fail(f"{n} rows need {need} bytes of columns, not {len(self.raw) - self.at}")
        out = []
        for _, t, per in spec:
            a = np.frombuffer(self.raw, t, n * per, self.at)
            self.at += a.nbytes
            out.append(a.reshape(n, per) if per > 1 else a)
        return out


def _open(text: str | bytes, kind: int) -> tuple[_Reader, int, str]:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BlockError("not base64") from None
    r = _Reader(raw)
    magic, version, got, n = _HEAD.unpack(r.take(_HEAD.size, "the header"))
    if magic != MAGIC:
        raise r.fail("not a cato block")
    if version != VERSION:
        raise r.fail(f"block version {version}; this cato reads {VERSION}")
    if got != kind:
        raise r.fail(f"a block of kind {got}, not {'vectors' if kind == VECTORS else 'verdicts'}")
    return r, n, r.text("the schema")


def decode_vectors(text: str | bytes) -> VectorBlock:
    r, n, schema = _open(text, VECTORS)
    f = r.u16("the feature count")
    *ends, features = r.columns(n, [("features", "<f4", f)])
    return VectorBlock(schema, Endpoints(*ends), features.reshape(n, f))


def decode_verdicts(text: str | bytes) -> VerdictBlock:
    r, n, schema = _open(text, VERDICTS)
    labels = [r.text("a label") for _ in range(r.u16("the label count"))]
    *ends, label, score = r.columns(n, [("label", "<u2", 1), ("score", "<f4", 1)])
    if n and int(label.max()) >= len(labels):
        raise BlockError(f"a verdict's label index {int(label.max())} is past the {len(labels)} labels")
    return VerdictBlock(schema, labels, Endpoints(*ends), label, score)
