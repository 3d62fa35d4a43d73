# An 82-packet connection: the script stops at the last depth (10) and keeps state only on the
# connection, so nothing is left once it is gone.
# @TEST-EXEC: zeek -b -C -r $TRACES/long.pcap $PACKAGE $FILES/all-thresholds.zeek %INPUT > output
# @TEST-EXEC: btest-diff output
# @TEST-EXEC: btest-diff cato.log

event connection_state_remove(c: connection) &priority=-10
	{
	print fmt("%s observed=%d total=%d next_depth=%d", c$id$resp_p, c$cato$pkts,
	          c$orig$num_pkts + c$resp$num_pkts, c$cato$next_depth);
	}
