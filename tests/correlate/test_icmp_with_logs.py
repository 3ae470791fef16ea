"""A capture whose events include an ICMP error (no source port) read with a log: the
anchor search used to stop with a traceback converting the events' source ports."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from analyzer.cli import main
from tests.dissect.crafted import write_pcap
from tests.report import scenarios as s


def test_icmp_error_and_a_server_log(tmp_path):
    packets, _ = s.server_close()
    pcap = tmp_path / "capture.pcap"
    write_pcap(pcap, packets)
    # the server's Go log saw the phone's redial refused; its clock is the capture's
    at = dt.datetime.fromtimestamp(s.T0 + 31.0, dt.timezone.utc)
    log = tmp_path / "server.log"
    log.write_text(f"{at:%Y/%m/%d %H:%M:%S} read tcp {s.SERVER}:{s.TCP_PORT}->"
                   f"{s.HUAWEI}:{s.APP_PORT}: read: connection reset by peer\n")
    out = tmp_path / "out"
    assert main([str(pcap), "--logs", str(log), "--out", str(out), "--phone", s.HUAWEI,
                 "--quiet", "--no-report"]) == 0
    events = pd.read_csv(out / "events.csv")
    assert "icmp_unreachable" in set(events["kind"])
    assert events.loc[events["kind"] == "icmp_unreachable", "src_port"].isna().all()
    logs = pd.read_csv(out / "logs.csv")
    assert len(logs) == 1 and logs["errno"].iloc[0] == "ECONNRESET"
