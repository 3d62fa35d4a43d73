# Counter-only features computed by the native engine: Zeek's connection counters, as the script
# engine reads them.
# @TEST-EXEC: zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/native-counters.zeek
# @TEST-EXEC: btest-diff cato.log
# @TEST-EXEC: mkdir script && cd script && zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/counters.zeek
# @TEST-EXEC: $SCRIPTS/same-vectors script/cato.log cato.log
