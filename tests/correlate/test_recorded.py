"""The recorded sample sessions in captures/ (real sockets on lo, emulated Huawei and iOS
phones, truth.json beside them): clocks within tolerance of the recorded truth, and the
error lines on flows of the kind their errno names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.correlate.align import align_logs
from analyzer.dissect import phones as phone_rules
from analyzer.logs import read_log
from analyzer.pipeline import Options, read_flows

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
KIND_OF_ERRNO = {"ECONNREFUSED": "refused", "EOF": "fin", "ECONNRESET": "rst"}


def _zone_s(tz: str) -> int:
    sign = -1 if tz[0] == "-" else 1
    return sign * (int(tz[1:3]) * 3600 + int(tz[3:5]) * 60)


@pytest.mark.parametrize("name", ["huawei", "ios"])
def test_recorded_session(name, tmp_path):
    folder = CAPTURES / name
    if not (folder / "truth.json").is_file():
        pytest.skip(f"captures/{name} is absent")
    truth = json.loads((folder / "truth.json").read_text())
    flows, events, info, _, _ = read_flows(Options(capture=folder / truth["capture"], out=tmp_path))
    phone = [truth["app"]["phone"]]
    phone_rules.attribute(flows, events, phone)
    app = read_log(folder / truth["logs"]["app"])
    server = read_log(folder / truth["logs"]["server"])
    out, clocks = align_logs([app, server], flows, events, phone, info["first_ts_ns"],
                             info["last_ts_ns"])

    def want(clock):  # "device clock = true time + offset_s, shown in tz"
        return -(_zone_s(clock["tz"]) + clock["offset_s"])

    assert abs(clocks[app.name]["offset_s"] - want(truth["app"]["clock"])) < 0.020
    assert abs(clocks[server.name]["offset_s"] - want(truth["server"]["clock"])) < 1.0
    assert clocks[app.name]["zone_s"] == _zone_s(truth["app"]["clock"]["tz"])

    teardown = dict(zip(flows["flow_id"], flows["teardown"].astype(str)))
    errors = out[out["errno"].notna()]
    assert len(errors)
    for _, row in errors.iterrows():
        if row["errno"] == "EADDRINUSE":
            assert row["match"].startswith("none: bind never reached the wire (flow ")
            continue
        assert not row["match"].startswith("none"), (row["message"], row["match"])
        kind = KIND_OF_ERRNO.get(row["errno"])
        if kind is not None:
            assert teardown[row["flow_id"]] == kind, (row["message"], row["match"])
    # a dial refused every half second, logged by the second: each line its own flow, in order
    refused = errors[errors["errno"] == "ECONNREFUSED"]["flow_id"].tolist()
    assert refused == sorted(refused) and len(set(refused)) == len(refused)
