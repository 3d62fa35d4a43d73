# The verdict side of a package (zeek-scripts/serving/verdicts.zeek) on a trace, its verdicts raised
# here as the worker would send them: a verdict is logged once with its flags, an alert label raises
# one Notice, a verdict of another schema is refused, and every vector left without a verdict is
# counted by reason, in the exit summary and in telemetry.
# @TEST-EXEC: zeek -b -C -r $TRACES/small.pcap $PACKAGE $FILES/counters.zeek $PACKAGE/serving/verdicts.zeek %INPUT >output 2>stderr
# @TEST-EXEC: zeek-cut uid id.orig_h label score model midstream < cato_verdict.log >>output
# @TEST-EXEC: zeek-cut uid id.orig_h note sub < notice.log >>output
# @TEST-EXEC: grep -v "refused a verdict with schema other (this package.s is s1)" stderr >>output || true
# @TEST-EXEC: btest-diff output


redef Cato::schema = "s1";
redef Cato::model_name = "test-model";
redef Cato::alert_labels = set("bad");
redef Cato::depths = vector(5);
redef Cato::log_vectors = F;
redef Cato::publish_vectors = T;

global made = 0;

event Cato::vector_ready(info: Cato::Info)
	{
	++made;
	# The first four are answered: an alert, one below Cato::alert_min_score, and one more of the
	# same originator (suppressed: one Notice per originator and label). The fifth comes with another
	# schema, the rest never.
	local labels = vector("good", "bad", "bad", "bad", "bad");
	local scores = vector(0.75, 0.75, 0.3, 0.9, 0.9);
	local i = made <= 5 ? made - 1 : 0;
	local v = Cato::VerdictMessage($uid=info$uid, $id=info$id, $label=labels[i], $score=scores[i]);
	if ( made <= 4 )
		event Cato::verdicts("s1", vector(v));
	else if ( made == 5 )
		event Cato::verdicts("other", vector(v));
	}

event zeek_done() &priority=-20
	{
	print fmt("vectors %d published %d refused %d late %d", made, Cato::vectors_published, Cato::refused_verdicts,
	          Cato::late_verdicts);
	for ( reason, n in Cato::unanswered )
		print reason, n;
	# Every series, the zero ones too (each counter is made at start-up), in a stable order.
	local series: vector of string = vector();
	for ( _, m in Telemetry::collect_metrics("zeek", "cato_*") )
		series += fmt("%s, %s, %s", m$opts$name, m$label_values, m$value);
	sort(series, strcmp);
	for ( _, line in series )
		print line;
	}
