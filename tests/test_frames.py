"""The table helpers that stand in for pandas on big tables give pandas' answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from analyzer import frames

VALUES = st.lists(st.one_of(st.none(), st.sampled_from(["rst", "fin", "open", "syn", "a b"])),
                  max_size=60)


def _categorical(values, extra):
    # categories in an order of their own, some never used, some rows missing
    categories = sorted(set(v for v in values if v is not None) | set(extra), reverse=True)
    return pd.Series(pd.Categorical(values, categories=categories))


@settings(max_examples=300, deadline=None)
@given(values=VALUES, extra=st.lists(st.sampled_from(["x", "y", "z"]), max_size=3),
       step=st.integers(1, 70))
def test_value_counts_is_pandas(values, extra, step):
    column = _categorical(values, extra)
    old, frames.COUNT_STEP = frames.COUNT_STEP, step      # many steps, and one
    try:
        ours = frames.value_counts(column)
    finally:
        frames.COUNT_STEP = old
    theirs = column.value_counts()
    assert list(ours.index) == list(theirs.index)
    assert ours.to_numpy().tolist() == theirs.to_numpy().tolist()


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(["rst", "fin", "open"])),
                                st.one_of(st.none(), st.sampled_from(["phone", "server", "unknown"]))),
                      max_size=60),
       step=st.integers(1, 70))
def test_pair_counts_is_a_groupby(pairs, step):
    first = _categorical([a for a, _ in pairs], ["refused"])
    second = _categorical([b for _, b in pairs], [])
    old, frames.COUNT_STEP = frames.COUNT_STEP, step
    try:
        ours = frames.pair_counts(first, second)
    finally:
        frames.COUNT_STEP = old
    expected: dict = {}
    grouped = pd.DataFrame({"a": first, "b": second}).groupby(["a", "b"], observed=True).size()
    for (a, b), count in grouped.items():
        expected.setdefault(a, {})[b] = int(count)
    assert ours == expected
    assert list(ours) == list(expected) and all(list(ours[k]) == list(expected[k]) for k in ours)
    # the same answer for plain text columns
    plain = frames.pair_counts(first.astype(object), second.astype(object))
    assert {k: dict(sorted(v.items())) for k, v in plain.items()} == \
        {k: dict(sorted(v.items())) for k, v in expected.items()}


def test_codes_are_the_columns_own():
    column = pd.Series(pd.Categorical(["a", "b", "a"]))
    own = frames.codes(column)
    assert own.tolist() == [0, 1, 0] and not own.flags.writeable
    assert np.shares_memory(own, column.array.codes)


@settings(max_examples=300, deadline=None)
@given(values=VALUES, extra=st.lists(st.sampled_from(["x", "y"]), max_size=2),
       wanted=st.lists(st.one_of(st.none(), st.sampled_from(["rst", "fin", "x", "nowhere"])), max_size=3))
def test_isin_is_pandas(values, extra, wanted):
    column = _categorical(values, extra)
    assert frames.isin(column, wanted).tolist() == column.isin(wanted).tolist()
    plain = column.astype(object)
    assert frames.isin(plain, wanted).tolist() == plain.isin(wanted).tolist()


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(["rst", "fin", "open"])),
                               st.one_of(st.none(), st.sampled_from(["phone", "server"])),
                               st.booleans()),
                     max_size=60),
       categorical=st.booleans())
def test_tuple_counts_count_every_combination_that_occurs(rows, categorical):
    """Each (a, b, flag) that occurs, missing values as None, counted as a loop over the rows
    counts it; for categorical columns (read on their codes) and plain ones alike."""
    first = [a for a, _, _ in rows]
    second = [b for _, b, _ in rows]
    if categorical:
        columns = (_categorical(first, ["syn"]), _categorical(second, []))
    else:
        columns = (pd.Series(first, dtype=object), pd.Series(second, dtype=object))
    flags = pd.Series([c for _, _, c in rows], dtype=bool)
    want: dict = {}
    for row in rows:
        want[row] = want.get(row, 0) + 1
    assert frames.tuple_counts(*columns, flags) == want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(2 ** 63), 2 ** 63 - 1), max_size=40), st.sampled_from([1, 3, 1 << 20]),
       st.booleans())
def test_extremes_read_in_steps_are_the_columns_min_and_max(values, step, as_series):
    """A column's (min, max), read a step of rows at a time: those of the whole column,
    whatever the step, from an array or a Series; None when it is empty."""
    import analyzer.frames as frames_module
    array = np.array(values, np.int64)
    column = pd.Series(array) if as_series else array
    saved = frames_module.EXTREME_STEP
    frames_module.EXTREME_STEP = step
    try:
        got = frames_module.extremes(column)
    finally:
        frames_module.EXTREME_STEP = saved
    assert got == ((int(array.min()), int(array.max())) if len(array) else None)


@settings(max_examples=200, deadline=None)
@given(VALUES, st.lists(st.sampled_from(["rst", "fin", "zzz"]), max_size=3))
def test_lookup_gives_each_row_its_value_or_the_default(values, extra):
    """Each row's value from a table by its text, the default for other texts and missing
    rows: the same for a categorical (through its categories) and for plain text."""
    table = {"rst": 5, "fin": 7, "open": -3}
    want = [table.get(v, 99) if v is not None else 99 for v in values]
    assert frames.lookup(_categorical(values, extra), table, 99).tolist() == want
    assert frames.lookup(pd.Series(values, dtype=object), table, 99).tolist() == want


@settings(max_examples=200, deadline=None)
@given(st.integers(-5, 5), st.integers(1, 30), st.booleans(), st.lists(st.integers(0, 10**6), max_size=20))
def test_id_rows_are_the_positions_of_the_ids(first, n, gaps, picks):
    """Positions of ids in a sorted id column: by offset when the ids have no gap, by
    search when they have; the same positions either way."""
    ids = first + np.arange(n, dtype=np.int64) * (2 if gaps else 1)
    want = np.array([p % n for p in picks], np.int64)
    assert frames.id_rows(ids, ids[want]).tolist() == want.tolist()
