"""The benchmark's logs: every line names a flow of the capture, and `analyze` finds it.

    python -m pytest bench -q
"""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_logs  # noqa: E402


def test_every_generated_line_lands_on_a_flow(tmp_path):
    from analyzer.cli import main
    capture = str(tmp_path / "g.pcap")
    subprocess.run([sys.executable, os.path.join(HERE, "gen_capture.py"), "--packets", "20000",
                    "--out", capture, "--seed", "3"], check=True, capture_output=True)
    assert main([capture, "--out", str(tmp_path / "plain"), "--no-report", "--quiet"]) == 0
    written = gen_logs.write_logs(str(tmp_path / "plain" / "flows.csv"), str(tmp_path / "logs"), 120)
    assert written["server"]["lines"] == 60 and written["app"]["lines"] == 60
    out = tmp_path / "with-logs"
    assert main([capture, "--out", str(out), "--no-report", "--quiet",
                 "--logs", written["app"]["path"], "--logs", written["server"]["path"]]) == 0
    logs = pd.read_csv(out / "logs.csv")
    assert len(logs) == 120 and logs["flow_id"].notna().all()
    assert set(logs["errno"]) == {"ECONNRESET", "EPIPE", "EOF"}
