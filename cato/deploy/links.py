"""How the worker talks to Zeek: one small interface, two implementations.

A link gives each batch of vectors Zeek publishes, read into a :class:`Batch`, and answers the batches it
scored with one verdict event per node that asked: a cluster node publishes on ``zeek/cato/vectors/NODE/``
and takes its verdicts on ``zeek/cato/verdicts/NODE/`` (a standalone Zeek on the two prefixes themselves).

A batch comes in one of two forms (``Cato::vector_form``), and is answered in the same:

* records: ``Cato::vector_batch``, a vector of ``Cato::Info`` records, answered by ``Cato::verdicts``. The
  interoperable form; each link reads the records in its own representation (decoding them generically
  would take most of the worker's time).
* compact: ``Cato::vector_block``, one block per batch (``cato.deploy.block``), answered by
  ``Cato::verdict_block``. The native engine's form: read and written with numpy, no value at a time.

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

import numpy as np

from cato.codegen.static import VECTOR_ID_FIELDS
from cato.deploy.block import BlockError, Endpoints, VerdictBlock, decode_vectors, encode_verdicts
from cato.deploy.manifest import Manifest
from cato.deploy.transport import Raw, TransportError, WebSocketTransport, event_envelope
from cato.deploy.zeek_side import COMPACT, RECORDS, VECTOR_TOPIC, VERDICT_TOPIC
from cato.features import MISSING_VALUE
from cato.zeek import ZeekNotFoundError, find_zeek

#: The form's vector event and verdict event, in a package's module (``Topics.module``).
EVENTS = {RECORDS: ("vector_batch", "verdicts"), COMPACT: ("vector_block", "verdict_block")}
#: A WebSocket message may carry at most 16 MiB: a batch of 100 vectors of 97 features is 0.45 MiB.
MAX_MESSAGE_BYTES = 16 << 20
_FIRST_FEATURE = len(VECTOR_ID_FIELDS)
_UID, _ID = VECTOR_ID_FIELDS.index("uid"), VECTOR_ID_FIELDS.index("id")
_NUMBERS = ("real", "count", "integer")


@dataclass
class Batch:
    """One batch of vectors as a node published it, read into what the worker needs: the features
    (float32, missing as ``MISSING_VALUE``), who they belong to, and the topic their verdicts go to.
    ``ids``: the connections' endpoints (compact), or each vector's ``(uid, conn_id)`` as the link
    received them, sent back as they are (records)."""
    form: str
    reply_topic: str
    features: np.ndarray
    ids: Endpoints | list[tuple[str, Any]]
    #: Vectors of the batch that could not be read (left out of it).
    unreadable: int = 0
    #: The schema hash a compact block carries (empty outside a compiled package).
    schema: str = ""

    def __len__(self) -> int:
        return len(self.features)


def compact_batch(text: Any, reply_topic: str) -> Batch:
    """A compact vector block; rows with an infinite value are left out, as the records form drops them."""
    if not isinstance(text, (str, bytes)):
        raise BlockError("the block is not a string")
    block = decode_vectors(text)
    x = block.features
    finite = ~np.isinf(x).any(axis=1)
    ids = block.endpoints
    if not finite.all():
        x, ids = x[finite], Endpoints(*(c[finite] for c in ids.columns()))
    x = np.where(np.isnan(x), np.float32(MISSING_VALUE), x)
    return Batch(COMPACT, reply_topic, x, ids, int((~finite).sum()), block.schema)


def records_batch(reply_topic: str, rows: list, n_features: int) -> Batch:
    """A records batch from rows of (uid, conn_id, values), None for a vector that could not be read."""
    good = [r for r in rows if r is not None]
    x = np.array([r[2] for r in good], dtype=np.float32).reshape(len(good), n_features)
    return Batch(RECORDS, reply_topic, x, [(r[0], r[1]) for r in good], len(rows) - len(good))


@dataclass
class Answer:
    """The verdicts of a batch: an index into the model's labels, and its score, per vector."""
    batch: Batch
    label: np.ndarray
    score: np.ndarray


def verdict_events(schema: str, labels: Sequence[str], answers: Sequence[Answer],
                   conn_id: Any = lambda c: c, module: str = "Cato") -> list[tuple[str, str, list]]:
    """The events answering ``answers``: (topic, event name, args), one per node and form, in the package's
    ``module``. ``conn_id`` wraps a records vector's conn_id for the link that sends it back."""
    groups: dict[tuple[str, str], list[Answer]] = defaultdict(list)
    for a in answers:
        groups[a.batch.reply_topic, a.batch.form].append(a)
    events = []
    for (topic, form), group in groups.items():
        if form == COMPACT:
            block = VerdictBlock(schema, list(labels), Endpoints.concatenate([a.batch.ids for a in group]),
                                 np.concatenate([a.label for a in group]).astype("<u2"),
                                 np.concatenate([a.score for a in group]).astype("<f4"))
            events.append((topic, f"{module}::{EVENTS[COMPACT][1]}", [encode_verdicts(block)]))
        else:
            verdicts = [[uid, conn_id(cid), labels[int(i)], float(s)]
                        for a in group for (uid, cid), i, s in zip(a.batch.ids, a.label, a.score)]
            events.append((topic, f"{module}::{EVENTS[RECORDS][1]}", [schema, verdicts]))
    return events


_NODE_NAME = re.compile(r"[A-Za-z0-9_.:-]+")


@dataclass(frozen=True)
class Topics:
    """What a package speaks, as its manifest records it: the topic prefixes (``Cato::topic`` and
    ``Cato::verdict_topic``; a cluster node publishes on ``VECTORS/NODE/`` and takes verdicts on
    ``VERDICTS/NODE/``), and the module its events are in (each package's own)."""
    vectors: str = VECTOR_TOPIC
    verdicts: str = VERDICT_TOPIC
    module: str = "Cato"

    @classmethod
    def of(cls, manifest: Manifest, vectors: str | None = None, verdicts: str | None = None) -> "Topics":
        """A package's, with the topics a site redefined (``vectors``, ``verdicts``) where given."""
        recorded = manifest.extra.get("topics", {})
        return cls(vectors or recorded.get("vectors", VECTOR_TOPIC), verdicts or recorded.get("verdicts", VERDICT_TOPIC),
                   manifest.module)

    def event(self, form: str, verdicts: bool = False) -> str:
        """The name of the form's vector event (or verdict event) in the package's module."""
        return f"{self.module}::{EVENTS[form][verdicts]}"

    def form_of(self, event: str) -> str | None:
        """The form of a vector event of the package's module (None: not one)."""
        module, _, name = event.rpartition("::")
        if module != self.module:
            return None
        return next((form for form, (vectors, _) in EVENTS.items() if vectors == name), None)

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


class Link(Protocol):
    zeek_version: str | None

    async def __aenter__(self) -> "Link": ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def next_batch(self, n_features: int) -> Batch:
        """The next batch of vectors, in either form; raises TransportError when the connection is lost,
        BlockError for a compact block that cannot be read."""

    async def answer(self, schema: str, labels: Sequence[str], answers: Sequence[Answer]) -> None:
        """Publish the verdicts of ``answers``: one event per node, in the form each batch came in."""


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

    async def next_batch(self, n_features: int) -> Batch:
        while True:
            msg = await self.transport.receive_message()
            try:
                topic, name, args = event_envelope(msg)
            except TransportError as e:
                self.transport.count_malformed(e)
                continue
            form = self.topics.form_of(name)
            if form is None or len(args) != 1 or not isinstance(args[0], dict):
                continue
            if form == COMPACT:
                return compact_batch(args[0].get("data"), self.topics.reply(topic))
            if isinstance(args[0].get("data"), list):
                return records_batch(self.topics.reply(topic), [self.read(item, n_features)
                                                                 for item in args[0]["data"]], n_features)

    @staticmethod
    def read(item: Any, n_features: int) -> tuple[str, Any, list[float]] | None:
        """A ``Cato::Info`` record in Broker's JSON data model, read straight from the parsed JSON:
        (uid, conn_id, values), or None when it is not one the worker can score and answer."""
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
        return uid["data"], conn_id, values

    async def answer(self, schema: str, labels: Sequence[str], answers: Sequence[Answer]) -> None:
        for topic, name, args in verdict_events(schema, labels, answers, Raw, self.topics.module):
            await self.transport.publish(topic, name, args)


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
            BrokerLink._shared = (endpoint, vectors, endpoint.make_status_subscriber(True), set(self.subscriptions))
        else:  # another package's topics (a test's process): the shared subscriber takes them too
            _, vectors, _, subscribed = BrokerLink._shared
            for topic in set(self.subscriptions) - subscribed:
                vectors.add_topic(topic, True)
                subscribed.add(topic)
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

    async def next_batch(self, n_features: int) -> Batch:
        while True:
            msg = await asyncio.to_thread(self.vectors.get, self.POLL_S)
            if msg is None:
                if self._lost():
                    raise TransportError(f"connection to Zeek's Broker at {self.url} lost")
                continue
            try:
                event = self.broker.zeek.Event(msg[1])
                form, args = self.topics.form_of(event.name()), event.args()
            except Exception:  # a message Broker's bindings cannot read as an event: not ours
                continue
            if form is None or len(args) != 1:
                continue
            if form == COMPACT:
                return compact_batch(args[0], self.topics.reply(str(msg[0])))
            try:
                items = list(args[0])
            except TypeError:
                continue
            return records_batch(self.topics.reply(str(msg[0])), [self.read(item, n_features) for item in items],
                                  n_features)

    def read(self, item: Any, n_features: int) -> tuple[str, Any, list[float]] | None:
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
        return uid, conn_id, values

    async def answer(self, schema: str, labels: Sequence[str], answers: Sequence[Answer]) -> None:
        for topic, name, args in verdict_events(schema, labels, answers, module=self.topics.module):
            self.endpoint.publish(topic, self.broker.zeek.Event(name, *args))
