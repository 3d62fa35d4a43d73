"""The generated scripts the btests run are golden files: they must match the generator.

Regenerate after an intended change with: CATO_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
"""

import os
from pathlib import Path

import pytest

from cato.codegen import generate
from cato.features import resolve

FILES = Path(__file__).parent / "btest" / "Files"
GOLDEN = {
    "counters.zeek": ("duration,ip_proto,orig_pkts,resp_pkts,orig_ip_bytes,resp_ip_bytes,orig_bytes,resp_load,history",
                      [1, 5, 10], "auto"),
    "all-new_packet.zeek": ("all,-needs:analyzer", [1, 5, 10], "new_packet"),
    "all-thresholds.zeek": ("all,-needs:analyzer", [1, 5, 10], "thresholds"),
    "deadline-thresholds.zeek": ("all,-needs:analyzer", [1, 5, 10], "thresholds", 0.03),
    "deadline-counters.zeek": ("orig_pkts,resp_pkts,orig_ip_bytes,duration", [1, 5, 10], "counters", 0.03),
    # The native engine (cato's plugin).
    "native-all.zeek": ("all,-needs:analyzer", [1, 5, 10], "auto", None, "native"),
    "native-counters.zeek": ("duration,ip_proto,orig_pkts,resp_pkts,orig_ip_bytes,resp_ip_bytes,orig_bytes,resp_load,"
                             "history", [1, 5, 10], "auto", None, "native"),
    "native-deadline.zeek": ("all,-needs:analyzer", [1, 5, 10], "auto", 0.03, "native"),
    # Zeek's analyzers, with vocabularies a hostile capture could have taught (quotes, a newline,
    # Zeek code, bytes that are not UTF-8): each stays one literal key.
    "analyzers.zeek": ("needs:analyzer,-group:host_dhcp,-group:host_dns,orig_pkts", [1, 5, 10], "auto"),
    # What a deployment remembers of hosts (DHCP, DNS answers), a host name of Zeek code among it.
    "remembered.zeek": ("group:host_dhcp,resp_dns_name,resp_dns_name_code,resp_dns_domain_code,resp_dns_domain_len,"
                        "orig_pkts", [1, 5], "auto"),
}
VOCABULARIES = {"analyzers.zeek": {
    "dns_query_code": [b"time.nist.gov", b'"] = 1 }; event zeek_init() { print "pwned"; } #', b"a\nb\x00\xff"],
    "http_user_agent_code": [b"Wget/1.13 (linux-uclibc)", b"\\x41\\", b""],
},
    "remembered.zeek": {
        "orig_host_dhcp_host_name_code": [b"other", b'cam"] = 1 }; event zeek_init() { print "pwned"; } #'],
        "resp_dns_domain_code": [b"example.com"],
    }}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_generated_scripts(name):
    features, depths, strategy, *rest = GOLDEN[name]
    text = generate(resolve(features), depths, strategy, *rest, vocabularies=VOCABULARIES.get(name)).text
    path = FILES / name
    if os.environ.get("CATO_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.read_text() == text, f"{path} is stale: regenerate (see this file's docstring)"
