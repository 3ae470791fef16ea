"""Log lines in the formats the field report shows, written against a chosen clock.

A `Clock` is a device clock: true time plus a known offset, shown in a known zone. Writing
logs through it lets a test compare the analyser's clock alignment with the truth.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
from pathlib import Path

_TZ_RE = re.compile(r"^([+-])(\d\d):?(\d\d)$")


def parse_tz(text: str | None) -> dt.tzinfo:
    """`+0800` / `-04:00` / `UTC` -> tzinfo; None or `local` -> the host's zone."""
    if text is None or text == "local":
        return dt.datetime.now().astimezone().tzinfo
    if text.upper() in ("UTC", "Z"):
        return dt.timezone.utc
    m = _TZ_RE.match(text)
    if not m:
        raise ValueError(f"bad time zone {text!r}: expected +HHMM, e.g. +0800")
    sign = -1 if m.group(1) == "-" else 1
    return dt.timezone(sign * dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))


def tz_string(tz: dt.tzinfo, at: float | None = None) -> str:
    """tzinfo -> `+0800` (the offset in force at POSIX time `at`)."""
    moment = dt.datetime.fromtimestamp(time.time() if at is None else at, tz)
    return moment.strftime("%z")


class Clock:
    """A device clock: `offset_s` ahead of true time, displayed in zone `tz`."""

    def __init__(self, offset_s: float = 0.0, tz: dt.tzinfo | None = None):
        self.offset_s = float(offset_s)
        self.tz = tz or parse_tz(None)

    def local(self, true_ts: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(true_ts + self.offset_s, self.tz)

    def utc(self, true_ts: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(true_ts + self.offset_s, dt.timezone.utc)


def go_log_line(when: dt.datetime, msg: str) -> str:
    """Go `log` with LstdFlags: `2024/07/04 14:52:51 msg`."""
    return f"{when:%Y/%m/%d %H:%M:%S} {msg}"


def logcat_line(when: dt.datetime, pid: int, tid: int, msg: str,
                level: str = "I", tag: str = "GoLog") -> str:
    """`adb logcat -v threadtime`: no year, no zone, milliseconds, tag padded to 8."""
    ms = when.microsecond // 1000
    return f"{when:%m-%d %H:%M:%S}.{ms:03d} {pid:5d} {tid:5d} {level} {tag:<8s}: {msg}"


def xcode_lines(local: dt.datetime, utc: dt.datetime, pid: int, tid: int, msg: str,
                process: str = "anet") -> list[str]:
    """gomobile on iOS: the plain Go line (UTC, stderr), then the same line through os_log
    as Xcode shows it (device local time with zone, microseconds, decimal tid)."""
    inner = go_log_line(utc, msg)
    stamp = f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond:06d}{local:%z}"
    return [inner, f"{stamp} {process}[{pid}:{tid}] [os_log] {inner}"]


class LogFile:
    """A thread-safe, line-buffered log file written in one of the formats above.

    fmt: `golog` (server), `logcat` (Android app), `xcode` (iOS app).
    """

    def __init__(self, path: str | Path, fmt: str, clock: Clock, pid: int | None = None,
                 tag: str = "GoLog", process: str = "anet", now=time.time):
        if fmt not in ("golog", "logcat", "xcode"):
            raise ValueError(f"unknown log format {fmt!r}")
        self.path = Path(path)
        self.fmt, self.clock, self.tag, self.process = fmt, clock, tag, process
        self.pid = pid
        self._now = now
        self._lock = threading.Lock()
        self._fh = open(self.path, "a", encoding="utf-8", buffering=1)

    def lines_for(self, msg: str, true_ts: float, tid: int) -> list[str]:
        pid = self.pid if self.pid is not None else os.getpid()
        if self.fmt == "golog":
            return [go_log_line(self.clock.local(true_ts), msg)]
        if self.fmt == "logcat":
            return [logcat_line(self.clock.local(true_ts), pid, tid, msg, tag=self.tag)]
        return xcode_lines(self.clock.local(true_ts), self.clock.utc(true_ts), pid, tid, msg,
                           process=self.process)

    def log(self, msg: str) -> float:
        """Write `msg` now; returns the true POSIX time it was stamped with."""
        ts = self._now()
        lines = self.lines_for(msg, ts, threading.get_native_id())
        with self._lock:
            if not self._fh.closed:
                self._fh.write("".join(line + "\n" for line in lines))
        return ts

    def close(self) -> None:
        with self._lock:
            self._fh.close()
