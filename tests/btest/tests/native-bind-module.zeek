# native_configure checks the script layer it writes to, cato's module Cato, and refuses (F, with
# a reporter error) when it is not what the engine needs: not loaded at all (once Zeek's internal
# error), a Cato::Decision without a value the engine uses, or a Cato::Info whose fixed columns
# have other types. (conn_id's layout, also checked, is Zeek's own: a script cannot change it.)
# @TEST-EXEC-FAIL: zeek -b %INPUT > output 2>&1
# @TEST-EXEC-FAIL: zeek -b no-deadline.zeek >> output 2>&1
# @TEST-EXEC-FAIL: zeek -b id-not-conn-id.zeek >> output 2>&1
# @TEST-EXEC-FAIL: zeek -b batch-not-an-event.zeek >> output 2>&1
# @TEST-EXEC: zeek -b fake-module.zeek >> output 2>&1
# @TEST-EXEC: btest-diff output

@load-plugin Cato::Native

event zeek_init()
	{
	print "no module Cato", Cato::native_configure("Cato", vector(1), vector("duration"), vector("duration"), 0secs);
	}

# @TEST-START-FILE fake-module.zeek
# A stand-in for cato's module Cato, as small as native_configure accepts.
@load-plugin Cato::Native

module Cato;

export {
	redef enum Log::ID += { LOG };
	type Decision: enum { DEPTH, DEADLINE, END };
	type Info: record {
		ts: time &log;
		uid: string &log;
		id: conn_id &log;
		proto: transport_proto &log;
		depth: count &log;
		pkts_seen: count &log;
		decided_after: interval &log;
		decided_by: Decision &log;
		duration: double &log &optional;
	};
	option log_vectors = T;
	option publish_vectors = F;
	global vector_topic = "";
	option publish_batch_size = 100;
	option publish_max_wait = 2msec;
	global vector_ready: event(info: Info);
	global publish_policy: hook(c: connection, info: Info);
	global admit_vector: hook(c: connection, uid: string);
	global vector_batch: event(vectors: vector of Info);
	type VectorForm: enum { RECORDS, COMPACT };
	const vector_form = RECORDS &redef;
	global vector_block: event(block: string);
	global vectors_published = 0;
}

event zeek_init()
	{
	print "fake module", native_configure("Cato", vector(1), vector("duration"), vector("duration"), 0secs);
	}
# @TEST-END-FILE

# @TEST-START-FILE no-deadline.zeek
@load-plugin Cato::Native

module Cato;

export {
	redef enum Log::ID += { LOG };
	type Decision: enum { DEPTH, END };
	type Info: record {
		ts: time &log;
		uid: string &log;
		id: conn_id &log;
		proto: transport_proto &log;
		depth: count &log;
		pkts_seen: count &log;
		decided_after: interval &log;
		decided_by: Decision &log;
		duration: double &log &optional;
	};
	option log_vectors = T;
	option publish_vectors = F;
	global vector_topic = "";
	option publish_batch_size = 100;
	option publish_max_wait = 2msec;
	global vector_ready: event(info: Info);
	global publish_policy: hook(c: connection, info: Info);
	global vector_batch: event(vectors: vector of Info);
	global vectors_published = 0;
}

event zeek_init()
	{
	print "no DEADLINE", native_configure("Cato", vector(1), vector("duration"), vector("duration"), 0secs);
	}
# @TEST-END-FILE

# @TEST-START-FILE id-not-conn-id.zeek
@load-plugin Cato::Native

module Cato;

export {
	redef enum Log::ID += { LOG };
	type Decision: enum { DEPTH, DEADLINE, END };
	type Info: record {
		ts: time &log;
		uid: string &log;
		id: string &log;
		proto: transport_proto &log;
		depth: count &log;
		pkts_seen: count &log;
		decided_after: interval &log;
		decided_by: Decision &log;
		duration: double &log &optional;
	};
	option log_vectors = T;
	option publish_vectors = F;
	global vector_topic = "";
	option publish_batch_size = 100;
	option publish_max_wait = 2msec;
	global vector_ready: event(info: Info);
	global publish_policy: hook(c: connection, info: Info);
	global vector_batch: event(vectors: vector of Info);
	global vectors_published = 0;
}

event zeek_init()
	{
	print "id not a conn_id", native_configure("Cato", vector(1), vector("duration"), vector("duration"), 0secs);
	}
# @TEST-END-FILE

# @TEST-START-FILE batch-not-an-event.zeek
@load-plugin Cato::Native

module Cato;

export {
	redef enum Log::ID += { LOG };
	type Decision: enum { DEPTH, DEADLINE, END };
	type Info: record {
		ts: time &log;
		uid: string &log;
		id: conn_id &log;
		proto: transport_proto &log;
		depth: count &log;
		pkts_seen: count &log;
		decided_after: interval &log;
		decided_by: Decision &log;
		duration: double &log &optional;
	};
	option log_vectors = T;
	option publish_vectors = F;
	global vector_topic = "";
	option publish_batch_size = 100;
	option publish_max_wait = 2msec;
	global vector_ready: event(info: Info);
	global publish_policy: hook(c: connection, info: Info);
	global vector_batch: hook(vectors: vector of Info);
	global vectors_published = 0;
}

event zeek_init()
	{
	print "vector_batch a hook", native_configure("Cato", vector(1), vector("duration"), vector("duration"), 0secs);
	}
# @TEST-END-FILE
