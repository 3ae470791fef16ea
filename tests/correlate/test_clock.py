"""The clock estimator on its own (anchors built by hand), its fallbacks, the user's override,
and the missing year of logcat."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from analyzer.correlate import clock
from analyzer.correlate.align import align_logs
from analyzer.logs import parse_log_text

from . import sessions as S

BASE = 1_720_075_971_000_000_000


def _anchors(pairs):
    """pairs: (line, log base ns, event ns, tight)"""
    rows = [dict(line=line, base_ns=base, event_ts_ns=ev, frame=k + 1, kind="rst", flow_id=1,
                 lo_s=-0.05, hi_s=0.5 if tight else 60.0, res_s=res, weight=1.0 if tight else 0.25,
                 tight=tight) for k, (line, base, ev, tight, res) in enumerate(pairs)]
    return pd.DataFrame(rows)


def _stamp(true_ns: int, offset_s: float, res: float) -> int:
    """What a log with this offset and resolution writes for a true moment (truncated)."""
    local = true_ns - round(offset_s * 1e9)
    step = round(res * 1e9)
    return local // step * step


@settings(max_examples=150, deadline=None)
@given(zone=st.sampled_from(list(clock.zone_candidates())),
       skew=st.floats(-300, 300),
       res=st.sampled_from([1e-6, 1e-3, 1.0]),
       gaps=st.lists(st.floats(0.5, 400), min_size=2, max_size=12),
       delays=st.lists(st.floats(0, 0.004), min_size=12, max_size=12),
       outliers=st.lists(st.floats(-3000, 3000), max_size=6))
def test_estimate_recovers_zone_and_skew(zone, skew, res, gaps, delays, outliers):
    """Whatever the zone, skew, resolution and spacing, with wrong candidate pairs on fewer
    than half the lines, the offset comes back within 20 ms (1 s for second stamps)."""
    truth = -zone + skew
    events = BASE + np.cumsum(np.array(gaps) * 1e9).astype(np.int64)
    pairs = []
    for line, (ev, d) in enumerate(zip(events, delays)):
        pairs.append((line, _stamp(int(ev + d * 1e9), truth, res), int(ev), True, res))
    half = (len(events) - 1) // 2
    for k, shift in enumerate(outliers):  # a wrong event offered to some lines
        line = k % half if half else None
        if line is None:
            break
        pairs.append((line, pairs[line][1], int(events[line] + shift * 1e9), True, res))
    fit = clock.fit(_anchors(pairs), None, res)
    tol = 1.0 if res == 1.0 else 0.020
    assert abs(fit.offset_s - truth) < tol, (fit.method, fit.note)
    assert fit.zone_s == zone
    assert fit.uncertainty_s >= res / 2


def test_stated_zone_only_searches_the_skew():
    """With the zone stated, an agreeing pair set one hour away is not taken."""
    ev = [BASE + k * 7_000_000_000 for k in range(4)]
    good = [(k, e + 2_000_000 - 1_500_000_000, e, True, 1e-6) for k, e in enumerate(ev[:2])]
    far = [(2 + k, e + 2_000_000 - 3_600_000_000_000, e, True, 1e-6) for k, e in enumerate(ev[2:])]
    fit = clock.fit(_anchors(good + far), 0.0, 1e-6)
    assert abs(fit.offset_s - 1.5) < 0.01
    assert {int(x) for x in fit.anchors["line"]} == {0, 1}


def test_one_anchor_is_too_few_stated_zone():
    fit = clock.fit(_anchors([(0, BASE, BASE + 10**6, True, 1e-3)]), 28800.0, 1e-3)
    assert fit.method.startswith("fallback") and "zone stated" in fit.method
    assert "too few anchors (1" in fit.note
    assert fit.offset_s == 0.0 and fit.uncertainty_s >= 60


def test_no_anchor_no_zone_falls_back_to_zero():
    fit = clock.fit(_anchors([]), None, 1.0)
    assert fit.method == "fallback: no zone, zero offset"
    assert fit.offset_s == 0.0 and fit.uncertainty_s >= 12 * 3600
    assert "no anchor" in fit.note


def test_loose_anchors_only():
    """Two write-after-RST errors (a tick after the RST): the offset is bounded, not sharp."""
    ev = [BASE, BASE + 100 * 10**9]
    pairs = [(k, e + 3 * 10**9 - 5 * 10**9, e, False, 1.0) for k, e in enumerate(ev)]
    fit = clock.fit(_anchors(pairs), 0.0, 1.0)
    assert "loose" in fit.method
    assert fit.uncertainty_s > 1.0
    assert fit.offset_s - fit.uncertainty_s <= 2.0 <= fit.offset_s + fit.uncertainty_s + 1.0


# ----------------------------------------------------------------------- align_logs level
def _flows(tmp_path, packets, phone):
    from analyzer.dissect import phones as phone_rules
    from analyzer.pipeline import Options, read_flows
    pcap = tmp_path / "c.pcap"
    S.write_pcap(pcap, packets)
    flows, events, info, _, _ = read_flows(Options(capture=pcap, out=tmp_path / "out"))
    phone_rules.attribute(flows, events, [phone])
    return flows, events, info


def _udp_flow(t0: float, phone: str = S.HUAWEI):
    return [S.udp(t0 + k, phone, S.APP_PORT, S.SERVER, S.UDP_PORT, b"x" * 12) for k in range(3)]


def test_override_wins(tmp_path):
    flows, events, info = _flows(tmp_path, _udp_flow(S.T0), S.HUAWEI)
    log = parse_log_text("2024/07/04 06:52:40 udp read 12 bytes from 10.0.0.159:33322\n",
                         name="server.log")
    out, clocks = align_logs([log], flows, events, [S.HUAWEI], info["first_ts_ns"],
                             info["last_ts_ns"], overrides={"/some/dir/server.log": 12.5})
    c = clocks["server.log"]
    assert c["offset_s"] == 12.5 and c["method"].startswith("given")
    assert out["ts_ns"].iloc[0] == pd.Timestamp("2024-07-04 06:52:52.5").value
    assert out["flow_id"].iloc[0] == flows["flow_id"].iloc[0]


def test_override_of_a_stated_zone_log_is_relative_to_its_local_time(tmp_path):
    flows, events, info = _flows(tmp_path, _udp_flow(S.T0, S.IPHONE), S.IPHONE)
    text = ("2024-07-04 14:52:53.000000+0800 anet[1088:374879] [os_log] 2024/07/04 06:52:53 "
            "udp write 12 bytes to 10.0.1.238:15000\n")
    log = parse_log_text(text, name="x.log")
    out, clocks = align_logs([log], flows, events, [S.IPHONE], info["first_ts_ns"],
                             info["last_ts_ns"], overrides={"x.log": -28800 - 0.25})
    assert clocks["x.log"]["offset_s"] == -28800.25
    assert out["ts_ns"].iloc[0] == pd.Timestamp("2024-07-04 06:52:52.75").value


def test_missing_year_across_new_year(tmp_path):
    """A UTC+8 phone's logcat on 01-01 while the capture (UTC) is still on 31 December."""
    t0 = pd.Timestamp("2024-12-31 23:59:50", tz="UTC").value / 1e9
    flows, events, info = _flows(tmp_path, _udp_flow(t0), S.HUAWEI)
    text = ("12-31 23:59:59.500 18044 18070 I GoLog   : tick\n"
            "01-01 07:59:52.000 18044 18070 I GoLog   : udp write 12 bytes to 10.0.1.238:15000\n")
    log = parse_log_text(text, name="app.log")
    out, clocks = align_logs([log], flows, events, [S.HUAWEI], info["first_ts_ns"],
                             info["last_ts_ns"], overrides={"app.log": -28800})
    # first line: 2024-12-31 local, second: 2025-01-01 local (the reader's year roll-over)
    got = sorted(out["ts_ns"].astype("int64"))
    assert got[0] == pd.Timestamp("2024-12-31 15:59:59.5").value
    assert got[1] == pd.Timestamp("2024-12-31 23:59:52").value
    row = out[out["message"].str.startswith("udp write")].iloc[0]
    assert row["flow_id"] == flows["flow_id"].iloc[0]
