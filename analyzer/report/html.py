"""report.html: the whole session on one self-contained page.

No network access is needed to view it: the CSS is inline and the timeline is inline SVG (or
a PNG data URI when the SVG is too large). Every value that comes from the capture or the
logs is escaped. Large tables are cut with a note saying how much is left out and where the
full table is (the CSV beside the page).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from analyzer.logs.errors import ERRNO_TABLE
from analyzer.schema import SUMMARY_JSON
from analyzer.report.tables import summary_json

MAX_FLOWS = 500
MAX_EVENTS = 2000
MAX_LOGS = 2000
MAX_PERIODS = 500       # a soak test finds thousands; summary.json keeps them all
MAX_INLINE_SVG = 3 * 1024 * 1024
KIND_TITLES = {"udp": "UDP", "tcp_client": "TCP client", "tcp_server": "TCP server"}
_EXTRA_MEANING = {"EOF": "peer closed (end of file)", "DEADLINE": "the app's own timeout fired",
                  "CLOSED": "closed locally"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2329;background:#f6f7f9}
main{max-width:1500px;margin:0 auto;padding:18px 26px 60px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d5d9de;padding-bottom:4px}
.meta{color:#56606b;font-size:13px}
.card{background:#fff;border:1px solid #dde1e5;border-radius:6px;padding:14px 18px;margin:10px 0}
.verdict h3{margin:0 0 6px;font-size:19px}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600;margin-right:6px}
.phone{background:#fde2e1;color:#9b1c1c}.notphone{background:#e1f3e6;color:#1f6b35}.maybe{background:#eceff3;color:#444}
.conf{background:#e6eefb;color:#1c4597}
table{border-collapse:collapse;width:100%;font-size:12.5px;background:#fff}
th,td{border:1px solid #e1e4e8;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#eef1f4;position:sticky;top:0;z-index:1}
tr:nth-child(even) td{background:#fafbfc}
.scroll{max-height:560px;overflow:auto;border:1px solid #dde1e5}
td code{white-space:nowrap}td code.wrap{white-space:normal}
code,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
.note{color:#6a737d;font-size:12.5px;margin:4px 0}
.warn{background:#fff8e1;border:1px solid #f2d27a;border-radius:5px;padding:6px 10px;margin:6px 0}
.held{color:#1f7a39}.nothold{color:#9aa1a9}
.seed td.cell{font-weight:600}.seed .sub{font-weight:400;color:#6a737d;font-size:11.5px}
.timeline svg,.timeline img{width:100%;height:auto;background:#fff}
ul{margin:4px 0 4px 20px;padding:0}
.kind-rst{color:#c62828;font-weight:600}.kind-fin{color:#1f5fa8;font-weight:600}.kind-refused{color:#7b3fb0;font-weight:600}
.kind-syn_unanswered,.kind-udp_unanswered{font-weight:600}
"""


def esc(value) -> str:
    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return ""
    return html.escape(str(value), quote=True)


def utc(ts_ns, with_date: bool = False) -> str:
    if ts_ns is None or pd.isna(ts_ns):
        return ""
    ts_ns = int(ts_ns)
    when = dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=dt.timezone.utc)
    text = when.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
    return f"{text}.{ts_ns % 1_000_000_000:09d}"


def frame_filter(frame) -> str:
    return f"frame.number == {int(frame)}"


def errno_text(name) -> str:
    if not name:
        return "nothing"
    row = ERRNO_TABLE.get(str(name))
    meaning = row[2][0] if row else _EXTRA_MEANING.get(str(name), "")
    return f"{name} ({meaning})" if meaning else str(name)


# --------------------------------------------------------------------------- sections


def _header(summary: dict) -> str:
    cap = summary.get("capture", {}) or {}
    phones = summary.get("phones", {}) or {}
    first, last = cap.get("first_ts"), cap.get("last_ts")
    span = f"{utc(int(first * 1e9), True)} … {utc(int(last * 1e9))} UTC" if first and last else ""
    parts = [
        f"<h1>Socket teardown report: {esc(Path(str(cap.get('file', 'capture'))).name)}</h1>",
        f"<div class='meta'>{esc(cap.get('format', ''))} · {esc(cap.get('packets', '?'))} frames"
        f" · {esc((summary.get('flows') or {}).get('total', '?'))} flows · {esc(span)}<br>"
        f"phone: <b>{esc(', '.join(phones.get('addresses', []) or []) or 'unknown')}</b>"
        f" ({esc(phones.get('how', ''))})"
        + (f" · platform: <b>{esc(summary.get('platform'))}</b>" if summary.get("platform") else "")
        + "</div>",
    ]
    for warning in summary.get("warnings", []) or []:
        parts.append(f"<div class='warn'>⚠ {esc(warning)}</div>")
    return "\n".join(parts)


def _evidence_item(item: dict) -> str:
    if item.get("type") == "frame":
        return (f"<li>frame <b>{esc(item['frame'])}</b> <code>{esc(item.get('filter') or frame_filter(item['frame']))}</code>"
                f" — {esc(item.get('kind'))} from the {esc(item.get('sender'))}, flow #{esc(item.get('flow_id'))}"
                f", {esc(utc(item.get('ts_ns')))} UTC</li>")
    when = utc(item.get("ts_ns")) or esc(item.get("raw_time"))
    who = f"{esc(item.get('role'))} " if item.get("role") else ""
    return (f"<li>{who}log <span class='mono'>{esc(item.get('source'))}</span> {esc(when)}: "
            f"<span class='mono'>{esc(item.get('message'))}</span></li>")


def _verdict(summary: dict) -> str:
    verdicts = summary.get("verdicts") or {}
    session = verdicts.get("session")
    if not session:
        return "<h2>Verdict</h2><div class='card'>No verdict was made for this session.</div>"
    caused = session.get("caused_by_phone_lifecycle")
    badge = ("<span class='badge phone'>caused by the phone's app lifecycle</span>" if caused
             else "<span class='badge notphone'>not caused by the phone's lifecycle</span>"
             if caused is False else "<span class='badge maybe'>cause undecided</span>")
    conf = session.get("confidence")
    out = ["<h2>Verdict</h2><div class='card verdict'>",
           f"<h3>{esc(session.get('title') or session.get('behaviour'))} "
           f"<span class='mono'>({esc(session.get('behaviour'))})</span></h3>",
           badge + (f"<span class='badge conf'>confidence {float(conf):.2f}</span>" if conf is not None else ""),
           f"<p>{esc(session.get('description'))}</p>" if session.get("description") else ""]
    if session.get("lifecycle_basis"):
        out.append(f"<p class='note'>Background periods from: {esc(', '.join(session['lifecycle_basis']))}</p>")
    if session.get("remedy"):
        out.append("<b>What to change in the app</b><ul>"
                   + "".join(f"<li>{esc(r)}</li>" for r in session["remedy"]) + "</ul>")
    if session.get("references"):
        out.append("<b>References</b><ul>" + "".join(f"<li>{esc(r)}</li>" for r in session["references"]) + "</ul>")
    if session.get("cues"):
        rows = "".join(
            f"<tr><td class='{'held' if c.get('held') else 'nothold'}'>{'✓' if c.get('held') else '✗'}</td>"
            f"<td>{esc(c.get('why'))}</td><td class='mono'>{esc(c.get('feature'))}</td>"
            f"<td>{esc(c.get('weight'))}{' (required)' if c.get('required') else ''}</td></tr>"
            for c in session["cues"])
        out.append("<details><summary>Cues weighed</summary><table><tr><th></th><th>cue</th>"
                   f"<th>feature</th><th>weight</th></tr>{rows}</table></details>")
    if session.get("scores"):
        out.append("<p class='note'>Scores: " + esc(", ".join(f"{k} {v:.2f}" for k, v in session["scores"].items()))
                   + "</p>")
    evidence = session.get("evidence") or []
    if evidence:
        out.append("<b>Evidence</b><ul>" + "".join(_evidence_item(e) for e in evidence) + "</ul>")
    out.append("</div>")
    return "\n".join(out)


def platform_table(summaries: list[dict]) -> str:
    """The field report's table (socket × side), one column per session/platform."""
    columns = []
    for s in summaries:
        session = (s.get("verdicts") or {}).get("session") or {}
        phones = ", ".join((s.get("phones") or {}).get("addresses", []) or [])
        name = s.get("platform") or session.get("platform") or "session"
        columns.append((f"{name} · {phones}" if phones else str(name), s.get("seed_table") or {}))
    kinds = [k for k in KIND_TITLES if any(k in table for _, table in columns)]
    if not kinds:
        return "<p class='note'>No socket of the field report's three kinds in this session.</p>"
    head = "".join(f"<th>{esc(name)}</th>" for name, _ in columns)
    rows = []
    for kind in kinds:
        for i, (side, key) in enumerate((("app", "app_error"), ("server", "server_error"),
                                         ("reconnect", "reconnect"))):
            cells = []
            for _, table in columns:
                entry = table.get(kind)
                if entry is None:
                    cells.append("<td class='cell'>—</td>")
                    continue
                value = entry.get(key)
                text = (value or "n/a") if key == "reconnect" else errno_text(value)
                basis = (entry.get("basis") or {}).get(key)
                sub = {"capture": "inferred from the capture", "log": "from the logs" if value else "no error logged",
                       "none": "no log of this side" if key != "reconnect" else "no attempt seen"}.get(basis, "")
                cells.append(f"<td class='cell'>{esc(text)}<div class='sub'>{esc(sub)}</div></td>")
            label = f"<td rowspan='3'><b>{esc(KIND_TITLES[kind])}</b></td>" if i == 0 else ""
            rows.append(f"<tr>{label}<td>{esc(side)}</td>{''.join(cells)}</tr>")
    return (f"<table class='seed'><tr><th>socket</th><th>side</th>{head}</tr>{''.join(rows)}</table>")


def _lifecycle(summary: dict) -> str:
    periods = summary.get("lifecycle") or []
    if not periods:
        return "<p class='note'>No background period found (no lifecycle lines in the logs, no teardown burst from the phone).</p>"
    rows = []
    for p in periods[:MAX_PERIODS]:
        end = utc(p.get("end_ns")) if p.get("end_ns") is not None else "still away at the end"
        ev = "<ul>" + "".join(_evidence_item(e) for e in (p.get("evidence") or [])[:8]) + "</ul>"
        rows.append(f"<tr><td>{esc(p.get('state'))}</td><td>{esc(utc(p.get('start_ns')))}</td>"
                    f"<td>{esc(end)}</td><td>{esc(p.get('basis'))}</td><td>{ev}</td></tr>")
    note = _cut_note(MAX_PERIODS, len(periods), "periods", f"all of them are in {SUMMARY_JSON}")
    return (f"{note}<table><tr><th>state</th><th>from (UTC)</th><th>to (UTC)</th><th>basis</th>"
            f"<th>evidence</th></tr>{''.join(rows)}</table>")


def _timeline(out_dir: Path) -> str:
    svg = out_dir / "timeline.svg"
    png = out_dir / "timeline.png"
    if svg.is_file() and svg.stat().st_size <= MAX_INLINE_SVG:
        text = svg.read_text("utf-8")
        start = text.find("<svg")
        return f"<div class='timeline'>{text[start:]}</div>" if start >= 0 else ""
    if png.is_file():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        return f"<div class='timeline'><img alt='timeline' src='data:image/png;base64,{data}'></div>"
    return "<p class='note'>No timeline was drawn.</p>"


def _cut_note(limit: int, total: int, what: str, where: str) -> str:
    """The note over a list the page cut to its first `limit` items, saying where the rest
    are; nothing when it is whole."""
    if total <= limit:
        return ""
    return f"<p class='note'>Showing the first {limit:,} of {total:,} {esc(what)}; {esc(where)}.</p>"


def _table(frame: pd.DataFrame, columns: list[tuple[str, callable]], limit: int, what: str,
           csv_name: str, total: int | None = None) -> str:
    """The first `limit` rows of frame; `total` when the frame was already cut to them."""
    total = len(frame) if total is None else total
    if total == 0:
        return f"<p class='note'>No {esc(what)}.</p>"
    shown = frame.head(limit)
    head = "".join(f"<th>{esc(title)}</th>" for title, _ in columns)
    body = []
    for row in shown.to_dict("records"):
        body.append("<tr>" + "".join(f"<td>{fn(row)}</td>" for _, fn in columns) + "</tr>")
    note = _cut_note(limit, total, what, f"the full table is in {csv_name}")
    return f"{note}<div class='scroll'><table><tr>{head}</tr>{''.join(body)}</table></div>"


class Listing(NamedTuple):
    """The rows of a table the page lists, in the page's order, and the table's length:
    all the page needs of a table that may be millions of rows long."""
    rows: pd.DataFrame
    total: int


def list_flows(flows: pd.DataFrame | None) -> Listing:
    flows = pd.DataFrame() if flows is None else flows
    return Listing(_first_rows(flows, ["first_ts_ns"], MAX_FLOWS), len(flows))


def list_events(events: pd.DataFrame | None) -> Listing:
    events = pd.DataFrame() if events is None else events
    return Listing(_first_rows(events, ["ts_ns", "frame"], MAX_EVENTS), len(events))


def _flows(flows: Listing, verdicts: dict) -> str:
    behaviour = {v["flow_id"]: v for v in (verdicts.get("flows") or [])}

    def flt(r):
        proto = str(r["proto"]).lower()
        port = "tcp.port" if proto == "tcp" else "udp.port"
        addr = "ipv6.addr" if int(r.get("ip_version", 4) or 4) == 6 else "ip.addr"
        text = (f"{addr}=={r['initiator_ip']} && {addr}=={r['responder_ip']} && "
                f"{port}=={r['initiator_port']} && {port}=={r['responder_port']}")
        return f"<code class='wrap'>{esc(text)}</code>"

    def verdict(r):
        v = behaviour.get(int(r["flow_id"]))
        return f"{esc(v['behaviour'])} ({v['confidence']:.2f})" if v else ""

    cols = [("flow", lambda r: esc(r["flow_id"])), ("proto", lambda r: esc(r["proto"])),
            ("initiator", lambda r: esc(f"{r['initiator_ip']}:{r['initiator_port']}")),
            ("responder", lambda r: esc(f"{r['responder_ip']}:{r['responder_port']}")),
            ("phone is", lambda r: esc(r.get("phone_role"))),
            ("first (UTC)", lambda r: esc(utc(r["first_ts_ns"]))), ("last (UTC)", lambda r: esc(utc(r["last_ts_ns"]))),
            ("frames", lambda r: esc(f"{r['first_frame']}–{r['last_frame']}")),
            ("pkts i→r / r→i", lambda r: esc(f"{r['packets_i2r']} / {r['packets_r2i']}")),
            ("state", lambda r: esc(f"{r['conn_state']} {r['history']}")),
            ("teardown", lambda r: f"<span class='kind-{esc(r['teardown'])}'>{esc(r['teardown'])}</span>"
                                   f" by {esc(r.get('teardown_by'))}"
                                   + (f" @ frame {esc(r['teardown_frame'])}" if str(r['teardown']) != 'open' else "")),
            ("verdict", verdict), ("Wireshark filter", flt)]
    return _table(flows.rows, cols, MAX_FLOWS, "flows", "flows.csv", total=flows.total)


def _events(events: Listing) -> str:
    cols = [("time (UTC)", lambda r: esc(utc(r["ts_ns"]))), ("frame", lambda r: esc(r["frame"])),
            ("Wireshark filter", lambda r: f"<code>{esc(frame_filter(r['frame']))}</code>"),
            ("flow", lambda r: esc(r["flow_id"])),
            ("event", lambda r: f"<span class='kind-{esc(r['kind'])}'>{esc(r['kind'])}</span>"),
            ("sent by", lambda r: esc(r.get("sender"))),
            ("from", lambda r: esc(f"{r['src_ip']}:{_port(r['src_port'])}")),
            ("to", lambda r: esc(f"{r['dst_ip']}:{_port(r['dst_port'])}")),
            ("detail", lambda r: esc(r.get("detail")))]
    return _table(events.rows, cols, MAX_EVENTS, "events", "events.csv", total=events.total)


LIST_CHUNK = 65536     # rows ranked per step when listing the first rows of a table


def _first_rows(frame: pd.DataFrame, by: list[str], limit: int) -> pd.DataFrame:
    """The first `limit` rows in (stable) order of `by`, without sorting a copy of the whole
    table: a chunk at a time, each ranked together with the rows kept so far. Those come
    first and in order, so ties still go to the earlier row."""
    if not len(frame):
        return frame
    keep = np.empty(0, dtype=np.int64)
    for start in range(0, len(frame), LIST_CHUNK):
        rows = np.concatenate([keep, np.arange(start, min(start + LIST_CHUNK, len(frame)))])
        order = np.lexsort([frame[c].iloc[rows].to_numpy() for c in reversed(by)])
        keep = rows[order[:limit]]
    return frame.iloc[keep]


def _port(value) -> str:
    return "" if value is None or pd.isna(value) else str(int(value))


def _logs(logs: pd.DataFrame | None) -> str:
    if logs is None or len(logs) == 0:
        return "<p class='note'>No log lines (capture-only analysis).</p>"
    frame = logs.copy()
    # When cut, keep what explains the teardown: errors and lifecycle lines before chatter.
    telling = frame["errno"].notna() if "errno" in frame else pd.Series(False, index=frame.index)
    if "lifecycle" in frame:
        telling |= frame["lifecycle"].notna()
    if len(frame) > MAX_LOGS:
        keep = pd.concat([frame[telling], frame[~telling]]).head(MAX_LOGS)
        frame = keep
    if "ts_ns" in frame:
        frame = frame.assign(_t=frame["ts_ns"].astype("float64")).sort_values("_t", kind="stable", na_position="last")
    get = lambda r, k: r.get(k)  # noqa: E731
    cols = [("time (UTC, aligned)", lambda r: esc(utc(get(r, "ts_ns"))) or "<span class='note'>not aligned</span>"),
            ("raw time", lambda r: esc(get(r, "raw_time"))), ("log", lambda r: esc(get(r, "source"))),
            ("role", lambda r: esc(get(r, "role"))), ("errno", lambda r: f"<b>{esc(get(r, 'errno'))}</b>"),
            ("op", lambda r: esc(get(r, "op"))), ("flow", lambda r: esc(get(r, "flow_id"))),
            ("lifecycle", lambda r: esc(get(r, "lifecycle"))),
            ("message", lambda r: f"<span class='mono'>{esc(get(r, 'message'))}</span>")]
    note = ""
    if len(logs) > MAX_LOGS:
        note = (f"<p class='note'>Showing {MAX_LOGS:,} of {len(logs):,} log lines (errors and lifecycle "
                "lines first); the full table is in logs.csv.</p>")
    return note + _table(frame, cols, MAX_LOGS, "log lines", "logs.csv")


# --------------------------------------------------------------------------- the page


def page(out_dir, summary: dict, flows: pd.DataFrame | Listing | None,
         events: pd.DataFrame | Listing | None, logs: pd.DataFrame | None) -> str:
    """The page's text. flows and events are the tables, or their listings taken earlier
    (the pipeline takes them before it lets the tables' wide columns go)."""
    out_dir = Path(out_dir)
    flows = flows if isinstance(flows, Listing) else list_flows(flows)
    events = events if isinstance(events, Listing) else list_events(events)
    verdicts = summary.get("verdicts") or {}
    title = Path(str((summary.get("capture") or {}).get("file", "session"))).name
    body = [
        _header(summary),
        _verdict(summary),
        "<h2>Per-platform table</h2><div class='card'>"
        "<p class='note'>What each socket kind suffered, as in the field report: the first error "
        "the app and the server logged, and what the next connect after the teardown got.</p>"
        + platform_table([summary]) + "</div>",
        "<h2>Background periods</h2><div class='card'>" + _lifecycle(summary) + "</div>",
        "<h2>Timeline</h2>" + _timeline(out_dir),
        f"<h2>Flows ({flows.total:,})</h2>" + _flows(flows, verdicts),
        f"<h2>Events ({events.total:,})</h2>" + _events(events),
        f"<h2>Log lines ({0 if logs is None else len(logs):,})</h2>" + _logs(logs),
        "<h2>summary.json</h2><details><summary>show</summary><pre class='mono'>"
        + esc(_summary_text(summary)) + "</pre></details>",
    ]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)} — socket teardown report</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")


def render(out_dir, summary: dict, flows: pd.DataFrame | Listing | None,
           events: pd.DataFrame | Listing | None, logs: pd.DataFrame | None = None) -> Path:
    """Write out_dir/report.html and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    path.write_text(page(out_dir, summary, flows, events, logs), encoding="utf-8")
    return path


def _summary_text(summary: dict, limit: int = 200_000) -> str:
    """summary.json as the page shows it (indented when small, as the file is), cut at
    `limit` characters."""
    try:
        # numpy scalars go through summary_json's own conversion: walking the summary first
        # took 0.15 s with a long capture's hundreds of periods
        text = summary_json(summary, indent=1)
    except TypeError:       # something json takes only once converted (a numpy key)
        text = summary_json(_jsonable(summary), indent=1)
    return text[:limit]


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value

