"""Live traffic for tests and benchmarks: a private network namespace, a veth pair, tcpreplay.

A :class:`LiveNet` is a network namespace of its own (``cato-<pid>-<n>``) holding both ends of a veth
pair: tcpreplay sends on :attr:`LiveNet.send_iface`, Zeek captures on :attr:`LiveNet.capture_iface`
(``zeek -i af_packet::cato-cap``). The namespace has its loopback (``cato serve`` reaches Zeek on
127.0.0.1) and no route out; nothing replayed can leave it. IPv6 is off in it, so that the kernel
adds no packets (router solicitations) to what Zeek sees; the capture end has no address, so the
kernel answers nothing it receives.

Only captures that :func:`rewrite` made are replayed: their addresses moved into the benchmarking
ranges (RFC 2544's 198.18.0.0/15, and RFC 5180's 2001:2::/48 for IPv6) by ``tcprewrite --pnat``,
one address to one address, checksums fixed.

Drops, and where they are counted (:class:`Drops`):

* ``zeek``: Zeek's ``pkts_dropped`` summed over stats.log (``policy/misc/stats``, which ``local``
  loads). For ``af_packet::`` this is the socket's PACKET_STATISTICS ``tp_drops``: packets the kernel
  had for Zeek while its ring was full. It is the AF_PACKET counter; there is no second one to read.
* ``interfaces``: frames the veth lost (``ip -s link``): the send end's tx ``dropped``, and frames sent
  that the capture end did not receive. The capture end's rx ``dropped`` is no loss: frames no
  protocol of the namespace's stack takes (EAPOL), counted after the packet sockets had them.
* ``softnet``: the kernel's per-CPU backlog drops (/proc/net/softnet_stat, column 2), before any
  packet socket sees a frame. This counter is the host's, not the namespace's: anything else dropping
  meanwhile counts too, so a non-zero value is a loss to explain, not proof of one.
* ``unseen``: packets tcpreplay sent that Zeek did not count as received (stats.log ``pkts_proc``),
  whatever the cause.

Usage (a capture is rewritten before a replay; Zeek must exit before its drops are read)::

    pcap = rewrite(capture, tmp / "r.pcap")
    with LiveNet() as net:
        zeek = net.popen([zeek_bin, "-i", f"af_packet::{net.capture_iface}", "local"], cwd=logs)
        net.wait_capturing(zeek)                # its AF_PACKET socket is bound: nothing sent is missed
        sent = net.replay(pcap, mbps=50)
        wait_idle(zeek)                         # it has read its ring (SIGTERM loses what is left)
        zeek.send_signal(signal.SIGTERM)
        zeek.wait()
        drops = net.drops(logs, sent["packets"])
"""

from __future__ import annotations

import atexit
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, TypedDict

from cato.corpus.pcapio import CaptureError, read_capture, write_packet, write_pcap_header

#: Where :func:`rewrite` moves addresses (RFC 2544 and RFC 5180 benchmarking ranges).
BENCH_NET_V4 = ipaddress.IPv4Network("198.18.0.0/15")
BENCH_NET_V6 = ipaddress.IPv6Network("2001:2::/48")

DLT_EN10MB = 1
_counter = itertools.count()


class LiveNetUnavailable(RuntimeError):
    """No live network here (not root, no CAP_NET_ADMIN, or a tool missing); says which."""


class LiveNetError(RuntimeError):
    """A live-network step failed (a capture that cannot be rewritten, tcpreplay failing, ...)."""


class ReplayStats(TypedDict):
    """What tcpreplay reported for one replay."""

    packets: int  # sent successfully
    bytes: int
    seconds: float
    mbps: float  # actual rate
    pps: float
    failed: int  # packets the send socket refused
    truncated: int
    retried: int  # ENOBUFS and EAGAIN retries (sent in the end)
    returncode: int
    output: str  # tcpreplay's stdout and stderr


@dataclass
class Drops:
    """Loss counters of one Zeek run on a :class:`LiveNet` (see the module's docstring)."""

    zeek: int  # stats.log pkts_dropped (AF_PACKET ring drops)
    interfaces: int  # frames lost between the veth ends
    softnet: int  # kernel backlog drops during the run (host-wide)
    unseen: int  # sent by tcpreplay, not received by Zeek

    @property
    def total(self) -> int:
        return self.zeek + self.interfaces + self.softnet + max(self.unseen, 0)


def _run(argv: Sequence[str], what: str, unavailable: bool = False, timeout: float = 60) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise LiveNetUnavailable(f"{argv[0]} not found: needed to {what}") from None
    if done.returncode != 0:
        cls = LiveNetUnavailable if unavailable else LiveNetError
        raise cls(f"cannot {what}: `{' '.join(argv)}` exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


class LiveNet:
    """A private network namespace with a veth pair; a context manager. On exit every process started
    in it is killed and the namespace deleted (which deletes the veths), also after an error."""

    send_iface = "cato-send"
    capture_iface = "cato-cap"

    def __init__(self, *, mtu: int = 1500) -> None:
        self.name = f"cato-{os.getpid()}-{next(_counter)}"
        self.mtu = mtu
        self._procs: list[subprocess.Popen] = []
        self._created = False
        self._softnet_start = 0

    # -- lifetime ---------------------------------------------------------------------------------
    def __enter__(self) -> LiveNet:
        if shutil.which("ip") is None:
            raise LiveNetUnavailable("iproute2's `ip` is not installed: a LiveNet needs network namespaces")
        _run(["ip", "netns", "add", self.name], "create a network namespace (needs root or CAP_NET_ADMIN)",
             unavailable=True)
        self._created = True
        atexit.register(self.close)
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _setup(self) -> None:
        ns = ["ip", "-n", self.name]
        # IPv6 off before the veths exist: no router solicitations or DAD probes on the capture end.
        self._sysctl("net/ipv6/conf/default/disable_ipv6", "1")
        self._sysctl("net/ipv6/conf/all/disable_ipv6", "1")
        _run(ns + ["link", "add", "name", self.send_iface, "mtu", str(self.mtu), "type", "veth",
                   "peer", "name", self.capture_iface, "mtu", str(self.mtu)], "create a veth pair", unavailable=True)
        for dev in ("lo", self.send_iface, self.capture_iface):
            _run(ns + ["link", "set", dev, "up"], f"bring {dev} up")
        if shutil.which("ethtool"):
            # veth does no GRO/LRO unless XDP is on; turned off anyway where ethtool can, so that Zeek sees
            # every frame as sent. Failures (an offload the driver lacks) do not matter.
            subprocess.run(["ip", "netns", "exec", self.name, "ethtool", "-K", self.capture_iface, "gro", "off",
                            "lro", "off", "gso", "off", "tso", "off"], capture_output=True)
        routes = _run(ns + ["route", "show"], "list routes").strip()
        if "default" in routes:
            raise LiveNetError(f"namespace {self.name} has a default route: {routes}")
        self._softnet_start = softnet_drops()

    def _sysctl(self, key: str, value: str) -> None:
        # /proc/sys/net is the namespace's inside `ip netns exec`; a kernel without IPv6 lacks the key.
        subprocess.run(["ip", "netns", "exec", self.name, "sh", "-c",
                        f"test -e /proc/sys/{key} && echo {value} > /proc/sys/{key}"], capture_output=True)

    def close(self) -> None:
        """Kill what runs in the namespace, then delete it. Idempotent."""
        if not self._created:
            return
        for proc in self._procs:
            _stop(proc, signal.SIGTERM, 5.0)
        # Anything left in the namespace was started by us (its children): kill it by pid.
        pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        self._created = False
        atexit.unregister(self.close)

    def exists(self) -> bool:
        """Whether the namespace exists (after :meth:`close`: it must not)."""
        return Path("/run/netns", self.name).exists() or self.name in _run(["ip", "netns", "list"], "list namespaces")

    # -- processes --------------------------------------------------------------------------------
    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen:
        """Start ``argv`` inside the namespace (``ip netns exec``, which execs it: ``.pid`` is the
        command's own). Its own session, so that cleanup can signal it apart from us. Killed on exit."""
        if not self._created:
            raise LiveNetError("LiveNet.popen outside its `with` block")
        kw.setdefault("start_new_session", True)
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, *map(str, argv)], **kw)
        self._procs.append(proc)
        return proc

    def ifindex(self, iface: str) -> int:
        info = json.loads(_run(["ip", "-n", self.name, "-j", "link", "show", "dev", iface], f"read {iface}"))
        return int(info[0]["ifindex"])

    def wait_capturing(self, proc: subprocess.Popen, *, sockets: int = 1, timeout: float = 60.0) -> None:
        """Wait until ``proc`` holds ``sockets`` packet sockets bound to the capture end (Zeek opens its
        AF_PACKET socket after parsing its scripts; what arrives after that waits in the ring)."""
        ifindex = self.ifindex(self.capture_iface)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LiveNetError(f"{proc.args[3:]} exited ({proc.returncode}) before capturing")
            if _bound_packet_sockets(proc.pid, ifindex) >= sockets:
                return
            time.sleep(0.05)
        raise LiveNetError(f"no packet socket on {self.capture_iface} from pid {proc.pid} within {timeout:.0f}s")

    # -- traffic ----------------------------------------------------------------------------------
    def replay(self, pcap: Path | Sequence[Path], *, mbps: float | None = None, multiplier: float | None = None,
               topspeed: bool = False, loop: int = 1, duration: float | None = None, preload: bool = False,
               cpu: int | None = None, nice: int | None = None, timer: str | None = None,
               timeout: float | None = None) -> ReplayStats:
        """Send rewritten capture(s) on the send end with tcpreplay, in order; wait; return its counts.

        Pacing: ``mbps``, ``multiplier`` (of the capture's own timing) or ``topspeed``; none: the
        capture's own timing. ``loop`` times over the files (0: until ``duration`` seconds). ``preload``
        reads the files into memory first (no disk reads while sending). ``cpu`` pins tcpreplay
        (``taskset``), ``nice`` sets its priority (negative: above others on a shared machine).
        ``timer``: tcpreplay's ``--timer``; its default (gtod) spins a whole core, ``nano`` sleeps and keeps
        the rate as well at up to 100 Mbps here. Refuses files :func:`rewrite` did not make."""
        files = [Path(pcap)] if isinstance(pcap, (str, Path)) else [Path(p) for p in pcap]
        for f in files:
            _check_rewritten(f)
        if sum(x is not None and x is not False for x in (mbps, multiplier, topspeed or None)) > 1:
            raise ValueError("replay: one of mbps, multiplier, topspeed")
        if shutil.which("tcpreplay") is None:
            raise LiveNetUnavailable("tcpreplay is not installed (`make setup` installs it)")
        argv = ["tcpreplay", f"--intf1={self.send_iface}", f"--loop={loop}", "--no-flow-stats"]
        if mbps is not None:
            argv.append(f"--mbps={mbps:g}")
        elif multiplier is not None:
            argv.append(f"--multiplier={multiplier:g}")
        elif topspeed:
            argv.append("--topspeed")
        if duration is not None:
            argv.append(f"--duration={max(1, round(duration))}")
        if preload:
            argv.append("--preload-pcap")
        if timer is not None:
            argv.append(f"--timer={timer}")
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu), *argv]
        if nice is not None:
            argv = ["nice", "-n", str(nice), *argv]
        proc = self.popen([*argv, *map(str, files)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if nice is not None:
            set_group_nice(proc.pid, nice)
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc, signal.SIGKILL, 5.0)
            raise LiveNetError(f"tcpreplay did not finish within {timeout}s") from None
        stats = parse_tcpreplay(output)
        stats["returncode"] = proc.returncode
        if proc.returncode != 0:
            raise LiveNetError(f"tcpreplay exited {proc.returncode}:\n{output[-2000:]}")
        return stats

    # -- counters ---------------------------------------------------------------------------------
    def interface_drops(self) -> int:
        """Frames the veth lost: the send end's tx ``dropped``, plus frames it sent that the capture end
        did not receive. (The capture end's rx ``dropped`` is not a loss: it counts frames the
        namespace's own stack had no handler for, such as EAPOL, after the packet sockets had them.)"""
        out = json.loads(_run(["ip", "-n", self.name, "-j", "-s", "link", "show"], "read interface counters"))
        stats = {link["ifname"]: link["stats64"] for link in out}
        send, cap = stats[self.send_iface], stats[self.capture_iface]
        return int(send["tx"]["dropped"]) + int(send["tx"]["packets"]) - int(cap["rx"]["packets"])

    def drops(self, zeek_logs: Path, sent: int) -> Drops:
        """Every loss counter after a Zeek run whose logs are in ``zeek_logs`` and a replay of ``sent``
        packets (Zeek must have exited: its last stats.log row is written at termination)."""
        stats = zeek_stats(zeek_logs)
        return Drops(zeek=int(stats["pkts_dropped"]), interfaces=self.interface_drops(),
                     softnet=softnet_drops() - self._softnet_start, unseen=sent - int(stats["pkts_proc"]))


def _stop(proc: subprocess.Popen, sig: int, grace: float) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=grace)


def _bound_packet_sockets(pid: int, ifindex: int) -> int:
    """Packet sockets of process ``pid`` bound to interface ``ifindex`` (its namespace's /proc/net/packet)."""
    inodes = set()
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(fd.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        lines = Path(f"/proc/{pid}/net/packet").read_text().splitlines()[1:]
    except OSError:
        return 0
    # sk RefCnt Type Proto Iface R Rmem User Inode
    return sum(1 for line in lines if (f := line.split()) and int(f[4]) == ifindex and f[8] in inodes)


_TCPREPLAY_PATTERNS = {
    "packets": (r"Actual: (\d+) packets", int),
    "bytes": (r"Actual: \d+ packets \((\d+) bytes\)", int),
    "seconds": (r"sent in ([\d.]+) seconds", float),
    "mbps": (r"([\d.]+) Mbps", float),
    "pps": (r"([\d.]+) pps", float),
    "failed": (r"Failed packets:\s+(\d+)", int),
    "truncated": (r"Truncated packets:\s+(\d+)", int),
}


def parse_tcpreplay(output: str) -> ReplayStats:
    """tcpreplay's summary as numbers (0 where a line is missing)."""
    stats: dict[str, Any] = {}
    for key, (pattern, kind) in _TCPREPLAY_PATTERNS.items():
        m = re.search(pattern, output)
        stats[key] = kind(m.group(1)) if m else kind(0)
    stats["retried"] = sum(int(x) for x in re.findall(r"Retried packets \(\w+\):\s+(\d+)", output))
    stats["returncode"] = 0
    stats["output"] = output
    return ReplayStats(**stats)  # type: ignore[typeddict-item]


# -- Zeek and kernel counters ---------------------------------------------------------------------
def zeek_stats(log_dir: Path) -> dict[str, float]:
    """pkts_proc, pkts_dropped and pkts_link summed over a live Zeek's stats.log (``policy/misc/stats``;
    Zeek writes its last row at termination), and max_pkt_lag: the largest ``pkt_lag`` (how far behind
    the wall clock its packet processing was; a row each ``Stats::report_interval``). Raises if there is
    no stats.log."""
    path = Path(log_dir) / "stats.log"
    if not path.exists():
        raise LiveNetError(f"{path} missing: load policy/misc/stats (`local` does)")
    fields: list[str] = []
    sums = {"pkts_proc": 0, "pkts_dropped": 0, "pkts_link": 0}
    lag = 0.0
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            row = dict(zip(fields, line.split("\t")))
            for key in sums:
                if row.get(key, "-") not in ("-", "(empty)"):
                    sums[key] += int(row[key])
            if row.get("pkt_lag", "-") != "-":
                lag = max(lag, float(row["pkt_lag"]))
    return {**sums, "max_pkt_lag": lag}


def softnet_drops() -> int:
    """The kernel's backlog drops, all CPUs (/proc/net/softnet_stat, second column, hex)."""
    try:
        return sum(int(line.split()[1], 16) for line in Path("/proc/net/softnet_stat").read_text().splitlines())
    except (OSError, IndexError, ValueError):
        return 0


def wait_idle(proc: subprocess.Popen, *, below: float = 0.05, window: float = 0.5, timeout: float = 120.0) -> float:
    """Wait until ``proc`` uses less than ``below`` of a core over ``window`` seconds: a Zeek that has
    read everything in its ring (a SIGTERM before that loses what is still in the ring). Returns the
    seconds waited; raises if it stays busy for ``timeout`` seconds or exits."""
    start = time.monotonic()
    last = process_cpu_seconds(proc.pid)
    while time.monotonic() - start < timeout:
        time.sleep(window)
        if proc.poll() is not None:
            raise LiveNetError(f"pid {proc.pid} exited ({proc.returncode}) while draining")
        now = process_cpu_seconds(proc.pid)
        if now - last < below * window:
            return time.monotonic() - start
        last = now
    raise LiveNetError(f"pid {proc.pid} still busy after {timeout:.0f}s")


def set_group_nice(pid: int, nice: int) -> bool:
    """Give the scheduling group of ``pid`` this nice value. Where the kernel groups tasks by session
    (``sched_autogroup``), a task's own nice ranks it only within its session, and sessions share a CPU
    equally: every :meth:`LiveNet.popen` process has a session of its own, so its group's nice is what
    ranks it against other work. Returns False where there are no such groups."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
        return True
    except OSError:
        return False


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process, all its threads (/proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- rewriting ------------------------------------------------------------------------------------
def _frame_addresses(data: bytes) -> tuple[int, list[bytes]]:
    """(ethertype, addresses in the frame's IPv4/IPv6 header or ARP payload) of one Ethernet frame."""
    off, etype = 12, 0
    while off + 2 <= len(data):
        etype = struct.unpack_from(">H", data, off)[0]
        if etype in (0x8100, 0x88A8, 0x9100):  # VLAN tags
            off += 4
            continue
        break
    ip = off + 2
    if etype == 0x0800 and len(data) >= ip + 20:
        return etype, [data[ip + 12:ip + 16], data[ip + 16:ip + 20]]
    if etype == 0x86DD and len(data) >= ip + 40:
        return etype, [data[ip + 8:ip + 24], data[ip + 24:ip + 40]]
    if etype == 0x0806 and len(data) >= ip + 28 and data[ip + 4:ip + 6] == b"\x06\x04":
        return etype, [data[ip + 14:ip + 18], data[ip + 24:ip + 28]]
    return etype, []


#: The longest pause kept between two packets of a merged capture. tcpreplay paces by rate, not by
#: the timestamps, so they only need to stay in order and representable: a capture that mixes 1970
#: and 2015 (nDPI's) would otherwise push the merged clock past what a classic pcap can hold.
MAX_GAP_NS = 1_000_000_000


def unreplayable(path: Path, mtu: int = 1500) -> str | None:
    """Why a capture cannot go onto the veth as it is (None: it can): a link type other than Ethernet,
    frames longer than the MTU or cut short in the capture, or VLAN and IPv6 frames, whose addresses
    ``tcprewrite --pnat`` does not always reach (``rewrite`` would then refuse the whole merge)."""
    try:
        packets = read_capture(path).packets
    except CaptureError as e:
        return str(e)
    for p in packets:
        if p.linktype != DLT_EN10MB:
            return f"link type {p.linktype}"
        if len(p.data) > mtu + 14 or p.orig_len != len(p.data):
            return f"a frame of {p.orig_len} bytes ({len(p.data)} captured)"
        if p.data[12:14] in (b"\x81\x00", b"\x86\xdd"):
            return "VLAN or IPv6 frames"
    return None


def _merge(captures: Sequence[Path], out: Path) -> tuple[int, int, set[bytes]]:
    """Write the captures one after the other (each 1 s after the previous one's last packet, pauses
    within one cut to MAX_GAP_NS, time never going back) as one classic pcap; return (packets, bytes,
    addresses seen). Ethernet only."""
    packets = nbytes = 0
    addrs: set[bytes] = set()
    cursor_ns: int | None = None
    with open(out, "wb") as f:
        write_pcap_header(f, DLT_EN10MB)
        for path in captures:
            cap = read_capture(path)
            other = sorted({p.linktype for p in cap.packets} - {DLT_EN10MB})
            if other:
                raise LiveNetError(f"{path}: link type(s) {other}; a veth carries Ethernet frames, so only "
                                   "Ethernet captures (link type 1) can be replayed (convert the others first)")
            if not cap.packets:
                continue
            now = cap.packets[0].ts_ns if cursor_ns is None else cursor_ns
            previous = cap.packets[0].ts_ns
            for p in cap.packets:
                now += min(max(p.ts_ns - previous, 0), MAX_GAP_NS)
                previous = p.ts_ns
                write_packet(f, now, p.data, p.orig_len)
                addrs.update(_frame_addresses(p.data)[1])
                nbytes += p.orig_len
            packets += len(cap.packets)
            cursor_ns = now + MAX_GAP_NS
    return packets, nbytes, addrs


def _outside_bench_nets(path: Path) -> list[str]:
    bad = set()
    for p in read_capture(path).packets:
        for a in _frame_addresses(p.data)[1]:
            addr = ipaddress.ip_address(a)
            if addr not in (BENCH_NET_V4 if addr.version == 4 else BENCH_NET_V6):
                bad.add(str(addr))
    return sorted(bad)


def rewrite(capture: Path | Sequence[Path], out: Path, *, block: int = 0) -> Path:
    """``capture`` (or several, merged one after the other) with every IPv4 address moved into
    198.18.0.0/15 and every IPv6 address into 2001:2::/48 by ``tcprewrite --pnat``, checksums fixed
    (``--fixcsum``). The mapping is one to one (each address its own /32 or /128 rule), so connections
    stay whole and distinct; ``block`` k uses the k-th run of addresses, so that blocks of one capture
    share no address (a replay of several blocks is that many sets of distinct connections).

    Addresses in IP headers and ARP are moved; addresses inside payloads (DNS answers, DHCP offers,
    ICMP errors' quoted headers) are not. Ethernet captures only: any other link type is refused by
    name. The result is checked (no header address outside the ranges) and marked for :meth:`LiveNet.replay`.
    """
    captures = [Path(capture)] if isinstance(capture, (str, Path)) else [Path(c) for c in capture]
    out = Path(out)
    merged = out.with_name(out.name + ".merged.pcap")
    try:
        packets, nbytes, addrs = _merge(captures, merged)
    except BaseException:
        merged.unlink(missing_ok=True)
        raise
    if shutil.which("tcprewrite") is None:
        merged.unlink()
        raise LiveNetUnavailable("tcprewrite is not installed (package tcpreplay; `make setup` installs it)")
    v4 = sorted(a for a in addrs if len(a) == 4)
    v6 = sorted(a for a in addrs if len(a) == 16)
    start4 = int(BENCH_NET_V4.network_address) + 1 + block * len(v4)
    if block < 0 or start4 + len(v4) > int(BENCH_NET_V4.broadcast_address):
        merged.unlink()
        raise LiveNetError(f"block {block} of {len(v4)} addresses does not fit in {BENCH_NET_V4}")
    mapping: dict[str, str] = {}
    for i, a in enumerate(v4):
        mapping[str(ipaddress.IPv4Address(a))] = str(ipaddress.IPv4Address(start4 + i))
    start6 = int(BENCH_NET_V6.network_address) + (block << 64) + 1  # block k: 2001:2:0:k::/64
    for i, a in enumerate(v6):
        mapping[str(ipaddress.IPv6Address(a))] = str(ipaddress.IPv6Address(start6 + i))
    rules = ",".join(f"{o}/32:{n}/32" if ":" not in o else f"[{o}/128]:[{n}/128]" for o, n in mapping.items())
    argv = ["tcprewrite", "--fixcsum", f"--infile={merged}", f"--outfile={out}"]
    if rules:
        argv.insert(1, f"--pnat={rules}")
    try:
        # --pnat tries its rules in turn for every address: time grows with packets x addresses.
        _run(argv, f"rewrite {merged}", timeout=60 + packets * len(mapping) / 2e6)
    finally:
        merged.unlink(missing_ok=True)
    bad = _outside_bench_nets(out)
    if bad:
        out.unlink()
        raise LiveNetError(f"{out}: addresses left outside {BENCH_NET_V4} / {BENCH_NET_V6} after tcprewrite: "
                           f"{bad[:10]}")
    _marker(out).write_text(json.dumps({
        "sources": [str(c) for c in captures], "block": block, "packets": packets, "bytes": nbytes,
        "size": out.stat().st_size, "mapping": mapping}, indent=1))
    return out


def _marker(pcap: Path) -> Path:
    return pcap.with_name(pcap.name + ".livenet.json")


def rewritten_info(pcap: Path) -> dict[str, Any]:
    """What :func:`rewrite` recorded about ``pcap``: sources, block, packets, bytes, mapping."""
    return json.loads(_marker(Path(pcap)).read_text())


def _check_rewritten(pcap: Path) -> None:
    marker = _marker(pcap)
    if not marker.exists() or json.loads(marker.read_text()).get("size") != pcap.stat().st_size:
        raise LiveNetError(f"{pcap} was not made by livenet.rewrite(): only captures with their addresses in "
                           f"{BENCH_NET_V4} are replayed")
