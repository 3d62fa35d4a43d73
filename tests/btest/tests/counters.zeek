# Counter-only features: no per-packet event, vectors from Zeek's connection counters.
# @TEST-EXEC: zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/counters.zeek
# @TEST-EXEC: btest-diff cato.log
