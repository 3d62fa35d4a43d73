"""Extraction: run a generated script over a labelled corpus and build the feature table.

One row per labelled connection and depth: capture, uid, 5-tuple, start time, label, group,
depth, packets seen, when and by what the vector was decided, then the feature columns in catalog
order.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from cato.codegen import GeneratedScript, generate
from cato.corpus import Corpus, flow_key
from cato.features import Feature
from cato.executors import Executor
from cato.zeek.corpus_run import CaptureProblem, run_over_captures

#: Every column that is not a feature: the connection, its label, and the vector's decision (the
#: packets it holds, when and by what it was made).
ID_COLUMNS = ["capture", "uid", "proto", "orig_h", "orig_p", "resp_h", "resp_p", "ts",
              "label", "group", "depth", "pkts_seen", "decided_after", "decided_by"]


@dataclass
class Extraction:
    #: The feature table; with a ``writer``, empty: the batches went to it (see ``parts``).
    table: pd.DataFrame
    script: GeneratedScript
    problems: list[CaptureProblem] = field(default_factory=list)
    corpus_problems: list[str] = field(default_factory=list)
    connections: int = 0  # vectors Zeek emitted (all depths), labelled or not
    zeek_cpu_s: float = 0.0
    zeek_runs: int = 0
    #: What the ``writer`` returned for each batch of captures, in capture order.
    parts: list = field(default_factory=list)

    @property
    def skipped(self) -> list[CaptureProblem]:
        return [p for p in self.problems if p.skipped]


TableWriter = Callable[[int, pd.DataFrame], Any]


@dataclass
class _Labelled:
    """One batch of captures, labelled in the process that ran Zeek on it."""

    part: Any  # its feature table, or what the writer made of it
    problems: list[CaptureProblem]
    vectors: int


@dataclass
class _Labeller:
    """The batch sink of an extraction: labels a batch's vectors where Zeek made them, and hands the
    table to the writer (if any), so the parent process only ever holds what the writer returns."""

    corpus: Corpus
    script: GeneratedScript
    writer: TableWriter | None = None

    def narrow(self, captures: list[str]) -> "_Labeller":
        labels = self.corpus.labels
        return replace(self, corpus=replace(self.corpus, labels=labels[labels["pcap"].isin(captures)]))

    def __call__(self, batch: int, captures: list[str], vectors: pd.DataFrame,
                 problems: list[CaptureProblem]) -> _Labelled:
        vectors = _normalize(vectors, self.script)
        if getattr(self.writer, "float32", False):
            # Features as float32 from here (what a dataset stores them as, the same values): each copy
            # labelling and ordering make takes half the memory.
            for col in self.script.columns:
                if col in vectors.columns and pd.api.types.is_numeric_dtype(vectors[col]):
                    vectors[col] = vectors[col].astype("float32")
        table = label_vectors(vectors, self.corpus)
        found = []
        if self.corpus.flow_level:
            found = unmatched_labels(vectors, table, self.corpus, {p.capture for p in problems if p.skipped})
        return _Labelled(self.writer(batch, table) if self.writer else table, found, len(vectors))


def extract(
    corpus: Corpus,
    features: Sequence[Feature],
    depths: int | Iterable[int],
    *,
    strategy: str = "auto",
    deadline: float | None = None,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
    zeek: Path | None = None,
    engine: str = "script",
    input_positions: bool = False,
    writer: TableWriter | None = None,
    executor: Executor | None = None,
    deployment: str = "bare",
    vocabularies: Mapping[str, Sequence[bytes]] | None = None,
) -> Extraction:
    """Run the script of ``features`` at ``depths`` over ``corpus``: the feature table, rows ordered by
    capture, start time, uid and depth.

    With ``writer`` (picklable: it runs in the worker processes), each batch of captures' table goes to
    ``writer(batch, table)`` instead, and ``parts`` holds what it returned, in capture order: no process
    holds more than one batch (``cato.zeek.corpus_run.MAX_BATCH_BYTES`` of captures). ``executor``: where
    the batches run (``run_over_captures``; by default ``jobs`` processes here). ``deployment``: what Zeek
    runs before cato's scripts, as the deployment will (``cato.zeek.DEPLOYMENTS``). ``vocabularies``: the
    codes a compiled package's script gives strings (``cato.deploy.compile.package_vocabularies``), so that
    the table holds the vectors that package makes; without them every string codes 0."""
    script = generate(features, depths, strategy, deadline, engine, input_positions=input_positions,
                      vocabularies=vocabularies)
    # In name order: batches are runs of consecutive captures, so the batches' tables, each in order,
    # concatenate into one in order.
    captures = sorted(corpus.captures)
    with tempfile.TemporaryDirectory(prefix="cato-extract-") as tmp:
        path = Path(tmp) / "cato-features.zeek"
        path.write_text(script.text)
        run = run_over_captures(path, [(c, corpus.path_of(c)) for c in captures], jobs=jobs, progress=progress,
                                zeek=zeek, native=script.engine == "native", sink=_Labeller(corpus, script, writer),
                                executor=executor, deployment=deployment)
    problems = list(run.problems) + [p for part in run.parts for p in part.problems]
    vectors = sum(part.vectors for part in run.parts)
    if writer is not None:
        return Extraction(pd.DataFrame(), script, problems, list(corpus.problems), vectors, run.zeek_cpu_s,
                          run.zeek_runs, [part.part for part in run.parts])
    tables = [part.part for part in run.parts if len(part.part)]
    table = pd.concat(tables, ignore_index=True) if tables else label_vectors(_normalize(pd.DataFrame(), script),
                                                                              corpus)
    return Extraction(table, script, problems, list(corpus.problems), vectors, run.zeek_cpu_s, run.zeek_runs)


def unmatched_labels(vectors: pd.DataFrame, table: pd.DataFrame, corpus: Corpus,
                     skipped: set[str]) -> list[CaptureProblem]:
    """Per capture of a flow-level corpus: labels.csv rows that matched no connection Zeek saw, and
    captures where Zeek saw connections but none is labelled (a labels file for other traffic)."""
    problems = []
    matched = set(zip(table["capture"].astype(str), (flow_key(str(p), str(a), int(ap), str(b), int(bp))
                  for p, a, ap, b, bp in zip(table["proto"], table["orig_h"], table["orig_p"],
                                             table["resp_h"], table["resp_p"]))))
    seen = set(vectors["capture"].astype(str)) if len(vectors) else set()
    for capture, rows in corpus.labels.groupby("pcap", sort=False):
        if capture in skipped:
            continue
        missing = [k for k in rows["key"] if (capture, k) not in matched]
        if not missing:
            continue
        first = missing[0]
        example = f"{first[0]} {first[1]}:{first[2]} - {first[3]}:{first[4]}"
        if len(missing) == len(rows):
            reason = ("Zeek saw connections in it, but none is labelled" if capture in seen
                      else "Zeek saw no connection in it") + f": its {len(rows)} labelled connection(s) " \
                f"matched nothing (first: {example})"
            problems.append(CaptureProblem(capture, reason, True))
        else:
            problems.append(CaptureProblem(capture, f"{len(missing)} of its {len(rows)} labelled connections "
                                                    f"matched no connection Zeek saw (first: {example})", False))
    return problems


def _normalize(vectors: pd.DataFrame, script: GeneratedScript) -> pd.DataFrame:
    if vectors.empty:
        cols = ["capture", "uid", "proto", "orig_h", "orig_p", "resp_h", "resp_p", "ts", "depth",
                "pkts_seen", "decided_after", "decided_by", *script.columns]
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    return vectors.rename(columns={"id.orig_h": "orig_h", "id.orig_p": "orig_p",
                                   "id.resp_h": "resp_h", "id.resp_p": "resp_p"})


def label_vectors(vectors: pd.DataFrame, corpus: Corpus) -> pd.DataFrame:
    """Join labels: by capture (file-level) or by direction-free 5-tuple (flow-level)."""
    labels = corpus.labels
    if corpus.flow_level:
        keys = [flow_key(str(p), str(a), int(ap), str(b), int(bp))
                for p, a, ap, b, bp in zip(vectors["proto"], vectors["orig_h"], vectors["orig_p"],
                                           vectors["resp_h"], vectors["resp_p"])]
        with warnings.catch_warnings():  # a wide table built column by column; copying it costs more
            warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
            vectors = vectors.assign(_key=keys)
        merged = vectors.merge(labels[["pcap", "key", "label", "group"]],
                               left_on=["capture", "_key"], right_on=["pcap", "key"], how="inner")
        merged = merged.drop(columns=["_key", "key", "pcap"])
    else:
        per_file = labels.drop_duplicates("pcap")[["pcap", "label", "group"]]
        merged = vectors.merge(per_file, left_on="capture", right_on="pcap", how="inner").drop(columns=["pcap"])
    feature_cols = [c for c in vectors.columns if c not in ID_COLUMNS and c != "_key"]
    merged = merged[ID_COLUMNS + feature_cols]
    merged = merged.sort_values(["capture", "ts", "uid", "depth"], kind="stable").reset_index(drop=True)
    for col in ("capture", "uid", "proto", "orig_h", "resp_h", "label", "group", "decided_by"):
        merged[col] = merged[col].astype("string")
    return merged


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write the table as Parquet (or CSV when the name ends in .csv)."""
    path = Path(path)
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)


@dataclass
class TablePart:
    """One batch's rows of the feature table, written by :class:`TablePartWriter`."""

    path: Path
    rows: int
    connections: int
    labels: list[str]


@dataclass
class TablePartWriter:
    """Writes each batch's table to a Parquet file of its own (in the extraction's worker processes)."""

    directory: Path

    def __call__(self, batch: int, table: pd.DataFrame) -> TablePart:
        path = self.directory / f"part-{batch:06d}.parquet"
        table.to_parquet(path, index=False)
        return TablePart(path, len(table), int(table["uid"].nunique()), sorted(table["label"].dropna().unique()))


def extract_to_file(corpus: Corpus, features: Sequence[Feature], depths: int | Iterable[int], output: str | Path,
                    **options) -> tuple[Extraction, list[TablePart]]:
    """:func:`extract` into ``output`` (Parquet, or CSV when the name ends in .csv) batch by batch: the
    table is never whole in memory. Returns the extraction (its ``table`` empty) and its parts' sizes."""
    import pyarrow.parquet as pq
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".cato-parts-", dir=output.parent) as tmp:
        result = extract(corpus, features, depths, writer=TablePartWriter(Path(tmp)), **options)
        parts = [p for p in result.parts if p.rows]
        empty = label_vectors(_normalize(pd.DataFrame(), result.script), corpus)
        if not parts:
            write_table(empty, output)
        elif output.suffix == ".csv":
            for i, part in enumerate(parts):
                pd.read_parquet(part.path).to_csv(output, index=False, header=i == 0, mode="w" if i == 0 else "a")
        else:
            writer = None
            try:
                for part in parts:
                    table = pq.read_table(part.path)
                    if writer is None:
                        writer = pq.ParquetWriter(output, table.schema)
                    # A batch where a column was all unset may have typed it otherwise: the first one's type.
                    writer.write_table(table.cast(writer.schema) if table.schema != writer.schema else table)
            finally:
                if writer is not None:
                    writer.close()
    return result, parts
