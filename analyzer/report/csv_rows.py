"""The CSV row formatter: a compiled kernel (built with the capture kernels, see
analyzer/dissect/kernels.py) that turns a block of table rows into CSV text.

Every cell arrives as an int64: a number, a timestamp in nanoseconds, or a text column's
category code. Text is written from its category's quoted bytes, prepared once per table.
The text is what Arrow's CSV writer with quoting_style="needed" writes (the tables were
written with it before): numbers bare, text and timestamps in double quotes with inner
quotes doubled, a missing value as nothing at all.
"""

from __future__ import annotations

import numpy as np

from analyzer.dissect.kernels import njit

# what a column holds
NUMBER, TIMESTAMP, TEXT = 0, 1, 2
MISSING = np.iinfo(np.int64).min      # a number or timestamp cell with no value
NUMBER_WIDTH = 20                     # the longest int64 in decimal, its sign included
# a quoted timestamp: quotes, the seconds, the point and up to 9 fraction digits
TIMESTAMP_WIDTH = 2 + NUMBER_WIDTH + 1 + 9

COMMA, NEWLINE, QUOTE, POINT, MINUS, ZERO = 44, 10, 34, 46, 45, 48


# "00", "01", ... "99": digits are written two at a time (half the divisions)
PAIRS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), np.uint8).copy()


@njit(cache=True)
def _number(out, at, value):
    """`value` in decimal at out[at:]; returns the position after it. (Never MISSING, the
    one int64 that cannot be negated: cells holding it are skipped.) The digits are counted
    by comparisons, then written from the last, two at a time."""
    if value < 0:
        out[at] = MINUS
        at += 1
        value = -value
    digits = 1
    bound = 10
    while value >= bound:
        digits += 1
        if digits == 19:        # the most an int64 has; 10**19 would overflow
            break
        bound *= 10
    end = at + digits
    k = end
    while value >= 100:
        pair = (value % 100) * 2
        value //= 100
        out[k - 1] = PAIRS[pair + 1]
        out[k - 2] = PAIRS[pair]
        k -= 2
    if value >= 10:
        out[k - 1] = PAIRS[value * 2 + 1]
        out[k - 2] = PAIRS[value * 2]
    else:
        out[k - 1] = ZERO + value
    return end


@njit(cache=True, nogil=True)
def format_rows(start, stop, values, kinds, digits, texts, text_offsets, text_base, widest, out):
    """CSV lines for rows start..stop-1 of `values` (one row of cells per column: shape
    columns x rows) into `out`, until it has no room for another `widest`-byte row.
    Returns (the first row not written, the bytes written)."""
    columns = values.shape[0]
    scale = 1
    for _ in range(9 - digits):
        scale *= 10
    at = 0
    room = out.shape[0]
    row = start
    while row < stop and at + widest <= room:
        for c in range(columns):
            if c:
                out[at] = COMMA
                at += 1
            value = values[c, row]
            kind = kinds[c]
            if kind == TEXT:
                if value < 0:
                    continue
                entry = text_base[c] + value
                for k in range(text_offsets[entry], text_offsets[entry + 1]):
                    out[at] = texts[k]
                    at += 1
            elif value == MISSING:
                continue
            elif kind == NUMBER:
                at = _number(out, at, value)
            else:
                seconds = value // 1_000_000_000
                fraction = (value % 1_000_000_000) // scale
                out[at] = QUOTE
                at = _number(out, at + 1, seconds)
                out[at] = POINT
                at += digits
                k = at
                for _ in range(digits // 2):
                    pair = (fraction % 100) * 2
                    fraction //= 100
                    out[k] = PAIRS[pair + 1]
                    out[k - 1] = PAIRS[pair]
                    k -= 2
                if digits % 2:
                    out[k] = ZERO + fraction % 10
                out[at + 1] = QUOTE
                at += 2
        out[at] = NEWLINE
        at += 1
        row += 1
    return row, at
