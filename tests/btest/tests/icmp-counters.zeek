# ICMP with counter-only features: vectors from Zeek's connection counters.
# @TEST-EXEC: zeek -b -C -r $TRACES/icmp.pcap $PACKAGE $FILES/counters.zeek
# @TEST-EXEC: btest-diff cato.log
