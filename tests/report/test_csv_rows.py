"""The compiled CSV row formatter against Arrow's CSV writer (quoting_style="needed"), which
wrote the tables before it and is the oracle here: numbers, timestamps and text, with empty
cells, negative values, quotes, commas, line breaks and non-ASCII text, across slice and
buffer boundaries."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pytest
from hypothesis import given, settings, strategies as st

from analyzer.report import csv_rows, tables

INT64 = st.integers(-(2 ** 63) + 1, 2 ** 63 - 1)
TEXTS = st.text(alphabet=st.sampled_from(list('ab,"\n\r é\t') + ["名"]), max_size=6)


@st.composite
def frames(draw):
    rows = draw(st.integers(0, 40))
    numbers = draw(st.lists(st.one_of(st.none(), INT64), min_size=rows, max_size=rows))
    stamps = draw(st.lists(st.integers(-(2 ** 62), 2 ** 62), min_size=rows, max_size=rows))
    stamp_valid = draw(st.lists(st.booleans(), min_size=rows, max_size=rows))
    words = draw(st.lists(st.one_of(st.none(), TEXTS), min_size=rows, max_size=rows))
    empty = draw(st.lists(st.none(), min_size=rows, max_size=rows))
    plain = draw(st.lists(st.integers(0, 70000), min_size=rows, max_size=rows))
    return pd.DataFrame({
        "n": pd.array(numbers, dtype="Int64"),
        "ts_ns": np.array(stamps, np.int64),
        "ts_valid": np.array(stamp_valid, bool),
        "nothing": pd.Categorical(empty),       # a text column with no categories at all
        "word": pd.Categorical(words),
        "port": np.array(plain, np.int32),
    })


def _columns(frame):
    return [
        tables._number(frame, "n"),
        tables._timestamp(frame, "ts", "ts_ns", frame["ts_valid"].to_numpy()),
        tables._text(frame, "nothing"),
        tables._text(frame, "word"),
        tables._number(frame, "port"),
    ]


def _arrow_text(columns, digits) -> bytes:
    rows = len(columns[0].values)
    table = tables.arrow_slice(columns, 0, rows, digits, {})
    out = io.BytesIO()
    with pacsv.CSVWriter(out, table.schema, write_options=pacsv.WriteOptions(quoting_style="needed")) as w:
        w.write_table(table)
    return out.getvalue()


@settings(max_examples=200, deadline=None)
@given(frame=frames(), digits=st.sampled_from([6, 7, 8, 9]), slice_rows=st.integers(1, 50),
       buffer=st.sampled_from([0, 64, 4 << 20]))
def test_rows_are_written_as_arrow_writes_them(tmp_path_factory, frame, digits, slice_rows, buffer):
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    columns = _columns(frame)
    old = tables.CSV_SLICE_ROWS, tables.CSV_BUFFER
    tables.CSV_SLICE_ROWS, tables.CSV_BUFFER = slice_rows, buffer    # many slices and flushes
    try:
        tables.write_csv(columns, digits, path)
    finally:
        tables.CSV_SLICE_ROWS, tables.CSV_BUFFER = old
    assert path.read_bytes() == _arrow_text(columns, digits)


def test_extreme_numbers_and_timestamps(tmp_path):
    big = 2 ** 63 - 1
    frame = pd.DataFrame({
        "n": pd.array([big, -big, 0, -1, None, 7], dtype="Int64"),
        "ts_ns": np.array([-1, 0, 999_999_999, -1_000_000_000, big, -big], np.int64),
        "ts_valid": np.array([True, True, True, True, True, False]),
        "nothing": pd.Categorical([None] * 6),
        "word": pd.Categorical(['say "hi"', "a,b", "line\nbreak", None, "", "é"]),
        "port": np.array([0, 1, 65535, 2, 3, 4], np.int32),
    })
    path = tmp_path / "t.csv"
    tables.write_csv(_columns(frame), 9, path)
    text = path.read_bytes()
    assert text == _arrow_text(_columns(frame), 9)
    lines = text.split(b"\n")
    assert lines[0] == b'"n","ts","nothing","word","port"'
    assert lines[1] == b'9223372036854775807,"-1.999999999",,"say ""hi""",0'
    assert b'-1,"-1.000000000",,,2\n' in text           # an empty text cell is nothing at all
    assert text.endswith(b'7,,,"\xc3\xa9",4\n')      # and so is an empty timestamp


def test_an_empty_table_is_its_header(tmp_path):
    frame = pd.DataFrame({"n": pd.array([], dtype="Int64"), "ts_ns": np.zeros(0, np.int64),
                          "ts_valid": np.zeros(0, bool), "nothing": pd.Categorical([]), "word": pd.Categorical([]),
                          "port": np.zeros(0, np.int32)})
    path = tmp_path / "t.csv"
    tables.write_csv(_columns(frame), 6, path)
    assert path.read_bytes() == b'"n","ts","nothing","word","port"\n' == _arrow_text(_columns(frame), 6)


def test_text_columns_must_be_categorical():
    with pytest.raises(TypeError, match="word: text columns are written from categoricals"):
        tables._text(pd.DataFrame({"word": ["a"]}), "word")


def test_the_widest_row_bounds_what_a_call_writes():
    """The kernel stops before a row could overrun its buffer, and says where it stopped."""
    values = np.array([[1, 22, 333]], np.int64)
    kinds = np.array([csv_rows.NUMBER], np.int64)
    none = np.zeros(0, np.uint8)
    out = np.zeros(5, np.uint8)
    row, used = tables_kernels().format_rows(0, 3, values, kinds, 6, none, np.zeros(1, np.int64),
                                             np.zeros(1, np.int64), 2, out)
    assert (row, bytes(out[:used])) == (2, b"1\n22\n")
    row, used = tables_kernels().format_rows(row, 3, values, kinds, 6, none, np.zeros(1, np.int64),
                                             np.zeros(1, np.int64), 4, out)
    assert (row, bytes(out[:used])) == (3, b"333\n")


def tables_kernels():
    from analyzer.dissect import kernels
    return kernels


@pytest.mark.parametrize("categories", [
    pd.Index(['say "hi"', "", "a,b", "é"]), pd.Index([], dtype=object), pd.Index([1, 22]),
    pd.Index([1.5, 2.0]), pd.Index(["a", 2], dtype=object), pd.Index(["q"], dtype="string[pyarrow]"),
])
def test_categories_are_quoted_as_their_text(categories):
    data, offsets = tables._quoted_categories(categories)
    quoted = [bytes(data[offsets[i]:offsets[i + 1]]) for i in range(len(offsets) - 1)]
    assert quoted == [('"' + str(c).replace('"', '""') + '"').encode() for c in categories]
