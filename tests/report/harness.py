"""Run a crafted session through the `analyze` command and hand back its tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analyzer import pipeline
from analyzer.cli import main
from tests.dissect.crafted import write_pcap


@dataclass
class Run:
    flows: pd.DataFrame
    events: pd.DataFrame
    logs: pd.DataFrame
    summary: dict
    out: Path
    phone: str


def analyse(tmp_path: Path, packets, logs: pd.DataFrame, phone: str) -> Run:
    """The command must succeed on the capture; the in-memory tables (int64 ns times) come
    from the pipeline the command runs."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    pcap = tmp_path / "capture.pcap"
    write_pcap(pcap, packets)
    out = tmp_path / "out"
    assert main([str(pcap), "--out", str(out), "--phone", phone, "--quiet"]) == 0
    result = pipeline.run(pipeline.Options(capture=pcap, out=out, phones=[phone]))
    return Run(result.flows, result.events, logs, result.summary, out, phone)
