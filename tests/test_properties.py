"""Property-based tests (hypothesis) of the parsers and the merger: whatever they are given, they
return what the input holds or raise their own error, never another exception (#19)."""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cato.corpus import CorpusError, load_corpus, merge_captures, read_capture
from cato.corpus.pcapio import Capture, CaptureError, Packet
from cato.deploy.transport import TransportError, decode_event
from cato.zeek.logs import LogFormatError, read_zeek_log
from cato.zeek.profiling import parse_script_profile

QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# labels.csv --------------------------------------------------------------------------------------

CAPTURES = ("a.pcap", "sub/b.pcap", "c d.pcap", "é.pcap")
HOSTILE_PATHS = ("../a.pcap", "/etc/passwd", "sub/../../a.pcap", "C:\\x.pcap", "", " ", "nope.pcap", "sub/../a.pcap",
                 "a.pcap\x00", "./a.pcap")
cell = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
row = st.fixed_dictionaries({"pcap": st.sampled_from(CAPTURES + HOSTILE_PATHS) | cell, "label": cell,
                             "group": cell | st.just("")})


@contextmanager
def _corpus_dir() -> Iterator[Path]:
    """A folder holding the empty CAPTURES, removed after the example (hypothesis runs many)."""
    with tempfile.TemporaryDirectory(prefix="cato-prop-") as tmp:
        root = Path(tmp)
        for name in CAPTURES:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(b"")
        yield root


@QUICK
@given(rows=st.lists(row, max_size=12), columns=st.sampled_from([("pcap", "label"), ("pcap", "label", "group"),
                                                                  ("label",), ("pcap",), ("pcap", "label", "proto")]))
def test_labels_reader_keeps_only_rows_it_can_trust(rows, columns):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    with _corpus_dir() as root:
        (root / "labels.csv").write_text(buf.getvalue(), encoding="utf-8")
        try:
            corpus = load_corpus(root)
        except CorpusError as e:
            assert str(root) in str(e)
            return
        _assert_trusted(corpus, root)


def _assert_trusted(corpus, root: Path) -> None:
    """What a corpus cato accepted holds: each capture inside the folder, existing, with one label."""
    for capture in corpus.captures:
        path = (root / capture).resolve()
        assert path.is_file() and root.resolve() in path.parents
    assert corpus.labels.groupby("pcap")["label"].nunique().max() == 1
    assert (corpus.labels["label"] != "").all()
    assert all(isinstance(p, str) and str(root) in p for p in corpus.problems)


@QUICK
@given(raw=st.binary(max_size=300))
def test_labels_reader_on_arbitrary_bytes(raw):
    with _corpus_dir() as root:
        (root / "labels.csv").write_bytes(raw)
        try:
            corpus = load_corpus(root)
        except CorpusError as e:
            assert str(root) in str(e)
            return
        assert b"pcap" in raw and b"label" in raw, "a corpus needs its two columns"
        _assert_trusted(corpus, root)


# Zeek ASCII logs ---------------------------------------------------------------------------------

ZEEK_TYPES = {
    "count": st.integers(0, 2**53),
    "int": st.integers(-2**53, 2**53),
    "double": st.floats(allow_nan=False, allow_infinity=False, width=32),
    # Zeek escapes separators and non-printables in its ASCII logs, and a leading "#" (\x23: a row is
    # never a comment); "-" alone means unset, "(empty)" empty.
    "string": st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1, max_size=10).filter(
        lambda s: s not in ("-", "(empty)") and not s.startswith("#")),
}
column = st.tuples(st.sampled_from(sorted(ZEEK_TYPES)), st.booleans())


@QUICK
@given(data=st.data(), cols=st.lists(column, min_size=1, max_size=5), n=st.integers(0, 6))
def test_zeek_log_round_trip(data, cols, n, tmp_path_factory):
    names = [f"c{i}" for i in range(len(cols))]
    table = [[data.draw(st.none() | ZEEK_TYPES[t]) if optional else data.draw(ZEEK_TYPES[t]) for t, optional in cols]
             for _ in range(n)]
    lines = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-", "#path\tx",
             "#fields\t" + "\t".join(names), "#types\t" + "\t".join(t for t, _ in cols)]
    lines += ["\t".join("-" if v is None else repr(v) if isinstance(v, float) else str(v) for v in r) for r in table]
    path = tmp_path_factory.mktemp("log") / "x.log"
    path.write_text("\n".join(lines + ["#close\t2026-01-01-00-00-00"]) + "\n")
    df = read_zeek_log(path)
    assert list(df.columns) == names and len(df) == n
    for j, (t, _) in enumerate(cols):
        for i in range(n):
            got, want = df.iloc[i, j], table[i][j]
            if want is None:
                assert pd.isna(got)
            elif t == "double":
                assert math.isclose(got, want, rel_tol=1e-12, abs_tol=0)
            else:
                assert got == want


@QUICK
@given(raw=st.binary(max_size=400))
def test_zeek_log_reader_on_arbitrary_bytes(raw, tmp_path_factory):
    path = tmp_path_factory.mktemp("log") / "x.log"
    path.write_bytes(raw)
    try:
        frame = read_zeek_log(path)
    except (LogFormatError, ValueError):  # pandas' parser errors are ValueErrors
        return
    assert b"#fields" in raw and b"#types" in raw, "only a log with its header is read"
    assert len(frame.columns) > 0


# --profile-scripts output -------------------------------------------------------------------------

prof_row = st.tuples(st.sampled_from(["Cato::f", "zeek_init", "Cato::g", "other"]),
                     st.sampled_from(["OURS", "/opt/zeek/share/base.zeek"]), st.sampled_from(["event", "func"]),
                     st.integers(0, 10**6), st.floats(0, 100, allow_nan=False).map(lambda x: round(x, 6)))


@QUICK
@given(rows=st.lists(prof_row, max_size=8), total=st.floats(0, 1000, allow_nan=False).map(lambda x: round(x, 6)),
       cut=st.integers(0, 10**6))
def test_profile_parser_sums_our_handlers_and_survives_a_cut(rows, total, cut, tmp_path_factory):
    d = tmp_path_factory.mktemp("prof")
    ours = d / "gen.zeek"
    ours.write_text("")
    lines = ["#fields\tfunction\tlocation\ttype\tncall\ttot_CPU\ttot_mem",
             f"total\t-\tfunc\t1\t{total}\t0"]
    for fn, loc, kind, calls, cpu in rows:
        where = f"{ours.resolve()}:{calls % 50}" if loc == "OURS" else loc + ":3"
        lines.append(f"{fn}\t{where}\t{kind}\t{calls}\t{cpu}\t0")
    text = "\n".join(lines) + "\n"
    path = d / "prof.log"
    path.write_text(text)
    events, got_total, mine = parse_script_profile(path, [ours])
    want = [r for r in rows if r[1] == "OURS"]
    assert math.isclose(events, sum(r[4] for r in want if r[2] == "event"), abs_tol=1e-9)
    assert got_total == total and len(mine) == len(want)
    # Zeek killed while writing: a cut anywhere never raises.
    path.write_text(text[:cut % (len(text) + 1)])
    parse_script_profile(path, [ours])


# Capture merger ----------------------------------------------------------------------------------

packet = st.tuples(st.sampled_from([1, 101, 113]), st.integers(0, 2**40) | st.integers(0, 3 * 10**18),
                   st.binary(min_size=1, max_size=40))
capture = st.lists(packet, min_size=1, max_size=12)


@QUICK
@given(caps=st.lists(capture, min_size=1, max_size=5))
def test_merger_keeps_every_packet_once_and_finds_its_capture(caps, tmp_path_factory):
    work = tmp_path_factory.mktemp("merge")
    captures = [Capture(f"c{i}.pcap", [Packet(link, ts, data, len(data)) for link, ts, data in pkts])
                for i, pkts in enumerate(caps)]
    streams = merge_captures(captures, work, "s")
    seen: dict[str, list] = {c.path: [] for c in captures}
    for ms in streams:
        back = read_capture(ms.path).packets
        assert all(p.linktype == ms.linktype for p in back)
        spans = sorted((s.start_us, s.end_us) for s in ms.segments)
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:])), "segments overlap"
        for p in back:
            seg = ms.segment_at(p.ts_ns / 1e9)
            assert seg is not None
            seen[seg.capture].append((p.linktype, p.ts_ns - seg.offset_ns, p.data))
    for c in captures:  # each packet once, times kept to the microsecond (pcap's resolution)
        want = sorted((p.linktype, p.ts_ns - p.ts_ns % 1000, p.data) for p in c.packets)
        assert sorted(seen[c.path]) == want


@QUICK
@given(raw=st.binary(max_size=200), head=st.sampled_from([b"", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4",
                                                          b"\x0a\x0d\x0d\x0a", b"\x4d\x3c\xb2\xa1"]))
def test_capture_reader_on_arbitrary_bytes(raw, head, tmp_path_factory):
    path = tmp_path_factory.mktemp("cap") / "x.pcap"
    path.write_bytes(head + raw)
    try:
        cap = read_capture(path)
    except CaptureError as e:
        assert str(path) in str(e)
        return
    assert all(len(p.data) <= 262144 for p in cap.packets)


# The worker's message decoder ---------------------------------------------------------------------

json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                          lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                              st.sampled_from(["@data-type", "data", "type", "topic", "key", "value", "x"]),
                              inner, max_size=4), max_leaves=30)
data_type = st.sampled_from(["count", "integer", "real", "string", "vector", "set", "table", "address", "port",
                             "subnet", "timestamp", "timespan", "enum", "boolean", "none", "bogus"])
zeek_value = st.recursive(st.builds(lambda t, d: {"@data-type": t, "data": d}, data_type, json_value),
                          lambda inner: st.builds(lambda t, d: {"@data-type": t, "data": d},
                                                  st.sampled_from(["vector", "set", "table"]),
                                                  st.lists(inner | st.fixed_dictionaries({"key": inner, "value": inner}),
                                                           max_size=3)), max_leaves=20)


def _event(args) -> dict:
    return {"type": "data-message", "topic": "/cato/vectors", "@data-type": "vector",
            "data": [{"@data-type": "count", "data": 1}, {"@data-type": "count", "data": 1},
                     {"@data-type": "vector", "data": [{"@data-type": "string", "data": "Cato::vector"},
                                                       {"@data-type": "vector", "data": args}]}]}


@QUICK
@given(args=st.lists(zeek_value, max_size=4))
def test_decoder_returns_or_refuses_hostile_events(args):
    for message in (_event(args), json.dumps(_event(args))):
        try:
            decode_event(message)
        except TransportError:
            pass


@QUICK
@given(anything=json_value | st.binary(max_size=200) | st.text(max_size=200))
def test_decoder_refuses_anything_else(anything):
    # None of these can be an event: a data message's type is "data-message", longer than any text here.
    with pytest.raises(TransportError):
        decode_event(anything)


def test_decoder_refuses_an_oversized_message_before_parsing_it():
    big = json.dumps(_event([{"@data-type": "string", "data": "x" * 100_000}]))
    with pytest.raises(TransportError, match="cap"):
        decode_event(big, max_bytes=10_000)
