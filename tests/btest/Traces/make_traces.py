"""Write the tiny deterministic captures the btests use (run: python make_traces.py).

small.pcap: a TCP connection (handshake, data both ways, 14 packets), two UDP DNS exchanges, a
one-packet UDP flow and an IPv6 UDP flow. long.pcap: one TCP connection of 80 packets, to show that
no work is done past the depth.

icmp.pcap: ICMP, whose connections Zeek builds from ICMP types (orig_p is the type, resp_p the
code) and whose packets the scripts take from ICMP events: an IPv4 echo exchange of 6
request/reply pairs (12 packets, past the last depth), a UDP datagram to a closed port and the
ICMP port unreachable that quotes it, an ICMPv6 echo request/reply pair and an ICMPv6 neighbor
solicitation.

flip.pcap: connections whose roles Zeek flips (conn.log history has a '^'): a TCP connection
whose capture starts late, at the server's SYN-ACK, followed by the ACK, 4 request/response
exchanges and the FIN close (13 packets); and a UDP exchange whose first datagram goes from the
well-known port 53 to the ephemeral port 51000 (the answer to a query sent before the capture),
followed by two more query/answer exchanges. Zeek flips the TCP connection at the client's ACK,
after new_connection, and the UDP one before new_connection, but only when 53/udp is in
likely_server_ports (the DNS analyzer's scripts put it there; zeek -b loads none).

remembered.pcap: what a deployment remembers of hosts. Device 10.0.0.5 (MAC 02:00:00:00:00:0d)
opens a TCP connection before anything is known of it; sends a DHCP request whose host name is Zeek
code, with a vendor class and a parameter request list; resolves api.Example.COM. (A 203.0.113.7)
at 10.0.0.1; then opens a TCP connection to 203.0.113.7, is the responder of one from 10.0.0.9, and
has one whose capture starts at the server's SYN-ACK (Zeek flips it at the device's ACK). Two days
later (past every memory) it connects to 203.0.113.7 again.

Timestamps are fixed offsets from one start time, so the files are identical from run to run.
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


def icmp_frame(src, dst, type_, code, body, ttl=64):
    icmp = dpkt.icmp.ICMP(type=type_, code=code, data=body)
    ip = dpkt.ip.IP(src=ip4(src), dst=ip4(dst), p=1, ttl=ttl, data=icmp)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, type=0x0800, data=ip))


def icmp6_frame(src, dst, type_, code, body, hlim=64):
    icmp = dpkt.icmp6.ICMP6(type=type_, code=code, data=body)
    ip = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src), dst=socket.inet_pton(socket.AF_INET6, dst),
                      nxt=58, hlim=hlim, data=icmp, plen=len(bytes(icmp)))
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


def icmp_packets(t0):
    """icmp.pcap: IPv4 echo (6 pairs), a port unreachable quoting a UDP datagram, ICMPv6 echo and ND."""
    out = []
    t = t0
    for i in range(6):
        echo = dpkt.icmp.ICMP.Echo(id=0x4242, seq=i + 1, data=b"cato-ping-%02d" % i + b"\x00" * 20)
        out.append((t, icmp_frame("10.0.0.2", "10.0.0.1", 8, 0, echo)))
        out.append((t + 0.0005 + 0.0001 * i, icmp_frame("10.0.0.1", "10.0.0.2", 0, 0, echo, ttl=63)))
        t += 0.1 + 0.01 * (i % 2)
    probe = udp_frame("10.0.0.2", "10.0.0.1", 51234, 9999, b"hello?")
    out.append((t0 + 1.0, probe))
    quoted = bytes(dpkt.ethernet.Ethernet(probe).data)  # the whole datagram: IP header, UDP header, data
    out.append((t0 + 1.0003, icmp_frame("10.0.0.1", "10.0.0.2", 3, 3, dpkt.icmp.ICMP.Unreach(data=quoted))))
    echo6 = dpkt.icmp6.ICMP6.Echo(id=0x77, seq=1, data=b"cato-ping6" + b"\x00" * 22)
    out.append((t0 + 1.5, icmp6_frame("2001:db8::2", "2001:db8::1", 128, 0, echo6)))
    out.append((t0 + 1.5007, icmp6_frame("2001:db8::1", "2001:db8::2", 129, 0, echo6, hlim=63)))
    # Neighbor solicitation for 2001:db8::1: reserved, target, source link-layer address option.
    ns = b"\x00" * 4 + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + b"\x01\x01" + MAC_A
    out.append((t0 + 1.6, icmp6_frame("2001:db8::2", "ff02::1:ff00:1", 135, 0, ns, hlim=255)))
    return out


def dns_message(qid: int, answer: bool) -> bytes:
    """A DNS query for example.com (A), or its answer."""
    question = b"\x07example\x03com\x00\x00\x01\x00\x01"
    if not answer:
        return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question
    return struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + b"\xc0\x0c\x00\x01\x00\x01" \
        + struct.pack(">IH", 300, 4) + ip4("93.184.216.34")


def flip_packets(t0):
    """flip.pcap: TCP seen from the server's SYN-ACK on, and UDP whose first datagram leaves port 53."""
    # The conversation minus the client's SYN, which went by before the capture started.
    out = tcp_conversation(t0, "10.0.0.3", "93.184.216.34", 41000, rounds=4)[1:]
    # An answer (to a query sent before the capture started), then two more exchanges.
    dns, host = "10.0.0.1", "10.0.0.3"
    for i in range(3):
        t = t0 + 0.5 + 0.05 * i
        out.append((t, udp_frame(dns, host, 53, 51000, dns_message(0x2000 + i, answer=True))))
        if i < 2:
            out.append((t + 0.047, udp_frame(host, dns, 51000, 53, dns_message(0x2001 + i, answer=False))))
    return out


def dns_query_for(qid: int, name: bytes) -> bytes:
    """A DNS query (A) for ``name``, whose dot-separated labels may hold any bytes but dots."""
    qname = b"".join(bytes([len(label)]) + label for label in name.split(b".")) + b"\x00"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + b"\x00\x01\x00\x01"


#: What a hostile network can put in the strings analyzer features keep (tests/test_golden.py has a
#: vocabulary of some of them).
HOSTILE_NAMES = [b"time.nist.gov", b'"] = 1 }; event zeek_init() { print "pwned"; } #', b"a\nb\x00\xff",
                 b".".join([b"x" * 60] * 5)]


def hostile_packets(t0):
    """hostile.pcap: DNS queries for the names above (one over-long), and HTTP requests whose headers
    hold a backslash escape, bytes that are not UTF-8, a 1,000-byte User-Agent, an empty one and no
    Host at all."""
    out = []
    for i, name in enumerate(HOSTILE_NAMES):
        out.append((t0 + 0.1 * i, udp_frame("10.0.0.2", "10.0.0.1", 53100 + i, 53, dns_query_for(0x4000 + i, name))))
    # The third has no Host header (absent) and an empty User-Agent.
    for i, (host, agent) in enumerate(((b"x", b"\\x41\\"), (b"h\xff\xfe", b"A" * 1000), (None, b""))):
        conv = tcp_conversation(t0 + 1 + i, "10.0.0.2", "93.184.216.34", 42000 + i, rounds=1)
        request = (b"GET / HTTP/1.1\r\n" + (b"Host: " + host + b"\r\n" if host is not None else b"")
                   + b"User-Agent: " + agent + b"\r\n\r\n")
        ts, frame = conv[3]
        conv[3] = (ts, tcp_frame("10.0.0.2", "93.184.216.34", 42000 + i, 80, P | A, 1001, 5001, request, win=502))
        # The rest of the client's sequence numbers follow the longer request.
        shift = len(request) - len(b"GET /0 HTTP/1.1\r\nHost: x\r\n\r\n")
        for k in range(4, len(conv)):
            ts, frame = conv[k]
            pkt = dpkt.ethernet.Ethernet(frame)
            seg = pkt.data.data
            if seg.sport == 42000 + i:
                seg.seq += shift
            else:
                seg.ack += shift
            seg.sum = 0
            pkt.data.sum = 0
            conv[k] = (ts, bytes(pkt))
        out += conv
    return out


MAC_DEVICE, MAC_GATEWAY = b"\x02\x00\x00\x00\x00\x0d", b"\x02\x00\x00\x00\x00\x01"
#: The device's DHCP host name: a vocabulary of it must stay one literal (tests/test_golden.py).
DEVICE_NAME = b'cam"] = 1 }; event zeek_init() { print "pwned"; } #'


def with_macs(frame: bytes, src: bytes, dst: bytes) -> bytes:
    """``frame`` with its Ethernet source and destination replaced."""
    return dst + src + frame[12:]


def dhcp_request() -> bytes:
    msg = dpkt.dhcp.DHCP(op=dpkt.dhcp.DHCP_OP_REQUEST, chaddr=MAC_DEVICE, xid=0x1234, opts=(
        (dpkt.dhcp.DHCP_OPT_MSGTYPE, bytes([dpkt.dhcp.DHCPREQUEST])),
        (dpkt.dhcp.DHCP_OPT_HOSTNAME, DEVICE_NAME),
        (dpkt.dhcp.DHCP_OPT_VENDOR_ID, b"udhcp 1.22.1"),
        (dpkt.dhcp.DHCP_OPT_PARAM_REQ, bytes([1, 3, 6, 12, 15, 28, 42]))))
    return bytes(msg)


def dns_answer_for(qid: int, name: bytes, address: str) -> bytes:
    """The answer (A ``address``) to a query for ``name``."""
    query = dns_query_for(qid, name)
    return query[:2] + b"\x81\x80" + query[4:6] + b"\x00\x01" + query[8:] + b"\xc0\x0c\x00\x01\x00\x01" \
        + struct.pack(">IH", 60, 4) + ip4(address)


def remembered_packets(t0):
    """remembered.pcap (see the module's docstring)."""
    device, resolver, server, peer = "10.0.0.5", "10.0.0.1", "203.0.113.7", "10.0.0.9"
    mac_peer = b"\x02\x00\x00\x00\x00\x09"

    def macs(packets, client_mac, server_mac, client):
        out = []
        for ts, frame in packets:
            src = dpkt.ethernet.Ethernet(frame).data.src
            to_server = socket.inet_ntop(socket.AF_INET, src) == client
            out.append((ts, with_macs(frame, client_mac if to_server else server_mac,
                                      server_mac if to_server else client_mac)))
        return out

    out = macs(tcp_conversation(t0, device, "93.184.216.34", 43000, rounds=1), MAC_DEVICE, MAC_GATEWAY, device)
    out.append((t0 + 1, with_macs(udp_frame("0.0.0.0", "255.255.255.255", 68, 67, dhcp_request()),
                                  MAC_DEVICE, b"\xff" * 6)))
    name = b"api.Example.COM"
    out += macs([(t0 + 2, udp_frame(device, resolver, 53200, 53, dns_query_for(0x5000, name))),
                 (t0 + 2.01, udp_frame(resolver, device, 53, 53200, dns_answer_for(0x5000, name, server)))],
                MAC_DEVICE, MAC_GATEWAY, device)
    out += macs(tcp_conversation(t0 + 3, device, server, 43001, rounds=1), MAC_DEVICE, MAC_GATEWAY, device)
    out += macs(tcp_conversation(t0 + 4, peer, device, 43002, rounds=1), mac_peer, MAC_DEVICE, peer)
    out += macs(tcp_conversation(t0 + 5, device, server, 43003, rounds=2)[1:], MAC_DEVICE, MAC_GATEWAY, device)
    out += macs(tcp_conversation(t0 + 2 * 86400, device, server, 43004, rounds=1), MAC_DEVICE, MAC_GATEWAY, device)
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
    write("icmp.pcap", icmp_packets(t0))
    write("flip.pcap", flip_packets(t0))
    write("hostile.pcap", hostile_packets(t0))
    write("remembered.pcap", remembered_packets(t0))


if __name__ == "__main__":
    main()
