"""Parse Zeek ASCII logs by their ``#fields`` / ``#types`` headers."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

_NUMERIC = {"count": "Int64", "int": "Int64", "port": "Int64", "double": "float64",
            "time": "float64", "interval": "float64"}
_ARROW = {"Int64": pa.int64(), "float64": pa.float64(), "string": pa.string()}
_PANDAS = {pa.int64(): pd.Int64Dtype(), pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype()}


class LogFormatError(ValueError):
    pass


def log_string_bytes(text: str) -> bytes:
    r"""The bytes a string field of a Zeek ASCII log stands for: ``(empty)`` is the empty string, ``\\``
    a backslash and ``\xNN`` a byte (what Zeek escapes: unprintable bytes, the separator, a lone
    ``-``); any other character is itself, in UTF-8."""
    if text == "(empty)":
        return b""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and text.startswith("\\\\", i):
            out += b"\\"
            i += 2
        elif ch == "\\" and text[i + 1:i + 2] == "x" and _is_hex(text[i + 2:i + 4]):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
    return bytes(out)


def _is_hex(pair: str) -> bool:
    return len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair)


def _header(path: Path) -> tuple[str, list[str], list[str], int]:
    """(separator, fields, types, header lines) of a Zeek ASCII log."""
    fields: list[str] | None = None
    types: list[str] | None = None
    sep, lines = "\t", 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("#"):
                break
            lines += 1
            if line.startswith("#separator"):
                sep = line.split(" ", 1)[1].strip().encode().decode("unicode_escape")
            elif line.startswith("#fields"):
                fields = line.rstrip("\n").split(sep)[1:]
            elif line.startswith("#types"):
                types = line.rstrip("\n").split(sep)[1:]
    if fields is None or types is None:
        raise LogFormatError(f"{path}: no #fields/#types header (not a Zeek ASCII log)")
    return sep, fields, types, lines


def read_zeek_log_arrow(path: str | Path) -> pa.Table:
    """A Zeek ASCII log as an Arrow table, parsed in C++ (no Python object per value): unset fields are
    null, numbers typed from ``#types``, everything else text."""
    path = Path(path)
    sep, fields, types, skip = _header(path)
    kinds = {name: _ARROW[_NUMERIC.get(t, "string")] for name, t in zip(fields, types)}
    # The trailer (#close) and any other comment line has another shape: skipped, not an error.
    options = dict(
        read_options=pacsv.ReadOptions(column_names=fields, skip_rows=skip, block_size=1 << 22),
        parse_options=pacsv.ParseOptions(delimiter=sep, quote_char=False, escape_char=False,
                                         newlines_in_values=False,
                                         invalid_row_handler=lambda row: "skip" if (row.text or "").startswith("#")
                                         else "error"),
        convert_options=pacsv.ConvertOptions(column_types=kinds, null_values=["-"], strings_can_be_null=True,
                                             quoted_strings_can_be_null=False))
    try:
        table = pacsv.read_csv(path, **options)
    except pa.ArrowInvalid as e:
        if "Empty CSV file" in str(e):
            return pa.table({n: pa.array([], type=k) for n, k in kinds.items()})
        raise LogFormatError(f"{path}: {e}") from e
    comments = pc.starts_with(table.column(0).cast(pa.string()), "#") if table.num_rows and \
        pa.types.is_string(table.schema.field(0).type) else None
    if comments is not None:
        table = table.filter(pc.invert(pc.fill_null(comments, False)))
    return table


def read_zeek_log(path: str | Path) -> pd.DataFrame:
    """A Zeek ASCII log as a DataFrame: unset fields are missing, columns typed from ``#types``."""
    try:
        table = read_zeek_log_arrow(path)
    except (LogFormatError, UnicodeDecodeError, pa.ArrowException):
        return _read_zeek_log_text(Path(path))
    return table.to_pandas(types_mapper=_PANDAS.get)


def _read_zeek_log_text(path: Path) -> pd.DataFrame:
    # The slow path, for logs Arrow refuses (text that is not UTF-8, say): one Python string per value.
    sep, fields, types, _ = _header(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        body = [line for line in f if not line.startswith("#")]
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
