"""One session end to end: capture -> flows -> (logs -> alignment) -> output files.

Each stage hands the next a pandas DataFrame; nothing reaches back up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from analyzer import schema
from analyzer.dissect import labels, phones as phone_rules
from analyzer.dissect.flows import FlowTable
from analyzer.exceptions import AnalyzerError
from analyzer.report import tables


@dataclass
class Options:
    capture: Path
    out: Path
    phones: list[str] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    engine: str = "native"          # native | tshark
    formats: tuple[str, ...] = ("csv",)
    tcp_idle_timeout: float = 0.0


@dataclass
class Result:
    flows: pd.DataFrame
    events: pd.DataFrame
    summary: dict
    out: Path
    seconds: float


def _open_engine(opts: Options):
    if opts.engine == "native":
        from analyzer.dissect.reader import CaptureReader
        return CaptureReader(opts.capture)
    if opts.engine == "tshark":
        from analyzer.dissect.tshark_engine import TsharkCapture
        return TsharkCapture(opts.capture)
    raise AnalyzerError(f"unknown engine {opts.engine!r} (choose native or tshark)")


def read_flows(opts: Options, progress: Callable[[int], None] | None = None):
    """Run the capture through an engine and the flow table. Returns (flows, events,
    capture info dict, flag counts, peak live flows)."""
    engine = _open_engine(opts)
    table = FlowTable(tcp_idle_timeout=opts.tcp_idle_timeout)
    for batch in engine.batches():
        table.feed(batch)
        if progress is not None:
            progress(int(batch["frame"][-1]) if len(batch["frame"]) else 0)
    table.finish()
    KEY, FL, EP, HIST = table.drain()
    flows = labels.flows_frame(KEY, FL, EP, HIST)
    events = labels.events_frame(table.drain_events(), flows)
    info = engine.info if isinstance(engine.info, dict) else engine.info.__dict__
    flag_counts = dict(zip(("syn", "synack", "fin", "rst"), (int(x) for x in table.tcp_flag_counts)))
    return flows, events, dict(info), flag_counts, table.peak_live


def capture_summary(info: dict, flag_counts: dict, engine: str) -> dict:
    keys = ("file", "format", "compression", "byte_order", "ts_resolution", "link_types",
            "packets", "undecodable", "truncated", "malformed", "not_ip", "non_packet", "damaged")
    out = {k: info.get(k) for k in keys if k in info}
    out["engine"] = engine
    out["link_types"] = [{"linktype": lt, "name": name} for lt, name in info.get("link_types", [])] \
        if info.get("link_types") and isinstance(info["link_types"][0], (list, tuple)) else info.get("link_types", [])
    first, last = info.get("first_ts_ns"), info.get("last_ts_ns")
    out["first_ts"] = None if first is None else first / 1e9
    out["last_ts"] = None if last is None else last / 1e9
    out["tcp_flag_packets"] = flag_counts
    return out


def run(opts: Options, progress: Callable[[int], None] | None = None) -> Result:
    started = time.perf_counter()
    flows, events, info, flag_counts, peak = read_flows(opts, progress)
    warnings = list(info.get("warnings", []))

    if opts.phones:
        phones = [phone_rules.normalise(p) for p in opts.phones]
        phone_how = {"addresses": phones, "how": "given with --phone"}
    else:
        phones, how = phone_rules.infer_phones(flows)
        phone_how = {"addresses": phones, "how": how}
        if not phones and len(flows):
            warnings.append(f"phone not identified ({how})")
    phone_rules.attribute(flows, events, phones)

    digits = tables.ts_digits(info.get("ts_resolution", "") or "")
    opts.out.mkdir(parents=True, exist_ok=True)
    flow_tab = tables.flows_table(flows, digits)
    event_tab = tables.events_table(events, digits)
    if "csv" in opts.formats:
        tables.write_csv(flow_tab, opts.out / schema.FLOWS_CSV)
        tables.write_csv(event_tab, opts.out / schema.EVENTS_CSV)
    if "parquet" in opts.formats:
        tables.write_parquet(flow_tab, opts.out / "flows.parquet")
        tables.write_parquet(event_tab, opts.out / "events.parquet")

    summary = {
        "capture": capture_summary(info, flag_counts, opts.engine),
        "warnings": warnings,
        "phones": phone_how,
        "platform": None,
        "flows": {
            "total": int(len(flows)),
            "peak_live": int(peak),
            "by_teardown": _by_teardown(flows),
            "by_conn_state": {k: int(v) for k, v in flows["conn_state"].value_counts().items()},
        },
        "events": {k: int(v) for k, v in events["kind"].value_counts().items()},
        "clocks": {},
        "lifecycle": [],
        "verdicts": {},
        "seed_table": {},
    }
    tables.write_summary(summary, opts.out / schema.SUMMARY_JSON)
    return Result(flows, events, summary, opts.out, time.perf_counter() - started)


def _by_teardown(flows: pd.DataFrame) -> dict:
    """{teardown: {sender: count}}: the table the command prints."""
    if flows.empty:
        return {}
    grouped = flows.groupby(["teardown", "teardown_by"]).size()
    out: dict = {}
    for (kind, by), count in grouped.items():
        out.setdefault(kind, {})[by] = int(count)
    return out
