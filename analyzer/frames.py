"""Small helpers for the tables every layer passes on."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyzer.spill import row_steps


def codes(column: pd.Series) -> np.ndarray:
    """A categorical column's own codes, read-only and not copied (`.cat.codes` builds a new
    Series, which copies them: a whole column, on a table of a million events)."""
    return column.array.codes


def isin(column: pd.Series, values) -> np.ndarray:
    """column.isin(values) as a numpy mask. A categorical is tested once per category and
    read through its codes: pandas' isin of a categorical costs ~10 ns a row, this ~1.5."""
    values = list(values)
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return column.isin(values).to_numpy()
    # the last entry answers for missing rows (code -1): in only if a missing value is asked
    lut = np.append(column.cat.categories.isin(values), any(pd.isna(v) for v in values))
    return lut[codes(column)]


def lookup(column: pd.Series, table: dict, default: int) -> np.ndarray:
    """Each row's value in `table` (by its text), `default` where it has none, as int64. A
    categorical is looked up once per category and read through its codes, not compared
    row by row once per key."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        lut = np.array([table.get(str(c), default) for c in column.cat.categories] + [default],
                       np.int64)      # the last entry answers for missing rows (code -1)
        return lut[codes(column)]
    out = np.full(len(column), default, np.int64)
    texts = text(column)
    for key, value in table.items():
        out[(texts == key).to_numpy()] = value
    return out


def id_rows(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The positions in `ids` (sorted, without repeats) of the ids `wanted`, each of which
    is there: by offset when the ids run from the first to the last without a gap, as flow
    ids do, else by binary search."""
    if len(ids) and int(ids[-1]) - int(ids[0]) == len(ids) - 1:
        return wanted - ids[0]
    return np.searchsorted(ids, wanted)


EXTREME_STEP = 1 << 20      # rows read per step: 8 MB of int64


def extremes(values) -> tuple[int, int] | None:
    """(min, max) of an integer column (a Series without missing values, or an array), or
    None when it is empty; read a step at a time, the mapped tables' pages dropped after
    each step: in one pass, a column of 7M events put its 58 MB of pages in the process at
    once, before the pager's next trim."""
    values = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if len(values) == 0:
        return None
    low, high = None, None
    for at in row_steps(len(values), EXTREME_STEP):
        part = values[at:at + EXTREME_STEP]
        part_low, part_high = int(part.min()), int(part.max())
        low = part_low if low is None else min(low, part_low)
        high = part_high if high is None else max(high, part_high)
    return low, high


COUNT_STEP = 262144     # rows counted per step


def _code_counts(own: np.ndarray, size: int) -> np.ndarray:
    """How many times each code 0..size-1 occurs (-1, missing, is left out), a step at a
    time: bincount would otherwise widen a whole column of int8 codes to int64."""
    out = np.zeros(size, np.int64)
    for at in row_steps(len(own), COUNT_STEP):
        part = own[at:at + COUNT_STEP]
        out += np.bincount(part[part >= 0], minlength=size)[:size]
    return out


def value_counts(column: pd.Series) -> pd.Series:
    """column.value_counts(): each value's count, most frequent first. A categorical is
    counted on its codes (pandas' value_counts of a million-row table holds ~8 bytes per
    row of temporaries, which is what a stage's memory peak is made of)."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return column.value_counts()
    counts = _code_counts(codes(column), len(column.cat.categories))
    order = np.argsort(-counts, kind="stable")      # ties in category order, as pandas has them
    return pd.Series(counts[order], index=column.cat.categories[order])


def pair_counts(first: pd.Series, second: pd.Series) -> dict:
    """{a: {b: count}} of the (first, second) pairs that occur, in the order of a
    groupby([first, second]).size(); counted on codes when both are categorical."""
    if not (isinstance(first.dtype, pd.CategoricalDtype) and isinstance(second.dtype, pd.CategoricalDtype)):
        grouped = pd.DataFrame({"a": first, "b": second}).groupby(["a", "b"]).size()
        out: dict = {}
        for (a, b), count in grouped.items():
            out.setdefault(a, {})[b] = int(count)
        return out
    a_cats, b_cats = first.cat.categories, second.cat.categories
    width = len(b_cats)
    counts = np.zeros(len(a_cats) * width, np.int64)
    a_own, b_own = codes(first), codes(second)
    for at in row_steps(len(a_own), COUNT_STEP):
        a, b = a_own[at:at + COUNT_STEP], b_own[at:at + COUNT_STEP]
        keep = (a >= 0) & (b >= 0)
        key = a[keep].astype(np.int64) * width + b[keep]
        counts += np.bincount(key, minlength=len(counts))[:len(counts)]
    out = {}
    for k in np.flatnonzero(counts):
        out.setdefault(a_cats[k // width], {})[b_cats[k % width]] = int(counts[k])
    return out


def tuple_counts(*columns: pd.Series) -> dict[tuple, int]:
    """{(a, b, ...): count} of the value tuples that occur (a missing value as None),
    counted on each column's codes (categorical) or values coded once."""
    coded = []
    for column in columns:
        if isinstance(column.dtype, pd.CategoricalDtype):
            coded.append((codes(column), list(column.cat.categories)))
        else:
            own, uniques = pd.factorize(column, use_na_sentinel=True)
            coded.append((own, list(uniques)))
    sizes = [len(values) + 1 for _, values in coded]      # the last code: missing
    key = np.zeros(len(columns[0]) if columns else 0, np.int64)
    for (own, _), size in zip(coded, sizes):
        part = own.astype(np.int64)
        part[part < 0] = size - 1
        key *= size
        key += part
    uniq, counts = np.unique(key, return_counts=True)
    out = {}
    for k, count in zip(uniq.tolist(), counts.tolist()):
        values = []
        for (_, labels_), size in reversed(list(zip(coded, sizes))):
            k, at = divmod(k, size)
            values.append(labels_[at] if at < len(labels_) else None)
        out[tuple(reversed(values))] = count
    return out


def text(column: pd.Series) -> pd.Series:
    """A column as plain text (object dtype). Categoricals, which hold the big tables'
    text columns, are expanded through their categories: one lookup per row instead of
    pandas' per-value conversion, which takes seconds on a million rows. Missing -> ""."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        cats = np.asarray(column.cat.categories.astype(object), dtype=object)
        own = codes(column)
        values = cats[np.maximum(own, 0)] if len(cats) else np.full(len(own), "", dtype=object)
        values = np.where(own >= 0, values, "")
        return pd.Series(values, index=column.index, dtype=object)
    return column.astype(str)


def labels(column: pd.Series) -> pd.Series:
    """A text column to compare against (==, !=, isin). Categoricals stay categorical, so a
    comparison tests small codes instead of a million strings; anything else is text()."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column
    return text(column)


def lowered(column: pd.Series) -> pd.Series:
    """labels(), lower-cased. A categorical is lowered through its categories (once each)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        low = pd.Index([str(c).lower() for c in column.cat.categories])
        if low.is_unique:
            return column.cat.rename_categories(low)
    return text(column).str.lower()
