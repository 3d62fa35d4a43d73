##! The verdict side of a compiled cato package: the verdicts of the package's model come back to
##! Zeek into the ``cato_verdict`` log and, for :zeek:id:`Cato::alert_labels`, a Notice
##! (:zeek:enum:`Cato::Alert`). Every vector that gets no verdict is counted by reason: in a warning
##! while Zeek runs, at exit, and as the telemetry counter ``zeek_cato_vectors_unanswered_total``.
##!
##! What every package on a Zeek shares, the listener for the inference workers, the verdict log and
##! the Notices, is in ``common.zeek``. Each node publishes its vectors on its own topic
##! (:zeek:id:`Cato::vector_topic`) and takes the verdicts on its own verdict topic: a verdict is
##! logged once, by the node that saw the connection, and raises at most one Notice.
##!
##! ``cato compile`` copies this script into a package, moved to the package's own module (written
##! here as ``Cato``), so that several packages run in one Zeek; the package's ``model.zeek`` sets
##! what belongs to its model (:zeek:id:`Cato::schema`, :zeek:id:`Cato::model_name`,
##! :zeek:id:`Cato::alert_labels`) with redefs. Names of ``common.zeek`` are always written in full
##! (``Cato::VERDICT_LOG``): they stay in module ``Cato``.

@load ./common

module Cato;

export {
	## Labels whose verdicts raise a :zeek:enum:`Cato::Alert` Notice.
	option alert_labels: set[string] = set();

	## A verdict of an alert label raises a Notice only at this score (the model's probability for
	## the label) or above; every verdict is logged whatever its score.
	option alert_min_score = 0.5;

	## One Notice per model, originator and alert label at most this often (Zeek's Notice
	## suppression, whose identifier is the model, the label and the originator): a host that
	## keeps doing what alerts is told once.
	option alert_suppress_for = 1hr;

	## Prefix of the verdict topics: the worker answers a node on
	## ``Cato::node_topic(Cato::verdict_topic)``.
	option verdict_topic = "zeek/cato/verdicts";

	## Schema hash of this package's vectors and model: a verdict carrying another is refused.
	const schema = "" &redef;

	## The model's name in the verdict log and the Notices.
	const model_name = "" &redef;

	## How long a published vector waits for its verdict before it is counted as unanswered.
	option verdict_wait = 1min;

	## How often a rise of the unanswered counts is reported (a Reporter warning), while Zeek runs.
	option missing_report_interval = 1min;

	## Vectors published and awaiting their verdict on this node, at most. Past it the node stops
	## publishing until half of them are answered (or expire): a slow or stuck worker must not make
	## Zeek buffer vectors without bound. Vectors not published meanwhile count as ``SHED``.
	option max_in_flight = 50000;

	## Why a vector got no verdict.
	type Unanswered: enum {
		## None came within :zeek:id:`Cato::verdict_wait`: a worker that died, or fell behind.
		TIMEOUT,
		## Zeek exited while it waited (the vectors of the connections open at shutdown).
		SHUTDOWN,
		## Not published: :zeek:id:`Cato::max_in_flight` vectors awaited a verdict.
		SHED,
		## Not published: no inference worker was subscribed to this node's vectors.
		NO_WORKER,
	};

	## Vectors of this node that got no verdict since start, by reason.
	global unanswered: table[Unanswered] of count &default=0;

	## Verdicts refused because their schema hash is not this package's.
	global refused_verdicts = 0;

	## Verdicts that came after their vector was counted as ``TIMEOUT`` (still logged).
	global late_verdicts = 0;

	## Verdicts received since start: taken, late or refused.
	global verdicts_received = 0;

	## Sent back by the worker for a connection's vector.
	global verdict: event(uid: string, id: conn_id, label: string, score: double, model_schema: string);

	## One verdict of a batch.
	type VerdictMessage: record {
		uid: string;
		id: conn_id;
		label: string;
		score: double;
	};

	## Sent back by the worker for a micro-batch of vectors: one event, many verdicts.
	global verdicts: event(model_schema: string, batch: vector of VerdictMessage);

	## Sent back by the worker for a compact vector block (:zeek:id:`Cato::vector_block`): the
	## verdicts as one compact block (base64), read by the native engine's plugin.
	global verdict_block: event(block: string);

	## Compact verdict blocks that could not be read (truncated, garbled, another version): their
	## verdicts are not taken, and their vectors count as ``TIMEOUT`` when they expire.
	global malformed_verdict_blocks = 0;

	## Whether the vector of connection *uid* goes out (then awaited from now on), or is counted as
	## unanswered at once (no inference worker, or :zeek:id:`Cato::max_in_flight` reached). Asked
	## by :zeek:id:`Cato::admit_vector` for every vector; *midstream*: Zeek joined its connection
	## mid-stream.
	global admit: function(uid: string, midstream: bool): bool;
}

const unanswered_names: table[Unanswered] of string = {
	[TIMEOUT] = "timeout", [SHUTDOWN] = "shutdown", [SHED] = "shed", [NO_WORKER] = "no_worker",
};

# This model's counters of the two families, each made once (counter_family_inc would build its labels
# and look the counter up again for every verdict: 3 us of take_verdict's 9.5). Made at start-up, once
# model.zeek's redef named the model.
global unanswered_counters: table[Unanswered] of Telemetry::Counter;
global taken_counter: Telemetry::Counter;
global late_counter: Telemetry::Counter;
global refused_counter: Telemetry::Counter;
global malformed_counter: Telemetry::Counter;

event zeek_init() &priority=10
	{
	for ( reason, name in unanswered_names )
		unanswered_counters[reason] = Telemetry::counter_with(Cato::unanswered_metric, vector(model_name, name));
	taken_counter = Telemetry::counter_with(Cato::verdicts_metric, vector(model_name, "taken"));
	late_counter = Telemetry::counter_with(Cato::verdicts_metric, vector(model_name, "late"));
	refused_counter = Telemetry::counter_with(Cato::verdicts_metric, vector(model_name, "refused"));
	malformed_counter = Telemetry::counter_with(Cato::verdicts_metric, vector(model_name, "malformed_block"));
	}

function count_unanswered(reason: Unanswered, n: count)
	{
	if ( n == 0 )
		return;
	unanswered[reason] += n;
	Telemetry::counter_inc(unanswered_counters[reason], n);
	}

# A published vector, until its verdict comes.
type Awaited: record {
	at: time;
	midstream: bool;
};

global check_flight: function(leaving: count);

function verdict_missed(t: table[string] of Awaited, uid: string): interval
	{
	count_unanswered(TIMEOUT, 1);
	check_flight(1);
	return 0secs;
	}

# The vectors published by this node and awaiting their verdict, by uid.
global published: table[string] of Awaited &create_expire=verdict_wait &expire_func=verdict_missed;

# Whether publishing is paused because max_in_flight vectors await a verdict.
global shedding = F;
global shed_reported = 0;

# Pauses publishing at max_in_flight vectors awaiting a verdict, resumes at half (*leaving*: entries of
# published about to go).
function check_flight(leaving: count)
	{
	local waiting = |published| - leaving;
	if ( ! shedding && waiting >= max_in_flight )
		{
		shedding = T;
		Reporter::warning(fmt("cato: %d vectors of model %s await a verdict: publishing paused until half are "
		                      + "answered; is cato serve keeping up?", waiting, model_name));
		}
	else if ( shedding && waiting <= max_in_flight / 2 )
		{
		shedding = F;
		Reporter::warning(fmt("cato: publishing resumed for model %s; %d vector(s) were not published meanwhile "
		                      + "(%d since start)", model_name, unanswered[SHED] - shed_reported, unanswered[SHED]));
		shed_reported = unanswered[SHED];
		}
	}

# Whether an inference worker takes this node's vectors. A cluster node waits for the listening node
# to say; a standalone Zeek assumes so until its own listener says otherwise (reading a trace, with no
# listener, a site may have peered a worker of its own).
global served = ! Cluster::is_enabled();

# Whether the listening node has told this one yet.
global workers_known = F;

hook Cato::workers_changed(subscriptions: string_vec)
	{
	local was = served;
	served = F;
	for ( _, s in subscriptions )
		if ( starts_with(vector_topic, s) )
			served = T;
	local first = ! workers_known;
	workers_known = T;
	if ( was != served && publish_vectors && ! first )
		Reporter::info(fmt("cato: %s", served ? fmt("an inference worker takes this node's vectors of model %s", model_name)
		                                      : fmt("no inference worker takes this node's vectors of model %s: they are "
		                                            + "counted, not published", model_name)));
	}

event zeek_init() &priority=5
	{
	Cluster::subscribe(node_topic(verdict_topic));
	}

function unanswered_text(): string
	{
	return fmt("%d timed out (Cato::verdict_wait %s), %d at shutdown, %d shed (Cato::max_in_flight), "
	           + "%d with no inference worker", unanswered[TIMEOUT], verdict_wait, unanswered[SHUTDOWN],
	           unanswered[SHED], unanswered[NO_WORKER]);
	}

global reported = 0;

function unanswered_total(): count
	{
	local total = 0;
	for ( _, n in unanswered )
		total += n;
	return total;
	}

# Unanswered vectors are reported while Zeek runs, not only at exit: a live Zeek may run for months.
event report_unanswered()
	{
	local total = unanswered_total();
	if ( total > reported )
		Reporter::warning(fmt("cato: %d more vector(s) got no verdict; since start: %s. Is cato serve running, "
		                      + "and keeping up? (model %s)", total - reported, unanswered_text(), model_name));
	reported = total;
	schedule missing_report_interval { report_unanswered() };
	}

event zeek_init()
	{
	if ( publish_vectors && Cluster::local_node_type() in set(Cluster::NONE, Cluster::WORKER) )
		schedule missing_report_interval { report_unanswered() };
	}

# Set once the exit count is made: a verdict after it was counted SHUTDOWN already, and the
# cluster's logger and manager may be gone (publishing to them then fails in the backend).
global exit_counted = F;

# After main.zeek's zeek_done has published the last vectors: whatever still waits is lost.
event zeek_done() &priority=-10
	{
	count_unanswered(SHUTDOWN, |published|);
	published = table();
	exit_counted = T;
	# A standalone Zeek reading a trace, with no listener, serves no one: its vectors at exit are no news.
	local served_someone = Cato::listening || Cluster::is_enabled();
	if ( served_someone && (vectors_published > 0 || unanswered_total() > 0 || refused_verdicts > 0) )
		Reporter::info(fmt("cato: %d vector(s) published; no verdict: %s; %d verdict(s) refused, %d late, "
		                   + "%d malformed verdict block(s) (model %s)", vectors_published, unanswered_text(),
		                   refused_verdicts, late_verdicts, malformed_verdict_blocks, model_name));
	}

# Zeek joined *c* mid-stream: TCP whose first packet seen was neither SYN nor SYN-ACK.
function joined_midstream(c: connection): bool
	{
	if ( get_port_transport_proto(c$id$resp_p) != tcp )
		return F;
	local h = c$history;
	if ( |h| > 0 && h[0] == "^" )
		h = h[1:];
	return |h| > 0 && h[0] !in "SsHh";
	}

function admit(uid: string, midstream: bool): bool
	{
	if ( ! served )
		{
		count_unanswered(NO_WORKER, 1);
		return F;
		}
	if ( shedding )
		{
		count_unanswered(SHED, 1);
		return F;
		}
	published[uid] = Awaited($at=current_time(), $midstream=midstream);
	check_flight(0);
	return T;
	}

# Decided as the vector is made, so that every vector is awaited or counted.
hook Cato::admit_vector(c: connection, uid: string)
	{
	if ( ! admit(uid, joined_midstream(c)) )
		break;
	}

# Whether a verdict (or *n* of them) carries this package's schema hash; the others are counted.
function schema_matches(model_schema: string, n: count): bool
	{
	verdicts_received += n;
	if ( model_schema == schema )
		return T;
	local before = refused_verdicts;
	refused_verdicts += n;
	Telemetry::counter_inc(refused_counter, n);
	if ( before == 0 )
		Reporter::warning(fmt("cato: refused a verdict with schema %s (this package's is %s); " +
		                      "counting them in Cato::refused_verdicts", model_schema, schema));
	return F;
	}

function take_verdict(uid: string, id: conn_id, label: string, score: double)
	{
	if ( exit_counted )
		{  # neither logged nor alerted: see exit_counted
		++late_verdicts;
		Telemetry::counter_inc(late_counter);
		return;
		}
	local rec = Cato::Verdict($ts=network_time(), $uid=uid, $id=id, $label=label, $score=score, $model=model_name);
	if ( uid in published )
		{
		local awaited = published[uid];
		rec$latency = current_time() - awaited$at;
		rec$midstream = awaited$midstream;
		delete published[uid];
		if ( shedding )
			check_flight(0);
		Telemetry::counter_inc(taken_counter);
		}
	else
		{
		++late_verdicts;
		Telemetry::counter_inc(late_counter);
		}
	Log::write(Cato::VERDICT_LOG, rec);

	if ( label in alert_labels && score >= alert_min_score )
		{
		Cato::observe_alert(model_name, label, id$orig_h);
		NOTICE(Notice::Info($note=Cato::Alert, $msg=fmt("%s classified as %s (score %.3f, model %s)", uid, label,
		                                                score, model_name),
		                    $uid=uid, $id=id, $sub=label, $identifier=cat(model_name, "/", label, "/", id$orig_h),
		                    $suppress_for=alert_suppress_for));
		}
	}

# (A parameter named like the global would be the global here: Zeek scopes both to the module.)
event Cato::verdict(uid: string, id: conn_id, label: string, score: double, model_schema: string)
	{
	if ( schema_matches(model_schema, 1) )
		take_verdict(uid, id, label, score);
	}

@ifdef ( Cato::native_take_verdicts )
event Cato::verdict_block(block: string)
	{
	local err = Cato::native_take_verdicts(block);
	if ( err == "" )
		return;
	if ( ++malformed_verdict_blocks == 1 )
		Reporter::warning(fmt("cato: refused a verdict block: %s; counting them in Cato::malformed_verdict_blocks",
		                      err));
	Telemetry::counter_inc(malformed_counter);
	}
@endif

event Cato::verdicts(model_schema: string, batch: vector of VerdictMessage)
	{
	if ( ! schema_matches(model_schema, |batch|) )
		return;
	for ( _, v in batch )
		take_verdict(v$uid, v$id, v$label, v$score);
	}
