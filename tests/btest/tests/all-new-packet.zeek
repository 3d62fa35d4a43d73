# All features at depths 1, 5, 10 with the new_packet strategy.
# @TEST-EXEC: zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/all-new_packet.zeek
# @TEST-EXEC: btest-diff cato.log
