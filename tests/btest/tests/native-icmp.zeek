# ICMP, native engine: per-packet features as the script engine's (icmp-thresholds.zeek); the
# packet and byte counts include the packet that completes a depth (the script engine's lag one
# packet behind there: Zeek 8.0 cannot look every ICMP connection up by its ID).
# @TEST-EXEC: zeek -b -C -r $TRACES/icmp.pcap $PACKAGE $FILES/native-all.zeek
# @TEST-EXEC: btest-diff cato.log
