# All features at depths 1, 5, 10, computed by the native engine: the script engine's vectors.
# @TEST-EXEC: zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/native-all.zeek
# @TEST-EXEC: btest-diff cato.log
# @TEST-EXEC: mkdir script && cd script && zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/all-thresholds.zeek
# @TEST-EXEC: $SCRIPTS/same-vectors script/cato.log cato.log
