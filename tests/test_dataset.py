"""Dataset assembly without Zeek: rows in an order the traffic fixes, whatever uids Zeek drew."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cato.dataset import Dataset


def _table(uids: list[str]) -> pd.DataFrame:
    """Three connections of one 5-tuple starting at the same time (as Zeek splits some flows), two depths."""
    rows = []
    for uid, size in zip(uids, (100.0, 300.0, 200.0)):
        for depth in (1, 2):
            rows.append({"capture": "a.pcap", "uid": uid, "ts": 5.0, "proto": "udp", "orig_h": "10.0.0.1",
                         "orig_p": 1, "resp_h": "10.0.0.2", "resp_p": 2, "depth": depth, "label": f"l{size:.0f}",
                         "group": "a.pcap", "orig_size_sum": size * depth, "orig_pkts": depth})
    return pd.DataFrame(rows)


def test_connections_that_tie_on_time_and_five_tuple_keep_one_order_across_uids():
    first = Dataset.from_table(_table(["Ca", "Cb", "Cc"]), 2)
    again = Dataset.from_table(_table(["Cz", "Cy", "Cx"]).sample(frac=1.0, random_state=1), 2)
    for depth in (1, 2):
        np.testing.assert_array_equal(first.matrix(["orig_size_sum"], depth), again.matrix(["orig_size_sum"], depth))
    np.testing.assert_array_equal(first.y, again.y)


def _timed(after_ms: list[list[float]], previous_ms: list[list[float]], proto: str = "udp") -> Dataset:
    """Connections of ``len(after_ms)`` packets each: their times and the network time before each."""
    rows = []
    for i, (after, previous) in enumerate(zip(after_ms, previous_ms)):
        for depth in range(1, 5):
            seen = min(depth, len(after))
            rows.append({"capture": "a.pcap", "uid": f"C{i}", "ts": 10.0 + i, "proto": proto, "orig_h": "10.0.0.1",
                         "orig_p": i, "resp_h": "10.0.0.2", "resp_p": 2, "depth": depth, "pkts_seen": seen,
                         "decided_after": after[seen - 1] / 1e3, "previous_after": previous[seen - 1] / 1e3,
                         "label": "x", "group": "a.pcap", "orig_pkts": seen})
    return Dataset.from_table(pd.DataFrame(rows), 4)


def test_deadline_vectors_hold_the_packets_zeek_had_when_network_time_passed_it():
    ds = _timed([[0, 10, 20, 30],  # own packets only: the one at 20 ms moves time past 15 ms, and is taken
                 [0, 10, 20, 30],  # another connection's packet at 16 ms came first: 2 packets
                 [0, 5],  # ended with 2 packets before any deadline
                 [0, 10, 20, 30]],  # a clock that went back: armed at network time 12 ms, due at 27 ms
                [[-1e9, 0, 10, 20], [-1e9, 0, 16, 25], [-1e9, 0], [12, 12, 12, 20]])
    np.testing.assert_array_equal(ds.depths_at(4, 0.015), [3, 2, 4, 4])
    np.testing.assert_array_equal(ds.depths_at(2, 0.015), [2, 2, 2, 2])
    np.testing.assert_array_equal(ds.depths_at(4, 1.0), [4, 4, 4, 4])
    np.testing.assert_array_equal(ds.matrix(["orig_pkts"], 4, 0.015)[:, 0], [3, 2, 2, 4])
    assert ds.span_s == 0.03
    # Zeek's ICMP record lags: the deadline's own packet is not taken.
    icmp = _timed([[0, 10, 20, 30]], [[-1e9, 0, 10, 20]], proto="icmp")
    np.testing.assert_array_equal(icmp.depths_at(4, 0.015), [2])
