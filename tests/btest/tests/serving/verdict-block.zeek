# Compact verdict blocks (Cato::verdict_block, read by the native engine's plugin): a block's
# verdicts are logged as those of Cato::verdicts are, endpoints included (IPv4 and IPv6); a block of
# another schema is refused verdict by verdict; a block that cannot be read (truncated, garbled, not
# base64, another version) is refused whole and counted, and Zeek goes on.
# @TEST-EXEC: zeek -b plugin.zeek $PACKAGE $PACKAGE/serving/verdicts.zeek %INPUT >output 2>stderr
# @TEST-EXEC: zeek-cut uid id.orig_h id.orig_p id.resp_h id.resp_p label score model < cato_verdict.log >>output
# @TEST-EXEC: grep -v "^$" stderr | sed -E "s/.*verdicts.zeek, lines? [0-9-]+: //" >>output || true
# @TEST-EXEC: btest-diff output

# @TEST-START-FILE plugin.zeek
# As a native package's features.zeek does, before its verdicts.zeek.
@load-plugin Cato::Native
# @TEST-END-FILE

redef Cato::schema = "s1";
redef Cato::model_name = "test-model";

# Two verdicts of schema s1 (labels benign and evil), as cato/deploy/block.py encodes them.
const block = "Q0FUTwECAgAAAAIAczECAAYAYmVuaWduBABldmlsQ0hoQXZWR1MxREhGandHTTkAAAAAAAAAQ3gxAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAP//CgAAAf6AAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAA//9duNgi/wIAAAAAAAAAAAAAAAAA+0Cc6RS7AekUBhEAAAEAAACAPgAAQD8=";

event zeek_init()
	{
	local raw = decode_base64(block);
	local other_schema = encode_base64(raw[:12] + "s2" + raw[14:]);
	local wrong_version = encode_base64(raw[:4] + "\x02" + raw[5:]);
	local label_out_of_range = encode_base64(raw[:|raw| - 12] + "\x05\x00" + raw[|raw| - 10:]);
	local tests = vector(block, other_schema, encode_base64(raw[:|raw| - 3]), "not base64!",
	                     encode_base64("XATO" + raw[4:]), wrong_version, label_out_of_range, "");
	for ( _, t in tests )
		event Cato::verdict_block(t);
	}

event zeek_done()
	{
	print "received", Cato::verdicts_received, "refused", Cato::refused_verdicts,
	      "malformed blocks", Cato::malformed_verdict_blocks;
	}
