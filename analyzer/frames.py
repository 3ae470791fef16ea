"""Small helpers for the tables every layer passes on."""

from __future__ import annotations

import numpy as np
import pandas as pd


def text(column: pd.Series) -> pd.Series:
    """A column as plain text (object dtype). Categoricals, which hold the big tables'
    text columns, are expanded through their categories: one lookup per row instead of
    pandas' per-value conversion, which takes seconds on a million rows. Missing -> ""."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        cats = np.asarray(column.cat.categories.astype(object), dtype=object)
        codes = np.asarray(column.cat.codes, dtype=np.int64)
        values = cats[np.maximum(codes, 0)] if len(cats) else np.full(len(codes), "", dtype=object)
        values = np.where(codes >= 0, values, "")
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
