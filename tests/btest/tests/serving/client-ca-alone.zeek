# Client certificates without TLS of the listener's own would take anyone: the package says so and
# does not listen (a warning, never a fatal error), and its vectors are counted, not published.
# @TEST-PORT: CATO_PORT
# @TEST-EXEC: zeek -b $PACKAGE $PACKAGE/serving/verdicts.zeek %INPUT >output 2>stderr
# @TEST-EXEC: grep -o "cato: Cato::websocket_tls_client_ca needs .*" stderr >>output
# @TEST-EXEC: btest-diff output

redef exit_only_after_terminate = T;
redef Cato::websocket_port = to_port(getenv("CATO_PORT"));
redef Cato::websocket_tls_client_ca = "/nonexistent/ca.pem";
redef Cato::publish_vectors = T;

module Cato;

event listen() &priority=-10
	{
	print "still running; vectors served", served;
	terminate();
	}
