# A value below zero for a count column (here an int field of the connection record) leaves the
# column unset rather than wrapping around to a huge count; a double column takes it as it is.
# @TEST-EXEC: zeek -b -C -r $TRACES/small.pcap $PACKAGE %INPUT > output
# @TEST-EXEC: btest-diff output
# @TEST-EXEC: btest-diff cato.log

@load-plugin Cato::Native

module Cato;
redef native_engine = T;
module GLOBAL;

redef record connection += {
	below_zero: int &default=-5;
	above_zero: int &default=5;
};

redef record Cato::Info += {
	neg_count: count &log &optional;
	neg_double: double &log &optional;
	pos_count: count &log &optional;
};

event zeek_init()
	{
	print Cato::native_configure("Cato", vector(1, 3), vector("record below_zero", "record below_zero", "record above_zero"),
	                             vector("neg_count", "neg_double", "pos_count"), 0secs);
	}

event zeek_done()
	{
	Cato::native_flush();
	}
