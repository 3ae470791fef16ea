"""Timestamp text -> exact wall-clock parts, kept at the resolution the line states.

Python's datetime stops at microseconds, so times are carried as integer nanoseconds of
a naive wall clock ("as if UTC"); the zone, when a line states one, travels beside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# datetime64[ns] covers 1677-09-21 .. 2262-04-11; stay safely inside it.
MIN_YEAR, MAX_YEAR = 1678, 2261
PLACEHOLDER_YEAR = 2000  # leap year, so "02-29" without a year still parses

_ZONE_RE = re.compile(r"^(?:Z|UTC|GMT|(?P<sign>[+-])(?P<h>\d\d):?(?P<m>\d\d)?)$")
_RFC3339_RE = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d\d)-(?P<d>\d\d)[T ](?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)"
    r"(?:[.,](?P<f>\d{1,9}))?\s?(?P<z>Z|[+-]\d\d(?::?\d\d)?)?$")
_GO_STAMP_RE = re.compile(
    r"^(?P<y>\d{4})/(?P<mo>\d\d)/(?P<d>\d\d) (?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)(?:\.(?P<f>\d{6}))?"
    r"(?: |$)")


@dataclass(frozen=True)
class Stamp:
    """A timestamp as a line wrote it.

    Either calendar parts (``year`` None when the line states no year, ``month`` None when it
    states no date at all) or ``epoch_ns`` (POSIX time, UTC) or ``mono_s`` (seconds since
    boot, no wall clock).
    """

    raw: str
    resolution: float
    year: int | None = None
    month: int | None = None
    day: int | None = None
    hour: int = 0
    minute: int = 0
    second: int = 0
    frac_ns: int = 0
    offset_s: float | None = None
    epoch_ns: int | None = None
    mono_s: float | None = None

    def wall_ns(self, year_fill: int | None = None) -> int | None:
        """Naive wall-clock nanoseconds since 1970 (as if UTC), or None when not a wall time."""
        if self.epoch_ns is not None:
            return self.epoch_ns
        if self.month is None:
            return None
        year = self.year if self.year is not None else year_fill
        if year is None:
            return None
        return wall_ns(year, self.month, self.day, self.hour, self.minute, self.second, self.frac_ns)


def wall_ns(year: int, month: int, day: int, hour: int, minute: int, second: int,
            frac_ns: int = 0) -> int | None:
    """Nanoseconds of a naive wall time, or None for an impossible date or time."""
    if not (MIN_YEAR <= year <= MAX_YEAR and hour < 24 and minute < 60 and second <= 60):
        return None
    try:
        days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    return ((days * 86400 + hour * 3600 + minute * 60 + second) * 1_000_000_000) + frac_ns


def fraction(digits: str | None) -> tuple[int, float]:
    """('029327') -> (29_327_000 ns, 1e-6): the value and the resolution the digits state."""
    if not digits:
        return 0, 1.0
    digits = digits[:9]
    return int(digits.ljust(9, "0")), 10.0 ** -len(digits)


def zone_offset(text: str | None) -> float | None:
    """'+0800' -> 28800.0, '-04:00' -> -14400.0, 'Z' -> 0.0; None when absent or unreadable."""
    if not text:
        return None
    m = _ZONE_RE.match(text.strip())
    if not m:
        return None
    if not m.group("sign"):
        return 0.0
    hours, minutes = int(m.group("h")), int(m.group("m") or 0)
    if hours > 23 or minutes > 59:
        return None
    value = hours * 3600 + minutes * 60
    return float(-value if m.group("sign") == "-" else value)


def from_parts(raw: str, year: int | None, month: int, day: int, hour: int, minute: int,
               second: int, frac: str | None, zone: str | None = None,
               resolution: float | None = None) -> Stamp | None:
    """A calendar Stamp, or None when the parts are not a real date/time."""
    frac_ns, res = fraction(frac)
    check_year = year if year is not None else PLACEHOLDER_YEAR
    if wall_ns(check_year, month, day, hour, minute, second, frac_ns) is None:
        return None
    offset = zone_offset(zone)
    if zone and offset is None:
        return None
    return Stamp(raw=raw, resolution=resolution or res, year=year, month=month, day=day,
                 hour=hour, minute=minute, second=second, frac_ns=frac_ns, offset_s=offset)


def parse_rfc3339(text: str, resolution: float | None = None) -> Stamp | None:
    """'2024-07-04T14:52:51.123+08:00' and the space-separated variants."""
    m = _RFC3339_RE.match(text.strip())
    if not m:
        return None
    g = m.groupdict()
    return from_parts(text, int(g["y"]), int(g["mo"]), int(g["d"]), int(g["h"]), int(g["mi"]),
                      int(g["s"]), g["f"], g["z"], resolution)


def parse_epoch(value: float | int | str, raw: str | None = None) -> Stamp | None:
    """POSIX time in s, ms, us or ns (chosen by magnitude) -> Stamp, or None."""
    text = str(value).strip()
    try:
        if "." in text or "e" in text.lower():
            whole, _, frac = text.partition(".")
            if "e" in text.lower() or not whole.isdigit():
                seconds = float(text)
                if not (0 < seconds < 9e9):
                    return None
                return Stamp(raw=raw or text, resolution=1e-6, epoch_ns=round(seconds * 1e9),
                             offset_s=0.0)
            number, frac_digits = int(whole), frac
        else:
            number, frac_digits = int(text), ""
    except (ValueError, OverflowError):
        return None
    # Scale by magnitude: seconds < 1e11 < ms < 1e14 < us < 1e17 < ns.
    for limit, scale in ((1e11, 1_000_000_000), (1e14, 1_000_000), (1e17, 1_000), (9.2e18, 1)):
        if number < limit:
            break
    else:
        return None
    frac_ns, res = fraction(frac_digits) if frac_digits.isdigit() else (0, 1.0)
    ns = number * scale + frac_ns * scale // 1_000_000_000
    resolution = res * scale / 1e9 if frac_digits else scale / 1e9
    if not (0 < ns < 9.2e18):
        return None
    return Stamp(raw=raw or text, resolution=resolution, epoch_ns=ns, offset_s=0.0)


def split_go_stamp(message: str) -> tuple[Stamp | None, str]:
    """Split a leading Go ``log`` stamp ('2024/07/04 10:38:01 msg') off a message."""
    m = _GO_STAMP_RE.match(message)
    if not m:
        return None, message
    g = m.groupdict()
    stamp = from_parts(m.group(0).strip(), int(g["y"]), int(g["mo"]), int(g["d"]), int(g["h"]),
                       int(g["mi"]), int(g["s"]), g["f"])
    if stamp is None:
        return None, message
    return stamp, message[m.end():]
