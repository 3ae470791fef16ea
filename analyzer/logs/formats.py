"""Log line formats: recognise one line and split it into time, level, tag, pid and message.

Each format is a regular expression plus a small builder. ``detect_format`` picks a file's
format from a sample of its lines; ``parse_line`` tries that format first, then the others.
Formats marked ``loose`` (logcat brief/tag/process/thread) match ordinary prose too easily,
so they are only tried on files whose format is of their family.

Formats of a wrapper (Kubernetes CRI, docker compose) parse the wrapped text with the other
formats and report ids such as ``cri/go-log``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Callable

from analyzer.logs import stamps
from analyzer.logs.stamps import Stamp

LEVELS = {
    "v": "verbose", "verbose": "verbose", "trace": "verbose",
    "d": "debug", "db": "debug", "debug": "debug",
    "i": "info", "info": "info", "information": "info",
    "df": "notice", "default": "notice", "notice": "notice", "n": "notice",
    "w": "warning", "warn": "warning", "warning": "warning",
    "e": "error", "err": "error", "error": "error",
    "f": "fatal", "a": "fatal", "fatal": "fatal", "fault": "fatal", "crit": "fatal",
    "critical": "fatal", "panic": "fatal", "dpanic": "fatal", "emerg": "fatal", "alert": "fatal",
    "s": "silent",
}


def norm_level(text: str | None) -> str | None:
    """Level spelled any way -> verbose/debug/info/notice/warning/error/fatal (or as written)."""
    if not text:
        return None
    return LEVELS.get(text.strip().lower(), text.strip().lower())


@dataclass(frozen=True)
class Record:
    """What one physical line says.

    kind: 'event' (a new log event), 'header' (file metadata, e.g. glog's preamble),
    'separator' (logcat buffer markers), 'long-header' (logcat -v long: the message follows
    on the next lines).
    """

    fmt: str
    kind: str = "event"
    stamp: Stamp | None = None
    inner: Stamp | None = None     # Go's own UTC stamp inside a phone-side line
    level: str | None = None
    tag: str | None = None
    process: str | None = None
    pid: int | None = None
    tid: int | None = None
    message: str = ""
    partial: bool = False          # CRI 'P': the next record continues this message
    year: int | None = None        # a header that names the year (glog)


@dataclass(frozen=True)
class LineFormat:
    id: str
    family: str
    parse: Callable[[str], Record | None]
    loose: bool = False


def _int(text: str | None, base: int = 10) -> int | None:
    if text is None:
        return None
    try:
        value = int(text, base)
    except ValueError:
        return None
    return value if value < 2**63 else None


def _with_inner(rec: Record) -> Record:
    """Phone-side lines that carry a Go log line: keep Go's UTC stamp apart from the text."""
    inner, rest = stamps.split_go_stamp(rec.message)
    return replace(rec, inner=inner, message=rest) if inner else rec


# ---------------------------------------------------------------- Android logcat
_LC_DATE = (r"(?:(?P<y>\d{4})-)?(?P<mo>\d\d)-(?P<d>\d\d) (?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)"
            r"\.(?P<f>\d{9}|\d{6}|\d{3})")
_LC_STAMP = r"(?P<stamp>" + _LC_DATE + r"|\s*(?P<num>\d+)\.(?P<nf>\d{9}|\d{6}|\d{3}))(?: (?P<zone>[+-]\d{4}))?"
_LC_UID = r"(?:(?P<uid>\w{1,8}):?\s+)?"
_LC_LEVEL = r"(?P<lvl>[VDIWEFSA])"
_LC_MSG = r":(?: (?P<msg>.*))?$"

_THREADTIME_RE = re.compile(r"^" + _LC_STAMP + r"\s+" + _LC_UID + r"(?P<pid>\d+)\s+(?P<tid>\d+)\s+"
                            + _LC_LEVEL + r" (?P<tag>.*?)\s*" + _LC_MSG)
_TIME_RE = re.compile(r"^" + _LC_STAMP + r" " + _LC_LEVEL + r"/(?P<tag>[^(]*?)\s*\(\s*"
                      r"(?:(?P<uid>\w{1,8}):\s*)?(?P<pid>\d+)\)" + _LC_MSG)
_LONG_RE = re.compile(r"^\[ " + _LC_STAMP + r"\s+(?:(?P<uid>\w{1,8}):\s*)?(?P<pid>\d+):\s*"
                      r"(?P<tid>\d+) " + _LC_LEVEL + r"/(?P<tag>.*?)\s*\]$")
_BRIEF_RE = re.compile(r"^" + _LC_LEVEL + r"/(?P<tag>[^(]*?)\s*\(\s*(?:(?P<uid>\w{1,8}):\s*)?"
                       r"(?P<pid>\d+)\)" + _LC_MSG)
_PROCESS_RE = re.compile(r"^" + _LC_LEVEL + r"\(\s*(?:(?P<uid>\w{1,8}):\s*)?(?P<pid>\d+)\) "
                         r"(?P<msg>.*?)\s+\((?P<tag>[^()]*)\)$")
_THREAD_RE = re.compile(r"^" + _LC_LEVEL + r"\(\s*(?:(?P<uid>\w{1,8}):\s*)?(?P<pid>\d+):\s*"
                        r"(?P<tid>\d+)\) (?P<msg>.*)$")
_TAG_RE = re.compile(r"^" + _LC_LEVEL + r"/(?P<tag>[^:(]*?)\s*" + _LC_MSG)
_EPOCH_MIN = 100_000_000  # larger stamps are -v epoch (POSIX seconds), smaller -v monotonic


def _logcat_stamp(m: re.Match[str]) -> Stamp | None:
    g = m.groupdict()
    raw = g["stamp"].strip()
    if g.get("zone"):
        raw += " " + g["zone"]
    if g.get("num") is not None:
        frac_ns, res = stamps.fraction(g["nf"])
        seconds = int(g["num"])
        if seconds >= _EPOCH_MIN:
            if seconds > 9_000_000_000:
                return None
            return Stamp(raw=raw, resolution=res, epoch_ns=seconds * 1_000_000_000 + frac_ns,
                         offset_s=0.0)
        return Stamp(raw=raw, resolution=res, mono_s=seconds + frac_ns / 1e9)
    year = int(g["y"]) if g["y"] else None
    return stamps.from_parts(raw, year, int(g["mo"]), int(g["d"]), int(g["h"]), int(g["mi"]),
                             int(g["s"]), g["f"], g.get("zone"))


def _logcat(regex: re.Pattern[str], fmt: str, timed: bool) -> Callable[[str], Record | None]:
    def parse(line: str) -> Record | None:
        m = regex.match(line)
        if not m:
            return None
        g = m.groupdict()
        stamp = None
        if timed:
            stamp = _logcat_stamp(m)
            if stamp is None:
                return None
        kind = "long-header" if regex is _LONG_RE else "event"
        return _with_inner(Record(fmt=fmt, kind=kind, stamp=stamp, level=norm_level(g["lvl"]),
                                  tag=(g.get("tag") or "").strip() or None, pid=_int(g.get("pid")),
                                  tid=_int(g.get("tid")), message=g.get("msg") or ""))
    return parse


# ---------------------------------------------------------------- Apple (iOS / macOS)
_TSZ = r"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+[+-]\d{4})"
_SUB = r"(?:\((?P<image>[^)]*)\) )?(?:\[(?P<sub>[^\]]*)\] ?)?(?P<msg>.*)$"
_LOGSHOW_RE = re.compile(r"^" + _TSZ + r"\s+(?P<tid>0x[0-9a-fA-F]+)\s+(?P<type>\w+)\s+0x[0-9a-fA-F]+\s+"
                         r"(?P<pid>\d+)\s+\d+\s+(?P<proc>[^:]+?): " + _SUB)
_LOGSHOW_SYSLOG_RE = re.compile(r"^" + _TSZ + r" (?P<host>\S+) (?P<proc>[^\[]+?)\[(?P<pid>\d+)\]: "
                                + _SUB)
_XCODE_RE = re.compile(r"^" + _TSZ + r" (?P<proc>[^\[]+?)\[(?P<pid>\d+):(?P<tid>\d+)\] " + _SUB)
_LOGSHOW_COMPACT_RE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (?P<type>[A-Z][a-z]?) +(?P<proc>[^\[]+?)"
    r"\[(?P<pid>\d+):(?P<tid>[0-9a-fA-F]+)\] " + _SUB)
_LOGD_RE = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4}) (?P<proc>[^\[]+?)"
                      r"\[(?P<pid>\d+)\]: (?P<msg>.*)$")
_SYSDIAG_RE = re.compile(r"^(?P<wd>[A-Z][a-z]{2}) (?P<mon>[A-Z][a-z]{2}) +(?P<d>\d{1,2}) "
                         r"(?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d) (?P<y>\d{4}) \[(?P<pid>\d+)\] "
                         r"<(?P<type>\w+)> \((?P<tid>0x[0-9a-fA-F]+)\) (?P<msg>.*)$")
_LOCKDOWND_RE = re.compile(r"^(?P<mo>\d\d)/(?P<d>\d\d)/(?P<y>\d\d) (?P<h>\d\d):(?P<mi>\d\d):"
                           r"(?P<s>\d\d)\.(?P<f>\d+) pid=(?P<pid>\d+) (?P<msg>.*)$")
_CONSOLE_RE = re.compile(
    r"^(?P<type>default|info|debug|error|fault|notice)[\t ]+(?:(?P<date>\d{4}-\d\d-\d\d) )?"
    r"(?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)\.(?P<f>\d+)(?P<zone>[+-]\d{4})?[\t ]+"
    r"(?P<proc>[^\t ]+)[\t ]+(?P<msg>.*)$")
# BSD syslog (macOS system.log) and idevicesyslog: "Mmm dd hh:mm:ss [host] proc[(image)][pid] [<Level>]: msg"
_SYSLOG_RE = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2}) +(?P<d>\d{1,2}) (?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)(?:\.(?P<f>\d+))? "
    r"(?:(?P<host>\S+) )?(?P<proc>[^\s\[(:<][^\s\[(:]*)(?:\((?P<image>[^)]*)\))?(?:\[(?P<pid>\d+)\])?"
    r"(?: <(?P<type>\w+)>)?: (?P<msg>.*)$")


def _apple_stamp(text: str) -> Stamp | None:
    # "2024-07-04 18:38:01.029327+0800": the zone is glued to the fraction.
    m = re.match(r"^(.*?)([+-]\d{4})?$", text)
    stamp = stamps.parse_rfc3339(m.group(1))
    if stamp is None:
        return None
    offset = stamps.zone_offset(m.group(2))
    return replace(stamp, raw=text, offset_s=offset)


def _tag(g: dict[str, str | None]) -> str | None:
    return g.get("sub") or g.get("image") or None


def _apple(regex: re.Pattern[str], fmt: str, tid_base: int = 10) -> Callable[[str], Record | None]:
    def parse(line: str) -> Record | None:
        m = regex.match(line)
        if not m:
            return None
        g = m.groupdict()
        stamp = _apple_stamp(g["ts"])
        if stamp is None:
            return None
        tid = g.get("tid")
        base = 16 if tid and (tid_base == 16 or tid.startswith("0x")) else 10
        return _with_inner(Record(fmt=fmt, stamp=stamp, level=norm_level(g.get("type")),
                                  tag=_tag(g), process=g["proc"].strip(), pid=_int(g["pid"]),
                                  tid=_int(tid, base) if tid else None, message=g["msg"]))
    return parse


def _parse_sysdiag(line: str) -> Record | None:
    m = _SYSDIAG_RE.match(line)
    if not m or m.group("mon").lower() not in stamps.MONTHS:
        return None
    g = m.groupdict()
    raw = line[:m.start("pid") - 2]
    stamp = stamps.from_parts(raw, int(g["y"]), stamps.MONTHS[g["mon"].lower()], int(g["d"]),
                              int(g["h"]), int(g["mi"]), int(g["s"]), None)
    if stamp is None:
        return None
    return Record(fmt="ios-sysdiagnose", stamp=stamp, level=norm_level(g["type"]),
                  pid=_int(g["pid"]), tid=_int(g["tid"], 16), message=g["msg"])


def _parse_lockdownd(line: str) -> Record | None:
    m = _LOCKDOWND_RE.match(line)
    if not m:
        return None
    g = m.groupdict()
    stamp = stamps.from_parts(line[:m.end("f")], 2000 + int(g["y"]), int(g["mo"]), int(g["d"]),
                              int(g["h"]), int(g["mi"]), int(g["s"]), g["f"])
    if stamp is None:
        return None
    fn, sep, rest = g["msg"].partition(": ")
    tag = fn if sep and " " not in fn else None
    return Record(fmt="ios-lockdownd", stamp=stamp, tag=tag, pid=_int(g["pid"]), message=g["msg"])


def _parse_logd(line: str) -> Record | None:
    m = _LOGD_RE.match(line)
    if not m:
        return None
    stamp = _apple_stamp(m.group("ts"))
    if stamp is None:
        return None
    return _with_inner(Record(fmt="ios-logd", stamp=stamp, process=m.group("proc"),
                              pid=_int(m.group("pid")), message=m.group("msg")))


def _parse_console(line: str) -> Record | None:
    m = _CONSOLE_RE.match(line)
    if not m:
        return None
    g = m.groupdict()
    raw = line[m.start("h"):m.end("zone") if g["zone"] else m.end("f")]
    if g["date"]:
        y, mo, d = (int(x) for x in g["date"].split("-"))
        stamp = stamps.from_parts(g["date"] + " " + raw, y, mo, d, int(g["h"]), int(g["mi"]),
                                  int(g["s"]), g["f"], g["zone"])
    else:
        # Console.app copies carry no date: the time of day alone cannot be placed.
        frac_ns, res = stamps.fraction(g["f"])
        if int(g["h"]) > 23 or int(g["mi"]) > 59 or int(g["s"]) > 60:
            return None
        stamp = Stamp(raw=raw, resolution=res, hour=int(g["h"]), minute=int(g["mi"]),
                      second=int(g["s"]), frac_ns=frac_ns, offset_s=stamps.zone_offset(g["zone"]))
    if stamp is None:
        return None
    return _with_inner(Record(fmt="console-app", stamp=stamp, level=norm_level(g["type"]),
                              process=g["proc"], message=g["msg"]))


def _parse_syslog(line: str) -> Record | None:
    m = _SYSLOG_RE.match(line)
    if not m or m.group("mon").lower() not in stamps.MONTHS:
        return None
    g = m.groupdict()
    raw = line[:m.end("f") if g["f"] else m.end("s")]
    stamp = stamps.from_parts(raw, None, stamps.MONTHS[g["mon"].lower()], int(g["d"]),
                              int(g["h"]), int(g["mi"]), int(g["s"]), g["f"])
    if stamp is None:
        return None
    fmt = "idevicesyslog" if g["image"] is not None else "bsd-syslog"
    return _with_inner(Record(fmt=fmt, stamp=stamp, level=norm_level(g["type"]), tag=g["image"],
                              process=g["proc"], pid=_int(g["pid"]), message=g["msg"]))


# ---------------------------------------------------------------- Go and structured logs
_GOLOG_RE = re.compile(
    r"^(?P<prefix>\S{1,32} ?)?(?P<date>\d{4}/\d\d/\d\d) (?P<time>\d\d:\d\d:\d\d(?:\.\d{6})?) "
    r"(?:(?P<file>[\w./\\-]+\.go:\d+): )?(?:(?P<lvl>DEBUG|INFO|WARN|ERROR)(?:[+-]\d+)? )?(?P<msg>.*)$")
_GLOG_RE = re.compile(r"^(?P<lvl>[IWEF])(?P<mo>\d\d)(?P<d>\d\d) (?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)"
                      r"\.(?P<f>\d{6})\s+(?P<tid>\d+) (?P<file>[^\]\s]+:\d+)\] (?P<msg>.*)$")
_GLOG_HEADER_RE = re.compile(r"^(?:Log file created at: (?P<y>\d{4})/\d\d/\d\d \d\d:\d\d:\d\d|"
                             r"Running on machine: |Binary: |Log line format: |Running duration)")
_ZAP_CONSOLE_RE = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))"
                             r"\t(?P<lvl>[A-Za-z]+)\t(?P<rest>.*)$")
_LOGFMT_PAIR_RE = re.compile(r'(?:^|\s)(?P<k>[A-Za-z_@][\w.@-]*)=(?P<v>"(?:[^"\\]|\\.)*"|\S*)')
_CRI_RE = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) "
                     r"(?P<stream>stdout|stderr) (?P<tagp>[PF]) ?(?P<msg>.*)$")
_COMPOSE_RE = re.compile(r"^(?P<svc>[\w.-]+)\s+\| (?P<rest>.*)$")

_TIME_KEYS = ("time", "ts", "t", "timestamp", "@timestamp", "date", "datetime")
_LEVEL_KEYS = ("level", "lvl", "severity", "levelname", "messageType", "loglevel")
_MSG_KEYS = ("msg", "message", "eventMessage", "log")
_ERR_KEYS = ("error", "err", "reason", "exception")


def _parse_golog(line: str) -> Record | None:
    m = _GOLOG_RE.match(line)
    if not m:
        return None
    g = m.groupdict()
    date, time = g["date"], g["time"]
    stamp = stamps.from_parts(f"{date} {time}", int(date[:4]), int(date[5:7]), int(date[8:10]),
                              int(time[:2]), int(time[3:5]), int(time[6:8]),
                              time[9:] if len(time) > 8 else None)
    if stamp is None:
        return None
    prefix = (g["prefix"] or "").strip() or None
    return Record(fmt="go-log", stamp=stamp, level=norm_level(g["lvl"]), tag=g["file"] or prefix,
                  message=g["msg"])


def _parse_glog(line: str) -> Record | None:
    h = _GLOG_HEADER_RE.match(line)
    if h:
        return Record(fmt="glog", kind="header", year=_int(h.group("y")))
    m = _GLOG_RE.match(line)
    if not m:
        return None
    g = m.groupdict()
    stamp = stamps.from_parts(line[1:m.end("f")], None, int(g["mo"]), int(g["d"]), int(g["h"]),
                              int(g["mi"]), int(g["s"]), g["f"])
    if stamp is None:
        return None
    return Record(fmt="glog", stamp=stamp, level=norm_level(g["lvl"]), tag=g["file"],
                  tid=_int(g["tid"]), message=g["msg"])


def _parse_zap_console(line: str) -> Record | None:
    m = _ZAP_CONSOLE_RE.match(line)
    if not m:
        return None
    stamp = stamps.parse_rfc3339(m.group("ts"))
    if stamp is None:
        return None
    fields = m.group("rest").split("\t")
    tag = None
    if len(fields) > 1 and re.fullmatch(r"\S+:\d+", fields[0]):  # caller: file.go:N
        tag = fields.pop(0)
    return Record(fmt="zap-console", stamp=stamp, level=norm_level(m.group("lvl")), tag=tag,
                  message=" ".join(fields))


def _value_stamp(value: object, trims_zeros: bool) -> Stamp | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return stamps.parse_epoch(value, raw=json.dumps(value))
    if isinstance(value, str):
        # RFC3339Nano (slog JSON, CRI) trims trailing zeros: the clock's resolution is still 1 ns.
        stamp = stamps.parse_rfc3339(value)
        if stamp is not None and trims_zeros:
            stamp = replace(stamp, resolution=1e-9)
        return stamp
    return None


def _json_id(obj: dict[str, object]) -> str:
    if "eventMessage" in obj:
        return "log-show-ndjson"
    if isinstance(obj.get("ts"), (int, float)) and "msg" in obj:
        return "zap-json"
    if isinstance(obj.get("time"), str) and "msg" in obj and "level" in obj:
        return "slog-json"
    return "json-lines"


def record_from_json(obj: dict[str, object], fmt: str | None = None) -> Record | None:
    """One JSON log object (a JSON line, an element of `log show --style json`) -> Record."""
    fmt = fmt or _json_id(obj)
    stamp = None
    for key in _TIME_KEYS:
        if key in obj:
            value = obj[key]
            if fmt.startswith("log-show") and isinstance(value, str):
                stamp = _apple_stamp(value)
            else:
                stamp = _value_stamp(value, trims_zeros=fmt == "slog-json")
            if stamp is not None:
                break
    if stamp is None:
        return None
    level = next((str(obj[k]) for k in _LEVEL_KEYS if isinstance(obj.get(k), (str, int))), None)
    msg = next((obj[k] for k in _MSG_KEYS if isinstance(obj.get(k), str)), "")
    errors = [f"{k}={obj[k]}" for k in _ERR_KEYS if isinstance(obj.get(k), str) and obj[k]]
    message = " ".join([msg.rstrip("\n")] + errors).strip()
    sub = ":".join(str(obj[k]) for k in ("subsystem", "category") if obj.get(k))
    tag = sub or (str(obj["logger"]) if obj.get("logger") else None)
    process = obj.get("processImagePath") or obj.get("process")
    if isinstance(process, str):
        process = process.rsplit("/", 1)[-1]
    else:
        process = None
    rec = Record(fmt=fmt, stamp=stamp, level=norm_level(level), tag=tag, process=process,
                 pid=obj.get("processID") if isinstance(obj.get("processID"), int) else None,
                 tid=obj.get("threadID") if isinstance(obj.get("threadID"), int) else None,
                 message=message)
    return _with_inner(rec) if fmt.startswith("log-show") else rec


def _parse_json_line(line: str) -> Record | None:
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    return record_from_json(obj)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    return value


def _parse_logfmt(line: str) -> Record | None:
    if not re.match(r"^[A-Za-z_@][\w.@-]*=", line):
        return None
    pairs = list(_LOGFMT_PAIR_RE.finditer(line))
    if len(pairs) < 2:
        return None
    keys = [p.group("k") for p in pairs]
    values = {p.group("k"): p.group("v") for p in reversed(pairs)}  # first occurrence wins
    tkey = next((k for k in _TIME_KEYS if k in values), None)
    if tkey is None:
        return None
    stamp = stamps.parse_rfc3339(_unquote(values[tkey]))
    if stamp is None:
        return None
    if keys[:3] == ["time", "level", "msg"] and not values["time"].startswith('"'):
        fmt = "slog-text"
    elif tkey == "time" and values["time"].startswith('"'):
        fmt = "logrus"
    else:
        fmt = "logfmt"
    lkey = next((k for k in _LEVEL_KEYS if k in values), None)
    mkey = next((k for k in _MSG_KEYS if k in values), None)
    # Keep every other pair as written: an err="write tcp ..." pair carries the error.
    skip = {tkey, lkey, mkey}
    rest = " ".join(p.group(0).strip() for p in pairs if p.group("k") not in skip)
    msg = _unquote(values[mkey]) if mkey else ""
    tag = _unquote(values["logger"]) if "logger" in values else None
    return Record(fmt=fmt, stamp=stamp, level=norm_level(_unquote(values[lkey]) if lkey else None),
                  tag=tag, message=f"{msg} {rest}".strip())


# Formats a wrapper may contain (wrappers themselves excluded).
def _inner_parsers() -> tuple[LineFormat, ...]:
    return tuple(f for f in FORMATS if f.family not in ("cri", "compose") and not f.loose)


def _parse_inner(text: str) -> Record | None:
    for fmt in _inner_parsers():
        rec = fmt.parse(text)
        if rec is not None and rec.kind == "event":
            return rec
    return None


def _parse_cri(line: str) -> Record | None:
    m = _CRI_RE.match(line)
    if not m:
        return None
    stamp = stamps.parse_rfc3339(m.group("ts"), resolution=1e-9)  # RFC3339Nano, zeros trimmed
    if stamp is None:
        return None
    inner = _parse_inner(m.group("msg"))
    base = Record(fmt="cri", stamp=stamp, tag=m.group("stream"), message=m.group("msg"),
                  partial=m.group("tagp") == "P")
    if inner is None:
        return base
    return replace(base, fmt=f"cri/{inner.fmt}", level=inner.level, message=inner.message)


def _parse_compose(line: str) -> Record | None:
    m = _COMPOSE_RE.match(line)
    if not m:
        return None
    inner = _parse_inner(m.group("rest"))
    if inner is None:
        return None
    return replace(inner, fmt=f"docker-compose/{inner.fmt}", process=inner.process or m.group("svc"))


# Order matters: the first format that matches a line names it, so specific before general.
FORMATS: tuple[LineFormat, ...] = (
    LineFormat("ios-log-show", "apple", _apple(_LOGSHOW_RE, "ios-log-show")),
    LineFormat("ios-log-show-syslog", "apple", _apple(_LOGSHOW_SYSLOG_RE, "ios-log-show-syslog")),
    LineFormat("ios-xcode", "apple", _apple(_XCODE_RE, "ios-xcode")),
    LineFormat("ios-log-show-compact", "apple",
               _apple(_LOGSHOW_COMPACT_RE, "ios-log-show-compact", tid_base=16)),
    LineFormat("ios-logd", "apple", _parse_logd),
    LineFormat("logcat-threadtime", "logcat", _logcat(_THREADTIME_RE, "logcat-threadtime", True)),
    LineFormat("logcat-time", "logcat", _logcat(_TIME_RE, "logcat-time", True)),
    LineFormat("logcat-long", "logcat", _logcat(_LONG_RE, "logcat-long", True)),
    LineFormat("cri", "cri", _parse_cri),
    LineFormat("docker-compose", "compose", _parse_compose),
    LineFormat("json", "json", _parse_json_line),
    LineFormat("zap-console", "go", _parse_zap_console),
    LineFormat("glog", "glog", _parse_glog),
    LineFormat("syslog", "syslog", _parse_syslog),
    LineFormat("ios-sysdiagnose", "apple", _parse_sysdiag),
    LineFormat("ios-lockdownd", "apple", _parse_lockdownd),
    LineFormat("console-app", "apple", _parse_console),
    LineFormat("logfmt", "go", _parse_logfmt),
    LineFormat("go-log", "go", _parse_golog),
    LineFormat("logcat-brief", "logcat", _logcat(_BRIEF_RE, "logcat-brief", False), loose=True),
    LineFormat("logcat-process", "logcat", _logcat(_PROCESS_RE, "logcat-process", False), loose=True),
    LineFormat("logcat-thread", "logcat", _logcat(_THREAD_RE, "logcat-thread", False), loose=True),
    LineFormat("logcat-tag", "logcat", _logcat(_TAG_RE, "logcat-tag", False), loose=True),
)
BY_ID = {f.id: f for f in FORMATS}

# Lines that belong to no event: logcat buffer markers and tool headers.
_SEPARATOR_RE = re.compile(r"^-{9} (?:beginning of|switch to) \S+")
_HEADER_RE = re.compile(
    r"^(?:Timestamp\s+(?:Thread|Ty)\s|Filtering the log data using |Skipping info and debug messages|"
    r"-{40,}\s*$|(?:Log|Activity|Boundary|Signpost|Loss|Statedump|Timesync|Tracepoint)\s+- )")

# Lines without a timestamp that continue the event before them (stack traces, panics).
CONTINUATION_RE = re.compile(
    r"^(?:\s|panic: |goroutine \d+ \[|fatal error: |\[signal |created by |exit status \d+|"
    r"\[recovered\]|Caused by: |\.\.\. \d+ more|Traceback \(most recent call last\)|"
    r"[\])}]|"                                           # closes a structure opened above
    r"[\w.\-/@]+(?:\.[\w\-\[\].*()]+)+\(.*\)\s*$|"        # Go frame: pkg.(*T).Method(0x1, ...)
    r"[\w.\-/@]+(?:\.[\w\-\[\].*()]+)+$)")                # zap/Go frame without arguments


def marker(line: str) -> str | None:
    """'separator' or 'header' for lines that are not log events, else None."""
    if _SEPARATOR_RE.match(line):
        return "separator"
    if _HEADER_RE.match(line):
        return "header"
    return None


def family_of(fmt_id: str) -> str:
    """Family of a (possibly wrapped) per-line format id."""
    base = fmt_id.split("/", 1)[0]
    for f in FORMATS:
        if f.id == base or base.startswith(f.id):
            return f.family
    return {"docker-compose": "compose", "idevicesyslog": "syslog", "bsd-syslog": "syslog",
            "slog-text": "go", "logrus": "go", "slog-json": "json", "zap-json": "json",
            "json-lines": "json", "log-show-ndjson": "json"}.get(base, "raw")


def parse_line(line: str, preferred: LineFormat | None = None,
               family: str | None = None) -> Record | None:
    """The Record of the first format matching ``line``, or None.

    ``preferred`` (the file's format) is tried first; loose formats only when of ``family``.
    """
    if preferred is not None:
        rec = preferred.parse(line)
        if rec is not None:
            return rec
    for fmt in FORMATS:
        if fmt is preferred or (fmt.loose and fmt.family != family):
            continue
        rec = fmt.parse(line)
        if rec is not None:
            return rec
    return None


def detect_format(lines: list[str], sample: int = 400) -> tuple[LineFormat | None, str | None]:
    """(parser, format id) that best describes a file from its first ``sample`` useful lines.

    Strict formats are preferred; loose ones name a file only when nothing strict matched.
    An Xcode console file is ``ios-xcode`` even when plain Go lines are as many.
    """
    by_parser: dict[str, int] = {}
    by_id: dict[str, dict[str, int]] = {}
    seen = 0
    for line in lines:
        if not line.strip() or marker(line):
            continue
        seen += 1
        if seen > sample:
            break
        for fmt in FORMATS:
            rec = fmt.parse(line)
            if rec is not None:
                by_parser[fmt.id] = by_parser.get(fmt.id, 0) + 1
                ids = by_id.setdefault(fmt.id, {})
                line_id = rec.fmt if rec.kind == "event" else fmt.id
                ids[line_id] = ids.get(line_id, 0) + 1
                break
    if not by_parser:
        return None, None
    pool = {k: v for k, v in by_parser.items() if not BY_ID[k].loose} or by_parser
    if "ios-xcode" in pool:  # Xcode prints every Go line twice: plain, then through os_log
        best = "ios-xcode"
    else:
        order = [f.id for f in FORMATS]
        best = max(pool, key=lambda k: (pool[k], -order.index(k)))
    ids = by_id[best]
    if best == "syslog" and "idevicesyslog" in ids:
        return BY_ID[best], "idevicesyslog"
    if best == "cri":
        return BY_ID[best], "cri"
    return BY_ID[best], max(ids, key=ids.get)
