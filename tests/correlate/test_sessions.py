"""Generated sessions (capture + app log + server log, sessions.py): the clocks come out
within 20 ms (millisecond logs) / 1 s (second-resolution Go logs) of the truth, the zone is
the true one, and every error line lands on its true flow (or says it has none)."""

from __future__ import annotations

import pandas as pd
import pytest

from analyzer.correlate.align import LOG_COLUMNS, align_logs
from analyzer.logs import read_log

from . import sessions as S

MS_TOL = 0.020
S_TOL = 1.0

CASES = {
    # field report: Huawei UTC+8 against a UTC server
    "huawei-utc8-vs-utc": (S.huawei, S.Device(8 * 3600, 3.27), S.Device(0, -1.6), "logcat"),
    # field report: iOS, both clocks in UTC+8 ("in another both agreed")
    "ios-utc8-both": (S.ios, S.Device(8 * 3600, -0.84), S.Device(8 * 3600, 2.5), "xcode"),
    # odd zones: Nepal phone, Newfoundland server, larger skews
    "huawei-nepal-vs-newfoundland": (S.huawei, S.Device(20700, -41.377), S.Device(-12600, 17.9),
                                     "logcat"),
    "ios-minus7-vs-utc": (S.ios, S.Device(-7 * 3600, 12.0045), S.Device(0, 0.3), "xcode"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def aligned(request, tmp_path_factory):
    build, app_clock, server_clock, fmt = CASES[request.param]
    session = build(app_clock, server_clock)
    w = session.write(tmp_path_factory.mktemp(request.param), fmt)
    logs = [read_log(w.app_log), read_log(w.server_log)]
    out, clocks = align_logs(logs, w.flows, w.events, [session.phone],
                             int(w.info["first_ts_ns"]), int(w.info["last_ts_ns"]))
    return w, logs, out, clocks


def test_offsets_within_tolerance(aligned):
    w, logs, _, clocks = aligned
    app, server = clocks[w.app_log.name], clocks[w.server_log.name]
    app_err = app["offset_s"] - w.session.app_clock.offset_s
    server_err = server["offset_s"] - w.session.server_clock.offset_s
    assert abs(app_err) < MS_TOL, (app, w.session.app_clock.offset_s)
    assert abs(server_err) < S_TOL, (server, w.session.server_clock.offset_s)
    assert app["method"].startswith("anchors") and server["method"].startswith("anchors")
    # the uncertainty is honest: at least half a step of the log's resolution
    assert server["uncertainty_s"] >= 0.5
    assert app["uncertainty_s"] < MS_TOL
    # and it covers the actual error
    assert abs(app_err) <= app["uncertainty_s"] and abs(server_err) <= server["uncertainty_s"]


def test_zones_found(aligned):
    w, _, _, clocks = aligned
    assert clocks[w.app_log.name]["zone_s"] == w.session.app_clock.zone_s
    assert clocks[w.server_log.name]["zone_s"] == w.session.server_clock.zone_s


def test_anchors_reported(aligned):
    w, _, _, clocks = aligned
    for name in (w.app_log.name, w.server_log.name):
        anchors = clocks[name]["anchors"]
        assert len(anchors) >= 2
        frames = {a["frame"] for a in anchors}
        assert frames <= set(range(1, len(w.session.packets) + 1))
        for a in anchors:
            assert {"line_no", "frame", "kind", "residual_s"} <= set(a)


def _rows_by_truth(w, out: pd.DataFrame):
    """(truth line, output row) for every line of both logs, in each file's order."""
    pairs = []
    for path, lines in ((w.app_log, w.app_lines), (w.server_log, w.server_lines)):
        rows = out[out["source"] == path.name]
        assert len(rows) == len(lines), f"{path.name}: one row per log event"
        for line, (_, row) in zip(lines, rows.iterrows()):
            assert row["message"] == line.msg
            pairs.append((line, row))
    return pairs


def test_every_error_line_on_its_flow(aligned):
    w, _, out, _ = aligned
    checked = 0
    for line, row in _rows_by_truth(w, out):
        if not line.error:
            continue
        checked += 1
        if line.tag is None:
            assert pd.isna(row["flow_id"]), (line.msg, row["match"])
            assert row["match"].startswith("none:") and "never reached the wire" in row["match"]
            assert "concerns the same port" in row["match"]
        else:
            assert row["flow_id"] == w.tag_flow[line.tag], (line.msg, row["match"])
    assert checked >= 8


def test_every_tagged_line_on_its_flow(aligned):
    """Not only errors: sends, reads, connects and accepts land on their flow too."""
    w, _, out, _ = aligned
    wrong = [(line.msg, row["flow_id"], w.tag_flow[line.tag], row["match"])
             for line, row in _rows_by_truth(w, out)
             if line.tag is not None and row["flow_id"] != w.tag_flow[line.tag]]
    assert not wrong


def test_bind_line_points_to_the_flow_holding_the_port(aligned):
    w, _, out, _ = aligned
    rows = out[out["message"].str.contains("bind: address already in use", regex=False)]
    assert len(rows) >= 2
    tcp_bind = rows[rows["message"].str.contains("dial tcp :33322")].iloc[0]
    assert f"flow {w.tag_flow['tcp1']} concerns the same port" in tcp_bind["match"]
    udp_bind = rows[rows["message"].str.contains("dial udp :33322")].iloc[0]
    assert f"flow {w.tag_flow['udp']} concerns the same port" in udp_bind["match"]


def test_logs_table_contract(aligned):
    w, logs, out, _ = aligned
    assert list(out.columns) == list(LOG_COLUMNS) + ["lifecycle"]
    assert len(out) == sum(len(log.events) for log in logs)
    assert str(out["ts_ns"].dtype) == "Int64" and str(out["flow_id"].dtype) == "Int64"
    ts = out["ts_ns"].dropna().astype("int64")
    assert ts.is_monotonic_increasing
    assert set(out["role"]) == {"app", "server"}


def test_aligned_times_match_the_truth(aligned):
    """Each timed line lands where it truly happened: within the clock's error plus the
    stamp's truncation."""
    w, _, out, clocks = aligned
    for line, row in _rows_by_truth(w, out):
        err = row["ts_ns"] / 1e9 - line.true_ts
        tol = MS_TOL if row["source"] == w.app_log.name else S_TOL + 1.0
        if w.app_log.name.startswith("xcode") and row["source"] == w.app_log.name:
            tol = MS_TOL
        assert abs(err) < tol, (row["source"], line.msg, err)
