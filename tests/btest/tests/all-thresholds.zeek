# All features at depths 1, 5, 10 with re-armed packet thresholds: the same vectors as new_packet.
# @TEST-EXEC: zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/all-thresholds.zeek
# @TEST-EXEC: btest-diff cato.log
