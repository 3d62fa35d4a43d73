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
