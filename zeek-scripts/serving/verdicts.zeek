##! The verdict side of a compiled cato package: the verdicts of the package's model come back to
##! Zeek as the ``cato_verdict`` log and, for :zeek:id:`Cato::alert_labels`, a Notice
##! (:zeek:enum:`Cato::Alert`). Every vector that gets no verdict is counted by reason: in a warning
##! while Zeek runs, at exit, and as the telemetry counter ``zeek_cato_vectors_unanswered_total``.
##!
##! On a cluster one node listens for the inference workers (``cato serve``): the manager, or
##! :zeek:id:`Cato::listener_node`. Each node publishes its vectors on its own topic
##! (:zeek:id:`Cato::vector_topic`) and takes the verdicts on its own verdict topic: a verdict is
##! logged once, by the node that saw the connection, and raises at most one Notice.
##!
##! ``cato compile`` copies this script into a package; the package's ``model.zeek`` sets what
##! belongs to its model (:zeek:id:`Cato::schema`, :zeek:id:`Cato::model_name`,
##! :zeek:id:`Cato::alert_labels`) with redefs.

@load base/frameworks/notice
@load base/frameworks/cluster
@load base/frameworks/sumstats
@load base/frameworks/telemetry

module Cato;

export {
	redef enum Log::ID += { VERDICT_LOG };

	redef enum Notice::Type += {
		## A connection's verdict is one of :zeek:id:`Cato::alert_labels`.
		Alert,
		## A host's connections got :zeek:id:`Cato::alert_threshold` alerting verdicts of one label
		## within :zeek:id:`Cato::alert_window` (SumStats, as SSH::Password_Guessing).
		Alerting_Host,
	};

	global verdict_log_policy: Log::PolicyHook;

	## One verdict of the model on a connection's feature vector.
	type Verdict: record {
		## When the verdict arrived.
		ts: time &log;
		## Unique ID of the connection.
		uid: string &log;
		## The connection's endpoints.
		id: conn_id &log;
		## The class the model gave.
		label: string &log;
		## The model's probability for that class.
		score: double &log;
		## The model (package) that gave it.
		model: string &log;
		## Wall-clock time from publishing the vector to the verdict's arrival (unset for a
		## verdict that came after :zeek:id:`Cato::verdict_wait`).
		latency: interval &log &optional;
		## Zeek joined the connection mid-stream (TCP whose first packet seen was neither SYN nor
		## SYN-ACK, as after a restart): its features miss the connection's start, and the model
		## was trained on whole connections.
		midstream: bool &log &optional;
	};

	## Labels whose verdicts raise a :zeek:enum:`Cato::Alert` Notice.
	option alert_labels: set[string] = set();

	## A verdict of an alert label raises a Notice only at this score (the model's probability for
	## the label) or above; every verdict is logged whatever its score.
	option alert_min_score = 0.5;

	## One Notice per originator and alert label at most this often (Zeek's Notice suppression, whose
	## identifier is the label and the originator): a host that keeps doing what alerts is told once.
	option alert_suppress_for = 1hr;

	## Alerting verdicts of one label for one originator within :zeek:id:`Cato::alert_window` that
	## raise a :zeek:enum:`Cato::Alerting_Host` Notice (counted across a cluster's workers).
	const alert_threshold = 10.0 &redef;

	## The window :zeek:id:`Cato::alert_threshold` counts in.
	const alert_window = 5min &redef;

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

	## The cluster node that listens for inference workers; empty: the manager. A standalone Zeek
	## listens itself (reading live traffic, or for ``cato serve --replay``).
	option listener_node = "";

	## Listen for the inference worker on Zeek's WebSocket API.
	option websocket_listen = T;

	## Address the worker's listeners are on: this host only, unless a site says otherwise.
	option listen_addr = 127.0.0.1;

	## Port of the WebSocket listener (outside zeekctl's cluster ports, 27760 and up, and
	## Zeek's own defaults: Broker 9999, WebSocket 9997, ZeroMQ 5555-5556).
	option websocket_port = 21760/tcp;

	## Also listen for the worker on Broker (``cato serve --transport broker``; Broker cluster
	## backend only). Zeek cannot tell whether a Broker worker is there: with it, vectors are
	## published whether or not a worker is connected, and a missing one shows as ``TIMEOUT``.
	option broker_listen = F;

	## Port of the Broker listener.
	option broker_port = 21761/tcp;

	## TLS for the WebSocket listener: a certificate and its key (PEM files); both empty: no TLS.
	option websocket_tls_cert = "";
	option websocket_tls_key = "";

	## Mutual TLS: the CA certificate (PEM) that signs the inference workers' client certificates
	## (``cato serve --tls-cert/--tls-key``). Set, with :zeek:id:`Cato::websocket_tls_cert`, the
	## listener refuses a client without a certificate this CA signed, so that no other local
	## process can send verdicts (Zeek's WebSocket API has no other client authentication).
	option websocket_tls_client_ca = "";

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

	## Sent by the listening node to each node when the inference workers change: the topics they
	## subscribe to. A node none of whose topics covers its vectors counts them as ``NO_WORKER``
	## at once instead of publishing them into the void.
	global inference_workers: event(subscriptions: string_vec);

	## Whether the vector of connection *uid* goes out (then awaited from now on), or is counted as
	## unanswered at once (no inference worker, or :zeek:id:`Cato::max_in_flight` reached). Asked
	## by :zeek:id:`Cato::admit_vector` for every vector; *midstream*: Zeek joined its connection
	## mid-stream.
	global admit: function(uid: string, midstream: bool): bool;

	## Event for the verdict log stream.
	global log_verdict: event(rec: Verdict);
}

const unanswered_names: table[Unanswered] of string = {
	[TIMEOUT] = "timeout", [SHUTDOWN] = "shutdown", [SHED] = "shed", [NO_WORKER] = "no_worker",
};

global unanswered_metric = Telemetry::register_counter_family(Telemetry::MetricOpts(
	$prefix="zeek", $name="cato_vectors_unanswered", $unit="",
	$help_text="Vectors of a cato package that got no verdict, by reason",
	$label_names=vector("reason")));

global verdicts_metric = Telemetry::register_counter_family(Telemetry::MetricOpts(
	$prefix="zeek", $name="cato_verdicts", $unit="",
	$help_text="Verdicts of a cato package's model taken (logged), late (logged, after verdict_wait) or refused; compact verdict blocks that could not be read (malformed_block)",
	$label_names=vector("outcome")));

function count_unanswered(reason: Unanswered, n: count)
	{
	if ( n == 0 )
		return;
	unanswered[reason] += n;
	Telemetry::counter_family_inc(unanswered_metric, vector(unanswered_names[reason]), n);
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
		Reporter::warning(fmt("cato: %d vectors await a verdict: publishing paused until half are answered; "
		                      + "is cato serve keeping up?", waiting));
		}
	else if ( shedding && waiting <= max_in_flight / 2 )
		{
		shedding = F;
		Reporter::warning(fmt("cato: publishing resumed; %d vector(s) were not published meanwhile (%d since start)",
		                      unanswered[SHED] - shed_reported, unanswered[SHED]));
		shed_reported = unanswered[SHED];
		}
	}

# Whether an inference worker takes this node's vectors. A cluster node waits for the listening node
# to say; a standalone Zeek assumes so until its own listener says otherwise (reading a trace, with no
# listener, a site may have peered a worker of its own).
global served = ! Cluster::is_enabled();

# Whether the listening node has told this one yet.
global workers_known = F;

function take_workers(subscriptions: string_vec)
	{
	local was = served;
	served = F;
	for ( _, s in subscriptions )
		if ( starts_with(vector_topic, s) )
			served = T;
	local first = ! workers_known;
	workers_known = T;
	if ( was != served && publish_vectors && ! first )
		Reporter::info(fmt("cato: %s", served ? "an inference worker takes this node's vectors"
		                                      : "no inference worker takes this node's vectors: they are counted, not published"));
	}

event inference_workers(subscriptions: string_vec)
	{
	take_workers(subscriptions);
	}

# The listening node: the WebSocket clients' subscriptions, by endpoint.
global listening = F;
global clients: table[string] of string_vec;

function client_subscriptions(): string_vec
	{
	local all: string_vec = vector();
	for ( _, subscriptions in clients )
		for ( _, s in subscriptions )
			all += s;
	return all;
	}

# Tells every node (this one too) which topics the inference workers take. With a Broker listener
# too, Zeek cannot know: every node is told to publish (the empty prefix covers every topic).
function announce_workers(node: string &default="")
	{
	if ( ! listening )
		return;
	local subscriptions = broker_listen ? vector("") : client_subscriptions();
	if ( node != "" )
		Cluster::publish(Cluster::node_topic(node), inference_workers, subscriptions);
	else
		{
		if ( Cluster::is_enabled() )
			Cluster::publish(Cluster::worker_topic, inference_workers, subscriptions);
		take_workers(subscriptions);
		}
	}

function listens(): bool
	{
	if ( Cluster::is_enabled() )
		return listener_node == "" ? Cluster::local_node_type() == Cluster::MANAGER : Cluster::node == listener_node;
	# Reading a trace, or no input at all, Zeek exits when it is done, and a listener would keep it running.
	return reading_live_traffic() || exit_only_after_terminate;
	}

global listen: event();

event zeek_init() &priority=5
	{
	Log::create_stream(VERDICT_LOG, Log::Stream($columns=Verdict, $ev=log_verdict, $path="cato_verdict",
	                                            $policy=verdict_log_policy));
	Cluster::subscribe(node_topic(verdict_topic));
	if ( ! listens() )
		return;
	listening = T;
	# Once Zeek is up: an error while it initializes (Zeek's own, for a port taken) is fatal.
	schedule 0secs { listen() };
	}

# A listener that cannot bind is a warning: the node goes on, and its vectors are counted.
event listen()
	{
	if ( broker_listen && Broker::listen(cat(listen_addr), broker_port) == 0/unknown )
		Reporter::warning(fmt("cato: cannot listen for the inference worker on Broker at %s:%s", listen_addr,
		                      broker_port));
	if ( websocket_listen )
		{
		local tls = Cluster::WebSocketTLSOptions();
		if ( websocket_tls_cert != "" || websocket_tls_key != "" )
			tls = Cluster::WebSocketTLSOptions($cert_file=websocket_tls_cert, $key_file=websocket_tls_key,
			                                   $enable_peer_verification=websocket_tls_client_ca != "",
			                                   $ca_file=websocket_tls_client_ca);
		else if ( websocket_tls_client_ca != "" )
			{
			# Client certificates need TLS: without it the listener would take anyone.
			Reporter::warning("cato: Cato::websocket_tls_client_ca needs Cato::websocket_tls_cert and _key: "
			                  + "not listening for the inference worker");
			announce_workers();
			return;
			}
		if ( ! Cluster::listen_websocket(Cluster::WebSocketServerOptions($listen_addr=listen_addr,
		                                                                 $listen_port=websocket_port,
		                                                                 $tls_options=tls)) )
			Reporter::warning(fmt("cato: cannot listen for the inference worker (cato serve) on %s:%s; is the port "
			                      + "taken? (Cato::websocket_port, Cato::listener_node)", listen_addr, websocket_port));
		}
	announce_workers();
	}

event Cluster::websocket_client_added(endpoint: Cluster::EndpointInfo, subscriptions: string_vec)
	{
	clients[endpoint$id] = subscriptions;
	announce_workers();
	}

event Cluster::websocket_client_lost(endpoint: Cluster::EndpointInfo, code: count, reason: string)
	{
	delete clients[endpoint$id];
	announce_workers();
	}

# A node that starts (or restarts) after the workers connected learns of them.
event Cluster::node_up(name: string, id: string)
	{
	announce_workers(name);
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
		                      + "and keeping up?", total - reported, unanswered_text()));
	reported = total;
	schedule missing_report_interval { report_unanswered() };
	}

event zeek_init()
	{
	if ( publish_vectors && Cluster::local_node_type() in set(Cluster::NONE, Cluster::WORKER) )
		schedule missing_report_interval { report_unanswered() };
	}

# After main.zeek's zeek_done has published the last vectors: whatever still waits is lost.
event zeek_done() &priority=-10
	{
	count_unanswered(SHUTDOWN, |published|);
	# A standalone Zeek reading a trace, with no listener, serves no one: its vectors at exit are no news.
	local served_someone = listening || Cluster::is_enabled();
	if ( served_someone && (vectors_published > 0 || unanswered_total() > 0 || refused_verdicts > 0) )
		Reporter::info(fmt("cato: %d vector(s) published; no verdict: %s; %d verdict(s) refused, %d late, "
		                   + "%d malformed verdict block(s)", vectors_published, unanswered_text(), refused_verdicts,
		                   late_verdicts, malformed_verdict_blocks));
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
	Telemetry::counter_family_inc(verdicts_metric, vector("refused"), n);
	if ( before == 0 )
		Reporter::warning(fmt("cato: refused a verdict with schema %s (this package's is %s); " +
		                      "counting them in Cato::refused_verdicts", model_schema, schema));
	return F;
	}

function take_verdict(uid: string, id: conn_id, label: string, score: double)
	{
	local rec = Verdict($ts=network_time(), $uid=uid, $id=id, $label=label, $score=score, $model=model_name);
	if ( uid in published )
		{
		local awaited = published[uid];
		rec$latency = current_time() - awaited$at;
		rec$midstream = awaited$midstream;
		delete published[uid];
		if ( shedding )
			check_flight(0);
		Telemetry::counter_family_inc(verdicts_metric, vector("taken"));
		}
	else
		{
		++late_verdicts;
		Telemetry::counter_family_inc(verdicts_metric, vector("late"));
		}
	Log::write(VERDICT_LOG, rec);

	if ( label in alert_labels && score >= alert_min_score )
		{
		SumStats::observe("cato.alerts", SumStats::Key($host=id$orig_h, $str=label), SumStats::Observation($num=1));
		NOTICE(Notice::Info($note=Alert, $msg=fmt("%s classified as %s (score %.3f, model %s)", uid, label,
		                                          score, model_name),
		                    $uid=uid, $id=id, $sub=label, $identifier=cat(label, "/", id$orig_h),
		                    $suppress_for=alert_suppress_for));
		}
	}

event zeek_init()
	{
	local alerts = SumStats::Reducer($stream="cato.alerts", $apply=set(SumStats::SUM));
	SumStats::create([$name="cato-alerting-hosts",
	                  $epoch=alert_window,
	                  $reducers=set(alerts),
	                  $threshold_val(key: SumStats::Key, result: SumStats::Result) =
	                      {
	                      return result["cato.alerts"]$sum;
	                      },
	                  $threshold=alert_threshold,
	                  $threshold_crossed(key: SumStats::Key, result: SumStats::Result) =
	                      {
	                      NOTICE(Notice::Info($note=Alerting_Host, $src=key$host, $sub=key$str,
	                                          $msg=fmt("%s: %.0f connections classified as %s within %s (model %s)",
	                                                   key$host, result["cato.alerts"]$sum, key$str, alert_window,
	                                                   model_name),
	                                          $identifier=cat(key$str, "/", key$host)));
	                      }]);
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
	Telemetry::counter_family_inc(verdicts_metric, vector("malformed_block"));
	}
@endif

event Cato::verdicts(model_schema: string, batch: vector of VerdictMessage)
	{
	if ( ! schema_matches(model_schema, |batch|) )
		return;
	for ( _, v in batch )
		take_verdict(v$uid, v$id, v$label, v$score);
	}
