"""Parse Zeek ASCII logs by their ``#fields`` / ``#types`` headers."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

_NUMERIC = {"count": "Int64", "int": "Int64", "port": "Int64", "double": "float64",
            "time": "float64", "interval": "float64"}


class LogFormatError(ValueError):
    pass


def read_zeek_log(path: str | Path) -> pd.DataFrame:
    """A Zeek ASCII log as a DataFrame: unset fields are missing, columns typed from ``#types``."""
    path = Path(path)
    fields: list[str] | None = None
    types: list[str] | None = None
    body: list[str] = []
    sep = "\t"
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("#"):
                if line.startswith("#separator"):
                    sep = line.split(" ", 1)[1].strip().encode().decode("unicode_escape")
                elif line.startswith("#fields"):
                    fields = line.rstrip("\n").split(sep)[1:]
                elif line.startswith("#types"):
                    types = line.rstrip("\n").split(sep)[1:]
                continue
            body.append(line)
    if fields is None or types is None:
        raise LogFormatError(f"{path}: no #fields/#types header (not a Zeek ASCII log)")
    dtypes = {name: _NUMERIC.get(t, "string") for name, t in zip(fields, types)}
    if not body:
        return pd.DataFrame({n: pd.Series(dtype=d) for n, d in dtypes.items()})
    df = pd.read_csv(io.StringIO("".join(body)), sep=sep, names=fields, header=None, dtype=str,
                     na_values=["-"], keep_default_na=False, quoting=3)
    for name, dtype in dtypes.items():
        if dtype == "string":
            df[name] = df[name].astype("string")
        elif dtype == "Int64":
            df[name] = pd.to_numeric(df[name]).astype("Int64")
        else:
            df[name] = pd.to_numeric(df[name]).astype("float64")
    return df
