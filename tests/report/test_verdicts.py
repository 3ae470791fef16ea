"""Lifecycle periods, verdicts and the field report's table, on crafted sessions.

Expected cells come from the field report (../shared/MISSION.md, "What was seen"): what the
capture alone can show (who sent RST or FIN, what a reconnect got) is checked on
capture-only runs; the error names each side printed need the logs.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analyzer.correlate import lifecycle, signatures
from tests.report import scenarios as s
from tests.report.harness import analyse

PHONE_BEHAVIOURS = {"huawei_background_kill", "android_socket_destroy", "ios_suspend"}


def verdict_of(run):
    periods = lifecycle.periods(run.flows, run.events, run.logs, [run.phone])
    verdicts = signatures.judge(run.flows, run.events, run.logs, periods, [run.phone])
    table = signatures.seed_table(run.flows, run.events, run.logs, [run.phone], periods)
    # All of it goes into summary.json as it is.
    json.loads(json.dumps({"lifecycle": periods, "verdicts": verdicts, "seed_table": table}))
    return periods, verdicts, table


# --------------------------------------------------------------------------- capture only


def test_huawei_capture_only(tmp_path):
    run = analyse(tmp_path, *s.huawei(with_logs=False), phone=s.HUAWEI)
    periods, verdicts, table = verdict_of(run)
    session = verdicts["session"]
    assert session["behaviour"] == "huawei_background_kill", session["scores"]
    assert session["caused_by_phone_lifecycle"] is True
    assert 0.5 <= session["confidence"] <= 1.0
    assert any("SO_REUSEADDR" in r for r in session["remedy"])
    # The period comes from the RST burst, starting at the first RST from the phone.
    assert len(periods) == 1 and periods[0]["basis"] == "capture"
    rst = run.flows[(run.flows["teardown"] == "rst")]
    assert periods[0]["start_ns"] == int(rst["teardown_ts_ns"].min())
    frames = {e["frame"] for e in session["evidence"] if e["type"] == "frame"}
    assert set(rst["teardown_frame"].astype(int)) <= frames
    assert all(e["filter"] == f"frame.number == {e['frame']}" for e in session["evidence"]
               if e["type"] == "frame")
    # Field report, Huawei: RST on every connection; new connects to the listener unanswered.
    assert set(table) == {"udp", "tcp_client", "tcp_server"}
    assert table["tcp_server"]["reconnect"] == "timeout"
    assert table["tcp_client"]["server_error"] == "ECONNRESET"
    assert table["tcp_client"]["basis"]["server_error"] == "capture"
    assert table["udp"]["server_error"] is None            # "nothing"
    assert table["udp"]["app_error"] is None                # needs the app log


def test_ios_capture_only(tmp_path):
    run = analyse(tmp_path, *s.ios(with_logs=False), phone=s.IPHONE)
    periods, verdicts, table = verdict_of(run)
    session = verdicts["session"]
    assert session["behaviour"] == "ios_suspend", session["scores"]
    assert session["caused_by_phone_lifecycle"] is True
    assert any("TN2277" in r for r in session["remedy"])
    assert periods and periods[0]["basis"] == "capture"
    # Field report, iOS: FIN from the phone; new connects to the listener refused.
    assert table["tcp_server"]["reconnect"] == "refused"
    assert table["tcp_client"]["server_error"] == "EOF"
    assert table["tcp_server"]["server_error"] == "EOF"
    flows = {f["flow_id"]: f for f in verdicts["flows"]}
    refused = run.flows.loc[run.flows["teardown"] == "refused", "flow_id"]
    assert all(flows[int(f)]["behaviour"] == "ios_suspend" for f in refused)


def test_platforms_differ_on_reconnect_from_the_capture_alone(tmp_path):
    hw = verdict_of(analyse(tmp_path / "hw", *s.huawei(False), phone=s.HUAWEI))[2]
    ios = verdict_of(analyse(tmp_path / "ios", *s.ios(False), phone=s.IPHONE))[2]
    assert (hw["tcp_server"]["reconnect"], ios["tcp_server"]["reconnect"]) == ("timeout", "refused")


# --------------------------------------------------------------------------- with logs


FIELD_REPORT = {
    # kind: (Huawei app, Huawei server, iOS app, iOS server)
    "udp": ("EDESTADDRREQ", None, "EPIPE", None),
    "tcp_client": ("ECONNABORTED", "ECONNRESET", "EPIPE", "EOF"),
    "tcp_server": (None, "ECONNRESET", "ENOTCONN", "EOF"),
}


def test_huawei_with_logs_matches_field_report(tmp_path):
    run = analyse(tmp_path, *s.huawei(with_logs=True), phone=s.HUAWEI)
    _, verdicts, table = verdict_of(run)
    assert verdicts["session"]["behaviour"] == "huawei_background_kill"
    assert verdicts["session"]["confidence"] >= 0.9
    for kind, (app, server, _, _) in FIELD_REPORT.items():
        assert (table[kind]["app_error"], table[kind]["server_error"]) == (app, server), kind
    assert table["tcp_server"]["reconnect"] == "timeout"
    logs = [e for e in verdicts["session"]["evidence"] if e["type"] == "log"]
    assert any("software caused connection abort" in e["message"] for e in logs)


def test_ios_with_logs_matches_field_report(tmp_path):
    run = analyse(tmp_path, *s.ios(with_logs=True), phone=s.IPHONE)
    periods, verdicts, table = verdict_of(run)
    assert verdicts["session"]["behaviour"] == "ios_suspend"
    for kind, (_, _, app, server) in FIELD_REPORT.items():
        assert (table[kind]["app_error"], table[kind]["server_error"]) == (app, server), kind
    assert table["tcp_server"]["reconnect"] == "refused"
    # The period comes from the lifecycle lines, from suspend to resume.
    assert len(periods) == 1 and periods[0]["basis"] == "log"
    assert periods[0]["state"] == "suspended"
    assert periods[0]["end_ns"] is not None and periods[0]["end_ns"] > periods[0]["start_ns"]


# --------------------------------------------------------------------------- look-alikes


def test_server_close_is_not_blamed_on_the_phone(tmp_path):
    run = analyse(tmp_path, *s.server_close(), phone=s.HUAWEI)
    periods, verdicts, table = verdict_of(run)
    session = verdicts["session"]
    assert session["behaviour"] == "server_close", session["scores"]
    assert session["caused_by_phone_lifecycle"] is False
    assert periods == []
    assert not PHONE_BEHAVIOURS & {f["behaviour"] for f in verdicts["flows"]}
    assert table["tcp_client"]["reconnect"] == "refused"


def test_normal_close_is_not_blamed_on_the_phone(tmp_path):
    run = analyse(tmp_path, *s.normal_close(), phone=s.HUAWEI)
    _, verdicts, _ = verdict_of(run)
    assert verdicts["session"]["behaviour"] == "normal_close"
    assert verdicts["session"]["caused_by_phone_lifecycle"] is False


# --------------------------------------------------------------------------- edges and data


def test_empty_session():
    flows = pd.DataFrame(columns=["flow_id", "proto", "phone_role", "teardown", "teardown_by",
                                  "teardown_ts_ns", "first_ts_ns", "last_ts_ns", "teardown_frame",
                                  "packets_i2r", "packets_r2i", "conn_state", "syn_count",
                                  "responder_port"])
    events = pd.DataFrame(columns=["ts_ns", "frame", "flow_id", "kind", "sender"])
    assert lifecycle.periods(flows, events, s.empty_logs(), []) == []
    verdicts = signatures.judge(flows, events, None, [], [])
    assert verdicts["session"]["behaviour"] == "unknown"
    assert verdicts["session"]["caused_by_phone_lifecycle"] is None
    assert signatures.seed_table(flows, events, None, []) == {}


def test_user_lifecycle_pattern_makes_a_log_period(tmp_path):
    packets, _ = s.huawei(with_logs=False)
    logs = s.log_frame([
        {"ts_ns": int((s.T0 + 29.9) * 1e9), "role": "app", "message": "APP state -> BG", "source": "app.log"},
        {"ts_ns": int((s.T0 + 90) * 1e9), "role": "app", "message": "APP state -> FG", "source": "app.log"},
    ])
    run = analyse(tmp_path, packets, logs, phone=s.HUAWEI)
    periods = lifecycle.periods(run.flows, run.events, logs, [s.HUAWEI],
                                patterns=["state -> BG=background", r"state -> FG=foreground"])
    assert [(p["basis"], p["state"]) for p in periods] == [("log", "background")]
    assert periods[0]["end_ns"] == int((s.T0 + 90) * 1e9)
    kinds = {e["type"] for e in periods[0]["evidence"]}
    assert kinds == {"log", "frame"}     # the RST burst backs the log lines up
    with pytest.raises(ValueError):
        lifecycle.parse_patterns(["no state here"])


def test_user_signature_file_adds_and_overrides(tmp_path):
    extra = tmp_path / "mine.toml"
    extra.write_text('''
[[signature]]
id = "my_vpn_drop"
title = "Our VPN drops the tunnel"
caused_by_phone_lifecycle = false
remedy = ["restart the tunnel"]
  [[signature.cue]]
  feature = "phone_rst_flows"
  op = ">="
  value = 1
  weight = 100
  required = true

[[signature]]
id = "normal_close"
title = "Overridden"
  [[signature.cue]]
  feature = "teardown_flows"
  op = ">="
  value = 1000000
  required = true
''')
    sigs = signatures.load_signatures(extra)
    ids = [x["id"] for x in sigs["signatures"]]
    assert ids.count("normal_close") == 1 and ids[-1] == "my_vpn_drop"
    run = analyse(tmp_path / "run", *s.huawei(with_logs=False), phone=s.HUAWEI)
    periods = lifecycle.periods(run.flows, run.events, run.logs, [s.HUAWEI])
    verdicts = signatures.judge(run.flows, run.events, run.logs, periods, [s.HUAWEI], sigs)
    # Every cue of the user's signature holds: score 1.0 beats the built-in Huawei score.
    assert verdicts["session"]["behaviour"] == "my_vpn_drop"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[signature]]\nid = "x"\n  [[signature.cue]]\n  feature = "nope"\n  op = ">="\n  value = 1\n')
    with pytest.raises(ValueError, match="unknown feature"):
        signatures.load_signatures(bad)


def test_builtin_signatures_cover_the_design_ids():
    ids = {x["id"] for x in signatures.load_signatures()["signatures"]}
    assert ids == {"huawei_background_kill", "android_socket_destroy", "ios_suspend",
                   "server_close", "middlebox_idle_timeout", "normal_close"}


def test_logs_as_categoricals_with_unaligned_lines(tmp_path):
    """The log stage may hand over categoricals, lines it could not align (ts NA) and no
    lifecycle column; the verdict and the table must not change."""
    packets, logs = s.ios(with_logs=True)
    logs = logs.copy()
    for col in ("role", "source", "format", "errno", "op", "proto", "local_ip", "remote_ip", "lifecycle"):
        logs[col] = logs[col].astype("category")
    panic = logs["message"].str.startswith("panic:")
    logs.loc[panic, "ts_ns"] = pd.NA       # panic lines carry no time of their own
    run = analyse(tmp_path, packets, logs, phone=s.IPHONE)
    _, verdicts, table = verdict_of(run)
    assert verdicts["session"]["behaviour"] == "ios_suspend"
    assert table["tcp_server"]["app_error"] == "ENOTCONN"
    no_lifecycle = logs.drop(columns=["lifecycle"])
    periods = lifecycle.periods(run.flows, run.events, no_lifecycle, [s.IPHONE])
    assert periods and periods[0]["basis"] == "capture"


@pytest.mark.parametrize("builder, phone, with_logs", [(s.huawei, s.HUAWEI, False), (s.huawei, s.HUAWEI, True),
                                                       (s.ios, s.IPHONE, False)])
def test_verdicts_and_table_read_a_step_of_flows_at_a_time_come_out_the_same(
        tmp_path, monkeypatch, builder, phone, with_logs):
    """The judge, the field report's table and the background periods' signs of life read
    the flows (and events) a step at a time (a step's worth of temporaries, not a
    table's): any step gives what one pass gives, ties and firsts included."""
    run = analyse(tmp_path, *builder(with_logs), phone=phone)
    assert len(run.flows) > 3
    whole = verdict_of(run)

    def facts():     # the features the cues test, without the log text columns
        found = signatures.features(run.flows, run.events, run.logs, whole[0], [run.phone])
        return {k: v for k, v in found.items() if not k.startswith("_")}

    whole_facts = facts()
    assert whole_facts["phone_teardowns"] + whole_facts["server_teardowns"] > 0
    for step in (1, 2, 3):
        monkeypatch.setattr(signatures, "FLOW_STEP", step)
        monkeypatch.setattr(lifecycle, "LIFE_STEP", step)
        assert verdict_of(run) == whole
        assert facts() == whole_facts
    monkeypatch.setattr(signatures, "MAX_FLOW_VERDICTS", 2)     # the list cut across steps
    monkeypatch.setattr(signatures, "FLOW_STEP", 10**6)
    short = verdict_of(run)[1]
    monkeypatch.setattr(signatures, "FLOW_STEP", 1)
    assert verdict_of(run)[1] == short
    assert short["flows"] == whole[1]["flows"][:2]
    assert short["flows_omitted"] == len(whole[1]["flows"]) - 2
