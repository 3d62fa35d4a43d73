# What a deployment remembers of hosts (Traces/make_traces.py, remembered.pcap): a connection before
# the device's DHCP request has nothing; after it, the device's host name (Zeek code, coded 2 by the
# vocabulary, never run), vendor class and parameter list are in every vector of its connections,
# as originator and as responder, and in the one Zeek flips; the name the device resolved the
# server's address from (lower-cased domain, coded 1) is in the connections to that address. Two
# days later, past Cato::host_memory and Cato::name_memory, nothing is remembered. With
# Cato::max_remembered 0 (tables full) nothing is remembered at all.
# @TEST-EXEC: zeek -b -C -r $TRACES/remembered.pcap $PACKAGE $FILES/remembered.zeek >output 2>&1
# @TEST-EXEC: btest-diff cato.log
# @TEST-EXEC: test ! -s output
# @TEST-EXEC: mkdir full && cd full && zeek -b -C -r $TRACES/remembered.pcap $PACKAGE $FILES/remembered.zeek Cato::max_remembered=0 && zeek-cut orig_host_dhcp_host_name resp_host_dhcp_param_list resp_dns_name < cato.log | sort | uniq -c >../full.txt
# @TEST-EXEC: btest-diff full.txt
