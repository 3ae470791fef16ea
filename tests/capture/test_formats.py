"""Log line formatting and Go error texts: the exact shapes the log reader must meet."""

import datetime as dt
import errno
import re

import pytest

from analyzer.capture import goerrors as ge
from analyzer.capture.logformat import (Clock, LogFile, go_log_line, logcat_line, parse_tz,
                                        tz_string, xcode_lines)

# The threadtime regex of PLATFORMS.md section 4.
THREADTIME = re.compile(r"^(\d\d-\d\d|\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d+)(?: [+-]\d{4})?"
                        r"\s+(\d+)\s+(\d+) ([VDIWEFS]) (.*?)\s*: (.*)$")
UTC = dt.timezone.utc
T0 = dt.datetime(2024, 7, 4, 10, 38, 1, 29327, tzinfo=UTC).timestamp()


def test_go_log_line_is_lstdflags():
    when = dt.datetime(2024, 7, 4, 14, 52, 51, 999999)
    assert go_log_line(when, "recv new connection from 10.0.0.159:33322") == \
        "2024/07/04 14:52:51 recv new connection from 10.0.0.159:33322"


def test_logcat_threadtime_matches_field_sample():
    when = dt.datetime(2024, 7, 4, 14, 33, 3, 678999)
    msg = ("udp write err:  write udp 10.0.0.159:33322->10.0.1.238:15000: "
           "write: destination address required")
    line = logcat_line(when, 18044, 18070, msg)
    assert line == "07-04 14:33:03.678 18044 18070 I GoLog   : " + msg
    m = THREADTIME.match(line)
    assert m and m.group(6) == "GoLog" and m.group(7) == msg
    # small pids are right-aligned to five columns, as logcat prints them
    assert logcat_line(when, 88, 120, "x").startswith("07-04 14:33:03.678    88   120 I GoLog   : ")


def test_xcode_lines_double_the_go_line_with_local_header():
    clock = Clock(0, parse_tz("+0800"))
    plain, wrapped = xcode_lines(clock.local(T0), clock.utc(T0), 1088, 374879, "udp write err:  x")
    assert plain == "2024/07/04 10:38:01 udp write err:  x"
    assert wrapped == ("2024-07-04 18:38:01.029327+0800 anet[1088:374879] [os_log] "
                       "2024/07/04 10:38:01 udp write err:  x")


def test_clock_offset_and_zone():
    clock = Clock(2.5, parse_tz("-0430"))
    assert clock.local(T0).isoformat() == "2024-07-04T06:08:03.529327-04:30"
    assert clock.utc(T0).isoformat() == "2024-07-04T10:38:03.529327+00:00"
    assert tz_string(parse_tz("+08:00")) == "+0800"
    assert parse_tz("UTC") is UTC
    with pytest.raises(ValueError, match="bad time zone"):
        parse_tz("CEST")


@pytest.mark.parametrize("fmt,expected", [
    ("golog", ["2024/07/04 18:38:01 hello"]),
    ("logcat", ["07-04 18:38:01.029   123   456 I GoLog   : hello"]),
    ("xcode", ["2024/07/04 10:38:01 hello",
               "2024-07-04 18:38:01.029327+0800 anet[123:456] [os_log] 2024/07/04 10:38:01 hello"]),
])
def test_logfile_writes_each_format(tmp_path, fmt, expected):
    log = LogFile(tmp_path / "x.log", fmt, Clock(0, parse_tz("+0800")), pid=123,
                  now=lambda: T0)
    assert log.lines_for("hello", T0, 456) == expected
    log.log("hello")
    log.close()
    assert len((tmp_path / "x.log").read_text().splitlines()) == len(expected)


def test_op_error_layouts_from_the_field_report():
    assert ge.op_error("read", "tcp", "10.0.0.159:33322", ge.syscall_error("read", errno.ECONNRESET),
                       source="10.0.1.238:15100") == \
        "read tcp 10.0.1.238:15100->10.0.0.159:33322: read: connection reset by peer"
    assert ge.op_error("dial", "tcp", "10.0.0.159:33322",
                       ge.syscall_error("connect", errno.ECONNREFUSED)) == \
        "dial tcp 10.0.0.159:33322: connect: connection refused"


@pytest.mark.parametrize("code,linux,darwin", [
    (errno.ENOTCONN, "transport endpoint is not connected", "socket is not connected"),
    (errno.ETIMEDOUT, "connection timed out", "operation timed out"),
    (errno.EPIPE, "broken pipe", "broken pipe"),
    (errno.EDESTADDRREQ, "destination address required", "destination address required"),
    (errno.ECONNABORTED, "software caused connection abort", "software caused connection abort"),
    (errno.EADDRINUSE, "address already in use", "address already in use"),
])
def test_errno_texts_per_platform(code, linux, darwin):
    assert ge.errno_text(code, "linux") == linux
    assert ge.errno_text(code, "ios") == darwin


def test_describe_python_exceptions():
    assert ge.describe(TimeoutError("timed out"), "read", "tcp", "1.2.3.4:5", source="6.7.8.9:10") \
        == "read tcp 6.7.8.9:10->1.2.3.4:5: i/o timeout"
    assert ge.describe(TimeoutError(errno.ETIMEDOUT, "x"), "dial", "tcp", "1.2.3.4:5",
                       syscall="connect") == "dial tcp 1.2.3.4:5: connect: connection timed out"
    assert ge.describe(OSError(errno.ENOTCONN, "x"), "read", "tcp", "b", "a", platform="ios") \
        == "read tcp a->b: read: socket is not connected"


def test_hostport_brackets_ipv6():
    assert ge.hostport("::1", 33322) == "[::1]:33322"
    assert ge.hostport("127.0.0.2", 33322) == "127.0.0.2:33322"
