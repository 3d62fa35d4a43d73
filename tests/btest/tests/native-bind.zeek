# native_configure checks each feature's column and record path before it turns the engine on: it
# returns F, with a reporter error saying what is wrong, for a column Cato::Info lacks, a column of
# a type its feature cannot fill (a string feature needs a string; a number, a count or a double),
# a connection record field that does not exist and one that is not what its spec reads.
# (Errors in zeek_init end Zeek's start-up.)
# @TEST-EXEC-FAIL: zeek -b $PACKAGE %INPUT > output 2> stderr
# @TEST-EXEC: btest-diff output
# @TEST-EXEC: btest-diff stderr

@load-plugin Cato::Native

redef record Cato::Info += {
	a_count: count &log &optional;
	a_double: double &log &optional;
	a_string: string &log &optional;
	an_int: int &log &optional;
	an_interval: interval &log &optional;
};

function try(spec: string, column: string)
	{
	print fmt("%s -> %s: %s", spec, column, Cato::native_configure("Cato", vector(1), vector(spec), vector(column), 0secs));
	}

event zeek_init()
	{
	try("pkts orig", "a_count");
	try("pkts orig", "a_double");
	try("record string history", "a_string");
	try("record orig$size", "a_count");
	try("pkts orig", "nope");
	try("record string history", "a_count");
	try("pkts orig", "a_string");
	try("pkts orig", "an_int");
	try("duration", "an_interval");
	try("record orig$nope", "a_count");
	try("record nope$size", "a_count");
	try("record history$size", "a_count");
	try("record history", "a_count");
	try("record string orig$size", "a_string");
	try("record service", "a_count");
	}
