"""Background / foreground periods of the phone app.

Two sources, in this order of trust:

1. lifecycle lines in the logs (the `lifecycle` column the log reader fills, plus any user
   patterns) -> periods with basis "log";
2. when the logs have none: a teardown burst the phone sends across its flows (several RST or
   FIN from the phone within a short window, or one followed by refused / unanswered SYNs to
   its listener) -> periods with basis "capture".

Every period lists the evidence it rests on (frames and log lines), so a reader can check it.
"""

from __future__ import annotations

import re
from typing import Iterable

import numpy as np
import pandas as pd

from analyzer.frames import labels, lowered, text

# Labels (analyzer/logs/lifecycle.py vocabulary) that take the app out of the foreground, and
# the ones that bring it back. Screen labels only cover the screen; app labels cover both.
APP_AWAY = {"background", "suspended"}
SCREEN_AWAY = {"screen_off", "locked"}
APP_BACK = {"foreground", "resumed"}
SCREEN_BACK = {"screen_on", "unlocked"}
# A period is named after the strongest label seen inside it.
_STATE_RANK = {"suspended": 3, "background": 2, "screen_off": 1, "locked": 1}

BURST_WINDOW_S = 2.0        # phone teardowns this close together are one burst
BURST_MIN_FLOWS = 2         # ...across at least this many flows
FOLLOW_WINDOW_S = 300.0     # a lone teardown counts when listener SYNs fail within this
MAX_EVIDENCE = 20           # per period: enough to check, small enough for summary.json
MANY_PERIODS = 100          # beyond this many periods (a soak test), each keeps
TRIMMED_EVIDENCE = 3        # only this many pieces of evidence

_PHONE_TEARDOWNS = ("rst", "fin")
_LISTENER_FAILURES = ("refused", "syn_unanswered")


def periods(flows: pd.DataFrame, events: pd.DataFrame, logs: pd.DataFrame | None,
            phones: Iterable[str] | None = None, patterns=None) -> list[dict]:
    """Background periods: [{start_ns, end_ns (None: still away at the end), state,
    evidence: [...], basis: "log"|"capture"}], ordered by start."""
    labelled = lifecycle_lines(logs, patterns)
    if len(labelled):
        found = _log_periods(labelled)
        for period in found:
            # The capture's view of the same moment, as supporting evidence.
            period["evidence"] += _phone_teardowns_between(flows, period["start_ns"] - int(BURST_WINDOW_S * 1e9),
                                                           period["end_ns"])
            period["evidence"] = period["evidence"][:MAX_EVIDENCE]
        if found:
            return found
    return bursts(flows, events)


# --------------------------------------------------------------------------- from the logs


def parse_patterns(patterns) -> list[tuple[re.Pattern, str]]:
    """User lifecycle patterns: a dict {regex: state}, pairs (regex, state), or strings
    "REGEX=state" (the command-line form; the last '=' splits)."""
    if not patterns:
        return []
    items = patterns.items() if isinstance(patterns, dict) else patterns
    out = []
    for item in items:
        if isinstance(item, str):
            regex, sep, state = item.rpartition("=")
            if not sep:
                raise ValueError(f"lifecycle pattern {item!r}: expected REGEX=state")
        else:
            regex, state = item
        state = state.strip().lower()
        if state not in APP_AWAY | SCREEN_AWAY | APP_BACK | SCREEN_BACK:
            raise ValueError(f"lifecycle pattern {regex!r}: unknown state {state!r}")
        out.append((re.compile(regex), state))
    return out


def lifecycle_lines(logs: pd.DataFrame | None, patterns=None) -> pd.DataFrame:
    """The log rows that carry a lifecycle label and a capture-clock time, ordered by time;
    user patterns label rows first (the user knows their app's words best)."""
    if logs is None or len(logs) == 0 or "ts_ns" not in logs:
        return pd.DataFrame(columns=["ts_ns", "state", "source", "raw_time", "message"])
    label = (logs["lifecycle"].astype(object) if "lifecycle" in logs
             else pd.Series([None] * len(logs), index=logs.index, dtype=object))
    label = label.where(label.notna(), None)
    compiled = parse_patterns(patterns)
    if compiled:
        messages = text(logs["message"])
        for regex, state in reversed(compiled):  # earlier patterns win
            hit = messages.str.contains(regex, na=False)
            label = label.where(~hit, state)
    keep = label.notna() & logs["ts_ns"].notna()
    rows = logs.loc[keep]
    out = pd.DataFrame({
        "ts_ns": rows["ts_ns"].astype("int64"),
        "state": text(label[keep]),
        "source": rows["source"].astype(object) if "source" in rows else None,
        "raw_time": rows["raw_time"].astype(object) if "raw_time" in rows else None,
        "message": rows["message"].astype(object) if "message" in rows else None,
    })
    return out.sort_values("ts_ns", kind="stable").reset_index(drop=True)


def _log_periods(lines: pd.DataFrame) -> list[dict]:
    found: list[dict] = []
    app_away = screen_away = False
    current: dict | None = None
    for row in lines.itertuples(index=False):
        state = row.state
        if state in APP_AWAY:
            app_away = True
        elif state in SCREEN_AWAY:
            screen_away = True
        elif state in APP_BACK:
            app_away = screen_away = False   # visible again: the screen is on too
        elif state in SCREEN_BACK:
            screen_away = False
        else:
            continue
        away = app_away or screen_away
        if away and current is None:
            current = {"start_ns": int(row.ts_ns), "end_ns": None, "state": state,
                       "evidence": [], "basis": "log"}
            found.append(current)
        if current is not None:
            current["evidence"].append(log_evidence(row))
            if _STATE_RANK.get(state, 0) > _STATE_RANK.get(current["state"], 0):
                current["state"] = state
            if not away:
                current["end_ns"] = int(row.ts_ns)
                current = None
    return found


def log_evidence(row) -> dict:
    get = row.get if isinstance(row, dict) else (lambda k, d=None: getattr(row, k, d))
    ts = get("ts_ns")
    return {"type": "log", "source": _text(get("source")), "raw_time": _text(get("raw_time")),
            "ts_ns": None if ts is None or pd.isna(ts) else int(ts),
            "message": _text(get("message"))}


def _text(value):
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


# --------------------------------------------------------------------------- from the capture


def frame_evidence(frame: int, flow_id: int, kind: str, sender: str, ts_ns: int) -> dict:
    return {"type": "frame", "frame": int(frame), "flow_id": int(flow_id), "kind": str(kind),
            "sender": str(sender), "ts_ns": int(ts_ns), "filter": f"frame.number == {int(frame)}"}


# what evidence and the period search read of a flow: subsets copy only these columns
EVIDENCE_COLUMNS = ["flow_id", "first_ts_ns", "teardown", "teardown_by", "teardown_frame",
                    "teardown_ts_ns"]


def _phone_teardown_table(flows: pd.DataFrame) -> pd.DataFrame:
    if flows is None or len(flows) == 0:
        return flows.iloc[0:0] if flows is not None else pd.DataFrame()
    mask = (labels(flows["teardown"]).isin(_PHONE_TEARDOWNS)
            & (labels(flows["teardown_by"]) == "phone")
            & (lowered(flows["proto"]) == "tcp"))
    return flows.loc[mask, EVIDENCE_COLUMNS].sort_values("teardown_ts_ns", kind="stable")


def _phone_teardowns_between(flows, start_ns: int, end_ns: int | None) -> list[dict]:
    table = _phone_teardown_table(flows)
    if len(table) == 0:
        return []
    ts = table["teardown_ts_ns"].to_numpy(np.int64)
    mask = ts >= start_ns
    if end_ns is not None:
        mask &= ts <= end_ns
    return [frame_evidence(r.teardown_frame, r.flow_id, r.teardown, "phone", r.teardown_ts_ns)
            for r in table.loc[mask].head(MAX_EVIDENCE).itertuples(index=False)]


def _listener_failures(flows: pd.DataFrame) -> pd.DataFrame:
    """SYNs to the phone's listener that were refused or went unanswered."""
    mask = ((labels(flows["phone_role"]) == "responder")
            & (lowered(flows["proto"]) == "tcp")
            & labels(flows["teardown"]).isin(_LISTENER_FAILURES))
    return flows.loc[mask, EVIDENCE_COLUMNS].sort_values("first_ts_ns", kind="stable")


def _signs_of_life(flows: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """Times at which the phone acted like a foreground app: it dialled (SYN), accepted
    (SYN-ACK) or started a new UDP conversation."""
    times = []
    if events is not None and len(events):
        kind = labels(events["kind"])
        sender = labels(events["sender"])
        mask = kind.isin(("syn", "synack")) & (sender == "phone")
        times.append(events.loc[mask, "ts_ns"].to_numpy(np.int64))
    if len(flows):
        mask = ((lowered(flows["proto"]) == "udp")
                & (labels(flows["phone_role"]) == "initiator"))
        times.append(flows.loc[mask, "first_ts_ns"].to_numpy(np.int64))
    return np.sort(np.concatenate(times)) if times else np.empty(0, np.int64)


def bursts(flows: pd.DataFrame, events: pd.DataFrame, window_s: float = BURST_WINDOW_S,
           min_flows: int = BURST_MIN_FLOWS, evidence: bool = True) -> list[dict]:
    """Periods inferred from the capture alone (basis "capture"). Works on arrays and
    binary searches, so captures with a hundred thousand teardowns stay quick. Evidence is
    kept as row ranges until the number of periods is known, then written out: MAX_EVIDENCE
    items each, or TRIMMED_EVIDENCE when there are more than MANY_PERIODS (a soak test's
    thousands of periods would otherwise hold tens of MB of evidence)."""
    if flows is None or len(flows) == 0:
        return []
    table = _phone_teardown_table(flows)
    if len(table) == 0:
        return []
    failures = _listener_failures(flows)
    fail_ts = failures["first_ts_ns"].to_numpy(np.int64)        # sorted by first_ts_ns
    life = _signs_of_life(flows, events)
    window = int(window_s * 1e9)
    follow_window = int(FOLLOW_WINDOW_S * 1e9)
    ts = table["teardown_ts_ns"].to_numpy(np.int64)

    found: list[dict] = []
    ranges: list[list[tuple]] = []      # per period: (rows, lo, hi) ranges, in order
    i = 0
    while i < len(ts):
        j = int(np.searchsorted(ts, ts[i] + window, side="right")) - 1
        start, burst_end = int(ts[i]), int(ts[j])
        # The phone's next foreground act after the burst ends the period.
        k = int(np.searchsorted(life, burst_end, side="right"))
        end = int(life[k]) if k < len(life) else None
        horizon = end if end is not None else burst_end + follow_window
        f_lo = int(np.searchsorted(fail_ts, start, side="right"))
        f_hi = int(np.searchsorted(fail_ts, horizon, side="right"))
        # each flow has one teardown, so the burst's rows are distinct flows
        if j - i + 1 >= min_flows or f_hi > f_lo:
            pieces = [("phone", i, j + 1), ("follow", f_lo, f_hi)]
            if found and found[-1]["end_ns"] is None:
                ranges[-1] += pieces
            else:
                found.append({"start_ns": start, "end_ns": end, "state": "background",
                              "evidence": [], "basis": "capture"})
                ranges.append(pieces)
        i = j + 1
    if evidence:
        cap = TRIMMED_EVIDENCE if len(found) > MANY_PERIODS else MAX_EVIDENCE
        rows = {"phone": _evidence_columns(table, "phone"), "follow": _evidence_columns(failures)}
        for period, pieces in zip(found, ranges):
            period["evidence"] = _range_evidence(rows, pieces, cap)
    return found


def _evidence_columns(table: pd.DataFrame, sender: str | None = None) -> dict:
    """The columns frame evidence is made of, as arrays (row access on a frame is slow)."""
    cols = {c: table[c].to_numpy() for c in ("teardown_frame", "flow_id", "teardown", "teardown_ts_ns")}
    cols["sender"] = np.full(len(table), sender, dtype=object) if sender else table["teardown_by"].to_numpy()
    return cols


def _range_evidence(rows: dict, pieces: list[tuple], cap: int) -> list[dict]:
    """Frame evidence for row ranges of the phone-teardown and listener-failure tables."""
    out: list[dict] = []
    for which, lo, hi in pieces:
        c = rows[which]
        for k in range(lo, min(hi, lo + cap - len(out))):
            out.append(frame_evidence(c["teardown_frame"][k], c["flow_id"][k], c["teardown"][k],
                                      str(c["sender"][k]), c["teardown_ts_ns"][k]))
        if len(out) >= cap:
            break
    return out


def in_periods(ts_ns, found: list[dict], slack_s: float = 0.0) -> np.ndarray:
    """Boolean mask: which times fall inside a period (an open end runs to the end of time;
    `slack_s` widens each period at its start, for clocks a little apart). A binary search
    per time: a time is inside when some period starting before it ends after it."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    if not found or len(ts) == 0:
        return np.zeros(len(ts), dtype=bool)
    slack = int(slack_s * 1e9)
    never = np.iinfo(np.int64).max
    starts = np.array([p["start_ns"] - slack for p in found], dtype=np.int64)
    ends = np.array([never if p["end_ns"] is None else p["end_ns"] for p in found], dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    starts, reach = starts[order], np.maximum.accumulate(ends[order])
    idx = np.searchsorted(starts, ts, side="right") - 1
    return (idx >= 0) & (ts <= reach[np.maximum(idx, 0)])
