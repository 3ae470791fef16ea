"""Writing the output contract's tables: flows.csv, events.csv, logs.csv, summary.json.

Timestamps are written as decimal POSIX seconds straight from the integer nanoseconds,
with as many fraction digits as the capture's resolution has (6 or 9), so nothing is
rounded through a float on the way out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analyzer import frames, schema, spill
from analyzer.report import csv_rows


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


# ----------------------------------------------------------------------------- the columns
@dataclass
class Column:
    """One written column, described once for both writers (CSV and Parquet): its contract
    name, what it holds (csv_rows.NUMBER, TIMESTAMP or TEXT), and its values, a whole table
    column that is read a slice at a time: numbers or nanoseconds (a numpy array, or a
    pandas nullable array whose missing cells are empty), or a text column's category codes
    (-1 for an empty cell) with the categories."""
    name: str
    kind: int
    values: object
    categories: pd.Index | None = None
    valid: np.ndarray | None = None     # False where a cell is empty
    dictionary: bool = True             # Parquet: text as a dictionary column

    def cells(self, start: int, stop: int) -> np.ndarray:
        """The slice as int64 cells: MISSING (or code -1) where a cell is empty."""
        part = self.values[start:stop]
        if isinstance(part, np.ndarray):
            cells = part.astype(np.int64)
        else:
            cells = part.to_numpy(np.int64, na_value=csv_rows.MISSING)
        if self.valid is not None:
            cells[~self.valid[start:stop]] = -1 if self.kind == csv_rows.TEXT else csv_rows.MISSING
        return cells


def _number(frame, name, source=None, valid=None) -> Column:
    column = frame[source or name]
    # a nullable column is kept as pandas' array: its slices know their missing cells
    values = column.array if isinstance(column.dtype, pd.api.extensions.ExtensionDtype) else column.to_numpy()
    return Column(name, csv_rows.NUMBER, values, valid=valid)


def _timestamp(frame, name, source, valid=None) -> Column:
    return Column(name, csv_rows.TIMESTAMP, frame[source].to_numpy(np.int64), valid=valid)


def _text(frame, name) -> Column:
    column = frame[name]
    if not isinstance(column.dtype, pd.CategoricalDtype):
        raise TypeError(f"{name}: text columns are written from categoricals")
    return Column(name, csv_rows.TEXT, frames.codes(column), column.cat.categories)


def flows_columns(flows: pd.DataFrame) -> list[Column]:
    has_teardown = (flows["teardown"] != "open").to_numpy()
    f = flows
    return _checked([
        _number(f, "flow_id"), _text(f, "proto"), _number(f, "ip_version"),
        _text(f, "initiator_ip"), _number(f, "initiator_port"),
        _text(f, "responder_ip"), _number(f, "responder_port"), _text(f, "phone_role"),
        _timestamp(f, "first_ts", "first_ts_ns"), _timestamp(f, "last_ts", "last_ts_ns"),
        _number(f, "first_frame"), _number(f, "last_frame"),
        _number(f, "packets_i2r"), _number(f, "packets_r2i"),
        _number(f, "bytes_i2r"), _number(f, "bytes_r2i"),
        _text(f, "conn_state"), _text(f, "history"), _text(f, "teardown"), _text(f, "teardown_by"),
        _timestamp(f, "teardown_ts", "teardown_ts_ns", has_teardown),
        _number(f, "teardown_frame", valid=has_teardown), _number(f, "syn_count"),
    ], schema.FLOW_COLUMNS)


def events_columns(events: pd.DataFrame) -> list[Column]:
    e = events
    return _checked([
        _timestamp(e, "ts", "ts_ns"), _number(e, "frame"), _number(e, "flow_id"),
        _text(e, "kind"), _text(e, "sender"), _text(e, "src_ip"), _number(e, "src_port"),
        _text(e, "dst_ip"), _number(e, "dst_port"), _text(e, "detail"),
    ], schema.EVENT_COLUMNS)


LOG_NUMBERS = ("local_port", "remote_port", "flow_id")


def logs_columns(logs: pd.DataFrame) -> list[Column]:
    """logs.csv: the aligned log events, one row each. Its columns are Python objects
    (None, NA or NaN when empty); they are turned into numbers and categories first (there
    are thousands of log lines, not millions of packets)."""
    ts = logs["ts_ns"].astype("Int64")
    columns = [Column("ts", csv_rows.TIMESTAMP, ts.fillna(0).to_numpy(np.int64),
                      valid=ts.notna().to_numpy())]
    for name in schema.LOG_COLUMNS[1:]:
        if name in LOG_NUMBERS:
            columns.append(Column(name, csv_rows.NUMBER, logs[name].astype("Int64").array))
        else:
            texts = pd.Categorical([None if _empty(v) else str(v) for v in logs[name].astype(object)])
            columns.append(Column(name, csv_rows.TEXT, np.asarray(texts.codes), texts.categories,
                                  dictionary=False))
    return _checked(columns, schema.LOG_COLUMNS)


def _empty(value) -> bool:
    return value is pd.NA or value is None or (isinstance(value, float) and value != value)


def _checked(columns: list[Column], names: list[str]) -> list[Column]:
    assert [c.name for c in columns] == names
    return columns


# ----------------------------------------------------------------------------- CSV
CSV_SLICE_ROWS = 4096       # rows formatted per kernel call: a 23-column slice is 0.75 MB of cells
TRIM_SLICES = 64           # slices between trims of the mapped tables' pages (256k rows)
CSV_BUFFER = 1 << 20        # the text buffer each writer fills and flushes (larger: no quicker)


def _quoted(text: str) -> bytes:
    return ('"' + text.replace('"', '""') + '"').encode()


def _category_text(categories: pd.Index) -> pa.Array:
    """A text column's categories as Arrow strings, each as str() has it."""
    try:
        return pa.array(categories, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):    # not text (numbers, mixed): as str() has them
        return pa.array([str(c) for c in categories], pa.string())


def _quoted_categories(categories: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Each category as quoted CSV text: (the texts' bytes, one after another; where each
    starts, and after the last, where it ends). Done by Arrow, not string by string: an
    events table has tens of thousands of distinct details and addresses."""
    if len(categories) == 0:
        return np.zeros(0, np.uint8), np.zeros(1, np.int64)
    quote = pa.scalar('"')
    strings = pc.replace_substring(_category_text(categories), '"', '""')
    quoted = pc.binary_join_element_wise(quote, strings, quote, "")
    quoted = quoted.cast(pa.large_string())         # 64-bit offsets, read as they are
    _, offsets, data = quoted.buffers()
    offsets = np.frombuffer(offsets, np.int64, len(quoted) + 1, quoted.offset * 8)
    data = np.frombuffer(data, np.uint8)
    return data[offsets[0]:offsets[-1]], offsets - offsets[0]


def write_csv(columns: list[Column], digits: int, path: Path) -> None:
    """The table as CSV, formatted by the compiled row kernel a slice at a time (without the
    GIL: two writers run on two cores)."""
    from analyzer.dissect import kernels
    kinds = np.array([c.kind for c in columns], np.int64)
    # every text column's categories, quoted, in one buffer; text_base: each column's first
    texts, starts = [np.zeros(0, np.uint8)], [np.zeros(1, np.int64)]
    text_base = np.zeros(len(columns), np.int64)
    entries = size = 0
    widest = len(columns) + 1                           # commas and the newline
    for i, column in enumerate(columns):
        if column.kind == csv_rows.TEXT:
            data, offsets = _quoted_categories(column.categories)
            text_base[i] = entries
            texts.append(data)
            starts.append(offsets[1:] + size)
            entries += len(offsets) - 1
            size += len(data)
            widest += int(np.diff(offsets).max(initial=0))
        else:
            widest += csv_rows.TIMESTAMP_WIDTH if column.kind == csv_rows.TIMESTAMP else csv_rows.NUMBER_WIDTH
    texts, offsets = np.concatenate(texts), np.concatenate(starts)
    rows = len(columns[0].values) if columns else 0
    out = np.empty(max(CSV_BUFFER, 2 * widest), np.uint8)
    cells = np.empty((len(columns), min(CSV_SLICE_ROWS, max(rows, 1))), np.int64)
    with open(path, "wb") as f:
        f.write(b",".join(_quoted(c.name) for c in columns) + b"\n")
        for start in range(0, rows, CSV_SLICE_ROWS):
            stop = min(start + CSV_SLICE_ROWS, rows)
            for i, column in enumerate(columns):
                cells[i, :stop - start] = column.cells(start, stop)
            row = 0
            while row < stop - start:
                row, used = kernels.format_rows(row, stop - start, cells, kinds, digits, texts,
                                                offsets, text_base, widest, out)
                f.write(memoryview(out)[:used])
            if (start // CSV_SLICE_ROWS) % TRIM_SLICES == TRIM_SLICES - 1:
                spill.trim()    # the pages of the mapped columns read so far


# ----------------------------------------------------------------------------- Parquet
def arrow_slice(columns: list[Column], start: int, stop: int, digits: int,
                dictionaries: dict) -> pa.Table:
    """Rows start..stop as an Arrow table: numbers as int64, timestamps as 'sec.fraction'
    text, text as dictionary columns (the slices share each column's Arrow dictionary,
    kept in `dictionaries`)."""
    arrays = {}
    for column in columns:
        cells = column.cells(start, stop)
        if column.kind == csv_rows.TEXT:
            if column.name not in dictionaries:
                dictionaries[column.name] = _category_text(column.categories)
            codes = pa.array(cells.astype(np.int32), mask=cells < 0)
            array = pa.DictionaryArray.from_arrays(codes, dictionaries[column.name])
            arrays[column.name] = array if column.dictionary else array.dictionary_decode()
        else:
            missing = cells == csv_rows.MISSING
            if column.kind == csv_rows.TIMESTAMP:
                arrays[column.name] = ts_text(np.where(missing, 0, cells), digits,
                                              ~missing if missing.any() else None)
            else:
                arrays[column.name] = pa.array(cells, mask=missing if missing.any() else None)
    return pa.table(arrays)


def write_parquet(columns: list[Column], digits: int, path: Path) -> None:
    import pyarrow.parquet as pq
    writer = None
    dictionaries: dict = {}
    rows = len(columns[0].values) if columns else 0
    try:
        for start in range(0, max(rows, 1), SLICE_ROWS):
            table = arrow_slice(columns, start, min(start + SLICE_ROWS, rows), digits, dictionaries)
            if writer is None:
                writer = pq.ParquetWriter(str(path), table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


SLICE_ROWS = 8192       # rows per Parquet slice: two writers at once hold ~9 MB of Arrow text


def write_table(frame: pd.DataFrame, columns_of, digits: int, path: Path, fmt: str) -> None:
    """One table (`columns_of` describes its columns) as CSV or Parquet."""
    columns = columns_of(frame)
    if fmt == "csv":
        write_csv(columns, digits, path)
    else:
        write_parquet(columns, digits, path)


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
