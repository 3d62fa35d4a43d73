# Connections whose roles Zeek flips, all features at depths 1, 5, 10 with re-armed packet
# thresholds: TCP seen from the server's SYN-ACK (flipped at the client's ACK, after
# new_connection) and UDP from port 53 to 51000 (flipped before new_connection).
# @TEST-EXEC: zeek -b -C -r $TRACES/flip.pcap $PACKAGE $FILES/all-thresholds.zeek %INPUT
# @TEST-EXEC: btest-diff cato.log

# Bare mode loads no DNS analyzer, which is what makes 53/udp a likely server port.
redef likely_server_ports += { 53/udp };
