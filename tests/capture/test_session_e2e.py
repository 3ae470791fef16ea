"""End to end, per profile: a real recorded session on lo, checked with tshark and the logs.

Each session runs ~10 s: the app sends every 0.5 s, goes to background 3 s after it starts
and comes back at 6 s; the server's dialer gives up on an unanswered SYN after 1 s.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
import re
from pathlib import Path

import pytest

from tests.capture.support import (PHONE, SERVER, needs_capture_tool, needs_root,
                                   needs_tshark, pick_ports, run_cli, tshark_tcp)

pytestmark = [needs_root, needs_tshark, needs_capture_tool]

LOGCAT = re.compile(r"^(\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3})\s+(\d+)\s+(\d+) I GoLog   : (.*)$")
XCODE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})([+-]\d{4}) anet\[(\d+):(\d+)\] "
                   r"\[os_log\] (\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) (.*)$")
GOLOG = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \S.*$")


@pytest.fixture(scope="module", params=["huawei", "ios", "plain"])
def session(request, tmp_path_factory):
    profile = request.param
    ports = pick_ports()
    out = tmp_path_factory.mktemp(f"session-{profile}")
    run = run_cli("session", "--profile", profile, "--out", str(out), "--no-analyze",
                  "--duration", "9", "--background-after", "3", "--resume-after", "6",
                  "--interval", "0.5", "--dial-timeout", "1",
                  "--udp-port", str(ports["udp"]), "--tcp-port", str(ports["tcp"]),
                  "--port", str(ports["phone"]), "--client-port", str(ports["client"]),
                  "--clock-offset", "2.5", "--tz", "+0800", timeout=90)
    assert run.returncode == 0, run.stderr
    truth = json.loads((out / "truth.json").read_text())
    return {"profile": profile, "dir": out, "ports": ports, "truth": truth,
            "packets": tshark_tcp(out / "capture.pcapng"),
            "app": (out / "app.log").read_text().splitlines(),
            "server": (out / "server.log").read_text().splitlines()}


def _streams(s):
    """Per TCP stream: what the phone answered, for the flows the profiles act on."""
    by = {}
    for p in s["packets"]:
        by.setdefault(p["stream"], []).append(p)
    out = []
    for pkts in by.values():
        first = pkts[0]
        from_phone = [p for p in pkts if p["src"] == PHONE]
        out.append({
            "to_listener": first["dst"] == PHONE and first["dport"] == s["ports"]["phone"]
            and first["syn"] and not first["ack"],
            "client_flow": first["src"] == PHONE and first["sport"] == s["ports"]["client"],
            "syn_ts": first["ts"],
            "synack": any(p["syn"] and p["ack"] for p in from_phone),
            "rst_ts": [p["ts"] for p in from_phone if p["reset"]],
            "fin_ts": [p["ts"] for p in from_phone if p["fin"]],
        })
    return out


def _near(ts_list, when, tol=0.5):
    return any(abs(t - when) <= tol for t in ts_list)


def test_session_directory_is_complete(session):
    names = {p.name for p in session["dir"].iterdir()}
    assert {"capture.pcapng", "capture.manifest.json", "app.log", "server.log",
            "truth.json", "app.truth.json", "phone"} <= names
    t = session["truth"]
    assert t["profile"] == session["profile"]
    assert len(t["app"]["background_at"]) == 1 and len(t["app"]["resume_at"]) == 1
    assert t["capture_start"] < t["app"]["background_at"][0] < t["app"]["resume_at"][0] \
        < t["capture_end"]
    assert "errors" not in t["app"], t["app"].get("errors")
    assert all(GOLOG.match(line) for line in session["server"])


def test_capture_shows_the_profile_teardown(session):
    bg = session["truth"]["app"]["background_at"][0]
    resume = session["truth"]["app"]["resume_at"][0]
    streams = _streams(session)
    established = [st for st in streams if st["synack"] or st["client_flow"]]
    client = [st for st in streams if st["client_flow"]]
    served = [st for st in streams if st["to_listener"] and st["synack"] and st["syn_ts"] < bg]
    late_syns = [st for st in streams if st["to_listener"] and bg < st["syn_ts"] < resume]
    unanswered = [st for st in late_syns if not st["synack"] and not st["rst_ts"]]
    refused = [st for st in streams if st["to_listener"] and not st["synack"] and st["rst_ts"]]
    assert client and served, "the TCP client and the dialer both ran before background"
    profile = session["profile"]
    if profile == "huawei":
        # RST from the phone on every live connection, at the background moment; no FIN.
        assert all(_near(st["rst_ts"], bg) for st in client + served)
        assert not any(st["fin_ts"] for st in streams)
        assert unanswered, "SYNs to the listener in background must get no answer"
        assert not refused
    elif profile == "ios":
        assert all(_near(st["fin_ts"], bg) for st in client + served)
        assert not any(t < bg for st in streams for t in st["rst_ts"] if st in established)
        assert refused and all(st["syn_ts"] > bg for st in refused)
        assert not unanswered
    else:
        assert not any(st["rst_ts"] or st["fin_ts"] for st in streams)
        assert not refused and not unanswered
        assert all(st["synack"] for st in streams if st["to_listener"])


EXPECTED_APP = {
    "huawei": ["udp write err:  write udp {phone}:{port}->{server}:{udp}: write: destination address required",
               "tcp write err:  write tcp {phone}:{client}->{server}:{tcp}: write: software caused connection abort",
               "udp dial err:  dial udp {phone}:{port}->{server}:{udp}: bind: address already in use",
               "tcp dial err:  dial tcp {phone}:{client}->{server}:{tcp}: bind: address already in use"],
    "ios": ["udp write err:  write udp {phone}:{port}->{server}:{udp}: write: broken pipe",
            "tcp write err:  write tcp {phone}:{client}->{server}:{tcp}: write: broken pipe",
            "read: socket is not connected",
            "tcp dial err:  dial tcp {phone}:{client}->{server}:{tcp}: bind: address already in use"],
    "plain": [],
}
EXPECTED_SERVER = {
    "huawei": ["conn {phone}:{client} read error: read tcp {server}:{tcp}->{phone}:{client}: read: connection reset by peer",
               "write: connection reset by peer",
               "dial {phone}:{port} err: dial tcp {phone}:{port}: connect: connection timed out"],
    "ios": ["conn {phone}:{client} read error: EOF",
            "conn {phone}:{port} read error: EOF",
            "dial {phone}:{port} err: dial tcp {phone}:{port}: connect: connection refused"],
    "plain": [],
}


def test_logs_carry_the_field_report_errors(session):
    p = session["ports"]
    fill = dict(phone=PHONE, server=SERVER, port=p["phone"], client=p["client"], udp=p["udp"],
                tcp=p["tcp"])
    app, server = "\n".join(session["app"]), "\n".join(session["server"])
    for text in EXPECTED_APP[session["profile"]]:
        assert text.format(**fill) in app
    for text in EXPECTED_SERVER[session["profile"]]:
        assert text.format(**fill) in server
    if session["profile"] == "plain":
        # Within the capture; after it, the two sides' own shutdowns may log an EOF.
        end = session["truth"]["capture_end"]
        phone_end = dt.datetime.fromtimestamp(end + 2.5, dt.timezone(dt.timedelta(hours=8)))
        app_cut = phone_end.strftime("%m-%d %H:%M:%S.%f")[:-3]
        srv_tz = dt.datetime.strptime(session["truth"]["server"]["clock"]["tz"], "%z").tzinfo
        srv_cut = dt.datetime.fromtimestamp(end, srv_tz).strftime("%Y/%m/%d %H:%M:%S")
        assert not [ln for ln in session["app"] if ln[:18] <= app_cut and " err:" in ln]
        assert not [ln for ln in session["server"] if ln[:19] < srv_cut and "error" in ln]
        after = app.split("app will enter foreground", 1)[1]
        assert "tcp read" in after and "udp read" in after  # life goes on after resume
    if session["profile"] == "huawei":
        # the field report: the Huawei app printed no error for its listener's connections
        assert not [line for line in session["app"] if re.search(r": conn \S+ (read|write) err", line)]


def test_app_log_format_and_clock_match_the_truth(session):
    t = session["truth"]["app"]
    tz = dt.timezone(dt.timedelta(hours=8))
    bg_phone = dt.datetime.fromtimestamp(t["background_at"][0] + 2.5, tz)
    assert t["clock"] == {"offset_s": 2.5, "tz": "+0800",
                          "meaning": "phone clock = true time + offset_s, shown in tz"}
    lines = session["app"]
    if session["profile"] in ("huawei", "plain"):
        assert all(LOGCAT.match(line) for line in lines)
        m = next(LOGCAT.match(line) for line in lines if line.endswith("app did enter background"))
        assert int(m.group(3)) == t["pid"]
        assert f"{m.group(1)} {m.group(2)}" == bg_phone.strftime("%m-%d %H:%M:%S.") + \
            f"{bg_phone.microsecond // 1000:03d}"
    else:
        assert len(lines) % 2 == 0
        for plain, wrapped in zip(lines[::2], lines[1::2]):
            m = XCODE.match(wrapped)
            assert m and GOLOG.match(plain) and wrapped.endswith(plain)
            local = dt.datetime.strptime(m.group(1) + m.group(2), "%Y-%m-%d %H:%M:%S.%f%z")
            inner = dt.datetime.strptime(m.group(5), "%Y/%m/%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
            assert local.utcoffset() == dt.timedelta(hours=8)
            assert inner == local.astimezone(dt.timezone.utc).replace(microsecond=0)
        m = next(XCODE.match(line) for line in lines
                 if line.endswith("app did enter background") and "[os_log]" in line)
        assert m.group(1) == bg_phone.strftime("%Y-%m-%d %H:%M:%S.%f")


@pytest.mark.skipif(importlib.util.find_spec("analyzer.analyze_command") is None,
                    reason="`analyze CAPTURE` (analyzer.analyze_command) is not built yet")
def test_analyze_reads_the_session(session):
    from analyzer.capture.session import analyse
    result = analyse(session["dir"], PHONE)  # the session's own step: `analyze` as a user runs it
    assert "analysis_error" not in result, result
    out = Path(result["analysis"])
    with open(out / "flows.csv", newline="") as fh:
        flows = list(csv.DictReader(fh))
    by_phone = {(f["teardown"], f["teardown_by"]) for f in flows}
    teardowns = {f["teardown"] for f in flows}
    profile = session["profile"]
    if profile == "huawei":
        assert ("rst", "phone") in by_phone and "syn_unanswered" in teardowns
        assert "fin" not in teardowns and "refused" not in teardowns
    elif profile == "ios":
        assert ("fin", "phone") in by_phone and "refused" in teardowns
        assert "syn_unanswered" not in teardowns
    else:
        assert teardowns <= {"open"}
    summary = json.loads((out / "summary.json").read_text())
    expected = session["truth"]["expected_behaviour"]
    if expected:
        assert summary["verdicts"]["session"]["behaviour"] == expected
