# Connections whose roles Zeek flips, all features at depths 1, 5, 10 with the new_packet
# strategy: the same vectors as flip-thresholds.
# @TEST-EXEC: zeek -b -C -r $TRACES/flip.pcap $PACKAGE $FILES/all-new_packet.zeek %INPUT
# @TEST-EXEC: btest-diff cato.log

# Bare mode loads no DNS analyzer, which is what makes 53/udp a likely server port.
redef likely_server_ports += { 53/udp };
