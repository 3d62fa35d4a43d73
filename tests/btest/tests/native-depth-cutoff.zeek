# An 82-packet connection, native engine: vectors at depths 1, 5 and 10 only, made at their
# packets; past the last depth the plugin's analyzer has left the connection (the depth-scaling
# benchmark shows that no cost remains).
# @TEST-EXEC: zeek -b -C -r $TRACES/long.pcap $PACKAGE $FILES/native-all.zeek %INPUT > output
# @TEST-EXEC: btest-diff output
# @TEST-EXEC: btest-diff cato.log

event Cato::vector_ready(info: Cato::Info)
	{
	print fmt("depth %d: %d packets seen, %s", info$depth, info$pkts_seen, info$decided_by);
	}

event connection_state_remove(c: connection)
	{
	print fmt("end: %d packets", c$orig$num_pkts + c$resp$num_pkts);
	}
