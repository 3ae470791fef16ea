"""Line formats (PLATFORMS.md section 4, MISSION.md): each example -> the right fields."""

import math

import pandas as pd
import pytest

from analyzer.logs import parse_log_text

MSG = "read tcp 10.0.0.110:33322->10.0.1.238:15100: read: software caused connection abort"
T = pd.Timestamp


def one(text, **kw):
    log = parse_log_text(text, name="t.log", year_hint=kw.pop("year_hint", 2024), **kw)
    assert len(log.events) == 1, log.events
    return log, log.events.iloc[0]


def check(row, **expected):
    for key, value in expected.items():
        got = row[key]
        if value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
            assert pd.isna(got), (key, got)
        else:
            assert got == value, (key, got, value)


# line, file format, expected fields
LOGCAT = [
    ("07-04 18:38:01.029  1088  1120 I GoLog   : " + MSG, "logcat-threadtime",
     dict(local_time=T("2024-07-04 18:38:01.029"), pid=1088, tid=1120, tag="GoLog", level="info",
          year_known=False, time_resolution_s=1e-3, utc_offset_s=float("nan"))),
    ("I/GoLog   ( 1088): " + MSG, "logcat-brief", dict(pid=1088, tag="GoLog", raw_time=pd.NA)),
    ("I( 1088) " + MSG + "  (GoLog)", "logcat-process", dict(pid=1088, tag="GoLog")),
    ("I/GoLog   : " + MSG, "logcat-tag", dict(tag="GoLog", level="info")),
    ("I( 1088: 1120) " + MSG, "logcat-thread", dict(pid=1088, tid=1120)),
    ("07-04 18:38:01.029 I/GoLog   ( 1088): " + MSG, "logcat-time",
     dict(local_time=T("2024-07-04 18:38:01.029"), pid=1088, tag="GoLog")),
    ("2024-07-04 18:38:01.029327  1088  1120 I GoLog   : " + MSG, "logcat-threadtime",
     dict(local_time=T("2024-07-04 18:38:01.029327"), year_known=True, time_resolution_s=1e-6)),
    ("2024-07-04 18:38:01.029327123  1088  1120 I GoLog   : " + MSG, "logcat-threadtime",
     dict(local_time=T("2024-07-04 18:38:01.029327123"), time_resolution_s=1e-9)),
    ("07-04 18:38:01.029 +0800  1088  1120 I GoLog   : " + MSG, "logcat-threadtime",
     dict(local_time=T("2024-07-04 18:38:01.029"), utc_offset_s=28800.0, raw_time="07-04 18:38:01.029 +0800")),
    ("2024-07-04 10:38:01.029 +0000  1088  1120 I GoLog   : " + MSG, "logcat-threadtime",  # -v UTC
     dict(local_time=T("2024-07-04 10:38:01.029"), utc_offset_s=0.0, year_known=True)),
    ("         1720089481.029  1088  1120 I GoLog   : " + MSG, "logcat-threadtime",  # -v epoch
     dict(local_time=T("2024-07-04 10:38:01.029"), utc_offset_s=0.0, year_known=True,
          raw_time="1720089481.029")),
    ("  5301.029  1088  1120 I GoLog   : " + MSG, "logcat-threadtime",  # -v monotonic
     dict(local_time=pd.NaT, monotonic_s=5301.029)),
    ("07-04 18:38:01.029  1000  1088  1120 I GoLog   : " + MSG, "logcat-threadtime",  # -v uid
     dict(pid=1088, tid=1120)),
    ("07-04 18:38:01.029 u0_a8:  1088  1120 I GoLog   : " + MSG, "logcat-threadtime",
     dict(pid=1088, tid=1120)),
    ("1720089481.029 I/GoLog   ( 1088): " + MSG, "logcat-time",
     dict(local_time=T("2024-07-04 10:38:01.029"), utc_offset_s=0.0)),
]


@pytest.mark.parametrize("line,fmt,expected", LOGCAT)
def test_logcat_variants(line, fmt, expected):
    log, row = one(line)
    assert log.format == fmt and log.role == "app"
    check(row, **expected)
    # Every variant still yields the error's facts.
    check(row, errno="ECONNABORTED", op="read", proto="tcp", local_ip="10.0.0.110",
          local_port=33322, remote_ip="10.0.1.238", remote_port=15100)


def test_logcat_long_with_uid_and_separators():
    text = ("--------- beginning of main\n"
            "[ 07-04 18:38:01.029  1088: 1120 I/GoLog    ]\n" + MSG + "\n\n"
            "--------- switch to system\n"
            "[ 07-04 18:38:02.000 10081:20049:20054 W/zygote64 ]\n"
            "first line\nsecond line\n\n")
    log = parse_log_text(text, year_hint=2024)
    assert log.format == "logcat-long"
    assert list(log.events.line_no) == [2, 6]
    a, b = log.events.iloc[0], log.events.iloc[1]
    check(a, pid=1088, tid=1120, tag="GoLog", message=MSG, errno="ECONNABORTED",
          local_time=T("2024-07-04 18:38:01.029"))
    check(b, pid=20049, tid=20054, level="warning", message="first line\nsecond line")
    assert log.stats["separators"] == 2 and log.stats["unparsed"] == 0


def test_logcat_multiline_message_repeats_prefix():
    text = ("07-04 18:38:01.029  1088  1120 E GoLog   : panic: write failed\n"
            "07-04 18:38:01.029  1088  1120 E GoLog   : \tat com.example.Net.send(Net.java:42)\n"
            "07-04 18:38:01.029  1088  1120 E GoLog   : second separate message\n")
    log = parse_log_text(text, year_hint=2024)
    assert list(log.events.message) == ["panic: write failed\n\tat com.example.Net.send(Net.java:42)",
                                        "second separate message"]
    # With microsecond stamps an identical prefix can only be the same message.
    text = ("2024-07-04 18:38:01.029327  1088  1120 I GoLog   : line one\n"
            "2024-07-04 18:38:01.029327  1088  1120 I GoLog   : line two\n")
    assert list(parse_log_text(text).events.message) == ["line one\nline two"]


# ---------------------------------------------------------------- iOS / macOS
INNER = T("2024-07-04 10:38:01")
APPLE = [
    ("2024-07-04 18:38:01.029327+0800 anet[1088:374879] [os_log] 2024/07/04 10:38:01 " + MSG,
     "ios-xcode", dict(pid=1088, tid=374879, tag="os_log", process="anet")),
    ("2024-07-04 18:38:01.029327+0800 0x5b85f    Default     0x0                  1088   0    anet: "
     "[org.golang.mobile:os_log] 2024/07/04 10:38:01 " + MSG, "ios-log-show",
     dict(pid=1088, tid=0x5B85F, tag="org.golang.mobile:os_log", level="notice")),
    ("2024-07-04 18:38:01.029327+0800 localhost anet[1088]: [org.golang.mobile:os_log] "
     "2024/07/04 10:38:01 " + MSG, "ios-log-show-syslog", dict(pid=1088, process="anet")),
    ("2024-07-04 18:38:01.029327+0800 localhost anet[1088]: (libgojni.dylib) "
     "[org.golang.mobile:os_log] 2024/07/04 10:38:01 " + MSG, "ios-log-show-syslog",
     dict(pid=1088, tag="org.golang.mobile:os_log")),
]


@pytest.mark.parametrize("line,fmt,expected", APPLE)
def test_apple_os_log_lines(line, fmt, expected):
    log, row = one(line)
    assert log.format == fmt and log.role == "app"
    check(row, **expected)
    check(row, local_time=T("2024-07-04 18:38:01.029327"), utc_offset_s=28800.0, year_known=True,
          time_resolution_s=1e-6, inner_utc_time=INNER, message=MSG, errno="ECONNABORTED")


def test_log_show_compact():
    log, row = one("2024-07-04 18:38:01.029 Df anet[1088:5b85f] [org.golang.mobile:os_log] "
                   "2024/07/04 10:38:01 " + MSG)
    assert log.format == "ios-log-show-compact"
    check(row, local_time=T("2024-07-04 18:38:01.029"), utc_offset_s=float("nan"), tid=0x5B85F,
          level="notice", inner_utc_time=INNER, errno="ECONNABORTED")


def test_log_show_json_array_and_ndjson():
    obj = ('{"timestamp":"2024-07-04 18:38:01.029327+0800","eventMessage":"2024/07/04 10:38:01 %s",'
           '"messageType":"Default","processID":1088,"threadID":374879,"subsystem":"org.golang.mobile",'
           '"category":"os_log","processImagePath":"/private/var/containers/anet.app/anet",'
           '"machTimestamp":1,"traceID":2}' % MSG)
    for text, fmt in ((f"[{{\"x\":1,\"timestamp\":\"bad\"}},\n  {obj}\n]\n", "log-show-json"),
                      (obj + "\n", "log-show-ndjson")):
        log = parse_log_text(text)
        assert log.format == fmt and log.role == "app"
        row = log.events.iloc[-1]
        check(row, local_time=T("2024-07-04 18:38:01.029327"), utc_offset_s=28800.0, pid=1088,
              tid=374879, process="anet", tag="org.golang.mobile:os_log", inner_utc_time=INNER,
              message=MSG, errno="ECONNABORTED")
    log = parse_log_text(f"[{{\"x\":1,\"timestamp\":\"bad\"}},\n  {obj}\n]\n")
    assert list(log.events.line_no) == [1, 2]


def test_idevicesyslog():
    log, row = one("Jul  4 18:38:01 anet(libgojni.dylib)[1088] <Notice>: 2024/07/04 10:38:01 " + MSG)
    assert log.format == "idevicesyslog" and log.role == "app"
    check(row, local_time=T("2024-07-04 18:38:01"), year_known=False, time_resolution_s=1.0,
          pid=1088, process="anet", tag="libgojni.dylib", level="notice", inner_utc_time=INNER,
          errno="ECONNABORTED")
    log, row = one("Jul  4 18:38:01 iPhone anet(libgojni.dylib)[1088] <Error>: x")
    check(row, process="anet", level="error")


def test_console_app_copy_has_no_date():
    log, row = one("default\t14:29:55.265590-0400\tdasd\tReceived state update for 2933 (x)")
    assert log.format == "console-app"
    check(row, raw_time="14:29:55.265590-0400", local_time=pd.NaT, utc_offset_s=-14400.0,
          process="dasd", level="notice")
    assert any("no date" in w for w in log.warnings)


# ---------------------------------------------------------------- Go and structured server logs
SERVER = [
    ("2024/07/04 14:52:51 recv new connection from 10.0.0.159:33322", "go-log",
     dict(local_time=T("2024-07-04 14:52:51"), time_resolution_s=1.0, year_known=True,
          utc_offset_s=float("nan"), remote_ip="10.0.0.159", remote_port=33322, errno=pd.NA)),
    ("2024/07/04 14:52:51.123456 conn 10.0.0.159:33322 read error: read tcp "
     "10.0.1.238:15100->10.0.0.159:33322: read: connection reset by peer", "go-log",
     dict(local_time=T("2024-07-04 14:52:51.123456"), time_resolution_s=1e-6, errno="ECONNRESET",
          op="read", local_port=15100, remote_ip="10.0.0.159", label="conn 10.0.0.159:33322 read error")),
    ("2024/07/04 14:52:51 main.go:42: dial 10.0.0.159:33322 err: dial tcp 10.0.0.159:33322: "
     "connect: connection timed out", "go-log",
     dict(tag="main.go:42", errno="ETIMEDOUT", op="dial", syscall="connect",
          remote_ip="10.0.0.159", remote_port=33322)),
    ("[srv] 2024/07/04 14:52:51 /home/u/srv/main.go:42: hello", "go-log",
     dict(tag="/home/u/srv/main.go:42", message="hello")),
    ("2024/07/04 14:52:51 INFO accepted conn remote=10.0.0.159:33322", "go-log",
     dict(level="info", remote_ip="10.0.0.159", message="accepted conn remote=10.0.0.159:33322")),
    ('time=2024-07-04T14:52:51.123+08:00 level=INFO msg="peer reset" err="read tcp '
     '10.0.1.238:15100->10.0.0.159:33322: read: connection reset by peer"', "slog-text",
     dict(local_time=T("2024-07-04 14:52:51.123"), utc_offset_s=28800.0, time_resolution_s=1e-3,
          level="info", errno="ECONNRESET", remote_port=33322)),
    ('{"time":"2024-07-04T14:52:51.1234567+08:00","level":"INFO","msg":"peer reset",'
     '"err":"read tcp 10.0.1.238:15100->10.0.0.159:33322: read: connection reset by peer"}',
     "slog-json", dict(local_time=T("2024-07-04 14:52:51.1234567"), utc_offset_s=28800.0,
                       time_resolution_s=1e-9, errno="ECONNRESET", op="read")),
    ('ts=2024-07-04T06:52:51Z level=error msg="write failed" err="write tcp '
     '10.0.1.238:15100->10.0.0.159:33322: write: broken pipe"', "logfmt",
     dict(local_time=T("2024-07-04 06:52:51"), utc_offset_s=0.0, level="error", errno="EPIPE")),
    ('time="2024-07-04T14:52:51+08:00" level=info msg="write failed: broken pipe"', "logrus",
     dict(utc_offset_s=28800.0, errno="EPIPE")),
    ('{"level":"error","ts":1720075971.5,"msg":"dial failed","error":"dial tcp 10.0.0.159:33322: '
     'connect: connection refused"}', "zap-json",
     dict(local_time=T("2024-07-04 06:52:51.5"), utc_offset_s=0.0, errno="ECONNREFUSED")),
    ("2024-07-04T06:52:51.854Z\terror\tsrv/main.go:88\tread failed\t"
     '{"error": "read tcp 10.0.1.238:15100->10.0.0.159:33322: read: connection reset by peer"}',
     "zap-console", dict(tag="srv/main.go:88", level="error", errno="ECONNRESET")),
    ("E0704 14:52:51.123456   12345 main.go:42] write tcp 10.0.1.238:15100->10.0.0.159:33322: "
     "write: broken pipe", "glog",
     dict(local_time=T("2024-07-04 14:52:51.123456"), year_known=False, level="error",
          errno="EPIPE", tid=12345)),
    ("2024-07-04T06:52:51.123456789Z stderr F 2024/07/04 06:52:51 conn 10.0.0.159:33322 read "
     "error: EOF", "cri", dict(local_time=T("2024-07-04 06:52:51.123456789"), errno="EOF",
                               op="read", remote_port=33322)),
]


@pytest.mark.parametrize("line,fmt,expected", SERVER)
def test_server_formats(line, fmt, expected):
    log, row = one(line)
    assert log.format == fmt and log.role == "server"
    check(row, **expected)


def test_slog_default_and_cri_inner_id():
    log = parse_log_text("2024-07-04T06:52:51Z stdout F 2024/07/04 06:52:51 hi\n")
    assert log.events.iloc[0]["format"] == "cri/go-log"
    assert log.events.iloc[0]["message"] == "hi"


def test_cri_partial_records_join():
    text = ("2024-07-04T06:52:51.1Z stdout P write tcp 10.0.1.238:15100->10.0.0.159:33322: \n"
            "2024-07-04T06:52:51.2Z stdout F write: broken pipe\n")
    log = parse_log_text(text)
    assert len(log.events) == 1
    check(log.events.iloc[0], errno="EPIPE", local_port=15100, line_no=1)
