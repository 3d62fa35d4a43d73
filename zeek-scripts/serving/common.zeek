##! What every cato package on a Zeek shares: the listener for the inference workers (``cato
##! serve``), the verdict log (``cato_verdict``, one row per verdict, naming its model), the Notices
##! (:zeek:enum:`Cato::Alert`, :zeek:enum:`Cato::Alerting_Host`) and the telemetry counters (by
##! model). Each package carries a copy; Zeek loads the first (the others are guarded out), and each
##! package's own verdict side (``verdicts.zeek``, in the package's module) writes to them.
##!
##! On a cluster one node listens for the inference workers: the manager, or
##! :zeek:id:`Cato::listener_node`. It tells every node which topics the workers take
##! (:zeek:id:`Cato::inference_workers`), so that a package whose vectors no worker takes counts
##! them at once instead of publishing them into the void.

@ifndef ( Cato::VERDICT_LOG )

@load base/frameworks/notice
@load base/frameworks/cluster
@load base/frameworks/sumstats
@load base/frameworks/telemetry

module Cato;

export {
	redef enum Log::ID += { VERDICT_LOG };

	redef enum Notice::Type += {
		## A connection's verdict is one of its package's alert labels.
		Alert,
		## A host's connections got :zeek:id:`Cato::alert_threshold` alerting verdicts of one model
		## and label within :zeek:id:`Cato::alert_window` (SumStats, as SSH::Password_Guessing).
		Alerting_Host,
	};

	global verdict_log_policy: Log::PolicyHook;

	## One verdict of a model on a connection's feature vector.
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
		## verdict that came after its package's ``verdict_wait``).
		latency: interval &log &optional;
		## Zeek joined the connection mid-stream (TCP whose first packet seen was neither SYN nor
		## SYN-ACK, as after a restart): its features miss the connection's start, and the model
		## was trained on whole connections.
		midstream: bool &log &optional;
	};

	## Event for the verdict log stream.
	global log_verdict: event(rec: Verdict);

	## Alerting verdicts of one model and label for one originator within
	## :zeek:id:`Cato::alert_window` that raise a :zeek:enum:`Cato::Alerting_Host` Notice (counted
	## across a cluster's workers).
	const alert_threshold = 10.0 &redef;

	## The window :zeek:id:`Cato::alert_threshold` counts in.
	const alert_window = 5min &redef;

	## Counts an alerting verdict of *model* and *label* for originator *orig_h* towards
	## :zeek:enum:`Cato::Alerting_Host`.
	global observe_alert: function(model: string, label: string, orig_h: addr);

	## The cluster node that listens for inference workers; empty: the manager. A standalone Zeek
	## listens itself (reading live traffic, or for ``cato serve --replay``).
	option listener_node = "";

	## Listen for the inference workers on Zeek's WebSocket API.
	option websocket_listen = T;

	## Address the workers' listeners are on: this host only, unless a site says otherwise.
	option listen_addr = 127.0.0.1;

	## Port of the WebSocket listener (outside zeekctl's cluster ports, 27760 and up, and
	## Zeek's own defaults: Broker 9999, WebSocket 9997, ZeroMQ 5555-5556). Every package's
	## worker connects to it, each taking its own package's topics.
	option websocket_port = 21760/tcp;

	## Also listen for the workers on Broker (``cato serve --transport broker``; Broker cluster
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

	## Published by the listening node to the others when the inference workers change: the
	## topics they subscribe to. Each node then asks :zeek:id:`Cato::workers_changed`.
	global inference_workers: event(subscriptions: string_vec);

	## Asked on every node, the listening one too, with the topics the inference workers take, as
	## they change: each package checks whether they cover its vectors. (A hook, so that a vector
	## made in the same event as a worker's arrival already knows of it.)
	global workers_changed: hook(subscriptions: string_vec);

	## Whether this node listens for the inference workers (and so serves someone).
	global listening = F;

	## Vectors of the packages that got no verdict, by model and reason.
	global unanswered_metric = Telemetry::register_counter_family(Telemetry::MetricOpts(
		$prefix="zeek", $name="cato_vectors_unanswered", $unit="",
		$help_text="Vectors of a cato package that got no verdict, by model and reason",
		$label_names=vector("model", "reason")));

	## Verdicts of the packages' models, by model and outcome.
	global verdicts_metric = Telemetry::register_counter_family(Telemetry::MetricOpts(
		$prefix="zeek", $name="cato_verdicts", $unit="",
		$help_text="Verdicts of a cato package's model taken (logged), late (logged, after verdict_wait) or refused; compact verdict blocks that could not be read (malformed_block)",
		$label_names=vector("model", "outcome")));
}

# The listening node: the WebSocket clients' subscriptions, by endpoint.
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
		hook workers_changed(subscriptions);
		}
	}

event inference_workers(subscriptions: string_vec)
	{
	hook workers_changed(subscriptions);
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

# Between the model and the label in a SumStats key: a character neither holds.
const key_separator = "\x1f";

function observe_alert(model: string, label: string, orig_h: addr)
	{
	SumStats::observe("cato.alerts", SumStats::Key($host=orig_h, $str=cat(model, key_separator, label)),
	                  SumStats::Observation($num=1));
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
	                      local model_label = split_string1(key$str, /\x1f/);
	                      NOTICE(Notice::Info($note=Alerting_Host, $src=key$host, $sub=model_label[1],
	                                          $msg=fmt("%s: %.0f connections classified as %s within %s (model %s)",
	                                                   key$host, result["cato.alerts"]$sum, model_label[1], alert_window,
	                                                   model_label[0]),
	                                          $identifier=cat(model_label[0], "/", model_label[1], "/", key$host)));
	                      }]);
	}

@endif
