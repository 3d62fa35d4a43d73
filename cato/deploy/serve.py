"""``cato serve``: the ONNX inference worker beside a running Zeek.

One loop receives vector batches from Zeek (WebSocket API v1, or Broker: see ``links``) into a
bounded queue; another scores micro-batches with ONNX Runtime and answers each with one event
holding a verdict per vector.
What was received, scored and dropped is counted, printed on exit and on SIGUSR1. The package's
manifest and model are checked once, at start: a package whose parts disagree is refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from cato.deploy.links import Link, Topics, Vector, make_link
from cato.deploy.manifest import Manifest, ManifestError
from cato.deploy.transport import TransportError
from cato.deploy.zeek_side import DEFAULT_WEBSOCKET_PORT
from cato.model import ModelError, OnnxModel

log = logging.getLogger("cato.serve")

DEFAULT_URL = f"ws://127.0.0.1:{DEFAULT_WEBSOCKET_PORT}"


class ServeError(RuntimeError):
    pass


@dataclass
class WorkerStats:
    received: int = 0
    scored: int = 0
    dropped: int = 0
    #: Vectors that could not be read (a field missing or of the wrong type).
    unreadable: int = 0
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
                f"unreadable {self.unreadable}, verdicts sent {self.verdicts_sent}, in {self.batches_received} "
                f"batch(es) over {self.connections} connection(s) to Zeek")


class Scorer:
    """A package's model, checked against its manifest once: feature order, classes, input width."""

    def __init__(self, package: Path) -> None:
        package = Path(package)
        try:
            self.manifest = Manifest.read(package)
            self.model = OnnxModel.load(package / "model.onnx")
            self.manifest.check_model(self.model)
        except (ManifestError, ModelError) as e:
            raise ServeError(f"{package}: refused: {e}") from None
        self.n_features = len(self.manifest.features)

    def score(self, vectors: list[Vector]) -> list[tuple[str, float]]:
        x = np.array([v.features for v in vectors], dtype=np.float32).reshape(len(vectors), self.n_features)
        labels, scores = self.model.predict_scores(x)
        return [(self.manifest.labels[int(i)], float(s)) for i, s in zip(labels, scores)]


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
        self.topics = topics or Topics(**self.scorer.manifest.extra.get("topics", {}))
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
        queue: asyncio.Queue = asyncio.Queue(self.queue_size)
        receiving = asyncio.create_task(self._receive(link, queue))
        scoring = asyncio.create_task(self._score(link, queue))
        stopping = asyncio.create_task(self.stop.wait())
        done, _ = await asyncio.wait({receiving, scoring, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (receiving, scoring, stopping):
            task.cancel()
        if stopping in done and not queue.empty():
            # Stopping on request: answer what is already queued while the connection lasts.
            try:
                await self._answer(link, [queue.get_nowait() for _ in range(queue.qsize())])
            except TransportError:
                pass
        for task in done:
            if task is not stopping and not task.cancelled() and task.exception() is not None:
                raise task.exception()

    async def _receive(self, link: Link, queue: asyncio.Queue) -> None:
        n = self.scorer.n_features
        while True:
            reply_to, batch = await link.next_batch()
            self.stats.batches_received += 1
            self.stats.largest_batch_received = max(self.stats.largest_batch_received, len(batch))
            for item in batch:
                self.stats.received += 1
                vector = link.read(item, n, reply_to)
                if vector is None:
                    self.stats.unreadable += 1
                    continue
                if self.lossless:
                    await queue.put(vector)
                    continue
                try:
                    queue.put_nowait(vector)
                except asyncio.QueueFull:
                    self.stats.dropped += 1

    async def _score(self, link: Link, queue: asyncio.Queue) -> None:
        """Micro-batches: up to ``batch`` vectors, waiting at most ``max_wait`` for more after the first."""
        while True:
            batch = [await queue.get()]
            deadline = time.perf_counter() + self.max_wait
            while len(batch) < self.batch:
                if queue.empty():
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(queue.get(), left))
                    except TimeoutError:
                        break
                else:
                    batch.append(queue.get_nowait())
            await self._answer(link, batch)

    async def _answer(self, link: Link, batch: list[Vector]) -> None:
        """Scores a micro-batch and sends its verdicts back as one ``Cato::verdicts`` event."""
        if not batch:
            return
        t0 = time.perf_counter()
        verdicts = self.scorer.score(batch)
        self.stats.score_seconds += time.perf_counter() - t0
        self.stats.scored += len(batch)
        await link.answer(self.scorer.manifest.schema,
                          [(v, label, score) for v, (label, score) in zip(batch, verdicts)])
        self.stats.verdicts_sent += len(batch)


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
