"""Corpora: labelled captures (``labels.csv``), reading captures, and merging them into Zeek input streams."""

from cato.corpus.labels import FLOW_COLUMNS, Corpus, CorpusError, flow_key, link_subset, load_corpus
from cato.corpus.merge import MergedStream, Segment, merge_captures
from cato.corpus.pcapio import Capture, CaptureError, Packet, read_capture, read_captures

__all__ = [
    "FLOW_COLUMNS", "Capture", "CaptureError", "Corpus", "CorpusError", "MergedStream", "Packet", "Segment",
    "flow_key", "link_subset", "load_corpus", "merge_captures", "read_capture", "read_captures",
]
