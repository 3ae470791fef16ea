"""`analyze batch`: a whole device farm's sessions at once, each session a Dask task.

    analyze batch DIR_OR_MANIFEST [--out DIR] [--scheduler ADDRESS] [--workers N]

A session is a folder holding a capture (*.pcap, *.pcapng, optionally .gz/.zst) with, beside
it, optional app.log, server.log, phone (the phone's address) and meta.json ({platform,
device_model, os_version}); or a row of a manifest CSV with columns capture, logs (several
separated by ';'), phone, platform, device_model, os_version (and optionally session, a name),
paths relative to the manifest.

Each task runs the ordinary pipeline into OUT/sessions/NAME (the same files `analyze` writes,
plus Parquet copies of the tables and a fingerprint) and hands back the session's small tables.
The batch then writes OUT/dataset/{flows,events,logs} (Parquet, hive-partitioned by session,
with session/platform/device_model/os_version columns) and the fleet summary
(OUT/fleet.json, OUT/fleet.html). A session whose inputs and analyzer version are unchanged
since its last analysis is not analysed again: its outputs are read back from its folder.

With --scheduler the tasks run on that cluster's workers, which read the captures and write
OUT/sessions/ themselves: SOURCE and OUT must be at the same paths on every worker (a shared
file system). Exit status: 0, 1 when any session failed (each named with its error), 2 when
SOURCE cannot be read.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

CAPTURE_RE = re.compile(r".*\.(pcap|pcapng|cap)(\.gz|\.zst)?$", re.IGNORECASE)
LOG_NAMES = ("app.log", "server.log")
TABLES = ("flows", "events", "logs")
FINGERPRINT = "batch.fingerprint.json"
META_COLUMNS = ("session", "platform", "device_model", "os_version")
# what counts as the phone tearing a socket down (refused / unanswered SYNs are reconnect
# outcomes, counted in the seed table, not teardowns of the sockets that were open)
TORN_DOWN = ("rst", "fin")


@dataclass
class Session:
    name: str
    capture: str
    logs: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    platform: str | None = None
    device_model: str | None = None
    os_version: str | None = None


# ----------------------------------------------------------------------------- discovery

def _unique(name: str, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "session"
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    taken.add(out)
    return out


def _phones(text: str | None) -> list[str]:
    return [p for p in re.split(r"[\s,;]+", text or "") if p]


def find_sessions(source: Path, out: Path | None = None) -> list[Session]:
    """Sessions under a directory, or the rows of a manifest CSV."""
    if source.is_file():
        return read_manifest(source)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such directory or manifest")
    skip = {out.resolve()} if out is not None else set()
    found, taken = [], set()
    for root, dirs, files in os.walk(source):
        rootp = Path(root)
        dirs[:] = sorted(d for d in dirs if (rootp / d).resolve() not in skip and d != "analysis"
                         and not d.startswith("."))
        captures = sorted(f for f in files if CAPTURE_RE.match(f))
        for cap in captures:
            rel = rootp.relative_to(source)
            base = str(rel).replace(os.sep, "_") if str(rel) != "." else source.name
            if len(captures) > 1:
                base = f"{base}_{cap.split('.')[0]}"
            meta = {}
            if (rootp / "meta.json").is_file():
                meta = json.loads((rootp / "meta.json").read_text())
            phone = (rootp / "phone").read_text() if (rootp / "phone").is_file() else ""
            found.append(Session(
                name=_unique(base, taken), capture=str(rootp / cap),
                logs=[str(rootp / n) for n in LOG_NAMES if (rootp / n).is_file()],
                phones=_phones(phone), platform=meta.get("platform"),
                device_model=meta.get("device_model"), os_version=meta.get("os_version")))
    return found


def read_manifest(path: Path) -> list[Session]:
    base = path.parent
    found, taken = [], set()
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            if not row.get("capture"):
                continue
            cap = base / row["capture"]
            logs = [str(base / p.strip()) for p in row.get("logs", "").split(";") if p.strip()]
            name = row.get("session") or (cap.parent.name if cap.parent != base else cap.name.split(".")[0])
            found.append(Session(name=_unique(name, taken), capture=str(cap), logs=logs,
                                 phones=_phones(row.get("phone")),
                                 platform=row.get("platform") or None,
                                 device_model=row.get("device_model") or None,
                                 os_version=row.get("os_version") or None))
    return found


# ----------------------------------------------------------------------------- fingerprint

def fingerprint(session: Session) -> dict:
    from analyzer import __version__
    files = []
    for p in [session.capture, *session.logs]:
        st = os.stat(p)
        with open(p, "rb") as fh:
            head = hashlib.sha1(fh.read(1 << 20)).hexdigest()
        files.append({"path": str(Path(p).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                      "sha1_first_mb": head})
    # platform/model/OS are labels added to the dataset at batch time: changing them in the
    # manifest does not call for a new analysis; the phone's address does
    return {"analyzer_version": __version__, "files": files, "phones": session.phones}


def _up_to_date(folder: Path, fp: dict) -> bool:
    try:
        old = json.loads((folder / FINGERPRINT).read_text())
    except (OSError, ValueError):
        return False
    return old == fp and (folder / "summary.json").is_file() and \
        all((folder / f"{t}.parquet").is_file() for t in ("flows", "events"))


# ----------------------------------------------------------------------------- one session

def teardown_delays(summary: dict, flows) -> list[dict]:
    """For every background period, each phone RST/FIN teardown from its start to its end (or the next
    period): seconds after the start. `flows` is the flows table as written (teardown_ts text)."""
    periods = sorted((p for p in summary.get("lifecycle") or [] if p.get("state") == "background"
                      and p.get("start_ns") is not None), key=lambda p: p["start_ns"])
    if not periods or flows is None or flows.num_rows == 0:
        return []
    cols = flows.to_pydict()
    out = []
    for i, period in enumerate(periods):
        start = int(period["start_ns"])
        end = period.get("end_ns")
        limit = int(end) if end is not None else None
        if i + 1 < len(periods):
            nxt = int(periods[i + 1]["start_ns"])
            limit = nxt if limit is None else min(limit, nxt)
        for fid, by, ts, kind in zip(cols["flow_id"], cols["teardown_by"], cols["teardown_ts"], cols["teardown"]):
            if by != "phone" or not ts or kind not in TORN_DOWN:
                continue
            ts_ns = int(Decimal(ts) * 1_000_000_000)
            if ts_ns >= start and (limit is None or ts_ns <= limit):
                out.append({"period": i, "flow_id": int(fid), "teardown": kind,
                            "delay_s": (ts_ns - start) / 1e9})
    return out


def _read_back(folder: Path) -> dict:
    import pyarrow.parquet as pq
    tabs = {}
    for t in TABLES:
        p = folder / f"{t}.parquet"
        tabs[t] = pq.read_table(p) if p.is_file() else None
    summary = json.loads((folder / "summary.json").read_text())
    return {"tables": tabs, "summary": summary}


def analyse_session(session: Session, out: str, force: bool = False) -> dict:
    """The Dask task: analyse one session into OUT/sessions/NAME (unless unchanged), return
    its small tables and summary digest. Never raises: a failure comes back as status error."""
    started, cpu = time.perf_counter(), time.thread_time()
    folder = Path(out) / "sessions" / session.name
    result = {"session": asdict(session), "folder": str(folder), "status": "ok", "error": None,
              "skipped": False, "seconds": 0.0, "tables": {}, "summary": None, "delays": []}
    try:
        fp = fingerprint(session)
        if not force and _up_to_date(folder, fp):
            result["skipped"] = True
        else:
            from analyzer import pipeline
            if folder.exists():
                shutil.rmtree(folder)
            (folder / FINGERPRINT).unlink(missing_ok=True)
            pipeline.run(pipeline.Options(capture=Path(session.capture), out=folder,
                                          phones=list(session.phones),
                                          logs=[Path(p) for p in session.logs],
                                          formats=("csv", "parquet"), report=True,
                                          keep_tables=False))
            (folder / FINGERPRINT).write_text(json.dumps(fp, indent=2) + "\n")
        back = _read_back(folder)
        result["tables"] = back["tables"]
        result["summary"] = _digest(back["summary"])
        result["delays"] = teardown_delays(back["summary"], back["tables"]["flows"])
    except Exception as exc:   # one bad session must not stop the rest
        result["status"] = "error"
        msg = " ".join(str(exc).split()) or type(exc).__name__
        result["error"] = f"{type(exc).__name__}: {msg}"[:400]
        result["trace"] = traceback.format_exc(limit=6)
        result["tables"] = {}
    result["seconds"] = time.perf_counter() - started
    result["cpu_seconds"] = time.thread_time() - cpu
    return result


def _digest(summary: dict) -> dict:
    session = (summary.get("verdicts") or {}).get("session") or {}
    return {"platform": summary.get("platform"),
            "behaviour": session.get("behaviour"), "confidence": session.get("confidence"),
            "caused_by_phone_lifecycle": session.get("caused_by_phone_lifecycle"),
            "seed_table": summary.get("seed_table") or {},
            "phones": (summary.get("phones") or {}).get("addresses") or [],
            "flows": (summary.get("flows") or {}).get("total"),
            "background_periods": sum(1 for p in summary.get("lifecycle") or [] if p.get("state") == "background"),
            "warnings": len(summary.get("warnings") or [])}


# ----------------------------------------------------------------------------- the batch

def _client(scheduler: str | None, workers: int | None, processes: bool):
    from dask.distributed import Client, LocalCluster
    if scheduler:
        return Client(scheduler), None
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                           dashboard_address=None)
    return Client(cluster), cluster


def run_batch(source: Path, out: Path, scheduler: str | None = None, workers: int | None = None,
              processes: bool = True, force: bool = False, progress: bool = True,
              client=None) -> dict:
    """Analyse every session under SOURCE; returns the fleet summary (also written)."""
    from dask.distributed import as_completed
    out.mkdir(parents=True, exist_ok=True)
    sessions = find_sessions(source, out)
    own = client is None
    cluster = None
    if own:
        client, cluster = _client(scheduler, workers, processes)
    results = []
    t0 = time.perf_counter()
    try:
        futures = {client.submit(analyse_session, s, str(out), force, key=f"analyse-{s.name}-{time.time_ns()}",
                                 pure=False): s for s in sessions}
        bar = _progress(len(futures)) if progress else None
        try:
            for fut in as_completed(futures):
                s = futures[fut]
                try:
                    res = fut.result()
                except Exception as exc:   # the worker itself died
                    res = {"session": asdict(s), "folder": str(out / "sessions" / s.name), "status": "error",
                           "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:400],
                           "skipped": False, "seconds": 0.0, "tables": {}, "summary": None, "delays": []}
                results.append(res)
                if bar is not None:
                    bar[0].update(bar[1], advance=1, description=_bar_text(results))
        finally:
            if bar is not None:
                bar[0].stop()
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
    elapsed = time.perf_counter() - t0
    results.sort(key=lambda r: r["session"]["name"])
    write_dataset(results, out / "dataset")
    from analyzer.report import fleet
    summary = fleet.fleet_summary(results, out, elapsed)
    fleet.write(summary, results, out)
    return summary


def _bar_text(results: list[dict]) -> str:
    bad = sum(r["status"] != "ok" for r in results)
    skipped = sum(bool(r["skipped"]) for r in results)
    return f"sessions ({skipped} unchanged, {bad} failed)"


def _progress(total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   transient=False)
    task = bar.add_task("sessions", total=total)
    bar.start()
    return bar, task


def write_dataset(results: list[dict], root: Path) -> dict:
    """OUT/dataset/{flows,events,logs}/session=NAME/part-0.parquet (hive partitioning: the
    session column lives in the folder name), one schema per table kind across sessions."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    counts = {}
    for name in TABLES:
        parts = []
        for r in results:
            tab = (r.get("tables") or {}).get(name)
            if r["status"] != "ok" or tab is None:
                continue
            s, dig = r["session"], r.get("summary") or {}
            meta = {"platform": s.get("platform") or dig.get("platform"),
                    "device_model": s.get("device_model"), "os_version": s.get("os_version")}
            for col, value in meta.items():
                if col in tab.column_names:
                    tab = tab.drop_columns([col])
                tab = tab.append_column(col, pa.array([value] * tab.num_rows, pa.string()))
            parts.append((s["name"], tab))
        target = root / name
        if target.exists():
            shutil.rmtree(target)
        counts[name] = 0
        if not parts:
            continue
        schema = pa.unify_schemas([t.schema for _, t in parts], promote_options="permissive")
        for session, tab in parts:
            cols = [tab.column(f.name).cast(f.type) if f.name in tab.column_names
                    else pa.nulls(tab.num_rows, f.type) for f in schema]
            folder = target / f"session={session}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_arrays(cols, schema=schema), str(folder / "part-0.parquet"))
            counts[name] += tab.num_rows
    return counts


def batch_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="analyze batch",
                                description="Analyse every session under a directory (or in a manifest CSV) "
                                            "as Dask tasks; write a Parquet dataset and a fleet summary.")
    p.add_argument("source", help="a directory of session folders, or a manifest CSV "
                                  "(capture, logs, phone, platform, device_model, os_version)")
    p.add_argument("--out", help="output folder (default: SOURCE/batch, or batch/ beside the manifest)")
    p.add_argument("--scheduler", help="address of an existing Dask scheduler (default: a local cluster)")
    p.add_argument("--workers", type=int, help="local cluster workers (default: all cores)")
    p.add_argument("--threads", action="store_true",
                   help="local cluster workers as threads in this process instead of processes")
    p.add_argument("--force", action="store_true", help="analyse every session again, changed or not")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    source = Path(args.source)
    out = Path(args.out) if args.out else (source / "batch" if source.is_dir() else source.parent / "batch")
    try:
        summary = run_batch(source, out, scheduler=args.scheduler, workers=args.workers,
                            processes=not args.threads, force=args.force, progress=not args.no_progress)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"analyze batch: {exc}", file=sys.stderr)
        return 2
    c = summary["counts"]
    print(f"{c['sessions']} sessions: {c['analysed']} analysed, {c['skipped']} unchanged, "
          f"{c['failed']} failed in {summary['seconds']:.1f} s")
    for s in summary["sessions"]:
        if s["status"] != "ok":
            print(f"  FAILED {s['session']}: {s['error']}")
    print(f"wrote {out / 'fleet.html'}, {out / 'fleet.json'} and {out / 'dataset'}")
    return 1 if c["failed"] else 0
