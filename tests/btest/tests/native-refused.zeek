# When Zeek refuses to attach the native engine's analyzer to a connection, the connection gets no
# vectors (not an empty one at every depth): Cato::native_refused() counts it and the first refusal
# is a reporter warning. Zeek refuses only a child it has already, has prevented or gets while the
# tree is finishing, none of which a script can bring about: the test-only CATO_NATIVE_TEST_REFUSE
# makes Zeek refuse it for every connection that is not TCP (the UDP ones here).
# @TEST-EXEC: CATO_NATIVE_TEST_REFUSE=1 zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/native-counters.zeek %INPUT > output 2> stderr
# @TEST-EXEC: btest-diff output
# @TEST-EXEC: btest-diff stderr
# @TEST-EXEC: btest-diff cato.log
# Without it, nothing is refused and every connection has its vectors.
# @TEST-EXEC: mkdir plain && cd plain && zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/native-counters.zeek %INPUT > output 2> stderr
# @TEST-EXEC: btest-diff plain/output
# @TEST-EXEC: test ! -s plain/stderr

event Cato::vector_ready(info: Cato::Info)
	{
	print fmt("vector: %s %s depth %d", info$uid, info$proto, info$depth);
	}

event connection_state_remove(c: connection)
	{
	print fmt("connection: %s %s", c$uid, get_port_transport_proto(c$id$resp_p));
	}

event zeek_done() &priority=-10
	{
	print fmt("refused: %d", Cato::native_refused());
	}
