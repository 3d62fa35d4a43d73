"""``cato serve PKG --replay CAPTURE --out DIR``: try a package on a capture before deploying it.

Zeek reads the capture with the package loaded and waits for the worker before it starts; when the
capture runs out it makes the vectors of the connections still open, and terminates once every
vector has its verdict (see ``zeek-scripts/serving/replay.zeek``). Zeek's logs stay in DIR.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cato.deploy.serve import ServeError, Worker, WorkerStats
from cato.deploy.zeek_side import serving_text
from cato.corpus import CaptureError, read_capture
from cato.corpus.pcapio import write_packet, write_pcap_header
from cato.zeek import deployment_invocation, find_zeek, native_plugin_dir, read_zeek_log
from cato.zeek.corpus_run import ZEEK_LINKTYPES

#: Name of the settings script written into DIR (the listener's port), loaded after ``replay.zeek``.
REPLAY_SCRIPT = "cato-replay.zeek"


@dataclass
class ReplayResult:
    out: Path
    stats: WorkerStats
    #: TCP and UDP connections in conn.log, and how many of them have a verdict.
    connections: int
    answered: int
    verdicts: int
    notices: int
    zeek_returncode: int
    #: What was done about a damaged capture (see :func:`check_capture`).
    notes: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        return self.answered / self.connections if self.connections else 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    """Whether a TCP socket of this host listens on ``port``: read from the kernel's table where there is
    one (Linux), so that no probe connection makes Zeek's WebSocket server log a bad request."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    for table in tables:
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 3 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _wait_listening(port: int, zeek: subprocess.Popen, out: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if zeek.poll() is not None:
            raise ServeError(f"Zeek exited ({zeek.returncode}) before listening; see {out / 'zeek.stderr'}: "
                             + (out / "zeek.stderr").read_text(errors="replace")[-2000:])
        if listening(port):
            return
        time.sleep(0.05)
    raise ServeError(f"Zeek did not listen on 127.0.0.1:{port} within {timeout:.0f}s; see {out / 'zeek.stderr'}")


#: Captures up to this size are read by cato before the replay, for a clear error instead of Zeek's.
CHECK_BYTES = 256 * 1024 * 1024


def check_capture(capture: Path, out: Path) -> tuple[Path, str | None]:
    """Refuse, by name and cause, a capture Zeek could not replay: not a capture, no packet, or only
    link types Zeek does not decode. Zeek stops with a fatal error at the cut of a truncated capture
    and writes no log, so its packets before the cut are replayed from a copy in ``out``.
    Returns (the capture to replay, a note on what was done)."""
    if capture.stat().st_size > CHECK_BYTES:
        return capture, None
    try:
        cap = read_capture(capture)
    except CaptureError as e:
        raise ServeError(str(e)) from None
    if not cap.packets:
        raise ServeError(f"{capture}: a valid capture holding no packet")
    kinds = sorted({p.linktype for p in cap.packets})
    if not set(kinds) & ZEEK_LINKTYPES:
        raise ServeError(f"{capture}: link type {', '.join(map(str, kinds))}, which Zeek does not decode")
    if not cap.truncated:
        return capture, None
    link = max(kinds, key=lambda k: sum(p.linktype == k for p in cap.packets))
    kept = [p for p in cap.packets if p.linktype == link]
    copy = out / f"readable-{capture.stem}.pcap"
    with open(copy, "wb") as f:
        write_pcap_header(f, link)
        for p in kept:
            write_packet(f, p.ts_ns, p.data, p.orig_len)
    return copy, f"{capture}: {cap.truncated}; replaying the {len(kept)} packets before it from {copy}"


def replay(package: Path, capture: Path, out: Path, *, zeek: Path | None = None, batch: int = 256,
           max_wait_ms: float = 0.0, timeout: float = 600.0, default_scripts: bool = True,
           pseudo_realtime: float | None = None, extra_scripts: tuple[str, ...] = (),
           queue_size: int = 100_000) -> ReplayResult:
    """Replay ``capture`` through Zeek with ``package`` and its worker; ``pseudo_realtime`` paces the
    packets at their own times sped up by that factor (as live traffic arrives), instead of at once."""
    package, capture, out = Path(package).resolve(), Path(capture).resolve(), Path(out)
    if not capture.is_file():
        raise ServeError(f"{capture}: capture not found")
    # Zeek waits for the verdict of every vector it published: a vector dropped would stall the replay.
    worker = Worker(package, batch=batch, max_wait_ms=max_wait_ms, reconnect=False, queue_size=queue_size,
                    lossless=True)  # refuses a bad package first
    out.mkdir(parents=True, exist_ok=True)
    source = capture
    capture, note = check_capture(capture, out)
    port = free_port()
    worker.url = f"ws://127.0.0.1:{port}"
    # The replay's steps, in the package's module, then its port.
    (out / REPLAY_SCRIPT).write_text(serving_text("replay.zeek", worker.scorer.manifest.module)
                                     + f"\nredef Cato::websocket_port = {port}/tcp;\n")
    # As the package's deployment runs Zeek (the one its study extracted under; default scripts and
    # local.zeek for a package that does not say); or bare, the parity check's, with conn.log still
    # written: it is what the verdicts are counted against.
    deployed = worker.scorer.manifest.extra.get("deployment") or "default"
    bare, before = deployment_invocation(deployed if default_scripts else "bare")
    scripts = (["-b", "base/protocols/conn"] if bare else []) + before
    pacing = [f"--pseudo-realtime={pseudo_realtime:g}"] if pseudo_realtime else []
    argv = [str(zeek or find_zeek()), "-C", "-r", str(capture), *pacing, *scripts, str(package / "scripts"),
            REPLAY_SCRIPT, *extra_scripts]
    env = dict(os.environ)
    plugin = native_plugin_dir() if worker.scorer.manifest.extra.get("engine") == "native" else None
    if plugin is not None:  # the native engine's plugin, from this checkout (else where zkg put it)
        env["ZEEK_PLUGIN_PATH"] = os.pathsep.join(filter(None, [str(plugin), env.get("ZEEK_PLUGIN_PATH")]))
    with open(out / "zeek.stdout", "wb") as stdout, open(out / "zeek.stderr", "wb") as stderr:
        proc = subprocess.Popen(argv, cwd=out, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env)
    try:
        _wait_listening(port, proc, out, 60.0)
        try:
            stats = asyncio.run(asyncio.wait_for(worker.run(), timeout))
        except TimeoutError:
            raise ServeError(f"the replay of {capture} did not finish within {timeout:.0f}s") from None
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.terminate()  # Zeek writes its logs on a clean shutdown
            proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        tail = "\n".join((out / "zeek.stderr").read_text(errors="replace").strip().splitlines()[-5:])
        raise ServeError(f"Zeek exited with {proc.returncode} replaying {source}; its logs in {out} may be "
                         f"incomplete:\n{tail}")
    result = _result(out, stats, proc.returncode)
    result.notes = [note] if note else []
    return result


def _log(out: Path, name: str) -> pd.DataFrame:
    path = out / f"{name}.log"
    return read_zeek_log(path) if path.exists() else pd.DataFrame()


def _result(out: Path, stats: WorkerStats, returncode: int) -> ReplayResult:
    conns, verdicts, notices = _log(out, "conn"), _log(out, "cato_verdict"), _log(out, "notice")
    tcp_udp = conns[conns["proto"].isin(["tcp", "udp"])] if len(conns) else conns
    answered = set(verdicts["uid"]) if len(verdicts) else set()
    covered = int(tcp_udp["uid"].isin(answered).sum()) if len(tcp_udp) else 0
    return ReplayResult(out, stats, len(tcp_udp), covered, len(verdicts), len(notices), returncode)
