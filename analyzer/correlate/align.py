"""Every log file on the capture's clock, every log event on its flow: ``align_logs``.

Per file: fill the year a logcat line lacks from the capture, take the zone a line states
(or Go's UTC stamp inside an os_log line), estimate the rest from anchor pairs
(``clock.fit``), or use the user's ``--clock-offset``; then tie each event to a flow
(``match.match_flows``). The result is the ``logs.csv`` table of DESIGN.md section 4 (times as
int64 POSIX ns in ``ts_ns``) and the ``clocks`` entry of ``summary.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analyzer.correlate import clock, match
from analyzer.logs.reader import LogFile

NAT = np.iinfo(np.int64).min
LOG_COLUMNS = ("ts_ns", "raw_time", "source", "role", "format", "level", "message", "errno",
               "op", "proto", "local_ip", "local_port", "remote_ip", "remote_port", "flow_id",
               "match")
_ENDPOINT_COLUMNS = ("local_ip", "local_port", "remote_ip", "remote_port", "op", "proto")
_MAX_SLACK_S = 5.0  # beyond this the clock cannot choose between flows anyway


def align_logs(logfiles: list[LogFile], flows: pd.DataFrame, events: pd.DataFrame,
               phones: list[str], capture_first_ns: int | None, capture_last_ns: int | None,
               overrides: dict[str, float] | None = None) -> tuple[pd.DataFrame, dict]:
    """Returns (logs, clocks). ``logs`` has the columns ``LOG_COLUMNS``, one row per log event
    of every file, in time order; ``clocks`` = {file name: {offset_s, uncertainty_s, method,
    anchors: [{line_no, frame, kind, flow_id, residual_s}], zone_s, format, role, note}}.
    ``offset_s`` is added to the log's own (local, as written) time; ``overrides`` maps a
    file name or path to such an offset and wins over the estimate."""
    fi = match.FlowIndex(flows, phones)
    ei = match.EventIndex(events, fi)
    parts, clocks = [], {}
    for order, log in enumerate(logfiles):
        key = _unique_name(log, clocks)
        table, info = _align_one(log, fi, ei, capture_first_ns, capture_last_ns,
                                 _override(overrides, log))
        table["_file"] = order
        parts.append(table)
        clocks[key] = info
    if not parts:
        return _empty(), clocks
    logs = pd.concat(parts, ignore_index=True)
    # untimed lines (raw, unparsed) keep their place after the line before them
    sort_t = logs["ts_ns"].astype("Float64").groupby(logs["_file"]).ffill().fillna(-np.inf)
    logs = logs.assign(_t=sort_t.astype(float)).sort_values(
        ["_t", "_file", "_line"], kind="stable").reset_index(drop=True)
    # the lifecycle label rides along for the lifecycle stage (logs.csv leaves it out)
    return logs[list(LOG_COLUMNS) + ["lifecycle"]], clocks


def _align_one(log: LogFile, fi: match.FlowIndex, ei: match.EventIndex,
               first_ns: int | None, last_ns: int | None,
               override: float | None) -> tuple[pd.DataFrame, dict]:
    ev = log.events.reset_index(drop=True)
    local = _fill_year(ev, first_ns)
    row_zone, zone = _zones(ev, local)
    base_zone = np.where(np.isnan(row_zone), 0.0 if zone is None else zone, row_zone)
    base = np.where(local == NAT, NAT, local - np.round(base_zone * 1e9).astype(np.int64))
    res = ev["time_resolution_s"].to_numpy(float)
    res = np.where(np.isnan(res), 1.0, res)
    timed = base != NAT
    file_res = float(np.median(res[timed])) if timed.any() else 1.0
    facts = match.line_facts(ev)
    shift = 0.0 if zone is None else zone  # base = local time - shift for the file's rows

    if override is not None:
        fit = clock.fixed(override + shift, zone, f"given: --clock-offset {log.name}={override:g}")
    else:
        anchors = match.anchor_candidates(facts, base, res, log.role, fi, ei)
        fit = clock.fit(anchors, zone, file_res)
    o_ns = int(round(fit.offset_s * 1e9))
    ts = np.where(timed, base + o_ns, NAT)

    anchored = {}
    used = fit.anchors
    if len(used):
        for pos, fid, kind, frame in zip(used["line"], used["flow_id"], used["kind"], used["frame"]):
            anchored[int(pos)] = (int(fid), str(kind), int(frame))
    slack = np.minimum(res + fit.uncertainty_s, _MAX_SLACK_S)
    flow_ids, hows = match.match_flows(facts, ts, slack, log.role, fi, anchored)
    if fit.uncertainty_s > clock.FALLBACK_SKEW_S and override is None:
        # the time that chose among flows is only as good as the clock
        hows = [f"{h} [clock not anchored]" if "time" in h.split(" ")[0] else h for h in hows]

    table = pd.DataFrame({
        "ts_ns": pd.array([None if t == NAT else int(t) for t in ts], dtype="Int64"),
        "raw_time": ev["raw_time"], "source": log.name,
        "role": log.role, "format": ev["format"], "level": ev["level"],
        "message": ev["message"], "errno": ev["errno"],
        "flow_id": pd.array(flow_ids, dtype="Int64"),
        "match": pd.array(hows, dtype="string"), "_line": ev["line_no"].to_numpy(np.int64),
        "lifecycle": ev["lifecycle"] if "lifecycle" in ev else pd.Series(pd.NA, index=ev.index, dtype="string"),
    })
    for col in _ENDPOINT_COLUMNS:  # the reader's fields, filled from success phrases it skips
        mine = facts[col]
        theirs = ev[col]
        if col.endswith("_port"):
            table[col] = theirs.astype("Int64").fillna(pd.Series(list(mine), dtype="Int64"))
        else:
            table[col] = theirs.astype("string").fillna(pd.Series(list(mine), dtype="string"))
    return table, _clock_entry(log, fit, shift, ev, ts, first_ns, last_ns)


def _clock_entry(log: LogFile, fit: clock.ClockFit, shift: float, ev: pd.DataFrame,
                 ts: np.ndarray, first_ns: int | None, last_ns: int | None) -> dict:
    anchors = []
    for _, a in fit.anchors.iterrows():
        anchors.append({"line_no": int(ev["line_no"].iat[int(a["line"])]), "frame": int(a["frame"]),
                        "kind": str(a["kind"]), "flow_id": int(a["flow_id"]),
                        "residual_s": round(float(a["residual_s"]), 6)})
    note = fit.note
    timed = ts[ts != NAT]
    if len(timed) and first_ns is not None and last_ns is not None:
        # a truncated stamp lies up to one resolution step before the moment it names
        res_ns = int(np.nanmax(ev["time_resolution_s"].to_numpy(float), initial=0) * 1e9)
        res_ns += int(match.LATENCY_S * 1e9)  # and a sent packet reaches the capture later
        outside = int(((timed + res_ns < first_ns) | (timed > last_ns)).sum())
        if outside:
            note += f"; {outside} of {len(timed)} timed lines fall outside the capture"
    elif not len(timed):
        note += "; no line carries a wall-clock time"
    return {"offset_s": round(fit.offset_s - shift, 6), "uncertainty_s": round(fit.uncertainty_s, 6),
            "method": fit.method, "anchors": anchors,
            "zone_s": None if fit.zone_s is None else float(fit.zone_s),
            "format": log.format, "role": log.role, "note": note}


# ------------------------------------------------------------------ times
def _fill_year(ev: pd.DataFrame, first_ns: int | None) -> np.ndarray:
    """Local wall times (ns); lines that state no year get the capture's, or the one next to it
    when the log starts across New Year from the capture."""
    local = ev["local_time"].to_numpy("datetime64[ns]").view(np.int64).copy()
    guess = (~ev["year_known"].to_numpy(bool)) & (local != NAT)
    if first_ns is None or not guess.any():
        return local
    t = pd.to_datetime(pd.Series(local[guess]))
    cap_year = pd.Timestamp(first_ns).year
    first = t.iloc[0]

    def distance(year: int) -> float:
        moved = _with_year(first, year)
        return np.inf if moved is pd.NaT else abs(moved.value - first_ns)

    best = min((cap_year - 1, cap_year, cap_year + 1), key=distance)
    delta = best - first.year
    parts = pd.DataFrame({"year": t.dt.year + delta, "month": t.dt.month, "day": t.dt.day})
    day = pd.to_datetime(parts, errors="coerce")  # 02-29 in a common year: no such day
    moved = (day + (t - t.dt.normalize())).to_numpy("datetime64[ns]").view(np.int64)
    local[np.flatnonzero(guess)] = moved
    return local


def _with_year(ts: pd.Timestamp, year: int):
    try:
        return ts.replace(year=year)
    except ValueError:
        return pd.NaT


def _zones(ev: pd.DataFrame, local: np.ndarray) -> tuple[np.ndarray, float | None]:
    """Per-row UTC offset (s) where the line states it (NaN elsewhere), and the file's zone:
    the one its lines state, None when none does. Go's UTC stamp inside an os_log line gives
    the zone to the quarter hour; the os_log stamp itself gives the precise time."""
    stated = ev["utc_offset_s"].to_numpy(float).copy()
    inner = ev["inner_utc_time"].to_numpy("datetime64[ns]").view(np.int64)
    use_inner = np.isnan(stated) & (inner != NAT) & (local != NAT)
    if use_inner.any():
        diff = (local[use_inner] - inner[use_inner]) / 1e9
        stated[use_inner] = np.round(diff / 900.0) * 900.0
    known = stated[~np.isnan(stated)]
    if not len(known):
        return stated, None
    values, counts = np.unique(known, return_counts=True)
    # an Xcode file's plain Go lines are UTC; the os_log lines carry the device's zone
    nonzero = values != 0
    pick = values[nonzero][np.argmax(counts[nonzero])] if nonzero.any() else 0.0
    return stated, float(pick)


# ------------------------------------------------------------------ helpers
def _override(overrides: dict[str, float] | None, log: LogFile) -> float | None:
    if not overrides:
        return None
    for key, value in overrides.items():
        if key in (log.name, str(log.path)) or Path(key).name == log.name:
            return float(value)
    return None


def _unique_name(log: LogFile, clocks: dict) -> str:
    name = log.name
    return name if name not in clocks else str(log.path)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="Int64" if c in ("ts_ns", "local_port", "remote_port",
                                                            "flow_id") else "string")
                         for c in list(LOG_COLUMNS) + ["lifecycle"]})
