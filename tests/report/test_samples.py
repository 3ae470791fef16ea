"""The bundled recorded sessions, analysed as a user would: the verdict names the platform
and the field report's table comes out cell by cell (MISSION.md, "What was seen")."""

from __future__ import annotations

import json

import pytest

from analyzer.cli import main
from tests.corpus_files import PROJECT

# socket kind -> (app error, server error); the tcp_server reconnect outcome separately
FIELD_REPORT = {
    "huawei": {"udp": ("EDESTADDRREQ", None), "tcp_client": ("ECONNABORTED", "ECONNRESET"),
               "tcp_server": (None, "ECONNRESET"), "reconnect": "timeout"},
    "ios": {"udp": ("EPIPE", None), "tcp_client": ("EPIPE", "EOF"),
            "tcp_server": ("ENOTCONN", "EOF"), "reconnect": "refused"},
}


@pytest.mark.parametrize("profile", sorted(FIELD_REPORT))
def test_sample_session_reproduces_the_field_report(tmp_path, profile):
    session = PROJECT / "captures" / profile
    out = tmp_path / "analysis"
    phone = (session / "phone").read_text().strip()
    rc = main([str(session / "capture.pcapng"), "--logs", str(session / "app.log"),
               "--logs", str(session / "server.log"), "--phone", phone, "--out", str(out), "--quiet"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    truth = json.loads((session / "truth.json").read_text())
    assert summary["verdicts"]["session"]["behaviour"] == truth["expected_behaviour"]
    assert summary["verdicts"]["session"]["caused_by_phone_lifecycle"] is True
    expected = FIELD_REPORT[profile]
    table = summary["seed_table"]
    for kind in ("udp", "tcp_client", "tcp_server"):
        assert (table[kind]["app_error"], table[kind]["server_error"]) == expected[kind], kind
    assert table["tcp_server"]["reconnect"] == expected["reconnect"]
    # the app log's clock: the phone's zone and skew as recorded (truth), to 20 ms
    clock = truth["app"]["clock"]           # phone clock = true time + offset, shown in tz
    sign = 1 if clock["tz"][0] == "+" else -1
    zone_s = sign * (int(clock["tz"][1:3]) * 3600 + int(clock["tz"][3:5]) * 60)
    app = summary["clocks"]["app.log"]
    assert app["offset_s"] == pytest.approx(-(zone_s + clock["offset_s"]), abs=0.02)
    for name in ("report.html", "timeline.png", "timeline.svg", "logs.csv"):
        assert (out / name).stat().st_size > 0


def test_compare_puts_sessions_side_by_side(tmp_path, capsys):
    outs = []
    for profile in ("huawei", "ios"):
        session = PROJECT / "captures" / profile
        out = tmp_path / profile
        assert main([str(session / "capture.pcapng"), "--logs", str(session / "app.log"),
                     "--logs", str(session / "server.log"), "--phone",
                     (session / "phone").read_text().strip(), "--out", str(out), "--quiet",
                     "--no-report"]) == 0
        outs.append(str(out))
    page = tmp_path / "cmp.html"
    assert main(["compare", *outs, "--out", str(page)]) == 0
    text = page.read_text()
    for cell in ("EDESTADDRREQ", "ECONNABORTED", "ENOTCONN", "refused", "timeout"):
        assert cell in text or cell.lower() in text.lower()
    assert main(["compare", str(tmp_path / "missing")]) == 2
