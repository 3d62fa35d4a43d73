# A 30 ms decision deadline (counters): vectors not complete by then are made at it, with what was
# seen before it (decided_by DEADLINE, decided_after 0.03); shorter connections still end first.
# @TEST-EXEC: zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/deadline-counters.zeek
# @TEST-EXEC: btest-diff cato.log
