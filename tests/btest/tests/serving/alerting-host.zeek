# A host whose connections keep alerting raises one Cato::Alerting_Host Notice when it crosses
# Cato::alert_threshold alerting verdicts of a label within Cato::alert_window (SumStats); another
# host below the threshold raises none, and verdicts below Cato::alert_min_score do not count.
# @TEST-EXEC: zeek -b $PACKAGE $PACKAGE/serving/verdicts.zeek %INPUT >output 2>&1
# @TEST-EXEC: zeek-cut note src sub msg < notice.log | grep Alerting_Host >>output
# @TEST-EXEC: btest-diff output

redef Cato::schema = "s1";
redef Cato::model_name = "m";
redef Cato::alert_labels = set("bad");
redef Cato::alert_threshold = 5.0;

function verdict(n: count, host: addr, score: double): Cato::VerdictMessage
	{
	local id = conn_id($orig_h=host, $orig_p=count_to_port(40000 + n, tcp), $resp_h=10.0.0.9, $resp_p=443/tcp,
	                   $proto=6);
	return Cato::VerdictMessage($uid=fmt("C%d", n), $id=id, $label="bad", $score=score);
	}

event zeek_init() &priority=-10
	{
	local batch: vector of Cato::VerdictMessage = vector();
	local n = 0;
	while ( ++n <= 7 )  # 7 for 10.0.0.1: crosses 5 once
		batch += verdict(n, 10.0.0.1, 0.9);
	while ( ++n <= 11 )  # 3 for 10.0.0.2, and 3 more below the minimum score
		batch += verdict(n, 10.0.0.2, 0.9);
	while ( ++n <= 15 )
		batch += verdict(n, 10.0.0.2, 0.2);
	event Cato::verdicts("s1", batch);
	}
