"""Synthetic captures for the serving tests and benchmarks (not part of cato)."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from cato.corpus.pcapio import write_packet, write_pcap_header


def write_udp_connections(path: str | Path, rate: int, seconds: float, payload: bytes = b"ping",
                          start_s: int = 1_700_000_000) -> int:
    """A synthetic capture of one-packet UDP connections to 192.0.2.53:53, each from its own source
    host and port, at ``rate`` per second; how many it wrote."""
    n = int(rate * seconds)
    server = socket.inet_aton("192.0.2.53")
    with open(path, "wb") as out:
        write_pcap_header(out, 1)
        for i in range(n):
            src = socket.inet_aton(f"10.{1 + i // 62500}.{i // 250 % 250}.{1 + i % 250}")
            udp = struct.pack("!HHHH", 1024 + i % 60000, 53, 8 + len(payload), 0) + payload
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, src, server) + udp
            frame = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip
            write_packet(out, start_s * 10**9 + int(i * 1e9 / rate), frame, len(frame))
    return n
