# A 30 ms decision deadline, native engine: the vectors of deadline-thresholds.zeek.
# @TEST-EXEC: zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/native-deadline.zeek
# @TEST-EXEC: btest-diff cato.log
# @TEST-EXEC: mkdir script && cd script && zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/deadline-thresholds.zeek
# @TEST-EXEC: $SCRIPTS/same-vectors script/cato.log cato.log
