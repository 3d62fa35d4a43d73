"""One typed entry point to run Zeek: capture, scripts and options in; logs and resource use out."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

#: Where Zeek's own packages install it.
DEFAULT_ZEEK = Path("/opt/zeek/bin/zeek")
#: The btests' pinned environment, so that runs are reproducible.
PINNED_ENV = {"TZ": "UTC", "LC_ALL": "C"}
#: Arguments that compile the scripts to Zeek's abstract machine (ZAM) before running them.
ZAM_ARGS = ("-O", "ZAM")


#: Longest a Zeek run may take before it is killed and reported (seconds; ``$CATO_ZEEK_TIMEOUT``
#: overrides it, 0 turns it off). A capture that makes Zeek hang then costs this long, never forever.
DEFAULT_TIMEOUT_S = 600.0


def default_timeout() -> float | None:
    """``$CATO_ZEEK_TIMEOUT`` in seconds, else :data:`DEFAULT_TIMEOUT_S`; None when set to 0."""
    text = os.environ.get("CATO_ZEEK_TIMEOUT", "").strip()
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        raise ZeekError(f"$CATO_ZEEK_TIMEOUT={text!r} is not a number of seconds") from None
    return value if value > 0 else None


class ZeekNotFoundError(RuntimeError):
    pass


#: The native engine's plugin as ``make setup`` builds it in a checkout (``plugin/build``).
_CHECKOUT_PLUGIN = Path(__file__).resolve().parents[2] / "plugin" / "build"


def native_plugin_dir() -> Path | None:
    """Where cato's Zeek plugin (the native engine) is built: ``$CATO_PLUGIN_DIR``, else a checkout's
    ``plugin/build``; None when neither holds it (Zeek then searches its own plugin path, where
    ``zkg install`` puts it)."""
    env = os.environ.get("CATO_PLUGIN_DIR")
    for candidate in ([Path(env)] if env else []) + [_CHECKOUT_PLUGIN]:
        if (candidate / "__zeek_plugin__").is_file():
            return candidate
    return None


class ZeekError(RuntimeError):
    """Zeek exited with an error; carries its stderr."""

    def __init__(self, message: str, stderr: str = "", returncode: int | None = None, timed_out: bool = False):
        self.stderr = stderr
        self.returncode = returncode
        #: Zeek was killed for running longer than its time limit.
        self.timed_out = timed_out
        tail = "\n".join(stderr.strip().splitlines()[-8:])
        super().__init__(f"{message}" + (f"\n{tail}" if tail else ""))


def find_zeek() -> Path:
    """Zeek from ``$ZEEK``, then ``PATH``, then /opt/zeek/bin."""
    env = os.environ.get("ZEEK")
    if env:
        p = Path(env)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise ZeekNotFoundError(f"$ZEEK={env} is not an executable file")
    on_path = shutil.which("zeek")
    if on_path:
        return Path(on_path)
    if DEFAULT_ZEEK.is_file():
        return DEFAULT_ZEEK
    raise ZeekNotFoundError(
        "Zeek not found: set $ZEEK, put zeek on PATH, or install Zeek >= 8.0 into /opt/zeek "
        "(Zeek's own packages)")


def zeek_version(zeek: Path | None = None) -> str:
    out = subprocess.run([str(zeek or find_zeek()), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip().split()[-1]


@dataclass
class ZeekRun:
    """What one Zeek process did."""

    workdir: Path
    returncode: int
    stderr: str
    user_s: float
    sys_s: float
    wall_s: float
    max_rss_kb: int
    argv: list[str] = field(default_factory=list)

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"


#: What a deployment runs before cato's scripts, by name: (``-b``?, scripts). ``bare``: ``zeek -b`` and
#: nothing else; ``default``: Zeek's default scripts and the site's ``local.zeek``, as zeekctl runs Zeek.
#: Their protocol analyzers change what cato sees (a connection's roles flipped, DNS sessions that
#: split a long mDNS flow): a model is trained on what the deployment will run.
DEPLOYMENTS: dict[str, tuple[bool, tuple[str, ...]]] = {"bare": (True, ()), "default": (False, ("local",))}


def deployment_invocation(deployment: str) -> tuple[bool, list[str]]:
    """(``-b``?, scripts before cato's) of a deployment: a name of :data:`DEPLOYMENTS`, or the path of a
    site's own script (its ``local.zeek``), which runs after Zeek's default scripts."""
    if deployment in DEPLOYMENTS:
        bare, scripts = DEPLOYMENTS[deployment]
        return bare, list(scripts)
    path = Path(deployment)
    if path.suffix == ".zeek" and path.is_file():
        return False, [str(path.resolve())]
    raise ValueError(f"deployment {deployment!r}: one of {', '.join(DEPLOYMENTS)}, or a Zeek script (.zeek) "
                     "that exists")


def run_zeek(
    pcap: Path | None,
    scripts: Sequence[str | Path],
    *,
    workdir: Path | None = None,
    bare: bool = True,
    redefs: Mapping[str, str] | None = None,
    ignore_checksums: bool = True,
    extra_args: Sequence[str] = (),
    timeout: float | None = None,
    zeek: Path | None = None,
    check: bool = True,
    native: bool = False,
) -> ZeekRun:
    """Run Zeek over ``pcap`` (or no input) with ``scripts`` in ``workdir`` (a new temp dir if None).

    ``redefs`` are command-line redefinitions (``name=value``). ``native``: the scripts use cato's
    plugin (the native engine), which Zeek is told where to find. Raises :class:`ZeekError` when Zeek
    fails and ``check`` is set. Zeek is killed after ``timeout`` seconds (None: :func:`default_timeout`;
    0: never), and that is an error whatever ``check`` says.
    """
    timeout = default_timeout() if timeout is None else (timeout or None)
    zeek = zeek or find_zeek()
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="cato-zeek-"))
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [str(zeek)]
    if bare:
        argv.append("-b")
    if ignore_checksums:
        argv.append("-C")
    if pcap is not None:
        argv += ["-r", str(Path(pcap).resolve())]
    argv += list(extra_args)
    argv += [str(Path(s).resolve()) if isinstance(s, Path) else s for s in scripts]
    argv += [f"{k}={v}" for k, v in (redefs or {}).items()]
    env = {**os.environ, **PINNED_ENV}
    plugin_dir = native_plugin_dir() if native else None
    if plugin_dir is not None:
        env["ZEEK_PLUGIN_PATH"] = os.pathsep.join(filter(None, [str(plugin_dir), env.get("ZEEK_PLUGIN_PATH")]))
    start = time.perf_counter()
    with open(workdir / "zeek.stdout", "wb") as out, open(workdir / "zeek.stderr", "wb") as err:
        proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            proc.kill()

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.start()
        peak = _PeakMemory(proc.pid)
        try:
            # wait4, not waitpid: it also reports the CPU of this Zeek process alone.
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            peak.stop()
            if timer:
                timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    stderr = (workdir / "zeek.stderr").read_text(errors="replace")
    run = ZeekRun(workdir, proc.returncode, stderr, ru.ru_utime, ru.ru_stime, wall,
                  peak.kb or ru.ru_maxrss, argv)
    what = f"on {pcap}" if pcap else "without input"
    if killed.is_set():
        raise ZeekError(f"Zeek did not finish within {timeout:g}s {what} and was killed "
                        "(raise $CATO_ZEEK_TIMEOUT if the input is just large)", stderr, proc.returncode, True)
    if check and proc.returncode != 0:
        if native and "Cato::Native" in stderr and "not available" in stderr:
            raise ZeekError(f"Zeek cannot find cato's plugin (the native engine) {what}: run `make setup` in "
                            "cato's checkout, or `zkg install` cato, or set CATO_PLUGIN_DIR", stderr,
                            proc.returncode)
        raise ZeekError(f"Zeek failed (exit {proc.returncode}) {what}", stderr, proc.returncode)
    return run


class _PeakMemory:
    """Zeek's peak resident memory (VmHWM), read from /proc while it runs.

    ru_maxrss is no good here: it keeps the peak from before exec, when the child was still a copy
    of this (much larger) Python process.
    """

    def __init__(self, pid: int, interval: float = 0.02):
        self.kb = 0
        self._path = f"/proc/{pid}/status"
        self._done = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._done.is_set():
            try:
                with open(self._path) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.kb = max(self.kb, int(line.split()[1]))
                            break
            except OSError:
                return
            self._done.wait(self._interval)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
