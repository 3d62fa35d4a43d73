# Analyzer features on what a hostile network sends (Traces/make_traces.py, hostile.pcap): the
# vocabulary's literals of quotes and Zeek code, a newline, NUL and bytes that are not UTF-8 find
# their codes (2 and 3; a User-Agent of a backslash escape, 2), over-long values are cut to
# Cato::max_string_bytes while their lengths count every byte, and nothing of it runs (no output).
# A value comes into the vectors made after its packet, or at the connection's end.
# @TEST-EXEC: zeek -b -C -r $TRACES/hostile.pcap $PACKAGE $FILES/analyzers.zeek >output 2>&1
# @TEST-EXEC: btest-diff cato.log
# @TEST-EXEC: test ! -s output
