##! ``cato serve --replay``: Zeek waits for the worker before reading the capture, makes the vectors
##! of connections still open when the capture runs out (network time stops there, so they would
##! otherwise wait for shutdown), and terminates once every published vector has its verdict.
##! Written in module ``Cato``; the replay moves it to the package's module, as ``cato compile`` moves
##! the package's scripts.

module Cato;

redef exit_only_after_terminate = T;

# Connections still open, by uid (a flip changes the ID): only for the replay's last step.
global open_conns: table[string] of conn_id;
global input_done = F;

function maybe_done()
	{
	if ( input_done && verdicts_received >= vectors_published )
		terminate();
	}

event zeek_init()
	{
	# Read nothing until the worker listens: a vector published before would reach no one.
	suspend_processing();
	}

event Cluster::websocket_client_added(endpoint: Cluster::EndpointInfo, subscriptions: string_vec)
	{
	for ( _, t in subscriptions )
		if ( starts_with(vector_topic, t) )
			continue_processing();
	}

event new_connection(c: connection)
	{
	open_conns[c$uid] = c$id;
	}

event connection_flipped(c: connection)
	{
	open_conns[c$uid] = c$id;
	}

event connection_state_remove(c: connection)
	{
	delete open_conns[c$uid];
	}

event Pcap::file_done(path: string)
	{
@ifdef ( Cato::native_finish_all )
	if ( native_engine )
		Cato::native_finish_all();
	else
@endif
		{
		for ( _, id in open_conns )
			{
			if ( ! connection_exists(id) )
				next;
			local c = lookup_connection(id);
			finish(c, T, END, c$duration);
			}
		flush_vectors();
		}
	input_done = T;
	maybe_done();
	}

event Cato::verdict(uid: string, id: conn_id, label: string, score: double, model_schema: string) &priority=-10
	{
	maybe_done();
	}

event Cato::verdicts(model_schema: string, batch: vector of VerdictMessage) &priority=-10
	{
	maybe_done();
	}

event Cato::verdict_block(block: string) &priority=-10
	{
	maybe_done();
	}
