"""Every log line quoted in MISSION.md, against a small capture holding the flow it is about,
at the times the field report implies (phone UTC+8; server in UTC+8 in one run, UTC in
another)."""

from __future__ import annotations

import pandas as pd

from analyzer.correlate.align import align_logs
from analyzer.logs import parse_log_text

from . import sessions as S
from .test_clock import _flows

H, I, SRV = S.HUAWEI, S.IPHONE, S.SERVER


def _utc(text: str) -> float:
    return pd.Timestamp(text, tz="UTC").value / 1e9


def _align(tmp_path, packets, phone, name, text, overrides=None):
    flows, events, info = _flows(tmp_path, packets, phone)
    log = parse_log_text(text, name=name)
    out, clocks = align_logs([log], flows, events, [phone], info["first_ts_ns"],
                             info["last_ts_ns"], overrides)
    return flows, out, clocks[name]


def test_huawei_logcat_udp_edestaddrreq(tmp_path):
    """07-04 14:33:03.678 (UTC+8, no year): the UDP flow the phone sent on before background."""
    t = _utc("2024-07-04 06:32:40")
    packets = [S.udp(t + 3 * k, H, 33322, SRV, 15000, b"x" * 12) for k in range(4)]
    text = ("07-04 14:33:03.678 18044 18070 I GoLog   : udp write err:  write udp "
            "10.0.0.159:33322->10.0.1.238:15000: write: destination address required\n")
    flows, out, clock = _align(tmp_path, packets, H, "app.log", text, {"app.log": -28800})
    row = out.iloc[0]
    assert row["errno"] == "EDESTADDRREQ" and row["op"] == "write" and row["proto"] == "udp"
    assert row["ts_ns"] == pd.Timestamp("2024-07-04 06:33:03.678").value  # year from the capture
    assert row["flow_id"] == flows["flow_id"].iloc[0]
    assert row["match"].startswith("endpoints+time")


def test_huawei_logcat_without_override_says_too_few_anchors(tmp_path):
    t = _utc("2024-07-04 06:32:40")
    packets = [S.udp(t + 3 * k, H, 33322, SRV, 15000, b"x" * 12) for k in range(4)]
    text = ("07-04 14:33:03.678 18044 18070 I GoLog   : udp write err:  write udp "
            "10.0.0.159:33322->10.0.1.238:15000: write: destination address required\n")
    flows, out, clock = _align(tmp_path, packets, H, "app.log", text)
    assert clock["method"] == "fallback: no zone, zero offset"
    assert "no anchor pair" in clock["note"] and clock["uncertainty_s"] >= 12 * 3600
    assert clock["anchors"] == []
    # the endpoints still find the flow, and the match says the clock is not anchored
    assert out["flow_id"].iloc[0] == flows["flow_id"].iloc[0]
    assert out["match"].iloc[0].endswith("[clock not anchored]")


def test_ios_doubled_line_is_one_event_on_the_stated_zone(tmp_path):
    t = _utc("2024-07-04 10:37:40")
    packets = [S.udp(t + 3 * k, I, 33322, SRV, 15000, b"x" * 12) for k in range(4)]
    text = ("2024/07/04 10:38:01 udp write err:  write udp 10.0.0.110:33322->10.0.1.238:15000: "
            "write: broken pipe\n"
            "2024-07-04 18:38:01.029327+0800 anet[1088:374879] [os_log] 2024/07/04 10:38:01 udp "
            "write err:  write udp 10.0.0.110:33322->10.0.1.238:15000: write: broken pipe\n")
    flows, out, clock = _align(tmp_path, packets, I, "xcode.log", text)
    assert len(out) == 1
    assert clock["zone_s"] == 28800 and clock["method"].startswith("fallback: zone stated")
    assert "too few anchors" in clock["note"] or "no anchor" in clock["note"]
    row = out.iloc[0]
    assert row["ts_ns"] == pd.Timestamp("2024-07-04 10:38:01.029327").value
    assert row["errno"] == "EPIPE" and row["flow_id"] == flows["flow_id"].iloc[0]


def test_server_accept_and_reset_find_zone_and_flow(tmp_path):
    """14:52:51 / 14:53:10 on a UTC+8 server: the accept and the RST are two anchors, enough
    to find the zone, and both lines land on the flow."""
    c = S.TcpConversation(H, 33322, SRV, 15100, 0x3AC1F2D4, 0x9B7E0A11, _utc("2024-07-04 06:52:51.300"))
    c.syn("a")
    c.synack("b")
    c.ack("a")
    c.data("a", b"hello\n", at=_utc("2024-07-04 06:52:55"))
    c.ack("b")
    c.rst("a", at=_utc("2024-07-04 06:53:10.400"))
    text = ("2024/07/04 14:52:51 recv new connection from 10.0.0.159:33322\n"
            "2024/07/04 14:53:10 conn 10.0.0.159:33322 read error: read tcp "
            "10.0.1.238:15100->10.0.0.159:33322: read: connection reset by peer\n")
    flows, out, clock = _align(tmp_path, c.packets, H, "server.log", text)
    assert clock["zone_s"] == 28800 and clock["method"].startswith("anchors")
    assert abs(clock["offset_s"] - (-28800)) < 1.0
    assert {a["kind"] for a in clock["anchors"]} == {"synack", "rst"}
    assert list(out["flow_id"]) == [flows["flow_id"].iloc[0]] * 2
    assert out["errno"].iloc[1] == "ECONNRESET"


def test_server_dial_timeout_is_the_unanswered_flow(tmp_path):
    """07:23:24 (server in UTC): the dial that timed out is the flow of unanswered SYNs, not the
    earlier flow on the same phone port."""
    old = S.TcpConversation(SRV, 52980, H, 33322, 1, 2, _utc("2024-07-04 07:20:00"))
    old.syn("a")
    old.synack("b")
    old.ack("a")
    old.rst("b", at=_utc("2024-07-04 07:21:10"))
    start = _utc("2024-07-04 07:21:17")
    d = S.TcpConversation(SRV, 52981, H, 33322, 3, 4, start)
    for at in (0, 1, 3, 7, 15, 31, 63):
        d.syn("a", at=start + at)
    text = ("2024/07/04 07:23:24 dial 10.0.0.159:33322 err: dial tcp 10.0.0.159:33322: connect: "
            "connection timed out\n")
    flows, out, clock = _align(tmp_path, old.packets + d.packets, H, "server.log", text,
                               {"server.log": 0})
    unanswered = flows.loc[flows["teardown"] == "syn_unanswered", "flow_id"].iloc[0]
    assert out["errno"].iloc[0] == "ETIMEDOUT"
    assert out["flow_id"].iloc[0] == unanswered


def test_panic_line_without_time_matches_by_endpoints(tmp_path):
    c = S.TcpConversation(SRV, 52980, I, 33322, 5, 6, _utc("2024-07-04 07:30:00"))
    c.syn("a")
    c.refuse("b")
    text = "panic: dial tcp 10.0.0.110:33322: connect: connection refused\n"
    flows, out, clock = _align(tmp_path, c.packets, I, "server.log", text)
    row = out.iloc[0]
    assert pd.isna(row["ts_ns"]) and row["errno"] == "ECONNREFUSED"
    assert row["flow_id"] == flows["flow_id"].iloc[0] and row["match"] == "endpoints"
    assert "no line carries a wall-clock time" in clock["note"]


def test_bind_in_use_has_no_flow_and_names_the_one_holding_the_port(tmp_path):
    c = S.TcpConversation(H, 33322, SRV, 15100, 7, 8, _utc("2024-07-04 06:50:00"))
    c.syn("a")
    c.synack("b")
    c.ack("a")
    c.rst("a", at=_utc("2024-07-04 06:50:30"))
    text = ("07-04 14:51:00.000 18044 18070 I GoLog   : tcp dial err:  dial tcp "
            ":33322->10.0.1.238:15100: bind: address already in use\n")
    flows, out, _ = _align(tmp_path, c.packets, H, "app.log", text, {"app.log": -28800})
    row = out.iloc[0]
    assert row["errno"] == "EADDRINUSE" and pd.isna(row["flow_id"])
    assert row["match"] == (f"none: bind never reached the wire "
                            f"(flow {flows['flow_id'].iloc[0]} concerns the same port)")


def test_mislabelled_ios_line_trusts_the_error_text(tmp_path):
    """`udp write err:` in front of a `write tcp` error: the TCP flow, not the UDP one."""
    t = _utc("2024-07-04 10:37:00")
    udp = [S.udp(t + k, I, 33322, SRV, 15000, b"x") for k in range(3)]
    c = S.TcpConversation(I, 33322, SRV, 15100, 9, 10, t + 0.5)
    c.syn("a")
    c.synack("b")
    c.ack("a")
    c.fin("a", at=t + 20)
    text = ("2024-07-04 18:38:01.029327+0800 anet[1088:374879] [os_log] 2024/07/04 10:38:01 udp "
            "write err:  write tcp 10.0.0.110:33322->10.0.1.238:15100: write: broken pipe\n")
    flows, out, _ = _align(tmp_path, udp + c.packets, I, "xcode.log", text)
    tcp_flow = flows.loc[flows["proto"].astype(str).str.lower() == "tcp", "flow_id"].iloc[0]
    assert out["proto"].iloc[0] == "tcp" and out["flow_id"].iloc[0] == tcp_flow
