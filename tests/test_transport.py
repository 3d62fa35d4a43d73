"""cato.deploy.transport against a real Zeek: events both ways over Zeek's WebSocket API, and hostile input.

Each Zeek test starts a standalone ``zeek -b`` listening on a free loopback port and kills it on
teardown; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from cato.deploy.transport import (
    Address,
    Count,
    Enum,
    Integer,
    Port,
    Subnet,
    Timespan,
    Timestamp,
    TransportError,
    WebSocketTransport,
    data_message,
    decode_event,
    encode_event,
    encode_value,
    decode_value,
)

pytestmark = pytest.mark.zeek

TOPIC = "zeek/cato/test"
REPLY_TOPIC = "zeek/cato/reply"
WAIT = 10.0  # seconds; the bound on every wait below

SCRIPT = """
redef exit_only_after_terminate = T;

module Test;

export {
	type Kind: enum { A, B };
	type Rec: record {
		c: count; i: int; d: double; s: string; a4: addr; a6: addr; p: port; t: time;
		iv: interval; neg: interval; proto: transport_proto; k: Kind; b: bool;
		v: vector of count; sn: subnet; st: set[string]; tb: table[string] of count;
		id: conn_id; opt: string &optional;
	};
	global ping: event(r: Rec, big: count);
	global pong: event(uid: string, n: count, score: double, ts: time, iv: interval,
	                   id: conn_id, tags: set[string], k: Kind);
}

event zeek_init()
	{
	Cluster::subscribe("%(reply)s");
	if ( ! Cluster::listen_websocket([$listen_addr=127.0.0.1, $listen_port=%(port)d/tcp]) )
		{
		print "listen failed";
		exit(1);
		}
	}

# Publish once a client has subscribed: it then cannot miss the event.
event Cluster::websocket_client_added(endpoint: Cluster::EndpointInfo, subscriptions: string_vec)
	{
	local r = Rec($c=3, $i=-4, $d=2.25, $s="h\\xc3\\xa9 \\"q\\"\\n\\x01\\x1f", $a4=1.2.3.4, $a6=[2001:db8::1],
	              $p=80/tcp, $t=double_to_time(1700000000.5), $iv=1.5sec, $neg=-2.5msec, $proto=udp,
	              $k=B, $b=T, $v=vector(1, 2, 3), $sn=10.0.0.0/8, $st=set("x"), $tb=table(["k"] = 7),
	              $id=[$orig_h=10.0.0.1, $orig_p=1234/tcp, $resp_h=[2001:db8::2], $resp_p=443/tcp]);
	Cluster::publish("%(topic)s", ping, r, 18446744073709551615);
	}

event Test::pong(uid: string, n: count, score: double, ts: time, iv: interval,
                 id: conn_id, tags: set[string], k: Kind)
	{
	print fmt("pong %%s %%d %%.10f %%.6f %%.6f %%s %%s %%s %%d %%d %%s %%s", uid, n, score, ts,
	          interval_to_double(iv), id$orig_h, id$orig_p, id$resp_h, id$proto, |tags|,
	          "a" in tags && "b" in tags, k);
	terminate();
	}
"""

EXPECTED_PING = [
    [
        3, -4, 2.25, 'hé "q"\n\x01\x1f', "1.2.3.4", "2001:db8::1", "80/tcp", 1700000000.5,
        1.5, -0.0025, "udp", "Test::B", True, [1, 2, 3], "10.0.0.0/8", ["x"], {"k": 7},
        # conn_id in Zeek 8: orig_h, orig_p, resp_h, resp_p, proto (&default=65535), ctx (empty record)
        ["10.0.0.1", "1234/tcp", "2001:db8::2", "443/tcp", 65535, []],
        None,  # the unset &optional field
    ],
    2**64 - 1,
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(proc: subprocess.Popen, port: int, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate(timeout=WAIT)
            pytest.fail(f"zeek exited with {proc.returncode} before listening:\n{out}\n{err}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"zeek did not listen on 127.0.0.1:{port} within {timeout:g}s")


@pytest.fixture
def zeek_ws(zeek: Path, tmp_path: Path):
    """A standalone Zeek listening for WebSocket clients: yields (url, process)."""
    port = free_port()
    script = tmp_path / "ws.zeek"
    script.write_text(SCRIPT % {"port": port, "topic": TOPIC, "reply": REPLY_TOPIC})
    proc = subprocess.Popen([str(zeek), "-b", str(script)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(proc, port)
        yield f"ws://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=WAIT)


def run(coro):
    """Run a coroutine with a hard bound, so no test can hang."""
    return asyncio.run(asyncio.wait_for(coro, WAIT))


# --- against Zeek ----------------------------------------------------------------------------------


def test_receive_every_type_from_zeek(zeek_ws):
    url, _ = zeek_ws

    async def go():
        async with WebSocketTransport(url, [TOPIC]) as t:
            assert t.endpoint and t.zeek_version
            return await t.receive()

    topic, name, args = run(go())
    assert (topic, name) == (TOPIC, "Test::ping")
    assert args == EXPECTED_PING
    assert type(args[0][2]) is float and type(args[0][7]) is float


def test_publish_to_zeek(zeek_ws):
    url, proc = zeek_ws
    conn_id = [Address("10.0.0.1"), Port("1234/tcp"), Address("2001:db8::2"), Port("443/tcp"), Count(6), []]

    async def go():
        async with WebSocketTransport(url, [TOPIC]) as t:
            await t.receive()  # Zeek has seen us subscribe
            # Wrong type first (integer where Zeek declared count): Zeek answers with an error,
            # which receive() counts rather than raises.
            await t.publish(REPLY_TOPIC, "Test::pong", ["C1", Integer(7), 0.1234567891, Timestamp(0.0),
                                                        Timespan(0), conn_id, {"a"}, Enum("Test::A")])
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(t.receive(), 1.0)
            assert t.zeek_errors == 1 and "failed to create Zeek event" in t.last_error
            await t.publish(REPLY_TOPIC, "Test::pong", [
                "C1", Count(7), 0.1234567891, Timestamp(1700000000.123456), Timespan(-0.0025),
                conn_id, {"b", "a"}, Enum("Test::A")])
            # Zeek terminates on pong and closes our connection: receive() then raises.
            with pytest.raises(TransportError, match="lost"):
                await t.receive()

    run(go())
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    assert out.strip() == "pong C1 7 0.1234567891 1700000000.123456 -0.002500 10.0.0.1 1234/tcp " \
                          "2001:db8::2 6 2 T Test::A"


def test_connect_errors_name_the_url(zeek_ws):
    url, _ = zeek_ws
    nobody = f"ws://127.0.0.1:{free_port()}"
    with pytest.raises(TransportError, match=re.escape(f"cannot connect to Zeek at {nobody}/v1/messages/json")):
        run(WebSocketTransport(nobody, [TOPIC]).connect())
    # Zeek is there, but this is not its API path: it refuses the WebSocket.
    with pytest.raises(TransportError, match=re.escape(f"{url}/wrong")):
        run(WebSocketTransport(url + "/wrong", [TOPIC]).connect())
    with pytest.raises(TransportError, match="ws://host:port"):
        WebSocketTransport("http://127.0.0.1:1", [TOPIC])


# --- encoding ---------------------------------------------------------------------------------------


def test_encode_decode_round_trip():
    values = [
        (Count(2**64 - 1), 2**64 - 1), (Integer(-(2**63)), -(2**63)), (0.1, 0.1), (True, True),
        ("é\x00", "é\x00"), (None, None), (Address("::1"), "::1"), (Port("53/udp"), "53/udp"),
        (Subnet("2001:db8::/32"), "2001:db8::/32"), (Timestamp(1700000000.5), 1700000000.5),
        (Timestamp(-0.5), -0.5), (Timespan(1.5), 1.5), (Enum("Cato::X"), "Cato::X"),
        ([Count(1), "a", [None]], [1, "a", [None]]), ({"x"}, ["x"]),
        ({("a", Count(1)): 2.0}, {("a", 1): 2.0}), (np.float32(0.5), 0.5),  # a model's score as is
    ]
    for value, expected in values:
        assert decode_value(encode_value(value)) == expected, value
    assert encode_value(Timestamp(1700000000.25)) == {"@data-type": "timestamp",
                                                      "data": "2023-11-14T22:13:20.250000000"}
    assert encode_value(Timespan(-0.0025)) == {"@data-type": "timespan", "data": "-2500000ns"}
    msg = json.loads(json.dumps(data_message("t/x", "M::e", [Count(1), 2.0])))
    assert decode_event(msg) == ("t/x", "M::e", [1, 2.0])
    assert decode_event(json.dumps(msg)) == ("t/x", "M::e", [1, 2.0])


@pytest.mark.parametrize("bad", [
    3, np.int64(3), float("nan"), float("inf"), object(), b"bytes", [1], {Count(1): 3},
])
def test_encode_refuses(bad):
    with pytest.raises(TransportError):
        encode_event("M::e", [bad])


@pytest.mark.parametrize("make", [
    lambda: Count(-1), lambda: Count(2**64), lambda: Count(True), lambda: Integer(2**63), lambda: Integer(1.0),
    lambda: Address("1.2.3"), lambda: Address(16909060), lambda: Port("80"), lambda: Port("70000/tcp"),
    lambda: Subnet("10.0.0.1"), lambda: Timestamp(float("nan")), lambda: Timespan("1s"), lambda: Enum(""),
])
def test_wrappers_validate(make):
    with pytest.raises(TransportError):
        make()


def test_encode_refuses_bad_event():
    for name, args in [("", []), (3, []), ("M::e", "args"), ("M::e", None)]:
        with pytest.raises(TransportError):
            encode_event(name, args)
    loop: list = []
    loop.append(loop)
    with pytest.raises(TransportError, match="deeper"):
        encode_event("M::e", loop)


# --- hostile input ----------------------------------------------------------------------------------


def good_message() -> dict:
    return data_message("zeek/cato/test", "Test::ping", [Count(1), "x", [0.5, None], {"k": Count(2)}])


def with_arg(arg) -> dict:
    msg = good_message()
    msg["data"][2]["data"][1]["data"] = [arg]
    return msg


def nested(depth: int) -> dict:
    v: dict = {"@data-type": "count", "data": 1}
    for _ in range(depth):
        v = {"@data-type": "vector", "data": [v]}
    return with_arg(v)


def _d(t, x):
    return {"@data-type": t, "data": x}


HOSTILE = {
    "not json": "this is not json",
    "empty": "",
    "invalid utf-8": b"\xff\xfe{}",
    "json array": "[1, 2]",
    "json string": '"data-message"',
    "NaN literal": '{"type": "data-message", "topic": "t", "@data-type": "vector", "data": NaN}',
    "bare inf (as Zeek prints it)": '{"type":"data-message","topic":"t","@data-type":"vector","data":'
                                    '[{"@data-type":"real","data":inf}]}',
    "huge integer literal": '{"data": ' + "9" * 5000 + "}",
    "raw nesting": "[" * 100_000 + "]" * 100_000,
    "oversized": json.dumps(with_arg(_d("string", "x" * (2 << 20)))),
    "ack not data": {"type": "ack", "endpoint": "x", "version": "8"},
    "no topic": {k: v for k, v in good_message().items() if k != "topic"},
    "topic not string": {**good_message(), "topic": 5},
    "not a vector": {**good_message(), "@data-type": "table"},
    "data not a list": {**good_message(), "data": {"a": 1}},
    "no data key": {"type": "data-message", "topic": "t", "@data-type": "vector"},
    "short header": {**good_message(), "data": good_message()["data"][:2]},
    "wrong version": {**good_message(), "data": [_d("count", 2), *good_message()["data"][1:]]},
    "event not vector": {**good_message(), "data": [*good_message()["data"][:2], _d("string", "e")]},
    "empty event": {**good_message(), "data": [*good_message()["data"][:2], _d("vector", [])]},
    "name not string": {**good_message(), "data": [*good_message()["data"][:2],
                                                   _d("vector", [_d("count", 1), _d("vector", [])])]},
    "args not vector": {**good_message(), "data": [*good_message()["data"][:2],
                                                   _d("vector", [_d("string", "e"), _d("count", 1)])]},
    "metadata not vector": {**good_message(), "data": [*good_message()["data"][:2], _d(
        "vector", [_d("string", "e"), _d("vector", []), _d("count", 1)])]},
    "deep nesting": nested(200),
    "value not object": with_arg(5),
    "value missing data": with_arg({"@data-type": "count"}),
    "unknown type": with_arg(_d("pointer", 0)),
    "type not string": with_arg(_d(["count"], 0)),
    "count negative": with_arg(_d("count", -1)),
    "count too big": with_arg(_d("count", 2**64)),
    "count as string": with_arg(_d("count", "1")),
    "count as float": with_arg(_d("count", 1.0)),
    "count as bool": with_arg(_d("count", True)),
    "integer too big": with_arg(_d("integer", 2**63)),
    "real as string": with_arg(_d("real", "0.5")),
    "boolean as int": with_arg(_d("boolean", 1)),
    "string as list": with_arg(_d("string", ["a"])),
    "address bad": with_arg(_d("address", "999.1.1.1")),
    "address int": with_arg(_d("address", 16909060)),
    "subnet bad": with_arg(_d("subnet", "10.0.0.0/99")),
    "port bad": with_arg(_d("port", "99999/tcp")),
    "port no proto": with_arg(_d("port", "80")),
    "timestamp words": with_arg(_d("timestamp", "yesterday")),
    "timestamp bad date": with_arg(_d("timestamp", "2023-02-30T00:00:00")),
    "timestamp number": with_arg(_d("timestamp", 1700000000)),
    "timespan unit": with_arg(_d("timespan", "5parsecs")),
    "timespan huge": with_arg(_d("timespan", "9" * 400 + "s")),
    "vector not list": with_arg(_d("vector", "abc")),
    "set not list": with_arg(_d("set", {"a": 1})),
    "table entry bad": with_arg(_d("table", [{"key": _d("string", "k")}])),
    "table entry not object": with_arg(_d("table", [1])),
    "table as key": with_arg(_d("table", [{"key": _d("table", []), "value": _d("none", {})}])),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_decode_event_refuses_hostile_input(name):
    with pytest.raises(TransportError):
        decode_event(HOSTILE[name])


def test_decode_event_size_cap_is_configurable():
    raw = json.dumps(good_message())
    assert decode_event(raw)[1] == "Test::ping"
    with pytest.raises(TransportError, match="exceeds the 100-byte cap"):
        decode_event(raw, max_bytes=100)
    with pytest.raises(TransportError, match="deeper than 3"):
        decode_event(raw, max_depth=3)


def test_decode_event_mutations_raise_only_transport_error():
    """Random corruptions of a valid message decode or raise TransportError: never anything else."""
    rng = random.Random(0)
    raw = json.dumps(good_message())
    junk = ['"', "{", "}", "[", "]", ",", ":", "1", "-", "e", "null", "true", '"count"', '"vector"', "\\"]
    for _ in range(3000):
        s = list(raw)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(s))
            op = rng.random()
            if op < 0.4:
                del s[i]
            elif op < 0.8:
                s[i] = rng.choice(junk)
            else:
                s.insert(i, rng.choice(junk))
        try:
            decode_event("".join(s))
        except TransportError:
            pass
    # Structural swaps: every value replaced by values of other types.
    samples = [None, True, -1, 2**70, 0.5, "x", [], {}, [1], {"@data-type": "count"}]

    def swaps(node, path=()):
        yield path
        if isinstance(node, dict):
            for k, v in node.items():
                yield from swaps(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from swaps(v, path + (i,))

    base = good_message()
    for path in list(swaps(base))[1:]:
        for sample in samples:
            msg = json.loads(json.dumps(base))
            node = msg
            for p in path[:-1]:
                node = node[p]
            node[path[-1]] = sample
            try:
                decode_event(msg)
            except TransportError:
                pass
