# ICMP (6 IPv4 echo pairs, a port unreachable, an ICMPv6 echo pair and a neighbor solicitation),
# all features at depths 1, 5, 10 with re-armed packet thresholds: ICMP packets come from ICMP events.
# @TEST-EXEC: zeek -b -C -r $TRACES/icmp.pcap $PACKAGE $FILES/all-thresholds.zeek
# @TEST-EXEC: btest-diff cato.log
