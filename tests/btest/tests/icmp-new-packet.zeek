# ICMP (6 IPv4 echo pairs, a port unreachable, an ICMPv6 echo pair and a neighbor solicitation),
# all features at depths 1, 5, 10 with the new_packet strategy. Per-packet features equal those of
# icmp-thresholds. Columns read from the connection record (duration, orig_bytes, resp_bytes and the
# loads) differ: Zeek 8.0 cannot look every ICMP connection up by its ID to bring the record up to
# the current packet (see zeek-scripts/icmp.zeek), and new_packet comes before the ICMP events.
# @TEST-EXEC: zeek -b -C -r $TRACES/icmp.pcap $PACKAGE $FILES/all-new_packet.zeek
# @TEST-EXEC: btest-diff cato.log
