# A host name's shape (Cato::shape_of, the *_host_name_shape features): a unit's MAC tail or serial
# (six or more hex characters with a digit) becomes "#", model numbers and words stay; empty,
# non-UTF-8 and hostile names come back as data.
# @TEST-EXEC: zeek -b $PACKAGE %INPUT >output
# @TEST-EXEC: btest-diff output

module Cato;

event zeek_init()
	{
	local names = vector("Lightify-7B5F6B", "Lightify-0A1B2C", "ESP_06D902", "android-1a2b3c4d5e6f7a8b",
	                     "KEQ0817541", "DCH-S150", "DCS-930LB", "HS110(EU)", "deadbeef-cafe", "12345",
	                     "123456", "", "a\x00\xff123456", "cam\"] = 1 }; print \"pwned\"; #");
	for ( i in names )
		print fmt("%s -> %s", names[i], shape_of(names[i]));
	}
