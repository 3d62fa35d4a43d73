# A listener that cannot bind (its port taken, here by a first Zeek) is a warning naming the address,
# never a fatal error: the second Zeek runs on, and with no inference worker to take them, its
# vectors are counted, not published into the void.
# @TEST-PORT: CATO_PORT
# @TEST-EXEC: btest-bg-run first "sh -c 'echo \$\$ >zeek.pid; exec zeek -b $PACKAGE $PACKAGE/serving/verdicts.zeek ../settings.zeek'"
# @TEST-EXEC: for i in $(seq 600); do (echo >/dev/tcp/127.0.0.1/${CATO_PORT%/tcp}) 2>/dev/null && break; sleep 0.1; done
# @TEST-EXEC: zeek -b $PACKAGE $PACKAGE/serving/verdicts.zeek settings.zeek %INPUT >output 2>stderr
# @TEST-EXEC: btest-bg-wait -k 1
# The first Zeek may still be shutting down its listener when btest gives up on it: never leave it running.
# @TEST-EXEC: kill -9 $(cat first/zeek.pid) 2>/dev/null || true
# @TEST-EXEC: grep -o "cato: cannot listen for the inference worker (cato serve) on 127.0.0.1:[0-9]*/tcp" stderr | sed "s/:[0-9]*\/tcp/:PORT/" >>output
# @TEST-EXEC: btest-diff output

@TEST-START-FILE settings.zeek
redef exit_only_after_terminate = T;
redef Cato::websocket_port = to_port(getenv("CATO_PORT"));
redef Cato::publish_vectors = T;
@TEST-END-FILE

module Cato;  # to read whether its vectors are served

# After the package tried to listen.
event listen() &priority=-10
	{
	print "still running; vectors served", served;
	terminate();
	}
