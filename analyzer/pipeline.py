"""One session end to end: capture -> flows -> (logs -> alignment) -> output files.

Each stage hands the next a pandas DataFrame; nothing reaches back up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from analyzer import frames, memory, schema
from analyzer.dissect import labels, phones as phone_rules
from analyzer.dissect.flows import FlowTable
from analyzer.exceptions import AnalyzerError
from analyzer.report import tables
from analyzer.spill import Pager, Spill


@dataclass
class Options:
    capture: Path
    out: Path
    phones: list[str] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    engine: str = "native"          # native | tshark
    formats: tuple[str, ...] = ("csv",)
    tcp_idle_timeout: float = 0.0
    clock_offsets: dict[str, float] = field(default_factory=dict)   # log file -> seconds
    log_roles: dict[str, str] = field(default_factory=dict)         # log file -> app|server
    signatures: Path | None = None                                  # user signature file
    lifecycle_patterns: list[str] = field(default_factory=list)     # "REGEX=state"
    report: bool = True                                             # timeline + report.html
    # False: when the report is drawn, the columns it does not read go first, and the
    # Result's flows and events hold only the rest (the command line's choice: it reads
    # only the summary)
    keep_tables: bool = True
    # the tables of finished flows and events in mapped files in `out` (spill.py), not on
    # the heap: memory then grows mostly with the flows open at once, little with the capture
    spill: bool = True


@dataclass
class Result:
    flows: pd.DataFrame
    events: pd.DataFrame
    summary: dict
    out: Path
    seconds: float
    logs: pd.DataFrame | None = None
    written: list[str] = field(default_factory=list)


PREFETCH = 1    # batches the reader may run ahead of the flow table


def _open_engine(opts: Options):
    if opts.engine == "native":
        from analyzer.dissect.reader import CaptureReader
        # a batch is done with once the flow table has fed it: the one being filled, those
        # queued and the one being fed are the only ones alive
        return CaptureReader(opts.capture, recycle=PREFETCH + 2)
    if opts.engine == "tshark":
        from analyzer.dissect.tshark_engine import TsharkCapture
        return TsharkCapture(opts.capture)
    raise AnalyzerError(f"unknown engine {opts.engine!r} (choose native or tshark)")


def read_flows(opts: Options, progress: Callable[[int, int], None] | None = None,
               spill: Spill | None = None):
    """Run the capture through an engine and the flow table. Returns (flows, events,
    capture info dict, flag counts, peak live flows). The tables are made in `spill`
    (by default as opts.spill says)."""
    engine = _open_engine(opts)
    spill = spill if spill is not None else _spill(opts)
    table = FlowTable(tcp_idle_timeout=opts.tcp_idle_timeout, spill=spill)
    # the reader runs one batch ahead on the other core (its kernels release the GIL)
    for batch in prefetch(engine.batches(), PREFETCH):
        table.feed(batch)
        if progress is not None:
            position = engine.position() if hasattr(engine, "position") else 0
            progress(int(batch["frame"][-1]) if len(batch["frame"]) else 0, position)
    table.finish()
    info = engine.info if isinstance(engine.info, dict) else engine.info.__dict__
    flag_counts = dict(zip(("syn", "synack", "fin", "rst"), (int(x) for x in table.tcp_flag_counts)))
    peak, names = table.peak_live, table.names
    # the live-flow table and the reader's batch arrays go before the frames are built
    flow_cols, event_cols = table.drain(), table.drain_events()
    del table, engine
    memory.release()
    flows = labels.flows_frame(flow_cols, names, spill)
    del flow_cols
    events = labels.events_frame(event_cols, flows, names, spill)
    return flows, events, dict(info), flag_counts, peak


def _spill(opts: Options) -> Spill:
    """Where the run's tables go: mapped files in the output folder (spill.py), or the heap."""
    return Spill(opts.out if opts.spill else None)


def prefetch(batches, depth: int = 2):
    """Iterate `batches` in a worker thread, `depth` items ahead. Errors are re-raised
    here, in the consumer; stopping early stops the worker."""
    import queue
    import threading

    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        items.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(("end", done))
        except BaseException as exc:  # handed to the consumer, which raises it
            items.put(("error", exc))

    worker = threading.Thread(target=work, name="capture-reader", daemon=True)
    worker.start()
    try:
        while True:
            tag, value = items.get()
            if tag == "item":
                yield value
            elif tag == "end":
                return
            else:
                raise value
    finally:
        stop.set()
        worker.join(timeout=5)


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


def read_logs(opts: Options, capture_first_ns: int | None) -> list:
    """Every --logs file through the log reader (format detected per file)."""
    from analyzer.logs import read_log
    year = None
    if capture_first_ns is not None:
        year = pd.Timestamp(capture_first_ns, unit="ns").year
    out = []
    for path in opts.logs:
        role = _lookup(opts.log_roles, path)
        out.append(read_log(path, role=role, year_hint=year))
    return out


def _lookup(mapping: dict, path: Path):
    """A per-file option given by file name or by path."""
    for key in (str(path), path.name):
        if key in mapping:
            return mapping[key]
    return None


def run(opts: Options, progress: Callable[[int, int], None] | None = None,
        stage: Callable[[str], None] | None = None) -> Result:
    """One session end to end. `progress(frames, bytes)` follows the capture's reading;
    `stage(text)` names each later step, for a status line."""
    with Pager():     # the mapped tables' pages are dropped as the stages read them
        return _run(opts, progress, stage)


def _run(opts: Options, progress, stage) -> Result:
    started = time.perf_counter()
    stage = stage or (lambda text: None)
    memory.tune()
    spill = _spill(opts)
    flows, events, info, flag_counts, peak = read_flows(opts, progress, spill)
    memory.release()
    # every warning names what it is about: the capture, or a log file
    warnings = [f"{opts.capture.name}: {w}" for w in info.get("warnings", [])]
    stage("reading logs")
    logfiles = read_logs(opts, info.get("first_ts_ns"))
    for log in logfiles:
        warnings += [w if w.startswith(f"{log.name}:") else f"{log.name}: {w}" for w in log.warnings]

    if opts.phones:
        phones = [phone_rules.normalise(p) for p in opts.phones]
        phone_how = {"addresses": phones, "how": "given with --phone"}
    else:
        phones, how = phone_rules.infer_phones(flows)
        if not phones and logfiles:
            phones, how = phone_rules.phones_from_logs(flows, [l.events for l in logfiles])
        phone_how = {"addresses": phones, "how": how}
        if not phones and len(flows):
            warnings.append(f"phone not identified ({how})")
    phone_rules.attribute(flows, events, phones, spill)
    memory.release()

    stage("aligning log clocks and matching lines to flows")
    logs, clocks = _align(opts, logfiles, flows, events, phones, info)
    memory.release()      # the matcher's flow and event indexes

    digits = tables.ts_digits(info.get("ts_resolution", "") or "")
    opts.out.mkdir(parents=True, exist_ok=True)
    stage("writing tables, finding background periods and judging the session")
    # The tables are written on the other core while the session is judged: the writers
    # spend their time in the compiled CSV kernel, without the GIL. Nothing below changes
    # the frames.
    writing = _write_tables(opts, flows, events, logs if logfiles else None, digits)
    from analyzer.correlate import lifecycle, signatures
    try:
        sigs = signatures.load_signatures(opts.signatures)
        periods = lifecycle.periods(flows, events, logs, phones, patterns=opts.lifecycle_patterns or None)
        memory.release()      # the period search's temporaries, before the verdict's
        verdicts = signatures.judge(flows, events, logs, periods, phones, sigs)
    except ValueError as exc:
        writing.result()      # the tables are finished (or their error raised) first
        raise AnalyzerError(str(exc)) from None
    written = writing.result()
    memory.release()
    if len(periods) > lifecycle.MANY_PERIODS:
        # keep every period, but only the first few pieces of evidence each
        for period in periods:
            period["evidence"] = period["evidence"][:lifecycle.TRIMMED_EVIDENCE]
        warnings.append(f"{len(periods)} background periods found; evidence trimmed to "
                        f"{lifecycle.TRIMMED_EVIDENCE} items each")
    summary = {
        "capture": capture_summary(info, flag_counts, opts.engine),
        "warnings": warnings,
        "phones": phone_how,
        "platform": verdicts["session"].get("platform"),
        "flows": {
            "total": int(len(flows)),
            "peak_live": int(peak),
            "by_teardown": _by_teardown(flows),
            "by_conn_state": {str(k): int(v) for k, v in frames.value_counts(flows["conn_state"]).items()},
        },
        "events": {str(k): int(v) for k, v in frames.value_counts(events["kind"]).items() if v},
        "logs": {l.name: {"format": l.format, "role": l.role, "events": int(len(l.events)),
                          "stats": l.stats} for l in logfiles},
        "clocks": clocks,
        "lifecycle": periods,
        "verdicts": verdicts,
        "seed_table": signatures.seed_table(flows, events, logs, phones, periods),
    }
    tables.write_summary(summary, opts.out / schema.SUMMARY_JSON)
    written.append(schema.SUMMARY_JSON)
    if opts.report:
        stage("drawing the timeline and the report")
        from analyzer.report import html, inputs
        listed = html.list_flows(flows), html.list_events(events)
        if not opts.keep_tables:
            flows, events = inputs.narrow(flows, events)
        memory.release()
        from analyzer.report import timeline    # matplotlib, once the tables are narrowed
        timeline.draw(flows, events, logs, periods, opts.out, phone_tz_s=_phone_zone(clocks))
        html.render(opts.out, summary, *listed, logs)
        written += ["timeline.png", "timeline.svg", "report.html"]
    return Result(flows, events, summary, opts.out, time.perf_counter() - started, logs, written)


WRITERS = 2     # tables written at once: flows.csv and events.csv side by side, on two cores


def _write_tables(opts: Options, flows, events, logs, digits: int) -> Writing:
    """flows/events (and logs, when there are log files) in each asked-for format, each file
    in a writer thread of its own (WRITERS at a time)."""
    from concurrent.futures import ThreadPoolExecutor
    jobs = []
    if "zeek" in opts.formats:
        from analyzer.report.zeek import write_conn_log
        jobs.append(("conn.log", write_conn_log, (flows, opts.out / "conn.log")))
    builders = [("flows", tables.flows_columns, flows), ("events", tables.events_columns, events)]
    if logs is not None:
        builders.append(("logs", tables.logs_columns, logs))
    for fmt in (f for f in opts.formats if f in ("csv", "parquet")):
        for name, columns_of, frame in builders:
            jobs.append((f"{name}.{fmt}", tables.write_table,
                         (frame, columns_of, digits, opts.out / f"{name}.{fmt}", fmt)))
    pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="table-writer")
    futures = [(name, pool.submit(func, *args)) for name, func, args in jobs]
    pool.shutdown(wait=False)
    return Writing(futures)


class Writing:
    """The table writers at work: result() waits for every file and returns their names,
    or raises the first error."""

    def __init__(self, futures):
        self.futures = futures

    def result(self) -> list[str]:
        errors = [f.exception() for _, f in self.futures]
        for error in errors:
            if error is not None:
                raise error
        return [name for name, _ in self.futures]


def _align(opts: Options, logfiles: list, flows, events, phones, info):
    """Logs on the capture's clock and on their flows (an empty table without logs)."""
    from analyzer.correlate.align import LOG_COLUMNS, align_logs
    if not logfiles:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LOG_COLUMNS}), {}
    # align_logs matches each override to its log by name or path
    return align_logs(logfiles, flows, events, phones, info.get("first_ts_ns"),
                      info.get("last_ts_ns"), opts.clock_offsets)


def _phone_zone(clocks: dict):
    """The app log's UTC offset in seconds, for the timeline's second axis."""
    for entry in clocks.values():
        if entry.get("role") == "app" and entry.get("zone_s") is not None:
            return entry["zone_s"]
    return None


def _by_teardown(flows: pd.DataFrame) -> dict:
    """{teardown: {sender: count}}: the table the command prints."""
    if flows.empty:
        return {}
    return {str(kind): {str(by): count for by, count in senders.items()}
            for kind, senders in frames.pair_counts(flows["teardown"], flows["teardown_by"]).items()}
