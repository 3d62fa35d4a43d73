"""Run one generated script over many captures: merged streams, parallel Zeek processes.

Zeek starts in 0.1-0.3 s and reads one capture per run, so captures are merged into a few streams
(``cato.corpus.merge``) and each stream is one Zeek run. A capture cato cannot read is reported
by name and skipped; if Zeek fails on a merged stream, each of its captures is run alone so that
one bad capture never costs the others.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import pandas as pd

from cato.corpus import Capture, MergedStream, merge_captures, read_captures
from cato.executors import Executor, LocalExecutor
from cato.zeek.logs import read_zeek_log
from cato.zeek.runner import ZeekError, deployment_invocation, find_zeek, run_zeek
from cato.codegen.static import static_load_script

#: Redefinitions every corpus run needs. ``max_timer_expires=0`` fires all overdue timers before
#: each packet, so that a merged stream's captures never share a connection. ``Log::flush_interval``:
#: Zeek flushes its log writers each second of network time, and a corpus of captures is sparse in
#: time (IoT Sentinel: about 2 connections per capture second), so per-second flushes would cost
#: more than the rows they carry (15 µs per connection there); on a live link they are amortised over
#: thousands of connections. Every row is still flushed at the end of the run.
STREAM_REDEFS = {"max_timer_expires": "0", "Log::flush_interval": "1hr"}


#: pcap link types Zeek's packet analysis decodes (NULL, Ethernet, PPP, FDDI, raw IP, 802.11, PPP serial, Linux
#: cooked v1/v2, loopback, 802.11 radiotap, and the raw IPv4/IPv6 types).
ZEEK_LINKTYPES = frozenset({0, 1, 9, 10, 12, 14, 101, 105, 50, 113, 108, 127, 228, 229, 276})


@dataclass
class CaptureProblem:
    capture: str
    reason: str
    skipped: bool  # True: nothing came out of this capture

    def __str__(self) -> str:
        return f"{self.capture}: {self.reason}" + (" (skipped)" if self.skipped else "")


#: A batch of captures holds at most this many bytes of capture: a Zeek run's vectors (one row per
#: connection and depth) are read whole, so the batch bounds what one process holds, whatever the corpus.
MAX_BATCH_BYTES = 4 * 1024 * 1024


class BatchSink(Protocol):
    """Takes one batch's vectors where they were made (in the worker process), with the batch's captures
    and the problems found in them, and returns what the caller keeps: something small (where it wrote
    them, say), so that a corpus's vectors need never be in one process."""

    def __call__(self, batch: int, captures: list[str], vectors: pd.DataFrame,
                 problems: list[CaptureProblem]) -> Any: ...

    def narrow(self, captures: list[str]) -> "BatchSink":
        """The sink one batch gets: what it carries about other captures (their labels) left behind."""


@dataclass
class CorpusRun:
    """Vectors of all captures (column ``capture`` added, ``ts`` in original time), or with a sink, what
    it returned for each batch, in batch order."""

    vectors: pd.DataFrame
    problems: list[CaptureProblem] = field(default_factory=list)
    zeek_cpu_s: float = 0.0
    zeek_runs: int = 0
    captures_done: int = 0
    parts: list = field(default_factory=list)


@dataclass
class _BatchResult:
    vectors: list[pd.DataFrame]
    problems: list[CaptureProblem]
    cpu_s: float
    runs: int
    captures: int
    index: int = 0
    part: Any = None

    def add_run(self, vectors: pd.DataFrame, cpu_s: float) -> None:
        self.vectors.append(vectors)
        self.cpu_s += cpu_s
        self.runs += 1


def _run_stream(ms: MergedStream, scripts: list[Path], workdir: Path, zeek: Path,
                timeout: float | None, native: bool = False,
                deployment: str = "bare") -> tuple[pd.DataFrame, float, list[str]]:
    bare, before = deployment_invocation(deployment)
    run = run_zeek(ms.path, [*before, *scripts], workdir=workdir, bare=bare, redefs=STREAM_REDEFS, zeek=zeek,
                   timeout=timeout, native=native)
    notes = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    log = run.log("cato")
    df = read_zeek_log(log) if log.exists() else pd.DataFrame()
    if df.empty:
        return df, run.cpu_s, notes
    if "packet_index" in df.columns:  # where each vector's packet lies: the time before it, from its start
        before_us = ms.network_time_before(df["packet_index"].fillna(0).to_numpy(dtype="int64"))
        df["previous_after"] = (before_us - (df["ts"].to_numpy() * 1e6).round()) / 1e6
        df = df.drop(columns="packet_index")
    caps, ts = [], []
    for t in df["ts"]:
        seg = ms.segment_at(t)
        caps.append(seg.capture if seg else None)
        ts.append(t - seg.offset_ns / 1e9 if seg else t)
    df.insert(0, "capture", pd.array(caps, dtype="string"))
    df["ts"] = ts
    return df, run.cpu_s, notes


def _failure(e: ZeekError) -> str:
    if e.timed_out:
        return f"Zeek hung on it: {e}"
    return f"Zeek cannot read it: {e}"


def _run_batch(script: str, captures: list[tuple[str, str]], tmp: str | None, zeek: str,
               timeout: float | None, native: bool = False, index: int = 0,
               sink: BatchSink | None = None, deployment: str = "bare") -> _BatchResult:
    """One batch of captures through Zeek. ``script`` is the generated script's text; ``tmp`` the
    directory to work in (None: the system's, as on another machine, where the caller's is not)."""
    workdir = Path(tempfile.mkdtemp(prefix="cato-batch-", dir=tmp))
    try:
        generated = workdir / "cato-features.zeek"
        generated.write_text(script)
        out = _zeek_over(captures, [static_load_script(), generated], workdir, zeek, timeout, native, deployment)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out.index = index
    if sink is not None:
        frames = [f for f in out.vectors if not f.empty]
        out.part = sink(index, [name for name, _ in captures],
                        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), out.problems)
        out.vectors = []
    return out


def _zeek_over(captures: list[tuple[str, str]], scripts: list[Path], workdir: Path, zeek: str,
               timeout: float | None, native: bool, deployment: str = "bare") -> _BatchResult:
    caps, failed = read_captures(captures)
    problems: list[CaptureProblem] = [CaptureProblem(name, reason, True) for name, reason in failed]
    for cap in caps:
        if cap.truncated:
            problems.append(CaptureProblem(cap.path, f"{cap.truncated}; the {len(cap.packets)} packets before "
                                                     "it were used", False))
        elif not cap.packets:
            problems.append(CaptureProblem(cap.path, "a valid capture holding no packet", True))
    loaded: dict[str, Capture] = {cap.path: cap for cap in caps if cap.packets}
    out = _BatchResult([], problems, 0.0, 0, len(captures))
    streams = merge_captures(list(loaded.values()), workdir, "stream")
    for i, ms in enumerate(streams):
        try:
            df, cpu, notes = _run_stream(ms, scripts, workdir / f"run{i}", Path(zeek), timeout, native, deployment)
            out.add_run(df, cpu)
            for note in notes[:3]:
                problems.append(CaptureProblem(",".join(s.capture for s in ms.segments[:3]), note, False))
            continue
        except ZeekError as e:
            if len(ms.segments) == 1:
                problems.append(CaptureProblem(ms.segments[0].capture, _failure(e), True))
                continue
        # Zeek failed on the merged stream: find the culprit by running each capture alone.
        for j, seg in enumerate(ms.segments):
            single = merge_captures([loaded[seg.capture]], workdir, f"alone{i}-{j}")
            for k, one in enumerate(single):
                try:
                    df, cpu, _ = _run_stream(one, scripts, workdir / f"run{i}-{j}-{k}", Path(zeek), timeout, native,
                                             deployment)
                    out.add_run(df, cpu)
                except ZeekError as e:
                    problems.append(CaptureProblem(seg.capture, _failure(e), True))
    # A capture Zeek read without complaint but made nothing of (a link type it does not decode, say,
    # where it stays silent) is named too, not passed over.
    seen = {c for df in out.vectors if not df.empty for c in df["capture"].dropna().unique()}
    named = {p.capture for p in problems if p.skipped}
    for name, cap in loaded.items():
        if name not in seen and name not in named:
            kinds = sorted({p.linktype for p in cap.packets})
            unknown = [k for k in kinds if k not in ZEEK_LINKTYPES]
            why = (f"link type {', '.join(map(str, unknown))}, which Zeek does not decode" if unknown
                   else f"link type {', '.join(map(str, kinds))}")
            problems.append(CaptureProblem(name, f"Zeek saw no connection in its {len(cap.packets)} packets "
                                                 f"({why})", True))
    return out


def plan_batches(paths: Sequence[Path], jobs: int, max_bytes: int = MAX_BATCH_BYTES) -> list[list[int]]:
    """Split captures (indices, kept in order) into batches of similar byte size: a few per job, for a
    live progress bar and balanced workers, each far larger than Zeek's start-up cost, and none much
    above ``max_bytes`` (a capture larger than that is a batch of its own)."""
    sizes = [max(p.stat().st_size, 1) if p.exists() else 1 for p in paths]
    total = sum(sizes)
    target = min(max(total / (jobs * 4), 2 * 1024 * 1024), max_bytes)
    batches: list[list[int]] = [[]]
    acc = 0
    for i, size in enumerate(sizes):
        if acc >= target and batches[-1]:
            batches.append([])
            acc = 0
        batches[-1].append(i)
        acc += size
    return [b for b in batches if b]


def run_over_captures(
    script_path: Path,
    captures: Sequence[tuple[str, Path]],
    *,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
    zeek: Path | None = None,
    timeout: float | None = None,
    native: bool = False,
    sink: BatchSink | None = None,
    executor: Executor | None = None,
    deployment: str = "bare",
) -> CorpusRun:
    """Run ``script_path`` (after cato's static scripts) over ``captures`` (name, path); ``native``: the
    script uses the native engine (cato's plugin); ``deployment``: what Zeek runs before cato's scripts
    (``cato.zeek.DEPLOYMENTS``). With ``sink``, each batch's vectors go to it in the
    process that made them, and ``parts`` holds what it returned, in batch order (batches are runs of
    consecutive ``captures``).

    Each Zeek run is killed after ``timeout`` seconds (None: ``$CATO_ZEEK_TIMEOUT`` or 600 s): a merged
    stream that fails or hangs is run again capture by capture, so a capture that makes Zeek hang costs
    two timeouts and is reported as skipped, and the others are kept.

    Batches run on ``executor`` (``cato.executors``; by default ``jobs`` processes on this machine, or
    this process alone with one job or one batch), as Ray tasks for instance: a batch is then planned
    for ``executor.slots`` workers, works in its own machine's temporary directory, and its sink writes
    where the sink says (a path every node must see)."""
    zeek = zeek or find_zeek()
    jobs = max(1, jobs or os.cpu_count() or 1)
    batches = plan_batches([p for _, p in captures], executor.slots if executor is not None else jobs)
    frames: list[pd.DataFrame] = []
    result = CorpusRun(pd.DataFrame())
    with tempfile.TemporaryDirectory(prefix="cato-run-") as tmp:
        # Elsewhere (another machine), this process's temporary directory is not there.
        where = tmp if executor is None else None
        script = Path(script_path).read_text()
        args = [(script, [(captures[i][0], str(captures[i][1])) for i in b], where, str(zeek), timeout,
                 native, k, sink.narrow([captures[i][0] for i in b]) if sink is not None else None, deployment)
                for k, b in enumerate(batches)]
        run = executor or LocalExecutor(1 if len(batches) == 1 else jobs)
        try:
            for br in run.map_unordered(_run_batch, args):
                _collect(result, frames, br, progress)
        finally:
            if executor is None:
                run.close()
    frames = [f for f in frames if not f.empty]
    result.vectors = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    result.parts = [part for _, part in sorted(result.parts, key=lambda p: p[0])]
    return result


def _collect(result: CorpusRun, frames: list, br: _BatchResult, progress) -> None:
    frames.extend(br.vectors)
    if br.part is not None:
        result.parts.append((br.index, br.part))
    result.problems.extend(br.problems)
    result.zeek_cpu_s += br.cpu_s
    result.zeek_runs += br.runs
    result.captures_done += br.captures
    if progress:
        progress(br.captures)
