"""read_log end to end: MISSION.md's real lines, event assembly, roles, warnings, errors."""

import pandas as pd
import pytest

from analyzer.exceptions import LogError
from analyzer.logs import COLUMNS, parse_log_text, read_log

T = pd.Timestamp

MISSION_LOGCAT = ("07-04 14:33:03.678 18044 18070 I GoLog   : udp write err:  write udp "
                  "10.0.0.159:33322->10.0.1.238:15000: write: destination address required")
MISSION_IOS = (
    "2024/07/04 10:38:01 udp write err:  write udp 10.0.0.110:33322->10.0.1.238:15000: write: broken pipe\n"
    "2024-07-04 18:38:01.029327+0800 anet[1088:374879] [os_log] 2024/07/04 10:38:01 udp write err:  "
    "write udp 10.0.0.110:33322->10.0.1.238:15000: write: broken pipe\n")
MISSION_SERVER = (
    "2024/07/04 14:52:51 recv new connection from 10.0.0.159:33322\n"
    "2024/07/04 14:53:10 conn 10.0.0.159:33322 read error: read tcp 10.0.1.238:15100->10.0.0.159:33322: "
    "read: connection reset by peer\n"
    "2024/07/04 07:23:24 dial 10.0.0.159:33322 err: dial tcp 10.0.0.159:33322: connect: connection timed out\n"
    "panic: dial tcp 10.0.0.110:33322: connect: connection refused\n")


def write(tmp_path, text, name="x.log"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_mission_logcat_line(tmp_path):
    log = read_log(write(tmp_path, MISSION_LOGCAT + "\n", "app.log"), year_hint=2024)
    assert (log.name, log.format, log.role) == ("app.log", "logcat-threadtime", "app")
    row = log.events.iloc[0]
    assert row["local_time"] == T("2024-07-04 14:33:03.678")
    assert pd.isna(row["utc_offset_s"]) and not row["year_known"]
    assert (row["pid"], row["tid"], row["tag"], row["level"]) == (18044, 18070, "GoLog", "info")
    assert (row["errno"], row["op"], row["syscall"], row["proto"]) == ("EDESTADDRREQ", "write", "write", "udp")
    assert (row["local_ip"], row["local_port"], row["remote_ip"], row["remote_port"]) == \
        ("10.0.0.159", 33322, "10.0.1.238", 15000)
    assert row["label"] == "udp write err" and row["source"] == "app.log"
    assert row["raw"] == MISSION_LOGCAT


def test_ios_doubled_line_is_one_event(tmp_path):
    log = read_log(write(tmp_path, MISSION_IOS))
    assert log.format == "ios-xcode" and log.role == "app"
    assert len(log.events) == 1 and log.stats["collapsed"] == 1
    row = log.events.iloc[0]
    assert row["local_time"] == T("2024-07-04 18:38:01.029327")
    assert row["utc_offset_s"] == 28800.0 and row["time_resolution_s"] == 1e-6
    assert row["inner_utc_time"] == T("2024-07-04 10:38:01")
    assert (row["line_no"], row["dup_line_no"]) == (2, 1)
    assert (row["errno"], row["proto"], row["remote_port"]) == ("EPIPE", "udp", 15000)
    assert row["message"].startswith("udp write err:")


def test_ios_doubling_pairs_only_twins():
    # The os_log twin may come first; an unpaired plain line stays, read as Go's UTC.
    text = ("2024-07-04 18:38:01.029327+0800 anet[1088:374879] [os_log] 2024/07/04 10:38:01 a\n"
            "2024/07/04 10:38:01 a\n"
            "2024/07/04 10:38:02 only plain\n"
            "2024-07-04 18:38:03.000001+0800 anet[1088:374879] [os_log] 2024/07/04 10:38:03 a\n")
    log = parse_log_text(text)
    assert list(log.events.message) == ["a", "only plain", "a"]
    plain = log.events.iloc[1]
    assert plain["format"] == "go-log" and plain["inner_utc_time"] == T("2024-07-04 10:38:02")
    assert log.stats["collapsed"] == 1


def test_mission_server_log(tmp_path):
    log = read_log(write(tmp_path, MISSION_SERVER, "server.log"))
    ev = log.events
    assert log.format == "go-log" and log.role == "server"
    assert len(ev) == 3 and log.stats["continuation"] == 1 and log.stats["unparsed"] == 0
    assert ev.iloc[0]["remote_ip"] == "10.0.0.159" and pd.isna(ev.iloc[0]["errno"])
    assert (ev.iloc[1]["errno"], ev.iloc[1]["op"], ev.iloc[1]["local_port"]) == ("ECONNRESET", "read", 15100)
    dial = ev.iloc[2]
    assert dial["local_time"] == T("2024-07-04 07:23:24") and dial["time_resolution_s"] == 1.0
    assert (dial["errno"], dial["op"], dial["remote_port"]) == ("ETIMEDOUT", "dial", 33322)
    # The panic line has no time of its own: it belongs to the line before it.
    assert dial["raw"].endswith("panic: dial tcp 10.0.0.110:33322: connect: connection refused")
    assert dial["line_no"] == 3


def test_panic_after_plain_line_gives_its_error():
    text = "2024/07/04 07:23:24 dialing the phone\npanic: dial tcp 10.0.0.110:33322: connect: connection refused\n" \
           "\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:20 +0x1d\nexit status 2\n"
    log = parse_log_text(text)
    assert len(log.events) == 1 and log.stats["continuation"] == 5
    row = log.events.iloc[0]
    assert (row["errno"], row["op"], row["remote_ip"], row["label"]) == \
        ("ECONNREFUSED", "dial", "10.0.0.110", "panic")


def test_unknown_lines_kept_raw_and_counted():
    text = "2024/07/04 14:52:51 ok\nsomething else entirely\n2024/07/04 14:52:52 ok again\n"
    log = parse_log_text(text, name="s.log")
    assert list(log.events.format) == ["go-log", "unparsed", "go-log"]
    assert log.stats["unparsed"] == 1 and log.events.iloc[1]["raw"] == "something else entirely"
    assert pd.isna(log.events.iloc[1]["local_time"])
    assert any("1 of 3 lines" in w for w in log.warnings)


def test_file_with_no_known_line_is_reported(tmp_path):
    log = read_log(write(tmp_path, "hello\nworld\n"))
    assert log.format == "unknown" and len(log.events) == 2
    assert log.warnings and "no line in a known log format" in log.warnings[0]
    empty = read_log(write(tmp_path, "", "empty.log"))
    assert empty.format == "unknown" and len(empty.events) == 0
    assert list(empty.events.columns) == list(COLUMNS)


def test_raw_messages_without_timestamps():
    log = parse_log_text("write udp 10.0.0.159:33322->10.0.1.238:15000: write: destination address required\n")
    assert log.format == "raw" and log.events.iloc[0]["errno"] == "EDESTADDRREQ"
    assert any("no timestamps" in w for w in log.warnings)


def test_missing_or_unreadable_file(tmp_path):
    with pytest.raises(LogError, match="nope.log"):
        read_log(tmp_path / "nope.log")
    with pytest.raises(LogError) as info:
        read_log(tmp_path)
    assert "\n" not in str(info.value)


def test_role_override_and_validation(tmp_path):
    path = write(tmp_path, MISSION_LOGCAT + "\n")
    assert read_log(path, role="server").role == "server"
    assert (read_log(path, role="server").events.role == "server").all()
    with pytest.raises(LogError):
        read_log(path, role="phone")


def test_lifecycle_lines_and_app_role():
    text = ("2024/07/04 14:52:51 app entered background\n"
            "2024/07/04 14:52:59 app entered foreground\n")
    log = parse_log_text(text)
    assert list(log.events.lifecycle) == ["background", "foreground"]
    assert log.role == "app"
    text = ("07-04 14:33:00.000  1000  1200 I am_on_paused_called: [0,com.example.anet.MainActivity,performPause]\n"
            "07-04 14:33:01.000  1000  1200 I PowerManagerService: Going to sleep due to power button (uid 1000)...\n"
            "07-04 14:35:01.000  1000  1200 I am_on_resume_called: [0,com.example.anet.MainActivity,RESUME_ACTIVITY]\n")
    assert list(parse_log_text(text).events.lifecycle) == ["background", "screen_off", "foreground"]
    ios = "2024-07-04 18:38:01.029327+0800 localhost runningboardd[33]: [app<anet>:1088] state: running-suspended\n"
    assert parse_log_text(ios).events.iloc[0]["lifecycle"] == "suspended"


def test_year_hint_and_new_year_rollover():
    text = ("12-31 23:59:59.900  1  2 I T: a\n"
            "01-01 00:00:00.100  1  2 I T: b\n")
    log = parse_log_text(text, year_hint=2023)
    assert list(log.events.local_time) == [T("2023-12-31 23:59:59.9"), T("2024-01-01 00:00:00.1")]
    assert not log.warnings
    log = parse_log_text(text)
    assert log.events.local_time.iloc[0].year == 2000
    assert any("no year" in w for w in log.warnings)


def test_dtypes():
    log = parse_log_text(MISSION_IOS + MISSION_SERVER)
    ev = log.events
    assert list(ev.columns) == list(COLUMNS)
    assert str(ev.local_time.dtype) == "datetime64[ns]" and str(ev.inner_utc_time.dtype) == "datetime64[ns]"
    for c in ("pid", "tid", "local_port", "remote_port", "dup_line_no"):
        assert str(ev[c].dtype) == "Int64"
    assert ev.utc_offset_s.dtype == float and ev.year_known.dtype == bool
    assert ev.line_no.dtype == "int64"


def test_encodings(tmp_path):
    p = tmp_path / "u16.log"
    p.write_bytes(("\ufeff" + MISSION_LOGCAT + "\r\n").encode("utf-16-le"))
    log = read_log(p, year_hint=2024)
    assert log.format == "logcat-threadtime" and log.events.iloc[0]["errno"] == "EDESTADDRREQ"
    p = tmp_path / "bad.log"
    p.write_bytes(b"2024/07/04 14:52:51 caf\xe9 \xff\n")
    log = read_log(p)
    assert log.format == "go-log" and any("not valid UTF-8" in w for w in log.warnings)


def test_ansi_colour_codes_are_ignored():
    line = "\x1b[38;5;75m07-04 14:33:03.678 18044 18070 I GoLog   : hi\x1b[0m"
    log = parse_log_text(line + "\n", year_hint=2024)
    assert log.format == "logcat-threadtime" and log.events.iloc[0]["message"] == "hi"
    assert log.events.iloc[0]["raw"] == line


def test_glog_header_names_the_year():
    text = ("Log file created at: 2019/07/18 06:07:40\nRunning on machine: m\n"
            "I0718 06:07:41.000001 12345 main.go:1] hello\n")
    log = parse_log_text(text)
    assert log.events.iloc[0]["local_time"] == T("2019-07-18 06:07:41.000001")
    assert log.stats["header"] == 2 and not log.warnings


@pytest.mark.parametrize("message,label", [
    ("[app<anet>:1088] state: running-suspended", "suspended"),
    ("state: running-active-NotVisible", "background"),
    ("state: running-active", "foreground"),
    ("Process resumed", "resumed"),
    ("applicationDidEnterBackground", "background"),
    ("sceneWillEnterForeground", "foreground"),
    ("MainActivity onPause()", "background"),
    ("Going to sleep due to power button (uid 1000)...", "screen_off"),
    ('Display device changed state: "Built-in Screen", OFF', "screen_off"),
    ("Waking up from sleep (uid 1000)", "screen_on"),
    ("com.apple.springboard.lockcomplete", "locked"),
    ("android.intent.action.USER_PRESENT", "unlocked"),
    ("app went to background", "background"),
    ("back to foreground", "foreground"),
    ("write udp 10.0.0.159:33322->10.0.1.238:15000: write: broken pipe", None),
    ("activeConnections=3", None),
])
def test_lifecycle_labels(message, label):
    from analyzer.logs.lifecycle import lifecycle_of
    assert lifecycle_of(message) == label
