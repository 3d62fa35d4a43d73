"""Where work runs: in this process, in worker processes on this machine, or as Ray tasks on a cluster.

Two kinds of work fan out. Extraction runs one Zeek batch per task (``cato.zeek.corpus_run``), and a
study evaluates trials (``cato.study.study.run_study``). Both use one small interface, :class:`Executor`:
``submit`` a function, ``wait`` for whichever task is done first, ``put`` a large read-only input once.
:class:`LocalExecutor` runs tasks in a process pool (or inline, with one job); :class:`RayExecutor`
runs them as Ray tasks. Ray is optional (``pip install 'cato[ray]'``): nothing here imports it until
:func:`connect` is called.

With Ray, every node needs Zeek and cato installed, and reads the corpus and cato's cache
(``$CATO_CACHE``) at the same paths as the driver: a batch writes its part of the dataset into the cache,
and a trial reads the dataset and writes its profile there. On one machine that holds by itself; across
machines, put both on a shared filesystem. The driver passes its ``$CATO_CACHE`` (and ``$ZEEK``) to
the tasks, so a worker started with another environment still uses the driver's paths.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import sys
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

from cato.cache import default_cache_dir

RAY_INSTALL_HINT = "pip install 'cato[ray]'"
#: Times a Ray task is run again when its worker process or node dies under it (not when it raises).
RAY_MAX_RETRIES = 2
#: Environment the driver hands to its Ray tasks (see the module's docstring).
FORWARDED_ENV = ("ZEEK", "CATO_ZEEK_TIMEOUT", "ZEEK_PLUGIN_PATH")


class ExecutorError(RuntimeError):
    pass


def ray_available() -> bool:
    """Whether Ray can be imported (the ``ray`` extra is installed)."""
    return importlib.util.find_spec("ray") is not None


class Executor:
    """Runs functions somewhere else and hands back their results as they complete.

    ``fn`` and its arguments must pickle (a module-level function). ``slots`` is how many tasks run at
    once: a caller keeps at most that many in flight."""

    slots: int = 1

    def submit(self, fn: Callable, *args) -> Any:
        """Start ``fn(*args)``; returns a handle for :meth:`wait`."""
        raise NotImplementedError

    def wait(self, handles: Sequence[Any]) -> tuple[Any, Callable[[], Any]]:
        """The first of ``handles`` to finish, and a function returning its result (or raising what the
        task raised)."""
        raise NotImplementedError

    def put(self, value: Any) -> Any:
        """``value`` made ready to pass to many tasks (Ray: stored once in the object store)."""
        return value

    def map_unordered(self, fn: Callable, arg_lists: Iterable[Sequence]) -> Iterator[Any]:
        """``fn(*args)`` for every ``args``, all submitted at once, yielded as they complete."""
        running = [self.submit(fn, *args) for args in arg_lists]
        while running:
            done, result = self.wait(running)
            running.remove(done)
            yield result()

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Inline:
    """A task run in this process, when it is waited for (so results come one at a time, in order)."""

    def __init__(self, fn: Callable, args: Sequence) -> None:
        self.fn, self.args = fn, args

    def result(self) -> Any:
        return self.fn(*self.args)


class LocalExecutor(Executor):
    """``jobs`` worker processes on this machine (forkserver, not fork: a parent holding threads, ONNX
    Runtime's say, must not be copied); with one job, tasks run inline, in this process."""

    def __init__(self, jobs: int = 1) -> None:
        self.slots = max(1, jobs)
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, fn: Callable, *args) -> Any:
        if self.slots == 1:
            return _Inline(fn, args)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.slots,
                                             mp_context=multiprocessing.get_context("forkserver"))
        return self._pool.submit(fn, *args)

    def wait(self, handles: Sequence[Any]) -> tuple[Any, Callable[[], Any]]:
        inline = [h for h in handles if isinstance(h, _Inline)]
        if inline:
            return inline[0], inline[0].result
        done, _ = wait_futures([h for h in handles if isinstance(h, Future)], return_when=FIRST_COMPLETED)
        first = next(h for h in handles if h in done)
        return first, first.result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


@dataclass
class RayContext:
    """A connection to a Ray cluster (see :func:`connect`)."""

    address: str
    #: CPUs the cluster has, over every node.
    cpus: int
    nodes: int
    #: Whether :func:`connect` started or joined Ray (and :meth:`close` leaves it); False when Ray was
    #: already initialised in this process.
    owned: bool

    def close(self) -> None:
        import ray
        if self.owned and ray.is_initialized():
            ray.shutdown()


def connect(address: str) -> RayContext:
    """Join Ray: ``local`` starts a Ray instance in this process (``ray.init()``) on the loopback
    interface only, for this machine's cores; ``auto`` joins the cluster this machine belongs to (as
    ``ray.init(address="auto")``); ``HOST:PORT`` joins the cluster whose head listens there.

    Tasks get the driver's ``$CATO_CACHE`` and Zeek settings (``FORWARDED_ENV``) through their runtime
    environment. Raises :class:`ExecutorError`, naming ``pip install 'cato[ray]'``, without Ray."""
    if not ray_available():
        raise ExecutorError(f"--ray needs Ray, which is not installed: {RAY_INSTALL_HINT}")
    if not address:
        raise ExecutorError("--ray takes local, auto or HOST:PORT")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry unless the user asks for it
    if address == "local":
        # A single-node instance needs no port beyond the loopback interface. Ray binds its servers to
        # the node's address, and takes 127.0.0.1 as that address when clusters are off (its setting
        # for Windows and macOS), so it must be off before Ray reads it.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from ray._private import ray_constants
    if address == "local" and os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0":
        ray_constants.ENABLE_RAY_CLUSTER = False  # read at import: Ray may have been imported already
    env = {"CATO_CACHE": str(default_cache_dir())}
    env |= {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    owned = not ray.is_initialized()
    if owned:
        kwargs: dict = {"runtime_env": {"env_vars": env}, "log_to_driver": False,
                        "logging_level": "WARNING"}
        try:
            if address == "local":
                ray.init(include_dashboard=False, **kwargs)
            else:
                ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ExecutorError(f"cannot join Ray at {address}: {e}") from e
    resources = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return RayContext(address, int(resources.get("CPU", 0)), nodes, owned)


class RayExecutor(Executor):
    """Tasks as Ray tasks, each holding ``num_cpus`` CPUs, retried ``RAY_MAX_RETRIES`` times when the
    process or node running them dies (a task is then run again from the start: tasks must be
    idempotent), never when they raise. ``slots``: how many a caller keeps in flight (default: the
    cluster's CPUs / ``num_cpus``)."""

    def __init__(self, context: RayContext, slots: int | None = None, num_cpus: float = 1) -> None:
        self.context = context
        self.num_cpus = num_cpus
        self.slots = max(1, slots if slots is not None else int(context.cpus // num_cpus))
        self._remote: dict[Callable, Any] = {}

    def _task(self, fn: Callable):
        import ray
        if fn not in self._remote:
            self._remote[fn] = ray.remote(fn).options(num_cpus=self.num_cpus, max_retries=RAY_MAX_RETRIES,
                                                      retry_exceptions=False)
        return self._remote[fn]

    def submit(self, fn: Callable, *args) -> Any:
        return self._task(fn).remote(*args)

    def wait(self, handles: Sequence[Any]) -> tuple[Any, Callable[[], Any]]:
        import ray
        done, _ = ray.wait(list(handles), num_returns=1)
        return done[0], lambda: ray.get(done[0])

    def put(self, value: Any) -> Any:
        import ray
        return ray.put(value)


def node_id() -> str | None:
    """The Ray node this process runs on; None outside a Ray task."""
    ray = sys.modules.get("ray")  # a Ray task's process has imported it
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()


@dataclass
class Outcome:
    """What a trial's evaluation returned, or the error it raised (as text: it crosses processes)."""

    values: dict | None
    details: dict
    error: str | None = None
    traceback: str | None = None


def evaluate_trial(evaluator: Any, config: Any, progress: Callable[[str], None] | None = None) -> Outcome:
    """``evaluator.evaluate(config)`` as a task: an exception in the evaluation is an outcome (the trial
    fails, as it does in-process), so that only the death of the process running it makes Ray run it
    again. The details name the node it ran on (``node_id``).

    A profiling task holds a whole CPU (``RayExecutor`` asks for ``num_cpus=1``). Zeek's CPU time is
    measured per process, so a shared core would inflate wall-clock time but not CPU time; contention
    still perturbs caches and frequency, so one profiling task runs per CPU. The cost objective (``cpu``,
    steady-state µs per connection) is absolute and so depends on the node's speed; ``cpu_ratio`` (the
    script's Zeek CPU over a bare Zeek's on the same captures) is the node-independent figure, when the
    baseline was measured on the same node. An unpaired profile's baseline is measured once per corpus
    and per node and kept in the cache under the node's identity (``cato.zeek.profiling.machine_identity``,
    read inside ``evaluator.evaluate`` and so on the node running the task): a trial is normalised by a
    baseline of the node that measured it, never by another node's. A profile found in the cache
    (``profile_cached``) was measured, and normalised, wherever it first ran."""
    here = node_id()
    node = {"node_id": here} if here is not None else {}  # in-process: no node to name
    try:
        values, details = evaluator.evaluate(config, progress)
    except Exception as e:  # one bad configuration must not end the study
        return Outcome(None, node, f"{type(e).__name__}: {e}", traceback.format_exc())
    return Outcome(values, {**details, **node})
