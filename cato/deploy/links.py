"""How the worker talks to Zeek: one small interface, two implementations.

A link gives the items of each ``Cato::vector_batch`` Zeek publishes, reads an item into a
:class:`Vector`, and answers a micro-batch with one ``Cato::verdicts`` event per node that asked: a
cluster node publishes on ``zeek/cato/vectors/NODE/`` and takes its verdicts on
``zeek/cato/verdicts/NODE/`` (a standalone Zeek on the two prefixes themselves). Each link reads the
vectors in its own representation: decoding them generically would take most of the worker's time.

* :class:`WebSocketLink`: Zeek's WebSocket API v1 (JSON), ``ws://`` or ``wss://`` URLs.
* :class:`BrokerLink`: Broker's Python bindings (binary), ``tcp://HOST:PORT``; they come with Zeek
  (``zeek-config --python_dir``) and are looked for there.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol, Sequence
from urllib.parse import urlparse

from cato.codegen.static import VECTOR_ID_FIELDS
from cato.deploy.transport import Raw, TransportError, WebSocketTransport, event_envelope
from cato.deploy.zeek_side import VECTOR_TOPIC, VERDICT_TOPIC
from cato.features import MISSING_VALUE
from cato.zeek import ZeekNotFoundError, find_zeek

VECTOR_EVENT = "Cato::vector_batch"
VERDICTS_EVENT = "Cato::verdicts"
#: A WebSocket message may carry at most 16 MiB: a batch of 100 vectors of 97 features is 0.45 MiB.
MAX_MESSAGE_BYTES = 16 << 20
_FIRST_FEATURE = len(VECTOR_ID_FIELDS)
_UID, _ID = VECTOR_ID_FIELDS.index("uid"), VECTOR_ID_FIELDS.index("id")
_NUMBERS = ("real", "count", "integer")


@dataclass(frozen=True)
class Vector:
    """What the worker keeps of a vector: the connection's uid, its conn_id as the link received it
    (sent back as it is), the feature values (missing as ``MISSING_VALUE``), and the topic its verdict
    goes to (that of the node that published it)."""
    uid: str
    conn_id: Any
    features: list[float]
    reply_topic: str = VERDICT_TOPIC


_NODE_NAME = re.compile(r"[A-Za-z0-9_.:-]+")


@dataclass(frozen=True)
class Topics:
    """The topic prefixes a package speaks (``Cato::topic`` and ``Cato::verdict_topic``, recorded in its
    manifest): a cluster node publishes on ``VECTORS/NODE/`` and takes verdicts on ``VERDICTS/NODE/``."""
    vectors: str = VECTOR_TOPIC
    verdicts: str = VERDICT_TOPIC

    def subscriptions(self, nodes: Sequence[str] = ()) -> list[str]:
        """What a worker subscribes to: the vectors of every node, or of the named cluster nodes only (so
        that several workers share a cluster's nodes, none scoring a vector twice)."""
        for node in nodes:
            if not _NODE_NAME.fullmatch(node):
                raise TransportError(f"{node!r}: not a Zeek cluster node's name")
        return [f"{self.vectors}/{node}/" for node in nodes] if nodes else [self.vectors]

    def reply(self, topic: str) -> str:
        """The verdict topic of the node that published vectors on ``topic``."""
        return self.verdicts + topic[len(self.vectors):] if topic.startswith(self.vectors) else self.verdicts


def _by_topic(answers: list[tuple[Vector, str, float]]) -> dict[str, list]:
    """The verdicts of a micro-batch, grouped by the node they go back to."""
    groups: dict[str, list] = defaultdict(list)
    for v, label, score in answers:
        groups[v.reply_topic].append([v.uid, v.conn_id, label, score])
    return groups


class Link(Protocol):
    zeek_version: str | None

    async def __aenter__(self) -> "Link": ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def next_batch(self) -> tuple[str, list]:
        """The topic its verdicts go to, and the items of the next vector batch; raises TransportError
        when the connection is lost."""

    def read(self, item: Any, n_features: int, reply_to: str) -> Vector | None:
        """The vector in ``item``, or None when it is not one the worker can score and answer."""

    async def answer(self, schema: str, answers: list[tuple[Vector, str, float]]) -> None:
        """Publish one ``Cato::verdicts`` event per node for ``answers`` (vector, label, score)."""


def make_link(url: str, ssl=None, nodes: Sequence[str] = (), topics: Topics = Topics()) -> Link:
    """A link to Zeek at ``url``, taking the vectors of ``nodes`` (cluster node names; none: all) on
    ``topics``."""
    scheme = urlparse(url).scheme
    if scheme in ("ws", "wss"):
        return WebSocketLink(url, ssl, topics, nodes)
    if scheme == "tcp":
        return BrokerLink(url, topics, nodes)
    raise TransportError(f"{url}: give ws://HOST:PORT (Zeek's WebSocket API) or tcp://HOST:PORT (Broker)")


class WebSocketLink:
    def __init__(self, url: str, ssl=None, topics: Topics = Topics(), nodes: Sequence[str] = ()) -> None:
        self.topics = topics
        self.transport = WebSocketTransport(url, topics.subscriptions(nodes), ssl=ssl,
                                            max_message_bytes=MAX_MESSAGE_BYTES)
        self.zeek_version: str | None = None

    async def __aenter__(self) -> "WebSocketLink":
        await self.transport.connect()
        self.zeek_version = self.transport.zeek_version
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.close()

    async def next_batch(self) -> tuple[str, list]:
        while True:
            msg = await self.transport.receive_message()
            try:
                topic, name, args = event_envelope(msg)
            except TransportError as e:
                self.transport.count_malformed(e)
                continue
            if name == VECTOR_EVENT and len(args) == 1 and isinstance(args[0], dict) \
                    and isinstance(args[0].get("data"), list):
                return self.topics.reply(topic), args[0]["data"]

    def read(self, item: Any, n_features: int, reply_to: str = VERDICT_TOPIC) -> Vector | None:
        """A ``Cato::Info`` record in Broker's JSON data model, read straight from the parsed JSON."""
        try:
            fields = item["data"]
            uid, conn_id = fields[_UID], fields[_ID]
            if item["@data-type"] != "vector" or uid["@data-type"] != "string" or conn_id["@data-type"] != "vector":
                return None
            values = []
            for f in fields[_FIRST_FEATURE:_FIRST_FEATURE + n_features]:
                kind, v = f["@data-type"], f["data"]
                if kind in _NUMBERS and type(v) in (int, float) and math.isfinite(v):
                    values.append(float(v))
                elif kind == "none":
                    values.append(MISSING_VALUE)
                else:
                    return None
        except (KeyError, TypeError, IndexError):
            return None
        if len(values) != n_features or not isinstance(uid["data"], str):
            return None
        return Vector(uid["data"], Raw(conn_id), values, reply_to)

    async def answer(self, schema: str, answers: list[tuple[Vector, str, float]]) -> None:
        for topic, verdicts in _by_topic(answers).items():
            await self.transport.publish(topic, VERDICTS_EVENT, [schema, verdicts])


def _import_broker():
    try:
        import broker
        import broker.zeek
        return broker
    except ImportError:
        pass
    try:  # the zeek-config beside the Zeek cato runs
        config = find_zeek().parent / "zeek-config"
        path = subprocess.run([str(config), "--python_dir"], capture_output=True, text=True, check=True).stdout
    except (ZeekNotFoundError, OSError, subprocess.CalledProcessError):
        path = "/opt/zeek/lib/zeek/python"
    sys.path.append(path.strip())
    try:
        import broker
        import broker.zeek
        return broker
    except ImportError as e:
        raise TransportError(f"Broker's Python bindings not found (zeek-config --python_dir: {path.strip()}): "
                             f"{e}; use ws:// (Zeek's WebSocket API)") from None


class BrokerLink:
    """A Broker peer of Zeek; Broker's calls block, so they run in a thread. One endpoint serves the
    whole process: destroying a Broker endpoint from Python can block for good."""

    #: How often a wait for vectors looks at the peering's status.
    POLL_S = 0.25
    _shared: tuple | None = None

    def __init__(self, url: str, topics: Topics = Topics(), nodes: Sequence[str] = ()) -> None:
        parsed = urlparse(url)
        if not parsed.hostname or not parsed.port:
            raise TransportError(f"{url}: a Broker URL is tcp://HOST:PORT")
        self.url, self.host, self.port, self.topics = url, parsed.hostname, parsed.port, topics
        self.subscriptions = topics.subscriptions(nodes)
        self.zeek_version: str | None = None
        self.broker = _import_broker()

    def _endpoint(self) -> tuple:
        if BrokerLink._shared is None:
            endpoint = self.broker.Endpoint()
            # One topic at a time: the bindings' make_subscriber takes a list through collections.Iterable,
            # which Python 3.10 removed.
            vectors = endpoint.make_subscriber(self.subscriptions[0])
            for topic in self.subscriptions[1:]:
                vectors.add_topic(topic, True)
            BrokerLink._shared = (endpoint, vectors, endpoint.make_status_subscriber(True), self.subscriptions)
        elif BrokerLink._shared[3] != self.subscriptions:
            raise TransportError("one Broker endpoint serves the whole process: its nodes cannot change")
        return BrokerLink._shared

    async def __aenter__(self) -> "BrokerLink":
        self.endpoint, self.vectors, self.status, _ = self._endpoint()
        self.status.poll()  # what happened to an earlier peering is not news of this one
        # No retries: the worker's own loop retries, and can be stopped between tries.
        if not await asyncio.to_thread(self.endpoint.peer, self.host, self.port, 0):
            raise TransportError(f"cannot peer with Zeek's Broker at {self.url}")
        self.zeek_version = f"(Broker {self.broker.Version.string()})"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.endpoint.unpeer, self.host, self.port)

    def _lost(self) -> bool:
        for status in self.status.poll():
            code = getattr(status, "code", lambda: None)()
            if code in (self.broker.SC.PeerLost, self.broker.SC.PeerRemoved):
                return True
        return False

    async def next_batch(self) -> tuple[str, list]:
        while True:
            msg = await asyncio.to_thread(self.vectors.get, self.POLL_S)
            if msg is None:
                if self._lost():
                    raise TransportError(f"connection to Zeek's Broker at {self.url} lost")
                continue
            try:
                event = self.broker.zeek.Event(msg[1])
                if event.name() == VECTOR_EVENT and len(event.args()) == 1:
                    return self.topics.reply(str(msg[0])), list(event.args()[0])
            except Exception:  # a message Broker's bindings cannot read as an event: not ours
                continue

    def read(self, item: Any, n_features: int, reply_to: str = VERDICT_TOPIC) -> Vector | None:
        try:
            uid, conn_id = item[_UID], item[_ID]
            values = []
            for v in item[_FIRST_FEATURE:_FIRST_FEATURE + n_features]:
                if v is None:
                    values.append(MISSING_VALUE)
                    continue
                v = v.value if isinstance(v, self.broker.Count) else v
                if type(v) not in (int, float) or not math.isfinite(v):
                    return None
                values.append(float(v))
        except (TypeError, IndexError, AttributeError):
            return None
        if len(values) != n_features or not isinstance(uid, str):
            return None
        return Vector(uid, conn_id, values, reply_to)

    async def answer(self, schema: str, answers: list[tuple[Vector, str, float]]) -> None:
        for topic, verdicts in _by_topic(answers).items():
            self.endpoint.publish(topic, self.broker.zeek.Event(VERDICTS_EVENT, schema, verdicts))
