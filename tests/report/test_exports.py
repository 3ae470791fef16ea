"""--format parquet and zeek: the same flows as flows.csv, in the other layouts."""

from __future__ import annotations

import pandas as pd

from analyzer.cli import main
from tests.corpus_files import PROJECT

SAMPLE = PROJECT / "captures" / "ios" / "capture.pcapng"


def test_parquet_and_zeek_conn_log_match_flows_csv(tmp_path):
    out = tmp_path / "out"
    assert main([str(SAMPLE), "--out", str(out), "--phone", "127.0.0.2", "--quiet",
                 "--no-report", "--format", "csv,parquet,zeek"]) == 0
    flows = pd.read_csv(out / "flows.csv")
    parquet = pd.read_parquet(out / "flows.parquet")
    assert list(parquet.columns) == list(flows.columns)
    assert parquet["conn_state"].astype(str).tolist() == flows["conn_state"].tolist()
    assert parquet["flow_id"].tolist() == flows["flow_id"].tolist()
    lines = (out / "conn.log").read_text().splitlines()
    fields = next(l for l in lines if l.startswith("#fields")).split("\t")[1:]
    rows = [l.split("\t") for l in lines if not l.startswith("#")]
    conn = pd.DataFrame(rows, columns=fields)
    assert len(conn) == len(flows) > 0
    assert conn["conn_state"].tolist() == flows["conn_state"].tolist()
    assert conn["history"].tolist() == flows["history"].fillna("-").tolist()
    assert conn["id.orig_p"].astype(int).tolist() == flows["initiator_port"].tolist()
    assert conn["orig_pkts"].astype(int).tolist() == flows["packets_i2r"].tolist()


def test_unknown_format_is_one_line(tmp_path, capsys):
    assert main([str(SAMPLE), "--out", str(tmp_path / "o"), "--format", "xml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "xml" in err
