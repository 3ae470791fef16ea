"""Property tests: no text or bytes makes the reader raise anything but LogError."""

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.exceptions import LogError
from analyzer.logs import COLUMNS, canonical_errno, parse_go_error, parse_log_text, read_log

# Fragments of real formats, so generated text reaches deep into the parsers.
FRAGMENTS = [
    "07-04 14:33:03.678 18044 18070 I GoLog   : ", "2024-07-04 18:38:01.029327+0800 anet[1088:374879] [os_log] ",
    "2024/07/04 10:38:01 ", "write udp 10.0.0.159:33322->10.0.1.238:15000: write: ", "broken pipe",
    "dial tcp :33322->[::1]:99999: bind: ", "panic: ", "\t", "\n", "[ 07-04 18:38:01.029  1088: 1120 I/GoLog ]",
    "--------- beginning of main", "{\"time\":\"2024-07-04T14:52:51.1+08:00\",\"msg\":\"x\"}", "[", "]", "{",
    "time=2024-13-45T99:99:99Z level=x msg=", "Jul 32 25:61:61 h p[1]: ", "  99999999999999999999.123  1 2 I T: ",
    "[Errno 39] ", "POSIXErrorCode(rawValue: 999)", "_kCFStreamErrorCodeKey=53", "EOF", "\r", "\x00", "\ufeff",
    "2016-10-06T00:17:09.669794202Z stdout P ", "caddy  | ", "E0230 25:00:00.000000 1 f.go:1] ",
    "9999-12-31 23:59:59.999999999 +9999  1  2 E T: ", "default\t99:99:99.1-0400\tp\t",
]
texty = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=30)), max_size=30).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texty, st.sampled_from([None, "linux", "darwin"]), st.one_of(st.none(), st.integers(1, 3000)))
def test_any_text_reads(text, os_hint, year_hint):
    log = parse_log_text(text, os_hint=os_hint, year_hint=year_hint)
    assert list(log.events.columns) == list(COLUMNS)
    assert log.role in ("app", "server")
    # Nothing is dropped: each line is in exactly one event's raw text, or counted as a
    # blank, marker or header line, or as the plain half of a collapsed Xcode pair.
    if log.format != "log-show-json":
        s = log.stats
        in_events = sum(r.count("\n") + 1 for r in log.events.raw)
        assert in_events + s["blank"] + s["separators"] + s["header"] + s["collapsed"] == s["lines"]
        parts = text.split("\n")
        assert s["lines"] == len(parts) - (parts[-1] == "")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_errno_and_go_error_never_raise(text):
    assert canonical_errno(text) in (None, "EPIPE", "ECONNRESET", "ECONNABORTED", "EDESTADDRREQ",
                                     "ENOTCONN", "ECONNREFUSED", "ETIMEDOUT", "EADDRINUSE",
                                     "EHOSTUNREACH", "ENETUNREACH", "ENETDOWN", "EBADF", "ENOBUFS",
                                     "EADDRNOTAVAIL", "EPERM", "EINVAL", "EOPNOTSUPP", "EOF",
                                     "DEADLINE", "CLOSED")
    parse_go_error(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_any_bytes_in_a_file(tmp_path, data):
    path = tmp_path / "fuzz.log"
    path.write_bytes(data)
    try:
        log = read_log(path)
    except LogError:
        return
    assert isinstance(log.events, pd.DataFrame)
