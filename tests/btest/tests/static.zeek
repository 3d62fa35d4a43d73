# The static package alone: options, the Info columns and the log stream.
# @TEST-EXEC: zeek -b $PACKAGE %INPUT > output
# @TEST-EXEC: btest-diff output

function by_name(a: string, b: string): int
	{
	return strcmp(a, b);
	}

event zeek_init() &priority=-10
	{
	print "depths", Cato::depths;
	print "log", Cato::log_vectors, "publish", Cato::publish_vectors, "topic", Cato::topic;
	print "stream", Log::active_streams[Cato::LOG]$path;
	local fields = record_fields(Cato::Info);
	local names: vector of string;
	for ( n in fields )
		names += n;
	sort(names, by_name);
	for ( i in names )
		print names[i], fields[names[i]]$type_name, fields[names[i]]$log;
	}
