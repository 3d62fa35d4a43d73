"""``cato serve``: the ONNX inference worker beside a running Zeek.

One loop receives vector batches from Zeek (WebSocket API v1, or Broker; records or compact: see
``links``) into a queue bounded in vectors; another scores micro-batches of them with ONNX Runtime
and answers each node in one event, in the form its batch came in.
What was received, scored and dropped is counted, printed on exit and on SIGUSR1. The package's
manifest and model are checked once, at start: a package whose parts disagree is refused.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from cato.deploy.block import BlockError
from cato.deploy.links import COMPACT, EVENTS, RECORDS, Answer, Batch, Link, Topics, make_link
from cato.deploy.manifest import Manifest, ManifestError
from cato.deploy.transport import TransportError
from cato.deploy.zeek_side import DEFAULT_WEBSOCKET_PORT
from cato.model import ModelError, OnnxModel

log = logging.getLogger("cato.serve")

DEFAULT_URL = f"ws://127.0.0.1:{DEFAULT_WEBSOCKET_PORT}"


class ServeError(RuntimeError):
    pass


def tls_context(url: str, ca: Path | None = None, cert: Path | None = None,
                key: Path | None = None) -> ssl.SSLContext | None:
    """The TLS context of a worker connecting to ``url``: trusting ``ca`` (Zeek's listener certificate,
    or the CA that signed it; default: the system's), presenting the client certificate ``cert`` with
    ``key`` where Zeek asks for one (``Cato::websocket_tls_client_ca``). None: no TLS option given."""
    if ca is None and cert is None and key is None:
        return None
    if not url.startswith("wss://"):
        raise ServeError("TLS options (--tls-ca, --tls-cert, --tls-key) go with a wss:// URL")
    if (cert is None) != (key is None):
        raise ServeError("a client certificate needs both --tls-cert and --tls-key")
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except (OSError, ssl.SSLError) as e:
        raise ServeError(f"{ca}: not a readable PEM certificate: {e}") from None
    if cert is not None:
        try:
            context.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as e:
            raise ServeError(f"{cert} with {key}: not a readable PEM certificate and its key: {e}") from None
    return context


@dataclass
class WorkerStats:
    received: int = 0
    scored: int = 0
    dropped: int = 0
    #: Vectors that could not be read (a field missing or of the wrong type).
    unreadable: int = 0
    #: Vectors refused: a batch of another form than the package's, or a block of another schema.
    refused: int = 0
    #: Compact blocks that could not be read (how many vectors they held is unknown).
    malformed_blocks: int = 0
    batches_received: int = 0
    largest_batch_received: int = 0
    verdicts_sent: int = 0
    connections: int = 0
    score_seconds: float = 0.0
    started: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"received {self.received}, scored {self.scored}, dropped {self.dropped} (queue full), "
                f"unreadable {self.unreadable}, refused {self.refused}, malformed blocks {self.malformed_blocks}, "
                f"verdicts sent {self.verdicts_sent}, in {self.batches_received} "
                f"batch(es) over {self.connections} connection(s) to Zeek")


class Scorer:
    """A package's model, checked against its manifest once: feature order, classes, input width."""

    def __init__(self, package: Path) -> None:
        package = Path(package)
        self.package = package
        try:
            self.manifest = Manifest.read(package)
            self.model = OnnxModel.load(package / "model.onnx")
            self.manifest.check_model(self.model)
        except (ManifestError, ModelError) as e:
            raise ServeError(f"{package}: refused: {e}") from None
        self.n_features = len(self.manifest.features)
        #: The form the package's Zeek publishes its vectors in (a package from before the compact form
        #: has none recorded: records).
        self.form = self.manifest.extra.get("vector_form", RECORDS)
        if self.form not in EVENTS:
            raise ServeError(f"{package}: refused: vector form {self.form!r} is neither {RECORDS} nor {COMPACT}")

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's label (an index into the manifest's labels) and the model's probability for it."""
        labels, scores = self.model.predict_scores(np.asarray(x, dtype=np.float32).reshape(-1, self.n_features))
        return np.asarray(labels), np.asarray(scores)


class BatchQueue:
    """Batches waiting to be scored, bounded in vectors: a batch that does not fit is refused (or waited
    for, with ``put``), unless the queue is empty (a batch larger than the bound still goes)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.batches: collections.deque[Batch] = collections.deque()
        self.vectors = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()

    def put_nowait(self, batch: Batch) -> bool:
        if self.batches and self.vectors + len(batch) > self.capacity:
            return False
        self.batches.append(batch)
        self.vectors += len(batch)
        self._ready.set()
        return True

    async def put(self, batch: Batch) -> None:
        while not self.put_nowait(batch):
            self._room.clear()
            await self._room.wait()

    def take(self, limit: int) -> list[Batch]:
        """Batches from the front, up to ``limit`` vectors (at least one batch)."""
        out, n = [], 0
        while self.batches and (not out or n + len(self.batches[0]) <= limit):
            b = self.batches.popleft()
            out.append(b)
            n += len(b)
        self.vectors -= n
        if not self.batches:
            self._ready.clear()
        self._room.set()
        return out

    async def wait(self, timeout: float | None = None) -> bool:
        """Whether a batch waits (within ``timeout`` seconds)."""
        if self.batches:
            return True
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True


class Worker:
    """Receives, queues, scores and answers. ``run`` returns when ``stop`` is set, or (without
    ``reconnect``) when Zeek goes away."""

    def __init__(self, package: Path, url: str = DEFAULT_URL, *, batch: int = 256, max_wait_ms: float = 0.0,
                 queue_size: int = 100_000, reconnect: bool = True, ssl=None, lossless: bool = False,
                 nodes: Sequence[str] = (), topics: Topics | None = None) -> None:
        if batch < 1 or queue_size < 1 or max_wait_ms < 0:
            raise ServeError("--batch and the queue size must be positive, --max-wait not negative")
        self.scorer = Scorer(package)
        #: The cluster nodes whose vectors this worker takes (none: every node's).
        self.nodes = tuple(nodes)
        #: The package's topics (its manifest's), unless the site changed them and says so.
        self.topics = topics or Topics.of(self.scorer.manifest)
        try:
            # A URL the worker cannot use is an error now, not a reconnect loop.
            make_link(url, ssl, self.nodes, self.topics)
        except TransportError as e:
            raise ServeError(str(e)) from None
        self.url, self.batch, self.max_wait = url, batch, max_wait_ms / 1000.0
        self.queue_size, self.reconnect, self.ssl = queue_size, reconnect, ssl
        #: Wait for room in a full queue instead of dropping (a replay, where Zeek waits for every verdict):
        #: the socket then pushes back, and Zeek's own cap (Cato::max_in_flight) sheds and counts.
        self.lossless = lossless
        self.stats = WorkerStats()
        self.stop = asyncio.Event()

    async def run(self) -> WorkerStats:
        backoff = 0.25
        while not self.stop.is_set():
            try:
                async with make_link(self.url, self.ssl, self.nodes, self.topics) as link:
                    self.stats.connections += 1
                    log.info("connected to Zeek %s at %s", link.zeek_version, self.url)
                    backoff = 0.25
                    await self._session(link)
            except TransportError as e:
                if not self.reconnect:
                    if self.stats.connections == 0:
                        raise ServeError(str(e)) from None
                    # Zeek done (a replay's end) is no news; a link lost otherwise is.
                    (log.debug if e.closed_cleanly else log.warning)("%s", e)
                    break
                log.warning("%s; reconnecting in %.2fs", e, backoff)
                try:
                    await asyncio.wait_for(self.stop.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 5.0)
        return self.stats

    async def _session(self, link: Link) -> None:
        queue = BatchQueue(self.queue_size)
        receiving = asyncio.create_task(self._receive(link, queue))
        scoring = asyncio.create_task(self._score(link, queue))
        stopping = asyncio.create_task(self.stop.wait())
        done, _ = await asyncio.wait({receiving, scoring, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (receiving, scoring, stopping):
            task.cancel()
        if stopping in done and queue.batches:
            # Stopping on request: answer what is already queued while the connection lasts.
            try:
                await self._answer(link, queue.take(queue.vectors))
            except TransportError:
                pass
        for task in done:
            if task is not stopping and not task.cancelled() and task.exception() is not None:
                raise task.exception()

    def _refuse(self, batch: Batch, why: str) -> None:
        if self.stats.refused == 0:
            log.error("refused a batch of %d vector(s): %s", len(batch), why)
        self.stats.refused += len(batch)

    def _check(self, batch: Batch) -> bool:
        """Whether the batch is one this package answers; a refused one is counted (Zeek counts its vectors
        as timed out) and said once."""
        manifest = self.scorer.manifest
        if batch.form != self.scorer.form:
            self._refuse(batch, f"Zeek publishes {batch.form} vectors ({self.topics.event(batch.form)}) but "
                                f"package {self.scorer.package} speaks {self.scorer.form} "
                                f"({self.topics.event(self.scorer.form)}): is Zeek running this package, compiled as "
                                "it is here?")
            return False
        if batch.schema and batch.schema != manifest.schema:
            self._refuse(batch, f"its schema {batch.schema} is not that of package {self.scorer.package} ({manifest.schema}): "
                                f"is Zeek running this package?")
            return False
        return True

    async def _receive(self, link: Link, queue: BatchQueue) -> None:
        n = self.scorer.n_features
        while True:
            try:
                batch = await link.next_batch(n)
            except BlockError as e:
                self.stats.malformed_blocks += 1
                if self.stats.malformed_blocks == 1:
                    log.warning("dropped a compact vector block that cannot be read: %s", e)
                continue
            self.stats.batches_received += 1
            size = len(batch) + batch.unreadable
            self.stats.largest_batch_received = max(self.stats.largest_batch_received, size)
            self.stats.received += size
            self.stats.unreadable += batch.unreadable
            if not len(batch) or not self._check(batch):
                continue
            if self.lossless:
                await queue.put(batch)
            elif not queue.put_nowait(batch):
                self.stats.dropped += len(batch)

    async def _score(self, link: Link, queue: BatchQueue) -> None:
        """Micro-batches: up to ``batch`` vectors, waiting at most ``max_wait`` for more after the first."""
        while True:
            await queue.wait()
            batches = queue.take(self.batch)
            n = sum(map(len, batches))
            deadline = time.perf_counter() + self.max_wait
            while n < self.batch:
                if not queue.batches:
                    left = deadline - time.perf_counter()
                    if left <= 0 or not await queue.wait(left):
                        break
                if n + len(queue.batches[0]) > self.batch:
                    break  # it would overflow the micro-batch: it starts the next one
                more = queue.take(self.batch - n)
                batches += more
                n += sum(map(len, more))
            await self._answer(link, batches)

    async def _answer(self, link: Link, batches: list[Batch]) -> None:
        """Scores a micro-batch of batches and sends their verdicts back, one event per node."""
        if not batches:
            return
        t0 = time.perf_counter()
        x = batches[0].features if len(batches) == 1 else np.concatenate([b.features for b in batches])
        labels, scores = self.scorer.score(x)
        self.stats.score_seconds += time.perf_counter() - t0
        answers, at = [], 0
        for b in batches:
            answers.append(Answer(b, labels[at:at + len(b)], scores[at:at + len(b)]))
            at += len(b)
        self.stats.scored += len(x)
        manifest = self.scorer.manifest
        await link.answer(manifest.schema, manifest.labels, answers)
        self.stats.verdicts_sent += len(x)


def run_worker(worker: Worker, on_signal: Callable[[WorkerStats], None] | None = None) -> WorkerStats:
    """Run ``worker`` until SIGINT or SIGTERM (or Zeek leaves, without reconnect); SIGUSR1 reports counts."""
    import signal

    async def main() -> WorkerStats:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop.set)
        if on_signal is not None:
            loop.add_signal_handler(signal.SIGUSR1, lambda: on_signal(worker.stats))
        return await worker.run()

    return asyncio.run(main())
