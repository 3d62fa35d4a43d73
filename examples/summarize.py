"""Print a short summary of a feature table written by `cato extract`."""

import sys

import pandas as pd

table = pd.read_parquet(sys.argv[1])
features = table.columns[list(table.columns).index("pkts_seen") + 1:]
print(f"{len(table)} rows, {table['uid'].nunique()} connections, {table['capture'].nunique()} captures, "
      f"{table['label'].nunique()} labels, {len(features)} features, depths {sorted(table['depth'].unique().tolist())}")
print(table["label"].value_counts().head(10).to_string())
print(table.groupby("proto")[["pkts_seen", "duration", "orig_size_mean", "flow_iat_mean"]].mean().round(4))
# What Zeek's analyzers told (the strings the analyzer features encode), where the table has them.
for column in ("service", "dns_query", "dhcp_param_list"):
    if column in table.columns and table[column].notna().any():
        print(f"most common {column}:", ", ".join(f"{v} ({n})" for v, n in
                                                   table[column].value_counts().head(5).items()))
