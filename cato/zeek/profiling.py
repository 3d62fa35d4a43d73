"""Measured serving cost of a generated script: ``cato profile``.

Everything here is measured on real Zeek over a real corpus, merged into streams as for
extraction so that Zeek's start-up does not drown the per-packet cost:

* whole-process Zeek CPU (user+sys, from wait4) and peak memory, with the script and with a
  baseline (the same invocation without it), median and spread of ``repeat`` runs;
* attribution from Zeek's ``--profile-scripts``: CPU spent in the event handlers of cato's scripts
  (including everything they call), calibrated by the profiler's own slow-down;
* steady-state CPU per connection: the baseline's CPU less its start-ups (measured on an empty capture,
  once per stream, since a deployment starts once), plus the script's marginal CPU: the cost
  ``cato tune`` optimises;
* time-to-decision per connection: network time from its first packet to the packet that completed
  its vector (the Nth, or the last one when it ended first), p50 and p95.

Results are cached by (script hash, corpus content hash, Zeek version, baseline, repeat). An unpaired
profile's baseline is cached once per corpus and per machine (:func:`machine_identity`): a cost is
normalised by a baseline measured on the machine that measured the script.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import statistics
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd

from cato.cache import default_cache_dir, private_name, write_text_atomic
from cato.codegen import GeneratedScript
from cato.corpus import Corpus, merge_captures, read_captures
from cato.corpus.pcapio import write_pcap_header
from cato.zeek.corpus_run import STREAM_REDEFS
from cato.zeek.logs import read_zeek_log
from cato.zeek.runner import (DEPLOYMENTS, ZAM_ARGS, ZeekError, deployment_invocation, find_zeek, native_plugin_dir,
                              run_zeek, zeek_version)
from cato.codegen.static import static_load_script, static_scripts_dir, static_scripts_sha256

BASELINES = ("bare", "default")
PROFILE_VERSION = 8
#: Runs over an empty capture that measure Zeek's start-up (median taken).
STARTUP_RUNS = 3
#: Measurements of a cached baseline until its start-ups come out below its whole runs.
BASELINE_ATTEMPTS = 3


class ProfileError(RuntimeError):
    pass


class StreamFailed(ProfileError):
    """Zeek failed or hung on one merged stream of the corpus."""

    def __init__(self, stream: Path, error: ZeekError, invocation: tuple = ((), True, (), False)):
        self.stream = stream
        self.error = error
        #: (scripts, bare, extra arguments) of the Zeek run that failed
        self.invocation = invocation
        #: The captures of the stream that fail alone too, with the reason (filled in by the profile)
        self.culprits: dict[str, str] = {}
        names = stream_captures(stream) if (stream.parent / "manifest.json").exists() else []
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        super().__init__(f"{error} (captures {shown or stream.name})")


class VectorTimer(Protocol):
    """Times inference on the vectors a profiled run emitted (a model's, given by a later stage)."""

    #: What is timed (a model's content hash): part of the profile's cache key.
    key: str

    def time_vectors(self, vectors: pd.DataFrame) -> dict:
        """Latency figures (ms) of inference over ``vectors`` (rows of ``cato.log``)."""


@dataclass
class CostProfile:
    features: list[str]
    depths: list[int]
    strategy: str
    baseline: str
    repeat: int
    connections: int
    packets: int
    cpu_s: float
    cpu_s_runs: list[float]
    baseline_cpu_s: float
    baseline_cpu_s_runs: list[float]
    cpu_ratio: float
    marginal_cpu_us_per_conn: float
    marginal_cpu_us_per_pkt: float
    script_cpu_s: float
    script_cpu_us_per_conn: float
    script_cpu_us_per_pkt: float
    profiler_slowdown: float
    peak_rss_mb: float
    baseline_peak_rss_mb: float
    pkts_per_cpu_s: float
    baseline_pkts_per_cpu_s: float
    conns_per_cpu_s: float
    baseline_conns_per_cpu_s: float
    time_to_decision_ms: dict
    zeek_version: str
    script_sha256: str
    corpus_hash: str
    #: Zeek runs the corpus took (one per merged stream), and the CPU of one start-up (the baseline
    #: invocation over an empty capture): a deployment starts once, so steady-state figures leave them out.
    streams: int = 0
    startup_cpu_s: float = 0.0
    steady_cpu_us_per_conn: float = 0.0
    baseline_steady_cpu_us_per_conn: float = 0.0
    #: Latency of one-vector inferences (ms; p50, p95) when a model was given (``cato profile --model``).
    inference_ms: dict | None = None
    #: Whether every run (baseline included) compiled its scripts with Zeek's ``-O ZAM``.
    zam: bool = False
    #: The engine that computed the features: ``script`` or ``native`` (cato's plugin).
    engine: str = "script"
    #: The machine that measured the profile, its baseline too (:func:`machine_key`); empty in profiles
    #: cached before it was recorded.
    machine: str = ""
    #: Whether each round ran its own baseline (see :func:`profile`); ``cpu_ratio`` is then the median
    #: of the per-round ratios in ``cpu_ratio_runs``, and the marginal CPU the median per-round difference.
    paired: bool = False
    cpu_ratio_runs: list[float] = field(default_factory=list)
    cached: bool = False
    attribution: list[dict] = field(default_factory=list)
    #: Captures left out of the measurement, with the reason: Zeek failed or hung on each alone.
    left_out: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _cached_streams(root: Path) -> tuple[list[Path], int] | None:
    manifest = root / "manifest.json"
    if not manifest.exists():
        return None
    data = json.loads(manifest.read_text())
    paths = [root / p for p in data["streams"]]
    return (paths, data["packets"]) if all(p.exists() for p in paths) else None


def _exclusion_tag(exclude) -> str:
    return "-less-" + hashlib.sha256("\n".join(sorted(exclude)).encode()).hexdigest()[:12] if exclude else ""


def unreadable_captures(streams: Sequence[Path]) -> dict[str, str]:
    """The captures :func:`corpus_streams` could not read (or that hold no packet), with the reason."""
    if not streams:
        return {}
    return json.loads((streams[0].parent / "manifest.json").read_text()).get("unreadable", {})


def stream_captures(stream: Path) -> list[str]:
    """The captures merged into ``stream`` (one of :func:`corpus_streams`), in order."""
    data = json.loads((stream.parent / "manifest.json").read_text())
    return data.get("captures", {}).get(stream.name, [])


def corpus_streams(corpus: Corpus, cache_dir: Path, corpus_hash: str,
                   exclude: Sequence[str] = ()) -> tuple[list[Path], int]:
    """The corpus merged into streams, cached by content hash. Returns (stream paths, packets).

    ``exclude``: captures left out (ones Zeek fails or hangs on)."""
    root = cache_dir / "streams" / (corpus_hash[:24] + _exclusion_tag(exclude))
    cached = _cached_streams(root)
    if cached:
        return cached
    # Merged in a folder of this process's own, then renamed into place whole: another process may be
    # merging the same corpus, or already running Zeek on the streams in place.
    work = private_name(root)
    work.mkdir(parents=True)
    try:
        # Extraction reports unreadable captures; cost is measured on the rest.
        left_out = set(exclude)
        caps, failed = read_captures([(name, corpus.path_of(name)) for name in corpus.captures
                                      if name not in left_out])
        unreadable = dict(failed) | {c.path: "a valid capture holding no packet" for c in caps if not c.packets}
        caps = [c for c in caps if c.packets]
        streams = merge_captures(caps, work, "stream")
        packets = sum(seg.packets for s in streams for seg in s.segments)
        (work / "manifest.json").write_text(json.dumps({
            "streams": [s.path.name for s in streams], "packets": packets, "unreadable": unreadable,
            "captures": {s.path.name: [seg.capture for seg in s.segments] for s in streams}}))
        if root.exists() and not _cached_streams(root):
            shutil.rmtree(root)  # incomplete: left by a crash
        try:
            os.rename(work, root)
        except OSError:  # another process put its streams in place first
            pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cached = _cached_streams(root)
    if not cached:
        raise ProfileError(f"{root}: merged streams missing after the merge")
    return cached


def native_plugin_sha256() -> str:
    """Hash of the native engine's plugin library (part of a native profile's cache key): a rebuilt
    plugin is measured anew."""
    root = native_plugin_dir()
    libs = sorted(root.glob("lib/*.so")) if root else []
    return hashlib.sha256(b"".join(p.read_bytes() for p in libs)).hexdigest() if libs else "installed"


def _cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (x86's ``model name``; ARM's ``Hardware``, ``Model``
    or implementer and part), else what :mod:`platform` knows."""
    try:
        fields = {}
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            name, sep, value = line.partition(":")
            if sep and value.strip():
                fields.setdefault(name.strip().lower(), value.strip())
    except OSError:
        fields = {}
    for name in ("model name", "hardware", "model", "cpu model"):
        if name in fields:
            return fields[name]
    if "cpu implementer" in fields:
        return f"{fields['cpu implementer']}/{fields.get('cpu part', '')}"
    return platform.processor() or platform.machine()


def machine_identity(zeek: Path | None = None) -> dict:
    """What names the machine measuring a baseline (part of an unpaired baseline's cache key): the host,
    its CPU model, architecture and CPU count, and the Zeek binary that runs (its resolved path, size
    and modification time; its version is in the key already). Under Ray a trial runs on any node, and
    its cost is normalised by the baseline of the node that ran it; a rebuilt Zeek is measured anew."""
    identity = {"host": platform.node(), "cpu": _cpu_model(), "arch": platform.machine(),
                "cpus": os.cpu_count() or 0}
    if zeek is not None:
        path = Path(zeek).resolve()
        try:
            st = path.stat()
            identity["zeek"] = [str(path), st.st_size, st.st_mtime_ns]
        except OSError:
            identity["zeek"] = [str(path)]
    return identity


def machine_key(identity: dict) -> str:
    """A short hash of a :func:`machine_identity`."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def _baseline_invocation(baseline: str) -> tuple[bool, list[Path | str]]:
    """(bare?, scripts) of the baseline Zeek invocation."""
    if baseline in DEPLOYMENTS:
        return deployment_invocation(baseline)
    path = Path(baseline)
    if not path.is_file():
        raise ProfileError(f"baseline {baseline!r} is neither bare, default nor a Zeek script file")
    return False, [path]


def zeek_cpu(streams: Sequence[Path], scripts: list, workdir: Path, *, zeek: Path, bare: bool = True,
             extra_args: Sequence[str] = (), native: bool = False, redefs: Mapping[str, str] | None = None) -> float:
    """Zeek's CPU seconds (user + system) over ``streams`` with ``scripts``, run as a profile runs them:
    one stream at a time, with the streams' settings; a failed run raises, naming its stream."""
    return _run_all(streams, scripts, bare, workdir, zeek, extra_args, native, redefs)[0]


def _run_all(streams: Sequence[Path], scripts: list, bare: bool, workdir: Path, zeek: Path,
             extra_args: Sequence[str] = (), native: bool = False,
             redefs: Mapping[str, str] | None = None) -> tuple[float, float, list[Path]]:
    """Run over every stream; return (total CPU s, peak RSS MB, run dirs)."""
    cpu, rss, dirs = 0.0, 0.0, []
    for i, stream in enumerate(streams):
        d = workdir / f"s{i}"
        try:
            run = run_zeek(stream, scripts, workdir=d, bare=bare, redefs={**STREAM_REDEFS, **(redefs or {})},
                           zeek=zeek, extra_args=extra_args, native=native)
        except ZeekError as e:
            raise StreamFailed(stream, e, (scripts, bare, tuple(extra_args), native)) from e
        cpu += run.cpu_s
        rss = max(rss, run.max_rss_kb / 1024)
        dirs.append(d)
    return cpu, rss, dirs


def _startup_cpu(scripts: list, bare: bool, workdir: Path, zeek: Path, extra_args: Sequence[str] = ()) -> float:
    """Median CPU of the invocation over an empty capture: Zeek's start-up and shut-down."""
    workdir.mkdir(parents=True, exist_ok=True)
    empty = workdir / "empty.pcap"
    with open(empty, "wb") as out:
        write_pcap_header(out, 1)
    return statistics.median(run_zeek(empty, scripts, workdir=workdir / f"r{i}", bare=bare, redefs=STREAM_REDEFS,
                                      zeek=zeek, extra_args=extra_args).cpu_s for i in range(STARTUP_RUNS))


def _steady(cpu: float, runs: int, startup: float, conns: int) -> float:
    """CPU per connection (µs) with Zeek's start-ups left out."""
    return max(cpu - runs * startup, 0.0) / max(conns, 1) * 1e6


@dataclass
class HandlerProfile:
    """One ``--profile-scripts`` run of a generated script: the CPU of cato's event handlers (their
    callees included, as the profiler counts it), the connections logged, and how often each of cato's
    event handlers ran. The calls are exact and repeatable, the CPU is not."""
    cpu_s: float
    connections: int
    event_calls: dict[str, int]


def profiled_handler_cpu(corpus: Corpus, script: GeneratedScript, workdir: Path, *,
                         cache_dir: Path | None = None, zeek: Path | None = None) -> HandlerProfile:
    """One run of ``script`` over ``corpus`` under ``--profile-scripts``.

    The script's own work alone, without Zeek's start-up and packet path, which every configuration
    shares: on a small corpus those are most of the process CPU, and their jitter hides what tells
    configurations apart. The CPU includes the profiler's own per-call overhead."""
    zeek = zeek or find_zeek()
    streams, _ = corpus_streams(corpus, cache_dir or default_cache_dir(), corpus.content_hash())
    if not streams:
        raise ProfileError(f"{corpus.root}: no readable packets")
    workdir.mkdir(parents=True, exist_ok=True)
    gen = workdir / "cato-features.zeek"
    gen.write_text(script.text)
    _, cpu, rows, dirs = _profiled_run(streams, [static_load_script(), gen], gen, True, workdir / "run", zeek,
                                       native=script.engine == "native")
    conns = sum(int(read_zeek_log(d / "cato.log")["uid"].nunique()) for d in dirs if (d / "cato.log").exists())
    calls = {f"{fn} {loc}": r["calls"] for (fn, loc, kind), r in rows.items() if kind == "event"}
    return HandlerProfile(cpu, conns, calls)


def _profiled_run(streams: Sequence[Path], scripts: list, gen: Path, bare: bool, workdir: Path, zeek: Path,
                  extra_args: Sequence[str] = (), native: bool = False) -> tuple[float, float, dict, list[Path]]:
    """One run over every stream under ``--profile-scripts``: (process CPU s, CPU s of cato's event
    handlers incl. callees, per-body rows of cato's files summed over the streams, run dirs)."""
    cpu, _, dirs = _run_all(streams, scripts, bare, workdir, zeek,
                            extra_args=[*extra_args, "--profile-scripts=prof.log"], native=native)
    ours = [*static_scripts_dir().glob("*.zeek"), gen]
    handlers, rows_by_body = 0.0, {}
    for d in dirs:
        mine, _, rows = parse_script_profile(d / "prof.log", ours)
        handlers += mine
        for row in rows:
            acc = rows_by_body.setdefault((row["function"], row["location"], row["type"]),
                                          {**row, "calls": 0, "cpu_s": 0.0})
            acc["calls"] += row["calls"]
            acc["cpu_s"] += row["cpu_s"]
    return cpu, handlers, rows_by_body, dirs


def _baseline_runs(streams, baseline, bare, scripts, repeat, zeek, cache_file: Path, use_cache: bool,
                   step, extra_args: Sequence[str] = (), machine: dict | None = None
                   ) -> tuple[list[float], float, float]:
    """CPU of each baseline run, its peak RSS and start-up CPU; cached, since every configuration measured
    on this machine (``cache_file`` names it) shares it."""
    if use_cache and cache_file.exists():
        data = json.loads(cache_file.read_text())
        return data["cpu_s_runs"], data["peak_rss_mb"], data["startup_cpu_s"]
    for _ in range(BASELINE_ATTEMPTS):
        runs, rss = [], 0.0
        with tempfile.TemporaryDirectory(prefix="cato-baseline-") as tmp:
            for r in range(repeat):
                step(f"baseline run {r + 1}/{repeat}")
                c, m, _ = _run_all(streams, scripts, bare, Path(tmp) / f"b{r}", zeek, extra_args)
                runs.append(c)
                rss = max(rss, m)
            startup = _startup_cpu(scripts, bare, Path(tmp) / "startup", zeek, extra_args)
        # Start-ups are part of every run: more than the whole is a machine whose speed moved between
        # the two measurements (nDPI's runs are mostly start-up).
        if len(streams) * startup < statistics.median(runs):
            break
    write_text_atomic(cache_file, json.dumps({"baseline": baseline, "cpu_s_runs": runs, "peak_rss_mb": rss,
                                             "startup_cpu_s": startup, "machine": machine or {}}))
    return runs, rss, startup


def parse_script_profile(path: Path, our_files: Sequence[Path]) -> tuple[float, float, list[dict]]:
    """From a ``--profile-scripts`` file: (CPU of our event handlers incl. callees, total script CPU,
    per-body rows of our files)."""
    ours = tuple(str(p.resolve()) for p in our_files)
    fields: list[str] = []
    rows, events_cpu, total = [], 0.0, 0.0
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split("\t")
        if line.startswith("#fields"):
            fields = parts[1:]
            continue
        if line.startswith("#") or not fields or len(parts) < len(fields):
            continue
        r = dict(zip(fields, parts))
        if r["function"] == "total":
            total = float(r["tot_CPU"])
        if not r["location"].rsplit(":", 1)[0].startswith(ours):
            continue
        cpu = float(r["tot_CPU"])
        if r["type"] == "event":
            events_cpu += cpu
        rows.append({"function": r["function"], "location": Path(r["location"]).name, "type": r["type"],
                     "calls": int(r["ncall"]), "cpu_s": cpu})
    return events_cpu, total, rows


def _left_out_file(cache_dir: Path, corpus_hash: str) -> Path:
    return cache_dir / "streams" / f"{corpus_hash[:24]}.left-out.json"


def _culprits(corpus: Corpus, failed: StreamFailed, zeek: Path, workdir: Path) -> dict[str, str]:
    """The captures of a failed stream on which, run alone, Zeek fails or hangs again."""
    scripts, bare, extra_args, native = failed.invocation
    workdir.mkdir(parents=True, exist_ok=True)
    found = {}
    for i, name in enumerate(stream_captures(failed.stream)):
        caps, bad = read_captures([(name, corpus.path_of(name))])
        if bad or not caps or not caps[0].packets:
            continue
        for ms in merge_captures(caps, workdir, f"alone{i}"):
            try:
                run_zeek(ms.path, scripts, workdir=workdir / f"alone{i}", bare=bare, redefs=STREAM_REDEFS,
                         zeek=zeek, extra_args=extra_args, native=native)
            except ZeekError as e:
                found[name] = ("Zeek hung on it: " if e.timed_out else "Zeek failed on it: ") + str(e).splitlines()[0]
    return found


def profile(
    corpus: Corpus,
    script: GeneratedScript,
    *,
    baseline: str = "bare",
    repeat: int = 5,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    attribute: bool = True,
    inference: VectorTimer | None = None,
    progress: Callable[[str], None] | None = None,
    zeek: Path | None = None,
    zam: bool = False,
    paired: bool = True,
) -> CostProfile:
    """Measure what ``script`` costs over ``corpus`` against ``baseline`` (see :func:`_profile` and
    :class:`CostProfile`).

    A capture on which Zeek fails or hangs (each run is killed after ``$CATO_ZEEK_TIMEOUT``) is found
    by running its merged stream's captures one by one, left out of this corpus's cost measurements
    from then on (so that every configuration is measured over the same captures), and named in
    ``left_out``; the rest is measured."""
    zeek = zeek or find_zeek()
    cache_dir = cache_dir or default_cache_dir()
    record = _left_out_file(cache_dir, corpus.content_hash())
    left_out: dict[str, str] = json.loads(record.read_text()) if record.exists() else {}
    while True:
        try:
            return _profile(corpus, script, baseline=baseline, repeat=repeat, cache_dir=cache_dir,
                            use_cache=use_cache, attribute=attribute, inference=inference, progress=progress,
                            zeek=zeek, zam=zam, paired=paired, left_out=left_out)
        except StreamFailed as failed:
            found, alone = failed.culprits, stream_captures(failed.stream)
            if not found or set(found) <= set(left_out):
                raise ProfileError(f"Zeek failed on a merged stream of {corpus.root}, but on none of its "
                                   f"captures alone: {failed}") from None
            if len(alone) > 1 and len(found) == len(alone):
                raise ProfileError(f"Zeek failed on every capture of a merged stream of {corpus.root} "
                                   f"alone: the scripts, not the captures, are at fault: {failed}") from None
            left_out.update(found)
            write_text_atomic(record, json.dumps(left_out, indent=1, sort_keys=True))


def _profile(
    corpus: Corpus,
    script: GeneratedScript,
    *,
    baseline: str = "bare",
    repeat: int = 5,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    attribute: bool = True,
    inference: VectorTimer | None = None,
    progress: Callable[[str], None] | None = None,
    zeek: Path | None = None,
    zam: bool = False,
    paired: bool = True,
    left_out: dict[str, str] | None = None,
) -> CostProfile:
    """Measure what ``script`` costs over ``corpus`` against ``baseline`` (see :class:`CostProfile`),
    leaving the captures in ``left_out`` aside.

    ``zam`` runs every Zeek invocation, the baseline's too, with ``-O ZAM``: scripts compiled to Zeek's
    abstract machine, as a deployment that enables it runs them.

    ``paired`` runs the baseline beside the script in every round (baseline, then script) and takes
    the ratio and the marginal CPU per round: a machine's speed drifts (here up to 25% within minutes),
    so a baseline measured earlier shifts every relative figure.
    Unpaired, the baseline is measured once per corpus and machine and cached (a study's cost objective
    needs only the script's own CPU, less start-ups): the machine's identity (:func:`machine_identity`)
    is in the baseline's key, so that on a cluster of unlike nodes each node normalises by its own. A
    script whose runs come out below the cached baseline's (a script only adds work) finds it stale: the
    baseline is measured again, and the cache replaced.
    """
    zeek = zeek or find_zeek()
    zeek_args = list(ZAM_ARGS) if zam else []
    native = script.engine == "native"
    cache_dir = cache_dir or default_cache_dir()
    version = zeek_version(zeek)
    chash = corpus.content_hash()
    bare, base_scripts = _baseline_invocation(baseline)
    base_key = baseline if baseline in BASELINES else hashlib.sha256(Path(baseline).read_bytes()).hexdigest()
    model_hash = inference.key if inference is not None else ""
    machine = machine_identity(zeek)
    key = hashlib.sha256(json.dumps([PROFILE_VERSION, script.sha256, static_scripts_sha256(), chash, version,
                                     base_key, repeat, attribute, model_hash, zam]
                                    + ([native_plugin_sha256()] if native else [])
                                    + (["paired"] if paired else [])
                                    + ([sorted(left_out)] if left_out else [])).encode()).hexdigest()
    cache_file = cache_dir / "profiles" / f"{key}.json"
    if use_cache and cache_file.exists():
        data = json.loads(cache_file.read_text())
        data["cached"] = True
        return CostProfile(**data)

    step = progress or (lambda _msg: None)
    step("merging captures")
    left_out = dict(left_out or {})
    streams, packets = corpus_streams(corpus, cache_dir, chash, exclude=sorted(left_out))
    if not streams:
        raise ProfileError(f"{corpus.root}: no readable packets")
    with tempfile.TemporaryDirectory(prefix="cato-profile-") as tmp:
        work = Path(tmp)
        gen = work / "cato-features.zeek"
        gen.write_text(script.text)
        with_script = [*base_scripts, static_load_script(), gen]
        try:
            cpu_runs, rss = [], 0.0
            dirs: list[Path] = []
            if paired:  # baseline runs come in the rounds below
                base_runs, base_rss = [], 0.0
                base_startup = _startup_cpu(base_scripts, bare, work / "startup", zeek, zeek_args)
            else:
                base_cache = cache_dir / "baselines" / (f"v{PROFILE_VERSION}-{chash[:24]}-{base_key[:16]}-{version}-"
                                                        f"{repeat}-{machine_key(machine)}{'-zam' if zam else ''}"
                                                        f"{_exclusion_tag(left_out)}.json")
                base_runs, base_rss, base_startup = _baseline_runs(streams, baseline, bare, base_scripts, repeat,
                                                                   zeek, base_cache, use_cache, step, zeek_args,
                                                                   machine)
            for r in range(repeat):
                if paired:
                    step(f"baseline run {r + 1}/{repeat}")
                    c, m, _ = _run_all(streams, base_scripts, bare, work / f"base{r}", zeek, zeek_args)
                    base_runs.append(c)
                    base_rss = max(base_rss, m)
                step(f"script run {r + 1}/{repeat}")
                c, m, dirs = _run_all(streams, with_script, bare, work / f"script{r}", zeek, zeek_args, native)
                cpu_runs.append(c)
                rss = max(rss, m)
            if not paired and statistics.median(cpu_runs) < statistics.median(base_runs):
                # A script only adds work: below the cached baseline, the baseline was measured on a
                # busier machine (a shared one's speed drifts by a quarter within minutes). Measure it
                # again now, for this and every later configuration.
                base_runs, base_rss, base_startup = _baseline_runs(streams, baseline, bare, base_scripts, repeat,
                                                                   zeek, base_cache, False, step, zeek_args,
                                                                   machine)
            vectors = pd.concat([read_zeek_log(d / "cato.log") for d in dirs if (d / "cato.log").exists()],
                                ignore_index=True)
            attributed, attribution, prof_cpu = 0.0, {}, float("nan")
            if attribute:
                step("profiled run")
                prof_cpu, attributed, attribution, _ = _profiled_run(streams, with_script, gen, bare, work / "prof",
                                                                      zeek, zeek_args, native)
        except StreamFailed as failed:  # find the culprits while the scripts are still here
            failed.culprits = _culprits(corpus, failed, zeek, work / "culprits")
            raise

    cpu = statistics.median(cpu_runs)
    base = statistics.median(base_runs)
    if paired:  # relative figures from each round's own baseline
        ratio_runs = [c / b if b > 0 else float("nan") for c, b in zip(cpu_runs, base_runs)]
        marginal = statistics.median(c - b for c, b in zip(cpu_runs, base_runs))
    else:
        ratio_runs = [c / base if base > 0 else float("nan") for c in cpu_runs]
        marginal = cpu - base
    conns = int(vectors["uid"].nunique()) if len(vectors) else 0
    slowdown = prof_cpu / cpu if cpu > 0 else float("nan")
    # The profiler slows Zeek down; scale what it attributes back to unprofiled CPU.
    script_cpu = attributed / slowdown if slowdown > 0 else float("nan")
    last_depth = max(script.depths)
    ttd = vectors.loc[vectors["depth"] == last_depth, "decided_after"].to_numpy(dtype=float) * 1000.0
    if script.deadline:
        # Reading a trace, Zeek notices a deadline only when a packet comes (dating the vector at it
        # if it is the connection's own); live, its clock moves on without packets and the deadline
        # is on time.
        ttd = np.minimum(ttd, script.deadline * 1000.0)
    inference_ms = None
    if inference is not None:
        step("inference")
        inference_ms = inference.time_vectors(vectors[vectors["depth"] == last_depth])
    at_end = vectors.loc[vectors["depth"] == last_depth, "pkts_seen"] < last_depth
    base_steady = _steady(base, len(streams), base_startup, conns)
    result = CostProfile(
        features=[f.name for f in script.features], depths=list(script.depths), strategy=script.strategy,
        baseline=baseline, repeat=repeat, connections=conns, packets=packets,
        cpu_s=cpu, cpu_s_runs=cpu_runs, baseline_cpu_s=base, baseline_cpu_s_runs=base_runs,
        cpu_ratio=statistics.median(ratio_runs), cpu_ratio_runs=ratio_runs, paired=paired,
        marginal_cpu_us_per_conn=marginal / max(conns, 1) * 1e6,
        marginal_cpu_us_per_pkt=marginal / max(packets, 1) * 1e6,
        script_cpu_s=script_cpu,
        script_cpu_us_per_conn=script_cpu / max(conns, 1) * 1e6,
        script_cpu_us_per_pkt=script_cpu / max(packets, 1) * 1e6,
        profiler_slowdown=slowdown,
        peak_rss_mb=rss, baseline_peak_rss_mb=base_rss,
        pkts_per_cpu_s=packets / cpu if cpu else 0.0, baseline_pkts_per_cpu_s=packets / base if base else 0.0,
        conns_per_cpu_s=conns / cpu if cpu else 0.0, baseline_conns_per_cpu_s=conns / base if base else 0.0,
        time_to_decision_ms={
            "p50": float(np.percentile(ttd, 50)) if len(ttd) else 0.0,
            "p95": float(np.percentile(ttd, 95)) if len(ttd) else 0.0,
            "mean": float(ttd.mean()) if len(ttd) else 0.0,
            "max": float(ttd.max()) if len(ttd) else 0.0,
            "ended_before_depth": float(at_end.mean()) if len(at_end) else 0.0,
        },
        zeek_version=version, script_sha256=script.sha256, corpus_hash=chash, inference_ms=inference_ms,
        streams=len(streams), startup_cpu_s=base_startup,
        # Start-ups measured once, on the baseline: the script's runs start as often, so its marginal CPU
        # has none; subtracting its own start-ups instead left cheap scripts at 0 within noise on nDPI.
        steady_cpu_us_per_conn=base_steady + max(marginal, 0.0) / max(conns, 1) * 1e6,
        baseline_steady_cpu_us_per_conn=base_steady,
        attribution=sorted(attribution.values(), key=lambda r: -r["cpu_s"]),
        zam=zam, engine=script.engine, left_out={**unreadable_captures(streams), **left_out},
        machine=machine_key(machine),
    )
    write_text_atomic(cache_file, json.dumps(result.to_dict(), indent=1))
    return result
