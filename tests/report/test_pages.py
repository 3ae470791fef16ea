"""timeline.png / timeline.svg and report.html: content, scale, and a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from analyzer.correlate import lifecycle, signatures
from analyzer.report import html, timeline
from tests.report import scenarios as s
from tests.report.harness import analyse

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def full_report(tmp_path, builder=s.huawei, phone=s.HUAWEI, with_logs=True, logs=None):
    packets, crafted_logs = builder(with_logs)
    run = analyse(tmp_path, packets, crafted_logs if logs is None else logs, phone=phone)
    periods = lifecycle.periods(run.flows, run.events, run.logs, [phone])
    summary = dict(run.summary)
    summary["lifecycle"] = periods
    summary["verdicts"] = signatures.judge(run.flows, run.events, run.logs, periods, [phone])
    summary["seed_table"] = signatures.seed_table(run.flows, run.events, run.logs, [phone], periods)
    stats = timeline.draw(run.flows, run.events, run.logs, periods, run.out, phone_tz_s=8 * 3600)
    page = html.render(run.out, summary, run.flows, run.events, run.logs)
    return run, summary, stats, page


# --------------------------------------------------------------------------- timeline


def test_timeline_png_is_not_blank_and_sensibly_sized(tmp_path):
    run, _, stats, _ = full_report(tmp_path)
    png = run.out / "timeline.png"
    svg = run.out / "timeline.svg"
    assert png.is_file() and svg.is_file()
    image = mpimg.imread(png)
    height, width = image.shape[:2]
    assert width == 1400 and 300 <= height <= 2400
    rgb = image[..., :3]
    ink = (rgb.min(axis=2) < 0.9).mean()          # share of pixels that are not white
    assert 0.01 < ink < 0.6
    # Red RST crosses are there (the Huawei burst).
    red = (rgb[..., 0] > 0.75) & (rgb[..., 1] < 0.3) & (rgb[..., 2] < 0.3)
    assert red.sum() > 20
    assert stats["lanes"] == len(run.flows) and stats["events_drawn"] == len(run.events)
    text = svg.read_text()
    assert "EDESTADDRREQ" in text and "ECONNABORTED" in text   # app errors on their lanes
    assert "phone local time (UTC+08:00)" in text


def test_timeline_with_one_flow_and_no_logs(tmp_path):
    packets, _ = s.normal_close()
    run = analyse(tmp_path, packets, s.empty_logs(), phone=s.HUAWEI)
    stats = timeline.draw(run.flows, run.events, None, [], run.out)
    assert stats["lanes"] == 1
    assert "phone time zone unknown" in (run.out / "timeline.svg").read_text()


def test_timeline_files_are_reproducible(tmp_path):
    """The same tables draw the same files: no date and no random ids in the SVG."""
    packets, _ = s.normal_close()
    run = analyse(tmp_path, packets, s.empty_logs(), phone=s.HUAWEI)
    drawn = []
    for name in ("first", "second"):
        timeline.draw(run.flows, run.events, None, [], tmp_path / name)
        drawn.append([(tmp_path / name / f).read_bytes() for f in ("timeline.png", "timeline.svg")])
    assert drawn[0] == drawn[1]
    assert b"<dc:date>" not in drawn[0][1]


def test_timeline_with_nothing(tmp_path):
    stats = timeline.draw(pd.DataFrame(), pd.DataFrame(), None, [], tmp_path)
    assert stats["lanes"] == 0 and (tmp_path / "timeline.png").stat().st_size > 1000


def synthetic(n_flows: int, n_events: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    t0 = 1_720_075_971_000_000_000
    first = t0 + np.sort(rng.integers(0, 3600 * 10**9, n_flows))
    flows = pd.DataFrame({
        "flow_id": np.arange(1, n_flows + 1), "proto": pd.Categorical(rng.choice(["tcp", "udp"], n_flows)),
        "ip_version": 4, "initiator_ip": "10.0.0.159", "initiator_port": rng.integers(30000, 60000, n_flows),
        "responder_ip": "10.0.1.238", "responder_port": 15100, "first_ts_ns": first,
        "last_ts_ns": first + rng.integers(10**9, 600 * 10**9, n_flows), "first_frame": 1, "last_frame": 2,
        "packets_i2r": 100, "packets_r2i": 90, "bytes_i2r": 1, "bytes_r2i": 1, "conn_state": "SF",
        "history": "ShADadFf", "teardown": pd.Categorical(rng.choice(["rst", "fin", "open"], n_flows)),
        "teardown_side": 0, "teardown_frame": 5, "teardown_ts_ns": first + 10**9, "syn_count": 1,
        "phone_role": rng.choice(["initiator", "responder"], n_flows),
        "teardown_by": rng.choice(["phone", "server"], n_flows)})
    events = pd.DataFrame({
        "ts_ns": np.sort(t0 + rng.integers(0, 4200 * 10**9, n_events)), "frame": np.arange(1, n_events + 1),
        "flow_id": rng.integers(1, n_flows + 1, n_events),
        "kind": pd.Categorical(rng.choice(["syn", "synack", "fin", "rst", "syn_retry"], n_events)),
        "side": 0, "src_ip": "10.0.0.159", "src_port": 1, "dst_ip": "10.0.1.238", "dst_port": 2,
        "detail": "", "sender": pd.Categorical(rng.choice(["phone", "server"], n_events))})
    return flows, events


def test_timeline_scales_to_500_flows_and_a_million_events(tmp_path):
    flows, events = synthetic(500, 1_000_000)
    periods = [{"start_ns": int(flows["first_ts_ns"].iloc[100]), "end_ns": None, "state": "background",
                "evidence": [], "basis": "capture"}]
    stats = timeline.draw(flows, events, None, periods, tmp_path)
    assert stats["lanes"] <= timeline.MAX_LANES + 3
    assert stats["aggregated_flows"] > 400
    assert stats["events_drawn"] <= timeline.MAX_MARKERS
    assert (tmp_path / "timeline.svg").stat().st_size < html.MAX_INLINE_SVG
    assert mpimg.imread(tmp_path / "timeline.png").shape[0] <= 2400


# --------------------------------------------------------------------------- report.html


def test_report_content_and_filters(tmp_path):
    run, summary, _, page = full_report(tmp_path)
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "huawei_background_kill" in text and "caused by the phone" in text
    for event in run.events.itertuples():
        assert f"frame.number == {event.frame}" in text
    # The platform table: each kind and its cells.
    assert "EDESTADDRREQ (destination address required)" in text
    assert "ECONNABORTED (software caused connection abort)" in text
    assert "timeout" in text
    assert "<svg" in text                               # the timeline, inline


def test_report_is_self_contained(tmp_path):
    _, _, _, page = full_report(tmp_path)
    text = page.read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text)
    assert "url(http" not in text and "<link" not in text and "@import" not in text


def test_report_escapes_log_text(tmp_path):
    hostile = s.log_frame([{"ts_ns": int((s.T0 + 95) * 1e9), "role": "app", "source": "<b>app</b>.log",
                            "message": "write err: <script>alert('x')</script> & <img src=x onerror=y>",
                            "errno": "EPIPE", "op": "write", "proto": "tcp"}])
    _, _, _, page = full_report(tmp_path, logs=hostile)
    text = page.read_text()
    assert "<script>" not in text and "<img src=x" not in text and "<b>app</b>" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;img" in text


def test_report_truncates_large_tables(tmp_path):
    flows, events = synthetic(html.MAX_FLOWS + 20, html.MAX_EVENTS + 50)
    summary = {"capture": {"file": "big.pcap"}, "verdicts": {}, "seed_table": {}}
    page = html.render(tmp_path, summary, flows, events, None).read_text()
    assert f"Showing the first {html.MAX_FLOWS:,} of {html.MAX_FLOWS + 20:,} flows" in page
    assert f"Showing the first {html.MAX_EVENTS:,} of {html.MAX_EVENTS + 50:,} events" in page
    assert page.count("<tr>") < html.MAX_FLOWS + html.MAX_EVENTS + 100


def test_report_lists_the_first_periods_of_a_soak_test(tmp_path):
    """Thousands of background periods: the page lists the first MAX_PERIODS and says where
    the rest are; a handful are all listed, with no note."""
    def periods(n):
        return [{"start_ns": 1_700_000_000_000_000_000 + 10**9 * i + i, "end_ns": None,
                 "state": "background", "basis": "capture", "evidence": []} for i in range(n)]

    many = periods(html.MAX_PERIODS + 7)
    summary = {"capture": {"file": "soak.pcap"}, "verdicts": {}, "seed_table": {}, "lifecycle": many}
    page = html.render(tmp_path, summary, None, None, None).read_text()
    assert f"Showing the first {html.MAX_PERIODS:,} of {html.MAX_PERIODS + 7:,} periods" in page
    assert "summary.json" in page
    assert html.utc(many[html.MAX_PERIODS - 1]["start_ns"]) in page
    assert html.utc(many[html.MAX_PERIODS]["start_ns"]) not in page
    summary["lifecycle"] = periods(3)
    page = html.render(tmp_path, summary, None, None, None).read_text()
    assert "periods;" not in page and html.utc(summary["lifecycle"][2]["start_ns"]) in page


def test_platform_table_side_by_side(tmp_path):
    _, hw, _, _ = full_report(tmp_path / "hw")
    _, ios, _, _ = full_report(tmp_path / "ios", s.ios, s.IPHONE)
    table = html.platform_table([hw, ios])
    assert table.count("<tr>") == 1 + 9
    assert "10.0.0.159" in table and "10.0.0.110" in table
    assert "ENOTCONN" in table and "refused" in table and "timeout" in table


# --------------------------------------------------------------------------- a real browser


def chromium(args, timeout=120):
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("builder,phone,behaviour", [(s.huawei, s.HUAWEI, "huawei_background_kill"),
                                                     (s.ios, s.IPHONE, "ios_suspend")])
def test_report_renders_in_headless_chromium(tmp_path, builder, phone, behaviour):
    _, _, _, page = full_report(tmp_path, builder, phone)
    url = page.resolve().as_uri()
    dom = chromium(["--enable-logging=stderr", "--v=0", "--dump-dom", url])
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    assert behaviour in dom.stdout and "frame.number == " in dom.stdout
    assert "<svg" in dom.stdout and "Per-platform table" in dom.stdout
    shot = tmp_path / "shot.png"
    done = chromium([f"--screenshot={shot}", "--window-size=1400,2000", url])
    assert done.returncode == 0 and shot.is_file()
    image = mpimg.imread(shot)
    assert image.shape[1] == 1400
    assert (image[..., :3].min(axis=2) < 0.5).mean() > 0.01   # text was painted


# --------------------------------------------------------------------------- memory-lean drawing


def _scatter_points(ax) -> list[np.ndarray]:
    """Every scatter's points, in drawing order."""
    return [np.asarray(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets")
            and len(c.get_offsets())]


def _unchunked_points(events, lane_of, t0, x_max) -> list[np.ndarray]:
    """What _draw_events draws, computed over the whole table at once: the reference the
    chunked, pre-thinned version must reproduce exactly."""
    lane = lane_of.lookup(events["flow_id"].to_numpy(np.int64))
    rows = np.flatnonzero(lane >= 0)
    lane = lane[rows]
    x = (events["ts_ns"].to_numpy(np.int64)[rows] - t0) / 1e9
    sender = events["sender"].astype(str).to_numpy()[rows]
    offset = np.where(sender == "phone", timeline.UP, np.where(sender == "server", timeline.DOWN, 0.0))
    kind = events["kind"].astype(str).to_numpy()[rows]
    present = {k: np.flatnonzero(kind == k) for k in timeline.EVENT_STYLE}
    budget = timeline.MAX_MARKERS // max(1, sum(1 for sel in present.values() if len(sel)))
    out = []
    for k in timeline.EVENT_STYLE:
        sel = present[k]
        if len(sel):
            keys = lane[sel] * 3 + (offset[sel] > 0) + 2 * (offset[sel] < 0)
            pick = sel[timeline._thin(x[sel], keys, x_max, budget)]
            out.append(np.column_stack([x[pick], -lane[pick].astype(float) + offset[pick]]))
    return out


@pytest.mark.parametrize("markers", [12000, 300])
def test_chunked_event_markers_match_the_whole_table(monkeypatch, markers):
    """Events placed a chunk at a time and pre-thinned pick exactly the markers the whole
    table would, also when the budget forces the coarsest columns (where a level is not half
    of the one before it)."""
    import matplotlib.pyplot as plt
    flows, events = synthetic(300, 200_000, seed=7)
    events.loc[events.index[::97], "sender"] = pd.NA         # some events with no sender
    monkeypatch.setattr(timeline, "MAX_MARKERS", markers)
    lanes, lane_of = timeline._lanes(flows)
    t0 = int(flows["first_ts_ns"].min())
    x_max = timeline._x_extent(flows, events, pd.DataFrame(), [], t0)
    expected = _unchunked_points(events, lane_of, t0, x_max)
    assert sum(len(p) for p in expected) < len(events)     # thinning did happen
    for chunk in (len(events), 4099):
        monkeypatch.setattr(timeline, "EVENT_CHUNK", chunk)
        fig, ax = plt.subplots()
        drawn = timeline._draw_events(ax, events, lane_of, t0, x_max)
        got = _scatter_points(ax)
        plt.close(fig)
        assert drawn == sum(len(p) for p in expected)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)


def test_listing_in_chunks_keeps_the_order_and_ties(monkeypatch):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"ts_ns": rng.integers(0, 50, 20_000), "frame": rng.integers(0, 5, 20_000)})
    expected = frame.iloc[np.lexsort([frame["frame"], frame["ts_ns"]])[:777]]
    monkeypatch.setattr(html, "LIST_CHUNK", 1000)
    got = html._first_rows(frame, ["ts_ns", "frame"], 777)
    assert list(got.index) == list(expected.index)


def test_narrowed_tables_draw_the_same_report(tmp_path):
    """keep_tables=False (the command line's choice) drops every column the timeline does not
    read before drawing: the timeline and the page come out the same."""
    from analyzer import pipeline
    from analyzer.report import inputs
    from tests.corpus_files import PROJECT
    sample = PROJECT / "captures" / "huawei"
    runs = {}
    for keep in (True, False):
        opts = pipeline.Options(capture=sample / "capture.pcapng", out=tmp_path / str(keep),
                                logs=[sample / "app.log", sample / "server.log"], keep_tables=keep)
        runs[keep] = pipeline.run(opts)
    assert list(runs[False].flows.columns) == inputs.FLOW_COLUMNS
    assert list(runs[False].events.columns) == inputs.EVENT_COLUMNS
    assert "history" in runs[True].flows and "detail" in runs[True].events
    same = lambda name: (tmp_path / "True" / name).read_bytes() == (tmp_path / "False" / name).read_bytes()
    assert same("timeline.png") and same("flows.csv") and same("events.csv")

    def page(keep):   # the inline SVG's date and hashed ids differ from run to run
        text = (tmp_path / str(keep) / "report.html").read_text()
        text = re.sub(r"<dc:date>[^<]*</dc:date>", "", text)
        return re.sub(r"([#\"_])([pmC]?[0-9_]*)[0-9a-f]{10}\b", r"\1\2X", text)
    assert page(True) == page(False)
    assert "huawei_background_kill" in page(False)


def test_the_page_shows_a_summary_with_numpy_keys_and_values():
    summary = {"a": np.int64(3), "b": [np.float64(0.5), (1, 2)], "c": {np.int64(7): np.bool_(True)}}
    assert json.loads(html._summary_text(summary)) == {"a": 3, "b": [0.5, [1, 2]], "c": {"7": True}}


def test_a_thinned_timeline_keeps_its_title_within_the_figure():
    """The counts and the thinning notes go on two lines: one line ran past the right edge
    of a 10M-packet capture's figure."""
    stats = {"flows": 490_228, "events": 1_450_869, "events_drawn": 8_668, "aggregated_flows": 490_192}
    first, second = timeline._default_title(None, None, stats).split("\n")
    assert first == "Socket timeline: 490,228 flows, 1,450,869 events"
    assert second == "8,668 markers drawn (thinned per lane and time column), 490,192 flows in aggregate lanes"
    fig = plt.figure(figsize=(14, 6))
    ax = fig.add_axes((0.37, 0.1, 0.59, 0.7))       # the axes' place beside long lane labels
    title = ax.set_title(timeline._default_title(None, None, stats), fontsize=11, loc="left")
    fig.canvas.draw()
    assert title.get_window_extent().x1 <= fig.bbox.x1
    plt.close(fig)
    whole = {"flows": 3, "events": 5, "events_drawn": 5, "aggregated_flows": 0}
    assert timeline._default_title(None, None, whole) == "Socket timeline: 3 flows, 5 events"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 60), unique=True, max_size=30), st.booleans(),
       st.lists(st.integers(-5, 5000), max_size=40))
def test_lane_map_finds_each_flows_lane_dense_or_sparse(ids, sparse, asked):
    """The lane of each asked id as a dict would give it (-1 for none), whether the ids are
    dense enough for the indexed table or so sparse that they are searched."""
    if sparse:
        ids = [i * 100_000 for i in ids]
    lanes = [i % 7 for i in range(len(ids))]
    lane_map = timeline.LaneMap([np.array(ids, dtype=np.int64)], [np.array(lanes, dtype=np.int64)])
    assert (lane_map.table is None) == (sparse and bool(ids) and max(ids) > 4 * len(ids) + 1024)
    want = dict(zip(ids, lanes))
    asked = asked + ids[:5]
    got = lane_map.lookup(np.array(asked, dtype=np.int64))
    assert got.tolist() == [want.get(a, -1) for a in asked]
    assert lane_map.lane_count == (max(lanes) + 1 if lanes else 0)


def _lanes_by_full_sort(flows):
    """The lanes as ranking every flow of a group by a full sort gives them (the rule
    timeline._lanes follows without sorting them all)."""
    from analyzer.frames import labels
    kinds = signatures.socket_kinds(flows)
    first_ts = flows["first_ts_ns"].to_numpy(np.int64)
    total = len(flows)
    not_phone = (labels(flows["teardown_by"]) != "phone").to_numpy()
    open_ = (labels(flows["teardown"]) == "open").to_numpy()
    lanes, lane_of = [], {}
    for group in timeline.GROUP_ORDER:
        rows = np.flatnonzero((kinds == group).to_numpy())
        if not len(rows):
            continue
        if total <= timeline.MAX_LANES:
            keep, rest = rows, rows[:0]
        else:
            quota = max(1, int(timeline.MAX_LANES * len(rows) / total) - 1)
            order = rows[np.lexsort((first_ts[rows], open_[rows], not_phone[rows]))]
            keep, rest = order[:quota], order[quota:]
        keep = keep[np.argsort(first_ts[keep], kind="stable")]
        for row in keep:
            lane_of[int(flows["flow_id"].iat[row])] = len(lanes)
            lanes.append((group, int(flows["flow_id"].iat[row])))
        if len(rest):
            for row in rest:
                lane_of[int(flows["flow_id"].iat[row])] = len(lanes)
            lanes.append((group, f"{len(rest):,} more"))
    return lanes, lane_of


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 400), st.integers(0, 10_000), st.integers(1, 50), st.sampled_from([1, 3, 50, 262144]))
def test_lanes_rank_flows_as_a_full_sort_does(n_flows, seed, spread, step):
    """The flows that get lanes of their own, their order, and every flow's lane, as ranking
    all of a group's flows at once would give them, whatever the step the flows are read
    in; with many ties in time (small `spread`)."""
    flows, _ = synthetic(n_flows, 0, seed)
    rng = np.random.default_rng(seed)
    flows["first_ts_ns"] = 1_720_075_971_000_000_000 + rng.integers(0, spread, n_flows) * 10**9
    flows["proto"] = pd.Categorical(rng.choice(["tcp", "udp", "icmp"], n_flows))
    flows["teardown"] = pd.Categorical(rng.choice(["rst", "fin", "open", "refused"], n_flows))
    want_lanes, want_of = _lanes_by_full_sort(flows)
    saved, timeline.LANE_STEP = timeline.LANE_STEP, step
    try:
        lanes, lane_of = timeline._lanes(flows)
    finally:
        timeline.LANE_STEP = saved
    got = [(lane["group"], lane["flows"]) for lane in lanes]
    assert [g for g, _ in got] == [g for g, _ in want_lanes]
    for (group, flows_in), (_, what) in zip(got, want_lanes):
        if isinstance(what, str):
            assert what == f"{flows_in:,} more"
        else:
            assert flows_in == 1
    kept = [lane["label"] for lane in lanes if not lane["aggregate"]]
    want_kept = [timeline._flow_label(row) for row in flows.set_index("flow_id", drop=False)
                 .loc[[w for _, w in want_lanes if not isinstance(w, str)], timeline._LANE_COLUMNS]
                 .itertuples(index=False)]
    assert kept == want_kept
    ids = flows["flow_id"].to_numpy()
    assert lane_of.lookup(ids).tolist() == [want_of[int(i)] for i in ids]


@pytest.mark.parametrize("step", [1, 7, 1000])
def test_spans_drawn_in_steps_match_one_pass(monkeypatch, step):
    """Lane bars drawn a step of flows at a time (aggregated lanes merged per step, then
    again) are the bars, colours and packet counts of one pass over every flow."""
    flows, _ = synthetic(300, 0, seed=5)
    flows["packets_r2i"] = np.where(np.arange(300) % 5 == 0, 0, 90)     # some one-way flows
    lanes, lane_of = timeline._lanes(flows)
    t0 = int(flows["first_ts_ns"].min())
    x_max = timeline._x_extent(flows, pd.DataFrame(), pd.DataFrame(), [], t0)

    def drawn():
        fig, ax = plt.subplots()
        aggregated = timeline._draw_spans(ax, flows, lanes, lane_of, t0, x_max)
        bars = ax.collections[0]
        out = (aggregated, [s.tolist() for s in bars.get_segments()],
               bars.get_colors().tolist(), [t.get_text() for t in ax.texts])
        plt.close(fig)
        return out

    whole = drawn()
    monkeypatch.setattr(timeline, "SPAN_STEP", step)
    assert drawn() == whole
    assert whole[0] > 0 and whole[3]          # aggregated lanes and per-lane counts both drawn


@pytest.mark.parametrize("step", [1, 7, 1000, 262144])
def test_next_sign_of_life_found_in_steps_is_the_first_such_time_after(monkeypatch, step):
    """After each given time, the phone's first act as a foreground app (its SYNs and
    SYN-ACKs, the UDP conversations it started), found a step of rows at a time: the first
    of all such times strictly after it, or none; also for times before, between and after
    them all, and for times equal to one of them."""
    flows, events = synthetic(3000, 20_000, seed=11)
    syn = events["kind"].isin(["syn", "synack"]) & (events["sender"] == "phone")
    udp = (flows["proto"] == "udp") & (flows["phone_role"] == "initiator")
    life = np.sort(np.concatenate([events.loc[syn, "ts_ns"], flows.loc[udp, "first_ts_ns"]]))
    assert syn.sum() > 1000 and udp.sum() > 300
    rng = np.random.default_rng(3)
    after = np.sort(np.concatenate([
        rng.integers(life[0] - 10**9, life[-1] + 10**9, 500), life[::37], [life[0] - 1, life[-1]]]))
    k = np.searchsorted(life, after, side="right")
    expected = np.where(k < len(life), life[np.minimum(k, len(life) - 1)], lifecycle.NEVER)
    monkeypatch.setattr(lifecycle, "LIFE_STEP", step)
    np.testing.assert_array_equal(lifecycle._next_signs_of_life(flows, events, after), expected)
