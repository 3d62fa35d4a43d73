# Connections whose roles Zeek flips, with counter-only features: vectors from Zeek's
# connection counters, which Zeek swaps with the roles.
# @TEST-EXEC: zeek -b -C -r $TRACES/flip.pcap $PACKAGE $FILES/counters.zeek %INPUT
# @TEST-EXEC: btest-diff cato.log

# Bare mode loads no DNS analyzer, which is what makes 53/udp a likely server port.
redef likely_server_ports += { 53/udp };
