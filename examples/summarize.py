"""Print a short summary of a feature table written by `cato extract`."""

import sys

import pandas as pd

table = pd.read_parquet(sys.argv[1])
features = table.columns[list(table.columns).index("pkts_seen") + 1:]
print(f"{len(table)} rows, {table['uid'].nunique()} connections, {table['capture'].nunique()} captures, "
      f"{table['label'].nunique()} labels, {len(features)} features, depths {sorted(table['depth'].unique().tolist())}")
print(table["label"].value_counts().head(10).to_string())
print(table.groupby("proto")[["pkts_seen", "duration", "orig_size_mean", "flow_iat_mean"]].mean().round(4))
