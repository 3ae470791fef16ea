"""Writing the output contract's tables: flows.csv, events.csv, logs.csv, summary.json.

Timestamps are written as decimal POSIX seconds straight from the integer nanoseconds,
with as many fraction digits as the capture's resolution has (6 or 9), so nothing is
rounded through a float on the way out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from analyzer import schema


def ts_text(ts_ns, digits: int, valid=None) -> pa.Array:
    """int64 nanoseconds -> 'sec.fraction' strings (null where not valid)."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    sec = ts // 1_000_000_000
    frac = ts % 1_000_000_000
    if digits < 9:
        frac = frac // 10 ** (9 - digits)
    sec_s = pc.cast(pa.array(sec), pa.string())
    frac_s = pc.utf8_lpad(pc.cast(pa.array(frac), pa.string()), width=digits, padding="0")
    out = pc.binary_join_element_wise(sec_s, frac_s, ".")
    if valid is not None:
        out = pc.if_else(pa.array(np.asarray(valid, dtype=bool)), out, pa.nulls(len(ts), pa.string()))
    return out


def ts_digits(resolution: str) -> int:
    """Fraction digits for a capture resolution text such as '1e-6' or '1e-9,1e-6'."""
    digits = 6
    for part in filter(None, resolution.split(",")):
        if part.startswith("1e-"):
            digits = max(digits, min(int(part[3:]), 9))
        elif part.startswith("2^-"):
            digits = max(digits, min(math.ceil(int(part[3:]) * math.log10(2)), 9))
    return digits


def text(column, dictionaries: dict | None = None) -> pa.Array:
    """A text column (plain or categorical) as an Arrow string array. `dictionaries` keeps
    each categorical's Arrow dictionary between the slices of one table: the slices share
    their categories, which can number tens of thousands (addresses, details)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = np.asarray(column.cat.codes, dtype=np.int32)
        categories = column.cat.categories
        known = (dictionaries or {}).get(id(categories))
        if known is None:
            # the categories are kept with their dictionary, so their id stays theirs
            known = (categories, pa.array([str(c) for c in categories], pa.string()))
            if dictionaries is not None:
                dictionaries[id(categories)] = known
        dictionary = known[1]
        # the CSV and Parquet writers take dictionary arrays as they are: no string per row
        return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), dictionary)
    return pa.array(column.astype(object).tolist(), pa.string())


def _int_or_null(values, valid) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.int64), mask=~np.asarray(valid, dtype=bool))


def flows_table(flows: pd.DataFrame, digits: int, dictionaries: dict | None = None) -> pa.Table:
    has_teardown = (flows["teardown"] != "open").to_numpy()
    cols = {
        "flow_id": pa.array(flows["flow_id"].to_numpy(np.int64)),
        "proto": text(flows["proto"], dictionaries),
        "ip_version": pa.array(flows["ip_version"].to_numpy(np.int64)),
        "initiator_ip": text(flows["initiator_ip"], dictionaries),
        "initiator_port": pa.array(flows["initiator_port"].to_numpy(np.int64)),
        "responder_ip": text(flows["responder_ip"], dictionaries),
        "responder_port": pa.array(flows["responder_port"].to_numpy(np.int64)),
        "phone_role": text(flows["phone_role"], dictionaries),
        "first_ts": ts_text(flows["first_ts_ns"], digits),
        "last_ts": ts_text(flows["last_ts_ns"], digits),
        "first_frame": pa.array(flows["first_frame"].to_numpy(np.int64)),
        "last_frame": pa.array(flows["last_frame"].to_numpy(np.int64)),
        "packets_i2r": pa.array(flows["packets_i2r"].to_numpy(np.int64)),
        "packets_r2i": pa.array(flows["packets_r2i"].to_numpy(np.int64)),
        "bytes_i2r": pa.array(flows["bytes_i2r"].to_numpy(np.int64)),
        "bytes_r2i": pa.array(flows["bytes_r2i"].to_numpy(np.int64)),
        "conn_state": text(flows["conn_state"], dictionaries),
        "history": text(flows["history"], dictionaries),
        "teardown": text(flows["teardown"], dictionaries),
        "teardown_by": text(flows["teardown_by"], dictionaries),
        "teardown_ts": ts_text(flows["teardown_ts_ns"], digits, has_teardown),
        "teardown_frame": _int_or_null(flows["teardown_frame"], has_teardown),
        "syn_count": pa.array(flows["syn_count"].to_numpy(np.int64)),
    }
    assert list(cols) == schema.FLOW_COLUMNS
    return pa.table(cols)


def events_table(events: pd.DataFrame, digits: int, dictionaries: dict | None = None) -> pa.Table:
    src_port = events["src_port"]
    cols = {
        "ts": ts_text(events["ts_ns"], digits),
        "frame": pa.array(events["frame"].to_numpy(np.int64)),
        "flow_id": pa.array(events["flow_id"].to_numpy(np.int64)),
        "kind": text(events["kind"], dictionaries),
        "sender": text(events["sender"], dictionaries),
        "src_ip": text(events["src_ip"], dictionaries),
        "src_port": pa.array(src_port.astype("Int64").to_numpy(np.int64, na_value=0),
                             mask=src_port.isna().to_numpy()),
        "dst_ip": text(events["dst_ip"], dictionaries),
        "dst_port": pa.array(events["dst_port"].to_numpy(np.int64)),
        "detail": text(events["detail"], dictionaries),
    }
    assert list(cols) == schema.EVENT_COLUMNS
    return pa.table(cols)


def logs_table(logs: pd.DataFrame, digits: int, dictionaries: dict | None = None) -> pa.Table:
    """logs.csv: the aligned log events, one row each, in the contract's columns."""
    ts = logs["ts_ns"].astype("Int64")
    valid = ts.notna().to_numpy()
    cols = {"ts": ts_text(ts.fillna(0).to_numpy(np.int64), digits, valid)}
    for name in schema.LOG_COLUMNS[1:]:
        column = logs[name]
        if name in ("local_port", "remote_port", "flow_id"):
            ints = column.astype("Int64")
            cols[name] = pa.array(ints.fillna(0).to_numpy(np.int64), mask=ints.isna().to_numpy())
        else:
            cols[name] = pa.array([None if v is pd.NA or v is None or (isinstance(v, float) and v != v)
                                   else str(v) for v in column.astype(object)], pa.string())
    assert list(cols) == schema.LOG_COLUMNS
    return pa.table(cols)


SLICE_ROWS = 8192       # rows per written slice: two writers at once hold ~9 MB of Arrow text


def write_table(frame: pd.DataFrame, build, digits: int, path: Path, fmt: str) -> None:
    """Write a table slice by slice, so only one slice is ever held as Arrow text."""
    writer = None
    dictionaries: dict = {}
    try:
        for start in range(0, max(len(frame), 1), SLICE_ROWS):
            table = build(frame.iloc[start:start + SLICE_ROWS], digits, dictionaries)
            if writer is None:
                writer = (pacsv.CSVWriter(str(path), table.schema,
                                          write_options=pacsv.WriteOptions(quoting_style="needed"))
                          if fmt == "csv" else _parquet_writer(path, table.schema))
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def _parquet_writer(path: Path, schema: pa.Schema):
    import pyarrow.parquet as pq
    return pq.ParquetWriter(str(path), schema)


READABLE_SUMMARY_BYTES = 1 << 20


def summary_json(summary, indent: int = 2) -> str:
    """summary.json's text: indented for reading when it is under 1 MB; a bigger one (a soak
    test's thousands of periods) compact, as indenting needs Python's slow encoder (0.6 s
    per 4 MB)."""
    text = json.dumps(summary, default=_json_default)
    if len(text) < READABLE_SUMMARY_BYTES:
        text = json.dumps(summary, indent=indent, default=_json_default)
    return text


def write_summary(summary: dict, path: Path) -> None:
    path.write_text(summary_json(summary) + "\n")


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
