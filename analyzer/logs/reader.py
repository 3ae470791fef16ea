"""Public entry point: one log file -> one table of log events (``read_log``).

Lines become events here: continuation lines join the event before them, logcat ``-v long``
bodies join their header, Xcode's doubled Go lines collapse to one event, and every line
in no known format is kept as a raw event and counted. Clock alignment is not done here;
the times are reported exactly as the file states them, with their zone and resolution.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from analyzer.exceptions import LogError
from analyzer.logs import formats, stamps
from analyzer.logs.fields import FIELD_NAMES, merged_fields
from analyzer.logs.formats import CONTINUATION_RE, LineFormat, Record
from analyzer.logs.lifecycle import lifecycle_of

COLUMNS = (
    "line_no", "raw_time", "local_time", "utc_offset_s", "year_known", "time_resolution_s",
    "inner_utc_time", "monotonic_s", "source", "role", "format", "level", "tag", "process",
    "pid", "tid", "message", "label", "errno", "op", "syscall", "proto", "local_ip",
    "local_port", "remote_ip", "remote_port", "lifecycle", "raw", "dup_line_no",
)
_INT_COLUMNS = ("pid", "tid", "local_port", "remote_port", "dup_line_no")
_TEXT_COLUMNS = ("raw_time", "source", "role", "format", "level", "tag", "process", "message",
                 "label", "errno", "op", "syscall", "proto", "local_ip", "remote_ip",
                 "lifecycle", "raw")

# Which side of the test a format's file comes from, and the errno numbering it uses.
_APP_FAMILIES = ("logcat", "apple")
_APP_FORMATS = ("idevicesyslog", "console-app", "log-show-json", "log-show-ndjson")
_OS_BY_FAMILY = {"logcat": "linux", "apple": "darwin"}
_SERVER_CUES = re.compile(r"new connection from|accept(?:ed|ing)? (?:new )?conn|listening on|"
                          r"\baccept tcp\b|\bdial (?:tcp|udp)\b|\bdial \d")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NAT = np.iinfo(np.int64).min
_PAIR_WINDOW = 64  # events between a plain Go line and its os_log twin


@dataclass
class LogFile:
    """One log file, read. ``events`` has the columns in ``COLUMNS``."""

    path: Path
    name: str
    format: str
    role: str
    events: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, object] = field(default_factory=dict)


@dataclass
class _Event:
    line_no: int
    rec: Record | None                      # None: a line in no known format
    lines: list[str]                        # message lines
    raw: list[str]
    body_open: bool = False                 # logcat -v long: body lines still coming
    dup_line_no: int | None = None


def read_log(path: str | os.PathLike[str], role: str | None = None, os_hint: str | None = None,
             year_hint: int | None = None) -> LogFile:
    """Read one app or server log file.

    ``role`` ('app' | 'server') overrides detection; ``os_hint`` ('linux' | 'darwin') says how
    to read bare errno numbers; ``year_hint`` is the year of the first line for formats that
    print none (logcat, syslog, glog). Raises LogError when the file cannot be read at all.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise LogError(f"cannot read log file {p}: {exc.strerror or exc}") from None
    text, warnings = decode(data, p.name)
    log = parse_log_text(text, name=p.name, role=role, os_hint=os_hint, year_hint=year_hint)
    log.path = p
    log.warnings[:0] = warnings
    return log


def decode(data: bytes, name: str) -> tuple[str, list[str]]:
    """Bytes -> text: UTF-8 (or UTF-16 with a BOM, as PowerShell writes); bad bytes replaced."""
    warnings: list[str] = []
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", errors="replace")
    else:
        text = data.decode("utf-8-sig", errors="replace")
    bad = text.count("\ufffd") - data.decode("utf-8", errors="ignore").count("\ufffd")
    if bad > 0 and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        warnings.append(f"{name}: {bad} bytes are not valid UTF-8 (replaced)")
    if "\x00" in text:
        text = text.replace("\x00", "")
        warnings.append(f"{name}: NUL bytes removed")
    return text, warnings


def parse_log_text(text: str, name: str = "<text>", role: str | None = None,
                   os_hint: str | None = None, year_hint: int | None = None) -> LogFile:
    """``read_log`` for text already in memory."""
    lines = text.split("\n")
    if lines[-1] == "":  # the newline ending the last line starts no new line
        lines.pop()
    lines = [line.rstrip("\r") for line in lines]
    stats: dict[str, object] = dict(lines=len(lines), events=0, unparsed=0, continuation=0,
                                    blank=0, separators=0, header=0, collapsed=0)
    warnings: list[str] = []
    header_year: list[int] = []

    events = _json_array(text)
    if events is not None:
        file_fmt, family = "log-show-json", "apple"
    else:
        clean = [_ANSI_RE.sub("", line) for line in lines]
        preferred, file_fmt = formats.detect_format(clean)
        family = preferred.family if preferred else None
        events = _assemble(lines, clean, preferred, family, stats, header_year)
        if file_fmt is None:
            file_fmt = "raw" if any(merged_fields(e.lines)["errno"] for e in events) else "unknown"
    if file_fmt == "ios-xcode":
        events = _collapse_doubled(events, stats)

    eff_os = os_hint or _OS_BY_FAMILY.get(family or "") or (
        "darwin" if file_fmt in _APP_FORMATS else None)
    frame = _frame(events, name, file_fmt, eff_os,
                   header_year[0] if header_year else year_hint, stats, warnings)
    role_value, reason = _role(role, file_fmt, family, frame)
    frame["role"] = pd.array([role_value] * len(frame), dtype="string")
    stats["events"] = len(frame)
    stats["role_reason"] = reason
    stats["formats"] = frame["format"].value_counts().to_dict() if len(frame) else {}
    _summarise(name, file_fmt, stats, frame, warnings, year_hint, header_year)
    return LogFile(path=Path(name), name=name, format=file_fmt, role=role_value, events=frame,
                   warnings=warnings, stats=stats)


# ---------------------------------------------------------------- lines -> events
def _assemble(lines: list[str], clean: list[str], preferred: LineFormat | None,
              family: str | None, stats: dict[str, object],
              header_year: list[int]) -> list[_Event]:
    events: list[_Event] = []
    cur: _Event | None = None
    for i, (raw, line) in enumerate(zip(lines, clean), 1):
        if cur is not None and cur.body_open:
            if not line.strip():
                cur.body_open = False
                stats["blank"] += 1
                continue
            if formats.marker(line) is None and (preferred is None or preferred.parse(line) is None):
                cur.lines.append(line)
                cur.raw.append(raw)
                continue
            cur.body_open = False
        if not line.strip():
            stats["blank"] += 1
            continue
        mark = formats.marker(line)
        if mark:
            stats["separators" if mark == "separator" else "header"] += 1
            continue
        rec = formats.parse_line(line, preferred, family)
        if rec is not None and rec.kind == "header":
            stats["header"] += 1
            if rec.year:
                header_year.append(rec.year)
            continue
        if rec is not None and cur is not None and cur.rec is not None and _continues(cur.rec, rec):
            cur.lines.append(rec.message)
            cur.raw.append(raw)
            cur.rec = replace(cur.rec, partial=rec.partial)
            stats["continuation"] += 1
            continue
        if rec is None and cur is not None and cur.rec is not None and CONTINUATION_RE.match(line):
            cur.lines.append(line)
            cur.raw.append(raw)
            stats["continuation"] += 1
            continue
        if rec is None:
            stats["unparsed"] += 1
        cur = _Event(line_no=i, rec=rec, lines=[] if rec and rec.kind == "long-header"
                     else [rec.message if rec else line], raw=[raw],
                     body_open=bool(rec and rec.kind == "long-header"))
        events.append(cur)
    return events


def _continues(prev: Record, rec: Record) -> bool:
    """Is ``rec`` a further line of ``prev``'s message?"""
    if prev.partial:                    # CRI 'P' record: the next one completes it
        return rec.fmt.split("/")[0] == prev.fmt.split("/")[0] and rec.tag == prev.tag
    if not (prev.fmt.startswith("logcat") and rec.fmt == prev.fmt and prev.stamp and rec.stamp):
        return False
    # logcat repeats the prefix on every line of one multi-line message.
    same = (prev.stamp.raw, prev.pid, prev.tid, prev.level, prev.tag) == \
           (rec.stamp.raw, rec.pid, rec.tid, rec.level, rec.tag)
    if not same:
        return False
    # Millisecond stamps collide for separate messages; then only stack-like lines join.
    return rec.stamp.resolution <= 1e-6 or bool(CONTINUATION_RE.match(rec.message))


def _json_array(text: str) -> list[_Event] | None:
    """`log show --style json`: one array of objects. None when the text is not that."""
    start = len(text) - len(text.lstrip())
    if not text[start:start + 1] == "[":
        return None
    decoder = json.JSONDecoder()
    events: list[_Event] = []
    pos, line_no = start + 1, 1 + text.count("\n", 0, start + 1)
    try:
        while True:
            nxt = len(text) - len(text[pos:].lstrip(" \t\r\n,")) if pos < len(text) else pos
            line_no += text.count("\n", pos, nxt)
            pos = nxt
            if pos >= len(text) or text[pos] == "]":
                break
            obj, end = decoder.raw_decode(text, pos)
            if not isinstance(obj, dict):
                return None
            raw = text[pos:end]
            rec = formats.record_from_json(obj, "log-show-json")
            events.append(_Event(line_no=line_no, rec=rec,
                                 lines=[rec.message if rec else raw], raw=[raw]))
            line_no += raw.count("\n")
            pos = end
    except (ValueError, RecursionError):
        return None
    return events if events else None


def _collapse_doubled(events: list[_Event], stats: dict[str, object]) -> list[_Event]:
    """Xcode shows each Go line plainly (stderr) and via os_log: keep the os_log one.

    The pair shares Go's stamp text and the message; the os_log twin adds the precise local
    time and zone. Either may come first.
    """
    def key(e: _Event) -> tuple[str, str] | None:
        if e.rec is None:
            return None
        if e.rec.fmt == "go-log" and e.rec.stamp is not None:
            return ("plain", e.rec.stamp.raw, "\n".join(e.lines))
        if e.rec.fmt == "ios-xcode" and e.rec.inner is not None:
            return ("oslog", e.rec.inner.raw, "\n".join(e.lines))
        return None

    waiting: dict[tuple[str, str, str], list[int]] = {}
    drop: set[int] = set()
    for idx, event in enumerate(events):
        k = key(event)
        if k is None:
            continue
        other = ("oslog" if k[0] == "plain" else "plain",) + k[1:]
        queue = [j for j in waiting.get(other, []) if idx - j <= _PAIR_WINDOW]
        if queue:
            j = queue.pop(0)
            waiting[other] = queue
            plain, oslog = (idx, j) if k[0] == "plain" else (j, idx)
            drop.add(plain)
            events[oslog].dup_line_no = events[plain].line_no
        else:
            waiting.setdefault(k, []).append(idx)
    stats["collapsed"] = len(drop)
    return [e for i, e in enumerate(events) if i not in drop]


# ---------------------------------------------------------------- events -> table
def _frame(events: list[_Event], name: str, file_fmt: str, os_hint: str | None,
           year_fill: int | None, stats: dict[str, object], warnings: list[str]) -> pd.DataFrame:
    n = len(events)
    cols: dict[str, list[object]] = {c: [None] * n for c in COLUMNS}
    local = np.full(n, _NAT, dtype=np.int64)
    inner = np.full(n, _NAT, dtype=np.int64)
    year = year_fill if year_fill is not None else stamps.PLACEHOLDER_YEAR
    prev_month: int | None = None
    plain_go_is_utc = file_fmt == "ios-xcode"  # Go's time.Local is UTC on iOS
    for i, e in enumerate(events):
        rec = e.rec
        message = "\n".join(e.lines)
        cols["line_no"][i] = e.line_no
        cols["raw"][i] = "\n".join(e.raw)
        cols["message"][i] = message
        cols["dup_line_no"][i] = e.dup_line_no
        cols["format"][i] = rec.fmt if rec else ("raw" if file_fmt == "raw" else "unparsed")
        cols["year_known"][i] = False
        if rec is not None:
            for key in ("level", "tag", "process", "pid", "tid"):
                cols[key][i] = getattr(rec, key)
            st = rec.stamp
            if st is not None:
                cols["raw_time"][i] = st.raw
                cols["time_resolution_s"][i] = st.resolution
                cols["utc_offset_s"][i] = st.offset_s
                cols["monotonic_s"][i] = st.mono_s
                cols["year_known"][i] = st.year is not None or st.epoch_ns is not None
                if st.year is None and st.month is not None and st.epoch_ns is None:
                    # A log without years that crosses New Year goes from December to January.
                    if prev_month is not None and st.month < prev_month - 6:
                        year += 1
                    prev_month = st.month
                ns = st.wall_ns(year)
                local[i] = _NAT if ns is None else ns
            in_st = rec.inner or (st if plain_go_is_utc and rec.fmt == "go-log" else None)
            if in_st is not None:
                ns = in_st.wall_ns()
                inner[i] = _NAT if ns is None else ns
        f = merged_fields(e.lines, os_hint) if message else dict.fromkeys(FIELD_NAMES)
        if f["lifecycle"] is None and rec is not None and rec.tag:
            f["lifecycle"] = lifecycle_of(rec.tag)  # logcat -b events: am_on_paused_called is the tag
        for key in FIELD_NAMES:
            cols[key][i] = f[key]
        cols["source"][i] = name
    data: dict[str, object] = {}
    for c in COLUMNS:
        if c in _INT_COLUMNS:
            data[c] = pd.array(cols[c], dtype="Int64")
        elif c in _TEXT_COLUMNS:
            data[c] = pd.array(cols[c], dtype="string")
        elif c in ("utc_offset_s", "time_resolution_s", "monotonic_s"):
            data[c] = np.array([np.nan if v is None else v for v in cols[c]], dtype="float64")
        elif c == "local_time":
            data[c] = local.view("datetime64[ns]")
        elif c == "inner_utc_time":
            data[c] = inner.view("datetime64[ns]")
        elif c == "year_known":
            data[c] = np.array(cols[c], dtype=bool)
        elif c == "line_no":
            data[c] = np.array(cols[c], dtype="int64")
    frame = pd.DataFrame(data)
    return frame[list(COLUMNS)]


def _role(override: str | None, file_fmt: str, family: str | None,
          frame: pd.DataFrame) -> tuple[str, str]:
    if override is not None:
        if override not in ("app", "server"):
            raise LogError(f"log role must be 'app' or 'server', not {override!r}")
        return override, "given"
    if family in _APP_FAMILIES or file_fmt in _APP_FORMATS:
        return "app", f"phone-side format {file_fmt}"
    if len(frame) and frame["lifecycle"].notna().any():
        return "app", "app lifecycle lines"
    if len(frame) and frame["message"].str.contains(_SERVER_CUES, na=False).any():
        return "server", "accepts or dials connections"
    return "server", f"server-side format {file_fmt}"


def _summarise(name: str, file_fmt: str, stats: dict[str, object], frame: pd.DataFrame,
               warnings: list[str], year_hint: int | None, header_year: list[int]) -> None:
    if file_fmt == "unknown":
        warnings.append(f"{name}: no line in a known log format ({len(frame)} lines kept raw)")
        return
    if stats["unparsed"] and file_fmt != "raw":
        warnings.append(f"{name}: {stats['unparsed']} of {stats['lines']} lines in no known "
                        f"format (kept raw)")
    if not len(frame):
        return
    timed = frame["raw_time"].notna()
    if not timed.any():
        warnings.append(f"{name}: lines carry no timestamps ({file_fmt})")
        return
    if frame["monotonic_s"].notna().any():
        warnings.append(f"{name}: times are seconds since boot (logcat -v monotonic), "
                        f"not wall-clock times")
    no_date = timed & frame["local_time"].isna() & frame["monotonic_s"].isna()
    if no_date.any():
        warnings.append(f"{name}: {int(no_date.sum())} lines state a time of day but no date")
    if (timed & ~frame["year_known"] & frame["local_time"].notna()).any() and year_hint is None \
            and not header_year:
        warnings.append(f"{name}: lines state no year; {stamps.PLACEHOLDER_YEAR} assumed "
                        f"(pass year_hint)")
