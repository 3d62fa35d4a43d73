"""Write the tiny deterministic captures the btests use (run: python make_traces.py).

small.pcap: a TCP connection (handshake, data both ways, 14 packets), two UDP DNS exchanges, a
one-packet UDP flow and an IPv6 UDP flow. long.pcap: one TCP connection of 80 packets, to show that
no work is done past the depth.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import dpkt

HERE = Path(__file__).resolve().parent
MAC_A, MAC_B = b"\x02\x00\x00\x00\x00\x0a", b"\x02\x00\x00\x00\x00\x0b"


def ip4(s: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, s)


def tcp_frame(src, dst, sport, dport, flags, seq, ack, payload=b"", win=64240, ttl=64):
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=win, data=payload)
    ip = dpkt.ip.IP(src=ip4(src), dst=ip4(dst), p=6, ttl=ttl, data=tcp)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, type=0x0800, data=ip))


def udp_frame(src, dst, sport, dport, payload, ttl=64):
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = len(bytes(udp))
    ip = dpkt.ip.IP(src=ip4(src), dst=ip4(dst), p=17, ttl=ttl, data=udp)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, type=0x0800, data=ip))


def udp6_frame(src, dst, sport, dport, payload, hlim=255):
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = len(bytes(udp))
    ip = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src), dst=socket.inet_pton(socket.AF_INET6, dst),
                      nxt=17, hlim=hlim, data=udp, plen=len(bytes(udp)))
    return bytes(dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, type=0x86DD, data=ip))


S, A, P, F = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_FIN


def tcp_conversation(t0, cli, srv, sport, rounds, gap=0.010):
    """Handshake, ``rounds`` request/response exchanges, FIN close. Yields (ts, frame)."""
    c_seq, s_seq = 1000, 5000
    t = t0
    out = [(t, tcp_frame(cli, srv, sport, 80, S, c_seq, 0, win=64240, ttl=64))]
    t += 0.020
    out.append((t, tcp_frame(srv, cli, 80, sport, S | A, s_seq, c_seq + 1, win=65160, ttl=57)))
    t += 0.001
    c_seq += 1
    s_seq += 1
    out.append((t, tcp_frame(cli, srv, sport, 80, A, c_seq, s_seq, win=502, ttl=64)))
    for i in range(rounds):
        req = b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i
        t += 0.002 + gap * (i % 3)
        out.append((t, tcp_frame(cli, srv, sport, 80, P | A, c_seq, s_seq, req, win=502, ttl=64)))
        c_seq += len(req)
        resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (100 + i) + b"x" * (100 + i)
        t += 0.021
        out.append((t, tcp_frame(srv, cli, 80, sport, P | A, s_seq, c_seq, resp, win=509 + i, ttl=57)))
        s_seq += len(resp)
    t += 0.005
    out.append((t, tcp_frame(cli, srv, sport, 80, F | A, c_seq, s_seq, win=502, ttl=64)))
    t += 0.020
    out.append((t, tcp_frame(srv, cli, 80, sport, F | A, s_seq, c_seq + 1, win=509, ttl=57)))
    t += 0.001
    out.append((t, tcp_frame(cli, srv, sport, 80, A, c_seq + 1, s_seq + 1, win=502, ttl=64)))
    return out


def write(name: str, packets) -> None:
    with open(HERE / name, "wb") as f:
        w = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, frame in sorted(packets, key=lambda p: p[0]):
            w.writepkt(frame, ts=ts)


def main() -> None:
    t0 = 1_700_000_000.0
    small = tcp_conversation(t0, "10.0.0.2", "93.184.216.34", 40000, rounds=4)
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
    answer = query[:2] + b"\x81\x80" + query[4:6] + b"\x00\x01" + query[8:] + b"\xc0\x0c\x00\x01\x00\x01" \
        + struct.pack(">IH", 300, 4) + ip4("93.184.216.34")
    small += [(t0 + 0.5, udp_frame("10.0.0.2", "10.0.0.1", 53000, 53, query)),
              (t0 + 0.512, udp_frame("10.0.0.1", "10.0.0.2", 53, 53000, answer, ttl=64)),
              (t0 + 0.6, udp_frame("10.0.0.2", "10.0.0.1", 53001, 53, query)),
              (t0 + 0.6031, udp_frame("10.0.0.1", "10.0.0.2", 53, 53001, answer, ttl=64)),
              (t0 + 0.7, udp_frame("10.0.0.2", "239.255.255.250", 1900, 1900, b"M-SEARCH * HTTP/1.1\r\n\r\n", ttl=1)),
              (t0 + 0.8, udp6_frame("fe80::1", "ff02::fb", 5353, 5353, query)),
              (t0 + 0.9, udp6_frame("fe80::1", "ff02::fb", 5353, 5353, query + b"\x00"))]
    write("small.pcap", small)
    write("long.pcap", tcp_conversation(t0, "10.0.0.2", "93.184.216.34", 40001, rounds=38, gap=0.003))


if __name__ == "__main__":
    main()
