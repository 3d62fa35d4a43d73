"""Talk to a running Zeek over its WebSocket API v1: receive and publish events as plain Python values.

Zeek (8+) listens for WebSocket clients once a script calls
``Cluster::listen_websocket([$listen_addr=127.0.0.1, $listen_port=PORT/tcp])``; a standalone ``zeek``
needs no cluster layout and no backend redef for that. The client's first message is a JSON array of
topic prefixes; Zeek answers ``{"type": "ack", "endpoint": ..., "version": ...}`` and then forwards every
event published on those topics as a data message in Broker's JSON data model::

    {"type": "data-message", "topic": "zeek/cato/test", "@data-type": "vector", "data": [
        {"@data-type": "count", "data": 1},                  # format version
        {"@data-type": "count", "data": 1},                  # message type: event
        {"@data-type": "vector", "data": [
            {"@data-type": "string", "data": "Test::ping"},  # event name
            {"@data-type": "vector", "data": [...args...]},
            {"@data-type": "vector", "data": [...]}]}]}      # optional metadata: [[count id, value], ...]

A client publishes the same shape; Zeek dispatches it if a script subscribed to the topic
(``Cluster::subscribe``) and declared the event with matching argument types. A message Zeek cannot
turn into an event is answered, asynchronously, with ``{"type": "error", "code": ..., "context": ...}``.

What the wire loses (observed with Zeek 8.0.10), so a feature or a score should not rely on it:
- a ``double`` Zeek sends is printed with ``%f``: six decimals (1e-9 arrives as 0.0), and inf/nan
  arrive as the bare words ``inf``/``nan``, which are not JSON (such a message is dropped and counted);
- a ``time`` Zeek sends is truncated to milliseconds (ISO 8601, UTC, no zone suffix): 1700000000.25
  arrives as 1700000000.249.
In the other direction Zeek parses doubles, times (up to 9 fraction digits) and intervals exactly, but a
``double`` must be a JSON number with a fraction or exponent (``1.0``, not ``1``). A record goes either
way as a vector of all its fields in order, ``None`` for an unset ``&optional`` one; sent to Zeek,
``None`` also stands for a ``&default`` field (so Zeek 8's six-field ``conn_id`` can be sent as
``[orig_h, orig_p, resp_h, resp_p, None, None]``), but a missing field fails the whole event.

Decoding returns plain values: numbers, str, bool, None, lists (vector, set, record), dicts (table;
composite keys as tuples); time as float epoch seconds, interval as float seconds, addr/subnet/port/enum
as str (``"80/tcp"``). Encoding takes str/float/bool/None/list/tuple/set/dict for
string/real/boolean/none/vector/set/table, and a wrapper where JSON is ambiguous: ``Count``,
``Integer``, ``Address``, ``Subnet``, ``Port``, ``Timestamp``, ``Timespan``, ``Enum``. A plain int is
refused: Zeek rejects a count sent as an int (and vice versa), so the caller must say which.

Every malformed, hostile or unencodable input and every connection failure raises ``TransportError``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import ipaddress
import json
import logging
import math
import numbers
import re
import ssl as _ssl
from dataclasses import dataclass
from typing import Any, Mapping, NoReturn
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

#: Zeek's WebSocket endpoint for the JSON API v1; a URL with no path gets it appended.
API_PATH = "/v1/messages/json"
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20
#: Records of vectors of records nest a handful of levels; 64 leaves room and stops stack games.
DEFAULT_MAX_DEPTH = 64
DEFAULT_CONNECT_TIMEOUT = 10.0

_EVENT_FORMAT_VERSION = 1
_EVENT_MESSAGE_TYPE = 1
_COUNT_MAX = (1 << 64) - 1
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1
_NS_PER_S = 1_000_000_000


__all__ = [
    "API_PATH", "DEFAULT_MAX_DEPTH", "DEFAULT_MAX_MESSAGE_BYTES", "Address", "Count", "Enum", "Integer",
    "Port", "Subnet", "Timespan", "Timestamp", "TransportError", "WebSocketTransport", "data_message",
    "decode_event", "decode_value", "encode_event", "encode_value", "parse_message",
]


class TransportError(Exception):
    """A message that is not a well-formed event, a value that cannot be encoded, or a broken link.
    ``closed_cleanly``: Zeek closed the link as it shuts down (WebSocket close 1000 or 1001), no fault."""

    def __init__(self, message: str, closed_cleanly: bool = False) -> None:
        super().__init__(message)
        self.closed_cleanly = closed_cleanly


# --- typed wrappers for the JSON-ambiguous Zeek types ----------------------------------------------


def _fail(msg: str) -> NoReturn:
    raise TransportError(msg)


@dataclass(frozen=True)
class Count:
    value: int

    def __post_init__(self) -> None:
        if type(self.value) is not int or not 0 <= self.value <= _COUNT_MAX:
            _fail(f"Count needs an int in [0, 2**64), not {self.value!r}")


@dataclass(frozen=True)
class Integer:
    value: int

    def __post_init__(self) -> None:
        if type(self.value) is not int or not _INT_MIN <= self.value <= _INT_MAX:
            _fail(f"Integer needs an int in [-2**63, 2**63), not {self.value!r}")


@dataclass(frozen=True)
class Address:
    value: str

    def __post_init__(self) -> None:
        _check_address(self.value)


@dataclass(frozen=True)
class Subnet:
    value: str

    def __post_init__(self) -> None:
        _check_subnet(self.value)


@dataclass(frozen=True)
class Port:
    """``"80/tcp"``; the protocol is tcp, udp, icmp or ``?`` (unknown)."""

    value: str

    def __post_init__(self) -> None:
        _check_port(self.value)


@dataclass(frozen=True)
class Timestamp:
    """A Zeek ``time``: seconds since the epoch."""

    seconds: float

    def __post_init__(self) -> None:
        _check_finite(self.seconds, "Timestamp")


@dataclass(frozen=True)
class Timespan:
    """A Zeek ``interval``, in seconds."""

    seconds: float

    def __post_init__(self) -> None:
        _check_finite(self.seconds, "Timespan")


@dataclass(frozen=True)
class Enum:
    """A Zeek enum value by its full name, e.g. ``Enum("Cato::BENIGN")`` or ``Enum("tcp")``."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            _fail(f"Enum needs a non-empty name, not {self.name!r}")


def _check_finite(x: object, what: str) -> None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        _fail(f"{what} needs a finite number, not {x!r}")


def _check_address(s: object) -> str:
    if not isinstance(s, str):  # ipaddress would take an int
        _fail(f"not an IP address: {s!r:.80}")
    try:
        ipaddress.ip_address(s)
    except ValueError:
        _fail(f"not an IP address: {s!r:.80}")
    return s


def _check_subnet(s: object) -> str:
    if not isinstance(s, str) or "/" not in s:
        _fail(f"not a subnet (prefix/length): {s!r:.80}")
    try:
        ipaddress.ip_network(s, strict=False)
    except ValueError:
        _fail(f"not a subnet (prefix/length): {s!r:.80}")
    return s


_PORT_RE = re.compile(r"(\d{1,5})/(tcp|udp|icmp|\?)")


def _check_port(s: object) -> str:
    m = _PORT_RE.fullmatch(s) if isinstance(s, str) else None
    if not isinstance(s, str) or m is None or int(m.group(1)) > 65535:
        _fail(f"not a port like '80/tcp': {s!r:.80}")
    return s


# --- time on the wire --------------------------------------------------------------------------------

_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
# What Broker prints ("2023-11-14T22:13:20.123", UTC) and what it parses (up to 9 fraction digits).
_TS_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?")
_SPAN_RE = re.compile(r"(-?\d{1,20}(?:\.\d{1,20})?)(ns|us|ms|s|min|h|d)")
_SPAN_UNIT_S = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def _timestamp_to_wire(seconds: float) -> str:
    # Whole seconds and nanoseconds apart (seconds - floor is exact), so no digit the float holds is
    # lost to a 1e18-sized product; ISO 8601 in UTC, 9 fraction digits (Broker parses up to 9).
    whole = math.floor(seconds)
    frac = round((seconds - whole) * _NS_PER_S)
    if frac == _NS_PER_S:
        whole, frac = whole + 1, 0
    try:
        t = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=whole)
    except OverflowError:
        _fail(f"Timestamp out of range: {seconds!r}")
    return f"{t:%Y-%m-%dT%H:%M:%S}.{frac:09d}"


def _timestamp_from_wire(s: object) -> float:
    m = _TS_RE.fullmatch(s) if isinstance(s, str) else None
    if m is None:
        _fail(f"not a timestamp: {s!r:.80}")
    y, mo, d, h, mi, sec, frac, zone = m.groups()
    try:
        days = _dt.date(int(y), int(mo), int(d)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        _fail(f"not a timestamp: {s!r}")
    if int(h) > 23 or int(mi) > 59 or int(sec) > 60:
        _fail(f"not a timestamp: {s!r}")
    offset = 0
    if zone and zone != "Z":
        offset = (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    whole = days * 86400 + int(h) * 3600 + int(mi) * 60 + int(sec) - offset
    return whole + (int(frac.ljust(9, "0")) / _NS_PER_S if frac else 0.0)


def _timespan_from_wire(s: object) -> float:
    m = _SPAN_RE.fullmatch(s) if isinstance(s, str) else None
    if m is None:
        _fail(f"not a timespan like '1500ms': {s!r:.80}")
    num, unit = m.groups()
    if unit == "ns" and "." not in num:
        return int(num) / _NS_PER_S  # the common case, exact division
    return float(num) * _SPAN_UNIT_S[unit]


# --- encoding ----------------------------------------------------------------------------------------


def _d(data_type: str, data: Any) -> dict:
    return {"@data-type": data_type, "data": data}


def encode_value(v: Any, _depth: int = 0) -> dict:
    """One Python value (plain or wrapped) as a Broker JSON ``{"@data-type", "data"}`` object."""
    if _depth > DEFAULT_MAX_DEPTH:
        _fail(f"value nests deeper than {DEFAULT_MAX_DEPTH} levels")
    if v is None:
        return _d("none", {})
    if isinstance(v, Raw):
        return dict(v.encoded)
    if isinstance(v, bool):  # before the numbers: a bool is an int
        return _d("boolean", v)
    if isinstance(v, str):
        return _d("string", v)
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):
        # float, and numpy's floats straight out of a model. A double must go out with a fraction
        # or exponent: Zeek refuses 1 where it wants a double, and NaN/inf are not JSON.
        x = float(v)
        _check_finite(x, "a real")
        return _d("real", x)
    if isinstance(v, numbers.Integral):
        _fail(f"ambiguous int {v!r}: wrap it in Count(...) or Integer(...)")
    if isinstance(v, Count):
        return _d("count", v.value)
    if isinstance(v, Integer):
        return _d("integer", v.value)
    if isinstance(v, Address):
        return _d("address", v.value)
    if isinstance(v, Subnet):
        return _d("subnet", v.value)
    if isinstance(v, Port):
        return _d("port", v.value)
    if isinstance(v, Timestamp):
        return _d("timestamp", _timestamp_to_wire(float(v.seconds)))
    if isinstance(v, Timespan):
        # Integer nanoseconds: exact, and Broker parses the ns suffix.
        return _d("timespan", f"{round(v.seconds * _NS_PER_S)}ns")
    if isinstance(v, Enum):
        return _d("enum-value", v.name)
    if isinstance(v, (list, tuple)):
        return _d("vector", [encode_value(x, _depth + 1) for x in v])
    if isinstance(v, (set, frozenset)):
        return _d("set", [encode_value(x, _depth + 1) for x in v])
    if isinstance(v, Mapping):
        return _d("table", [{"key": encode_value(k, _depth + 1), "value": encode_value(x, _depth + 1)}
                            for k, x in v.items()])
    _fail(f"cannot encode {type(v).__name__} {v!r:.80} for Zeek")


def encode_event(name: str, args: list | tuple) -> dict:
    """The ``@data-type``/``data`` part of a data message carrying event ``name(args)``."""
    if not isinstance(name, str) or not name:
        _fail(f"event name must be a non-empty string, not {name!r}")
    if not isinstance(args, (list, tuple)):
        _fail(f"event args must be a list, not {type(args).__name__}")
    return _d("vector", [
        _d("count", _EVENT_FORMAT_VERSION),
        _d("count", _EVENT_MESSAGE_TYPE),
        _d("vector", [_d("string", name), encode_value(list(args))]),
    ])


def data_message(topic: str, name: str, args: list | tuple) -> dict:
    """A complete client-to-Zeek data message publishing ``name(args)`` on ``topic``."""
    if not isinstance(topic, str) or not topic:
        _fail(f"topic must be a non-empty string, not {topic!r}")
    return {"type": "data-message", "topic": topic, **encode_event(name, args)}


# --- decoding ----------------------------------------------------------------------------------------


try:
    import orjson as _orjson
except ImportError:  # the standard library's json does the same, slower
    _orjson = None


def _reject_constant(name: str) -> None:
    _fail(f"non-JSON number {name}")  # json.loads would otherwise accept NaN/Infinity


def parse_message(raw: str | bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> dict:
    """Raw WebSocket text to a JSON object, refusing oversized, non-JSON, non-object input."""
    if not isinstance(raw, (str, bytes, bytearray)):
        _fail(f"message must be text, not {type(raw).__name__}")
    # Cheap bound first (a str char is at least one UTF-8 byte), then the exact one.
    size = len(raw)
    if size <= max_bytes and isinstance(raw, str):
        size = len(raw.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        _fail(f"message of {size} bytes exceeds the {max_bytes}-byte cap")
    try:
        # orjson parses Zeek's verbose JSON several times faster, and refuses NaN and Infinity itself.
        msg = _orjson.loads(raw) if _orjson is not None else json.loads(raw, parse_constant=_reject_constant)
    except TransportError:
        raise
    except ValueError as e:
        # Zeek writes a string's control bytes into its JSON unescaped (a site's own string columns can
        # hold any): read them as they are rather than drop the batch.
        if "control character" not in str(e):
            _fail(f"message is not JSON: {e}")
        try:
            msg = json.loads(raw, strict=False, parse_constant=_reject_constant)
        except ValueError as again:
            _fail(f"message is not JSON: {again}")
    except RecursionError:
        _fail("message nests too deeply to parse")
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, int too long
        _fail(f"message is not JSON: {e}")
    if not isinstance(msg, dict):
        _fail(f"message must be a JSON object, not {type(msg).__name__}")
    return msg


def _int_in(x: object, lo: int, hi: int, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi:
        _fail(f"{what} out of range or not an integer: {x!r:.80}")
    return x


def _as_list(x: object, what: str) -> list:
    if not isinstance(x, list):
        _fail(f"{what} data must be a JSON array, not {type(x).__name__}")
    return x


def _hashable(v: Any) -> Any:
    # Composite table keys decode to lists; a dict key must be a tuple.
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        _fail("a table cannot be a table key here")
    return v


def decode_value(obj: Any, *, max_depth: int = DEFAULT_MAX_DEPTH, _depth: int = 0) -> Any:
    """One Broker JSON ``{"@data-type", "data"}`` object as a plain Python value."""
    if _depth > max_depth:
        _fail(f"value nests deeper than {max_depth} levels")
    if not isinstance(obj, dict) or "@data-type" not in obj or "data" not in obj:
        _fail(f"not a Broker value (needs '@data-type' and 'data'): {str(obj):.80}")
    t, x = obj["@data-type"], obj["data"]
    if t == "none":
        return None
    if t == "boolean":
        if not isinstance(x, bool):
            _fail(f"boolean data must be true/false, not {x!r:.80}")
        return x
    if t == "count":
        return _int_in(x, 0, _COUNT_MAX, "count")
    if t == "integer":
        return _int_in(x, _INT_MIN, _INT_MAX, "integer")
    if t == "real":
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            _fail(f"real data must be a number, not {x!r:.80}")
        return float(x)
    if t in ("string", "enum-value"):
        if not isinstance(x, str):
            _fail(f"{t} data must be a string, not {x!r:.80}")
        return x
    if t == "address":
        return _check_address(x)
    if t == "subnet":
        return _check_subnet(x)
    if t == "port":
        return _check_port(x)
    if t == "timestamp":
        return _timestamp_from_wire(x)
    if t == "timespan":
        return _timespan_from_wire(x)
    if t in ("vector", "set"):
        return [decode_value(e, max_depth=max_depth, _depth=_depth + 1) for e in _as_list(x, t)]
    if t == "table":
        out = {}
        for kv in _as_list(x, t):
            if not isinstance(kv, dict) or "key" not in kv or "value" not in kv:
                _fail(f"table entry must be {{'key', 'value'}}: {str(kv):.80}")
            k = decode_value(kv["key"], max_depth=max_depth, _depth=_depth + 1)
            out[_hashable(k)] = decode_value(kv["value"], max_depth=max_depth, _depth=_depth + 1)
        return out
    _fail(f"unknown @data-type {t!r:.80}")


def decode_event(message: Mapping | str | bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 max_depth: int = DEFAULT_MAX_DEPTH) -> tuple[str, str, list]:
    """A data message (raw text or parsed JSON object) as ``(topic, event name, args)``.

    Event metadata (e.g. Zeek's network timestamp) is checked for shape and dropped.
    """
    msg = message if isinstance(message, Mapping) else parse_message(message, max_bytes=max_bytes)
    if msg.get("type") != "data-message":
        _fail(f"not a data message: type {msg.get('type')!r:.80}")
    topic = msg.get("topic")
    if not isinstance(topic, str):
        _fail("data message without a string 'topic'")
    if msg.get("@data-type") != "vector":
        _fail(f"data message is not a vector: {msg.get('@data-type')!r:.80}")
    body = decode_value({"@data-type": "vector", "data": msg.get("data")}, max_depth=max_depth)
    if len(body) != 3 or body[0] != _EVENT_FORMAT_VERSION or body[1] != _EVENT_MESSAGE_TYPE:
        _fail(f"not an event (format version 1, type 1): header {body[:2]!r:.80}")
    ev = body[2]
    if not isinstance(ev, list) or len(ev) not in (2, 3):
        _fail("event must be [name, args] or [name, args, metadata]")
    name, args = ev[0], ev[1]
    if not isinstance(name, str) or not name:
        _fail(f"event name must be a non-empty string, not {name!r:.80}")
    if not isinstance(args, list):
        _fail(f"event args must be a vector, not {type(args).__name__}")
    if len(ev) == 3 and not isinstance(ev[2], list):
        _fail("event metadata must be a vector")
    return topic, name, args


def event_envelope(msg: Mapping) -> tuple[str, str, list]:
    """``(topic, event name, args)`` of a parsed data message with the args still in Broker's JSON data
    model: a cheap look at which event it is, for a reader that decodes the args its own (faster) way."""
    if msg.get("type") != "data-message" or msg.get("@data-type") != "vector":
        _fail("not a data message holding a vector")
    topic, data = msg.get("topic"), msg.get("data")
    if not isinstance(topic, str) or not isinstance(data, list) or len(data) != 3:
        _fail("not an event message: [format, type, event] expected")
    if [decode_value(d, max_depth=1) for d in data[:2]] != [_EVENT_FORMAT_VERSION, _EVENT_MESSAGE_TYPE]:
        _fail("not an event (format version 1, type 1)")
    ev = data[2]
    if not isinstance(ev, Mapping) or ev.get("@data-type") != "vector" or not isinstance(ev.get("data"), list) \
            or len(ev["data"]) not in (2, 3):
        _fail("event must be [name, args] or [name, args, metadata]")
    name, args = decode_value(ev["data"][0], max_depth=1), ev["data"][1]
    if not isinstance(name, str) or not isinstance(args, Mapping) or args.get("@data-type") != "vector" \
            or not isinstance(args.get("data"), list):
        _fail("event needs a name and a vector of args")
    return topic, name, args["data"]


class Raw:
    """A value already in Broker's JSON data model (echoed back as received): encoded as it is."""

    __slots__ = ("encoded",)

    def __init__(self, encoded: Mapping) -> None:
        self.encoded = encoded


# --- the connection ----------------------------------------------------------------------------------


def _worth_logging(n: int) -> bool:
    # The first few, then every thousandth: a stream of bad messages must not flood the log.
    return n <= 10 or n % 1000 == 0


def _api_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        _fail(f"{url!r}: expected ws://host:port or wss://host:port")
    if parts.path in ("", "/"):
        parts = parts._replace(path=API_PATH)
    return urlunsplit(parts)


class WebSocketTransport:
    """One WebSocket client of a Zeek: subscribe to topics, receive and publish events.

    ``async with WebSocketTransport("ws://127.0.0.1:27759", ["cato/features"]) as t:``
    connects, subscribes and waits for Zeek's ack; ``await t.receive()`` gives ``(topic, name, args)``.

    A malformed data message from Zeek (e.g. a double Zeek printed as ``inf``) and an error Zeek
    reports about something we published do not raise: they are logged and counted
    (``malformed``, ``zeek_errors``, ``last_error``), because one bad message must not stop a
    long-running inference worker. A lost connection raises ``TransportError``. An incoming message
    over ``max_message_bytes`` makes the websockets library close the connection (the cap bounds
    memory before parsing), which then surfaces as ``TransportError``.
    """

    def __init__(self, url: str, topics: list[str], *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 ssl: _ssl.SSLContext | None = None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT):
        if not isinstance(topics, (list, tuple)) or not all(isinstance(t, str) for t in topics):
            _fail(f"topics must be a list of strings, not {topics!r}")
        self.url = _api_url(url)
        self.topics = list(topics)
        self.max_message_bytes = max_message_bytes
        self.ssl = ssl
        self.connect_timeout = connect_timeout
        self.endpoint: str | None = None  # Zeek's endpoint id, from the ack
        self.zeek_version: str | None = None
        self.malformed = 0
        self.zeek_errors = 0
        self.last_error: str | None = None
        self._ws: Any = None

    async def __aenter__(self) -> "WebSocketTransport":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        try:
            import websockets
        except ImportError:
            raise TransportError("cato serve needs websockets: pip install 'cato[serve]'") from None
        kwargs: dict[str, Any] = {"max_size": self.max_message_bytes, "open_timeout": self.connect_timeout,
                                  "compression": None}  # small JSON messages: deflate costs more than it saves
        if self.ssl is not None:  # only when given: websockets picks TLS defaults for wss:// itself
            kwargs["ssl"] = self.ssl
        try:
            self._ws = await websockets.connect(self.url, **kwargs)
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException, ValueError) as e:
            raise TransportError(f"cannot connect to Zeek at {self.url}: {str(e) or type(e).__name__}") from None
        try:
            await self._ws.send(json.dumps(self.topics))
            raw = await asyncio.wait_for(self._ws.recv(), self.connect_timeout)
            msg = parse_message(raw, max_bytes=self.max_message_bytes)
        except TimeoutError:
            await self.close()
            raise TransportError(f"Zeek at {self.url} sent no ack within {self.connect_timeout:g}s") from None
        except (websockets.exceptions.WebSocketException, OSError, TransportError) as e:
            await self.close()
            raise TransportError(f"handshake with Zeek at {self.url} failed: {e}") from None
        if msg.get("type") != "ack":
            await self.close()
            raise TransportError(f"Zeek at {self.url} refused the subscription {self.topics}: "
                                 f"{msg.get('code', msg.get('type'))}: {msg.get('context', '')}")
        self.endpoint, self.zeek_version = msg.get("endpoint"), msg.get("version")

    async def receive(self) -> tuple[str, str, list]:
        """The next event from Zeek as ``(topic, name, args)``; skips (and counts) everything else."""
        while True:
            msg = await self.receive_message()
            try:
                return decode_event(msg, max_depth=DEFAULT_MAX_DEPTH)
            except TransportError as e:
                self.count_malformed(e)

    async def receive_message(self) -> dict:
        """The next data message from Zeek, parsed but not decoded; skips (and counts) everything else."""
        while True:
            raw = await self._recv()
            try:
                msg = parse_message(raw, max_bytes=self.max_message_bytes)
                kind = msg.get("type")
                if kind == "data-message":
                    return msg
            except TransportError as e:
                self.count_malformed(e)
                continue
            if kind == "error":
                # Zeek's answer to something we published that it could not dispatch.
                self.zeek_errors += 1
                self.last_error = f"{msg.get('code')}: {msg.get('context')}"
                if _worth_logging(self.zeek_errors):
                    log.warning("Zeek at %s reported error #%d: %s", self.url, self.zeek_errors, self.last_error)
            else:
                log.debug("ignored a %r message from Zeek at %s", kind, self.url)

    def count_malformed(self, e: TransportError) -> None:
        """Counts (and now and then logs) a message from Zeek that could not be read."""
        self.malformed += 1
        if _worth_logging(self.malformed):
            log.warning("dropped malformed message #%d from Zeek at %s: %s", self.malformed, self.url, e)

    async def publish(self, topic: str, name: str, args: list | tuple) -> None:
        """Publish event ``name(args)`` on ``topic``; Zeek reports dispatch failures asynchronously."""
        message = data_message(topic, name, args)
        text = _orjson.dumps(message).decode() if _orjson is not None else json.dumps(message)
        ws = self._open()
        try:
            await ws.send(text)
        except Exception as e:  # websockets' ConnectionClosed and friends
            raise TransportError(f"publishing to Zeek at {self.url} failed: {e}") from None

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                await ws.close()
            except Exception:  # closing a dead connection: nothing left to do
                pass

    def _open(self) -> Any:
        if self._ws is None:
            _fail(f"not connected to Zeek at {self.url}")
        return self._ws

    async def _recv(self) -> str | bytes:
        ws = self._open()
        try:
            # Bytes, not text: no UTF-8 decoding to a str, which the parser would encode back.
            return await ws.recv(decode=False)
        except Exception as e:  # ConnectionClosed (incl. Zeek terminating, or an oversized frame)
            code = getattr(getattr(e, "rcvd", None), "code", None)
            raise TransportError(f"connection to Zeek at {self.url} lost: {e}", closed_cleanly=code in (1000, 1001)) \
                from None
