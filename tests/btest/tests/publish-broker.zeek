# Online sink: with Cato::publish_vectors, vectors reach a real Broker peer on Cato::topic in
# batches (here a second Zeek standing in for the inference worker).
# @TEST-PORT: BROKER_PORT
# @TEST-EXEC: btest-bg-run listener "zeek -b $PACKAGE $FILES/counters.zeek ../listener.zeek"
# @TEST-EXEC: btest-bg-run sender "zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/counters.zeek ../sender.zeek"
# @TEST-EXEC: btest-bg-wait 45
# @TEST-EXEC: btest-diff listener/.stdout

@TEST-START-FILE listener.zeek
redef exit_only_after_terminate = T;
global received = 0;

event zeek_init()
	{
	Cluster::subscribe(Cato::topic);
	Broker::listen("127.0.0.1", to_port(getenv("BROKER_PORT")));
	}

event Cato::vector_batch(vectors: vector of Cato::Info)
	{
	# Events queued before terminate() still arrive: print the first four only.
	if ( ! is_remote_event() || received >= 4 )
		return;
	for ( _, info in vectors )
		{
		print info$id$resp_p, info$depth, info$pkts_seen, info$orig_pkts, info$resp_pkts;
		if ( ++received == 4 )
			{
			terminate();
			return;
			}
		}
	}
@TEST-END-FILE

@TEST-START-FILE sender.zeek
redef Cato::publish_vectors = T;
redef Cato::log_vectors = F;
# One vector per batch: the listener sees them in the order they were made.
redef Cato::publish_batch_size = 1;

event zeek_init()
	{
	Broker::peer("127.0.0.1", to_port(getenv("BROKER_PORT")), 1sec);
	suspend_processing();
	}

event Broker::peer_added(endpoint: Broker::EndpointInfo, msg: string)
	{
	continue_processing();
	}

event Broker::peer_lost(endpoint: Broker::EndpointInfo, msg: string)
	{
	terminate();
	}
@TEST-END-FILE
