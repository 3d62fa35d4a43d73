# Connections whose roles Zeek flips (see flip-thresholds.zeek), native engine: the plugin swaps
# its per-direction state with Zeek's, and the vectors are the script engine's.
# @TEST-EXEC: zeek -b -C -r $TRACES/flip.pcap $PACKAGE $FILES/native-all.zeek
# @TEST-EXEC: btest-diff cato.log
# @TEST-EXEC: mkdir script && cd script && zeek -b -C -r $TRACES/flip.pcap $PACKAGE $FILES/all-thresholds.zeek
# @TEST-EXEC: $SCRIPTS/same-vectors script/cato.log cato.log
