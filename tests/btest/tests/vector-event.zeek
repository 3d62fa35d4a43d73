# Every vector raises Cato::vector_ready (what is published online); logging can be turned off.
# @TEST-EXEC: zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/counters.zeek %INPUT > output
# @TEST-EXEC: btest-diff output
# @TEST-EXEC: test ! -e cato.log

redef Cato::log_vectors = F;
redef Cato::publish_vectors = T;

event Cato::vector_ready(info: Cato::Info)
	{
	print info$id$resp_p, info$depth, info$pkts_seen, info$orig_pkts, info$resp_pkts;
	}
