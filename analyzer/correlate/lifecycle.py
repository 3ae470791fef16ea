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

from analyzer import frames
from analyzer.frames import labels, lowered, text
from analyzer.spill import row_steps, trim

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


def _ordered(mask: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the rows in `mask`, ordered by `ts` (stable), and their times: the
    period search needs only these, not a copy of the rows."""
    rows = np.flatnonzero(mask)
    if len(mask) <= np.iinfo(np.int32).max:
        rows = rows.astype(np.int32)        # half the size, held while periods are sought
    times = ts[rows]
    trim()                                  # the mapped column's pages, read through
    order = np.argsort(times, kind="stable")
    rows = rows[order]
    del order
    # equal times are alike, so the times sort in place to what the order gives (a copy
    # by the order would hold three arrays of 8 B per row at once)
    times.sort()
    return rows, times


def _phone_teardowns(flows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The TCP flows the phone reset or closed: positions by teardown time, and the times."""
    mask = (frames.isin(flows["teardown"], _PHONE_TEARDOWNS)
            & ((labels(flows["teardown_by"]) == "phone")
               & (lowered(flows["proto"]) == "tcp")).to_numpy())
    return _ordered(mask, flows["teardown_ts_ns"].to_numpy(np.int64))


def _phone_teardowns_between(flows, start_ns: int, end_ns: int | None) -> list[dict]:
    if flows is None or len(flows) == 0:
        return []
    rows, ts = _phone_teardowns(flows)
    mask = ts >= start_ns
    if end_ns is not None:
        mask &= ts <= end_ns
    return frame_evidence_at(flows, rows[mask][:MAX_EVIDENCE], True)


def _listener_failures(flows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """SYNs to the phone's listener that were refused or went unanswered: positions by
    first time, and the times."""
    mask = (((labels(flows["phone_role"]) == "responder") & (lowered(flows["proto"]) == "tcp")).to_numpy()
            & frames.isin(flows["teardown"], _LISTENER_FAILURES))
    return _ordered(mask, flows["first_ts_ns"].to_numpy(np.int64))


def frame_evidence_at(flows: pd.DataFrame, rows: np.ndarray, by_phone=False) -> list[dict]:
    """Frame evidence for the flows at these positions, read straight from the frame's
    arrays. The sender is the phone where `by_phone` is True (one bool for all, or one per
    row), else the flow's teardown_by."""
    if len(rows) == 0:
        return []
    col = {}
    for c in ("teardown_frame", "flow_id", "teardown", "teardown_by", "teardown_ts_ns"):
        col[c] = flows[c].array.take(rows).tolist()
        # rows spread over the table touch most of a mapped column's pages: drop them
        # before the next column's (5 columns of 2.4M flows: ~70 MB at once)
        trim()
    phone = np.broadcast_to(np.asarray(by_phone, dtype=bool), len(rows))
    senders = ["phone" if p else by for p, by in zip(phone.tolist(), col["teardown_by"])]
    return [frame_evidence(*values) for values in zip(
        col["teardown_frame"], col["flow_id"], col["teardown"], senders, col["teardown_ts_ns"])]


LIFE_STEP = 262144      # rows picked per step
NEVER = np.iinfo(np.int64).max


def _life_steps(flows: pd.DataFrame, events: pd.DataFrame):
    """The times at which the phone acted like a foreground app: it dialled (SYN), accepted
    (SYN-ACK) or started a new UDP conversation; unsorted, a step of rows at a time (on a
    million events, every whole column of masks and times is several MB)."""
    picks = []
    if events is not None and len(events):
        picks.append((events, lambda part: frames.isin(part["kind"], ("syn", "synack"))
                      & (labels(part["sender"]) == "phone").to_numpy(), "ts_ns"))
    if len(flows):
        picks.append((flows, lambda part: ((lowered(part["proto"]) == "udp")
                                           & (labels(part["phone_role"]) == "initiator")).to_numpy(),
                      "first_ts_ns"))
    for table, pick, column in picks:
        ts = table[column].to_numpy(np.int64)
        for at in row_steps(len(table), LIFE_STEP):
            yield ts[at:at + LIFE_STEP][pick(table.iloc[at:at + LIFE_STEP])]


def _next_signs_of_life(flows: pd.DataFrame, events: pd.DataFrame, after: np.ndarray) -> np.ndarray:
    """For each time in `after` (sorted), the phone's first sign of life strictly after it
    (NEVER when there is none). Found a step of rows at a time, keeping only one answer per
    time: the signs themselves (millions of events) are never held at once. The answers
    stay sorted as they are narrowed (each step's are, and so is their minimum), so the
    times before a step's first sign are settled with one search."""
    best = np.full(len(after), NEVER, np.int64)
    for times in _life_steps(flows, events):
        if len(times) == 0:
            continue
        times.sort()
        first, last = times[0], times[-1]
        lo = int(np.searchsorted(after, first, side="left"))       # after[:lo] < first
        best[int(np.searchsorted(best[:lo], first, side="right")):lo] = first
        hi = int(np.searchsorted(after, last, side="left"))        # after[lo:hi] < last
        if hi > lo:
            np.minimum(best[lo:hi], times[np.searchsorted(times, after[lo:hi], side="right")],
                       out=best[lo:hi])
    return best


def bursts(flows: pd.DataFrame, events: pd.DataFrame, window_s: float = BURST_WINDOW_S,
           min_flows: int = BURST_MIN_FLOWS, evidence: bool = True) -> list[dict]:
    """Periods inferred from the capture alone (basis "capture"). Works on arrays and
    binary searches, so captures with a hundred thousand teardowns stay quick. Evidence is
    kept as row ranges until the number of periods is known, then written out: MAX_EVIDENCE
    items each, or TRIMMED_EVIDENCE when there are more than MANY_PERIODS (a soak test's
    thousands of periods would otherwise hold tens of MB of evidence)."""
    if flows is None or len(flows) == 0:
        return []
    phone_rows, ts = _phone_teardowns(flows)
    if len(ts) == 0:
        return []
    fail_rows, fail_ts = _listener_failures(flows)
    window = int(window_s * 1e9)
    follow_window = int(FOLLOW_WINDOW_S * 1e9)

    # the bursts: phone teardowns within `window` of a burst's first one, each known by
    # its last teardown's position (an array: there may be a million of them)
    last = np.empty(len(ts), np.int32 if len(ts) <= np.iinfo(np.int32).max else np.int64)
    n = i = 0
    while i < len(ts):
        j = int(np.searchsorted(ts, ts[i] + window, side="right")) - 1
        last[n] = j
        n += 1
        i = j + 1
    last = last[:n]
    # the phone's next foreground act after each burst ends its period
    ends = _next_signs_of_life(flows, events, ts[last])

    found: list[dict] = []
    ranges: list[list[tuple]] = []      # per period: (rows, lo, hi) ranges, in order
    i = 0
    for j, end in _pairs(last, ends):
        start, burst_end = int(ts[i]), int(ts[j])
        end = None if end == NEVER else end
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
        rows, by_phone, counts = _evidence_rows(ranges, {"phone": phone_rows, "follow": fail_rows}, cap)
        # the search's arrays go before the evidence is made (50M packets: 1M phone
        # teardowns, 12 MB, held beside 37k pieces of evidence, 23 MB)
        del phone_rows, ts, fail_rows, fail_ts, last, ends, ranges
        _write_evidence(flows, found, rows, by_phone, counts)
    return found


def _pairs(a: np.ndarray, b: np.ndarray, step: int = 65536):
    """zip(a, b) as Python ints, made a step at a time (a list of a million ints is 36 MB)."""
    for at in range(0, len(a), step):
        yield from zip(a[at:at + step].tolist(), b[at:at + step].tolist())


def _evidence_rows(ranges: list[list[tuple]], rows: dict, cap: int):
    """The rows each period's evidence is read from, at most `cap` per period: the phone's
    teardowns (sender: the phone), then the listener failures (sender: as attributed).
    Returns (rows, from the phone or not, a count per period), copied out of `rows`, so
    that the search's arrays can go before the evidence is made."""
    picks, counts, phone = [], [], []
    for pieces in ranges:
        taken = 0
        for which, lo, hi in pieces:
            take = rows[which][lo:min(hi, lo + cap - taken)]
            picks.append(take)
            phone.append(np.full(len(take), which == "phone"))
            taken += len(take)
            if taken >= cap:
                break
        counts.append(taken)
    return (np.concatenate(picks) if picks else np.empty(0, np.int64),
            np.concatenate(phone) if phone else np.empty(0, bool), counts)


def _write_evidence(flows: pd.DataFrame, found: list[dict], rows: np.ndarray,
                    by_phone: np.ndarray, counts: list[int]) -> None:
    """Each period's evidence from its rows (_evidence_rows). The rows of every period are
    read from the frame in one go: thousands of periods are common."""
    every = frame_evidence_at(flows, rows, by_phone)
    start = 0
    for period, count in zip(found, counts):
        period["evidence"] = every[start:start + count]
        start += count


IN_PERIODS_STEP = 262144     # times searched per step


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
    inside = np.empty(len(ts), dtype=bool)
    # a step at a time: the search's temporaries are 8 bytes per time, on every flow
    for at in row_steps(len(ts), IN_PERIODS_STEP):
        part = ts[at:at + IN_PERIODS_STEP]
        idx = np.searchsorted(starts, part, side="right")
        hit = idx > 0                   # some period starts at or before the time
        idx -= 1
        np.maximum(idx, 0, out=idx)
        hit &= part <= reach[idx]
        inside[at:at + len(part)] = hit
    return inside
