# A verdict that arrives after the exit count (Zeek shutting down, the worker still answering) was
# counted SHUTDOWN already: it is counted late, and neither logged nor alerted, since a cluster's
# logger and manager may be gone by then.
# @TEST-EXEC: zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/counters.zeek $PACKAGE/serving/verdicts.zeek %INPUT >output 2>&1
# @TEST-EXEC: test ! -e cato_verdict.log && test ! -e notice.log
# @TEST-EXEC: btest-diff output

redef Cato::schema = "s1";
redef Cato::model_name = "test-model";
redef Cato::alert_labels = set("bad");
redef Cato::depths = vector(5);
redef Cato::log_vectors = F;
redef Cato::publish_vectors = T;

global last: Cato::VerdictMessage;

event Cato::vector_ready(info: Cato::Info)
	{
	last = Cato::VerdictMessage($uid=info$uid, $id=info$id, $label="bad", $score=0.9);
	}

# After verdicts.zeek's own zeek_done (priority -10) has counted what still waits.
event zeek_done() &priority=-20
	{
	event Cato::verdicts("s1", vector(last));
	}

event Cato::verdicts(model_schema: string, batch: vector of Cato::VerdictMessage) &priority=-50
	{
	print fmt("late %d", Cato::late_verdicts);
	for ( reason, n in Cato::unanswered )
		print reason, n;
	}
