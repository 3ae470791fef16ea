"""Log clock -> capture clock: time zone and skew of one log file, from anchor pairs.

Model: capture_time = base_time + offset, where base_time is the log's wall time "as if
UTC", already shifted by the zone a line states (os_log's ``+0800``, or Go's UTC stamp inside
it). For a file whose lines state no zone, ``offset`` is searched as ``-zone + skew`` over
the world's zones; for a file with a stated zone, only the skew is searched.

An anchor is a (log line, capture event) pair that should be the same moment: the log line
comes after its packet by a small delay, because the app learns of a packet after it arrived
(or, for a packet the logging end sent, the capture may see it a few ms after the log).
Each anchor therefore allows offsets in ``[r + lo - resolution, r + hi]`` with
``r = event_time - base_time``; the estimator takes the offset most anchored lines agree on
(a sweep over those intervals, each line counted once), then refines it with the median of
the tight inliers, centred in the log's time resolution (stamps are truncated).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Largest clock error (beyond the zone) searched. Phones and servers on NTP are within a
# second; a hand-set clock may be minutes off. Quarter-hour zones leave no gap wider.
MAX_SKEW_S = 900.0
MIN_ANCHORS = 2              # one pair could be a coincidence; two agreeing ones are not
FALLBACK_SKEW_S = 60.0       # stated zone, skew unknown: what the fallback can claim
UNKNOWN_ZONE_S = 14 * 3600.0  # no zone, no anchors: any zone of the world is possible
_QUARTER_ZONES_H = (5.75, 8.75, 12.75)  # Nepal, Eucla, Chatham
# An app wakes up and logs a few ms after its packet; that delay is common to all anchors,
# so their spread cannot show it: it stays in the uncertainty.
DELAY_FLOOR_S = 0.005


def zone_candidates() -> np.ndarray:
    """UTC offsets (s) searched for a file that states none: -12 h .. +14 h by half hours,
    plus the quarter-hour zones."""
    halves = np.arange(-24, 29) * 1800.0
    return np.unique(np.concatenate([halves, np.array(_QUARTER_ZONES_H) * 3600.0]))


def _zone_rank(zone_s: float) -> int:
    """Tie-break: whole-hour zones are the common ones."""
    return 0 if zone_s % 3600 == 0 else (1 if zone_s % 1800 == 0 else 2)


@dataclass
class ClockFit:
    """One file's clock. ``offset_s`` is added to the base time (see module doc)."""

    offset_s: float
    uncertainty_s: float
    method: str
    zone_s: float | None            # the file's UTC offset, stated or inferred (None: unknown)
    note: str = ""
    anchors: pd.DataFrame = field(default_factory=pd.DataFrame)  # used anchors + residual_s


def fit(anchors: pd.DataFrame, zone_s: float | None, resolution_s: float,
        max_skew_s: float = MAX_SKEW_S, min_anchors: int = MIN_ANCHORS) -> ClockFit:
    """Estimate the offset from candidate anchors.

    ``anchors`` columns: line (row of the log), base_ns, event_ts_ns, lo_s, hi_s (delay window),
    res_s (the line's time resolution), weight (1 tight, <1 loose), tight (bool), plus anything
    to carry along (frame, kind, flow_id...). ``zone_s`` is the stated zone or None.
    """
    centres = np.array([0.0]) if zone_s is not None else -zone_candidates()
    if len(anchors):
        r = (anchors["event_ts_ns"].to_numpy(np.int64) - anchors["base_ns"].to_numpy(np.int64)) / 1e9
        anchors = anchors.assign(r_s=r, left=r + anchors["lo_s"] - anchors["res_s"],
                                 right=r + anchors["hi_s"])
        best = _best_offset(anchors, centres, max_skew_s)
    else:
        best = None
    if best is None:
        return _fallback(zone_s, 0, "no anchor pair between this log and the capture")
    o = best
    used = _inliers(anchors, o)
    n_lines, n_tight = _count(used)
    if min(n_lines, used["event_key"].nunique()) < min_anchors:
        what = _describe(used)
        return _fallback(zone_s, n_lines, f"too few anchors ({n_lines}{what}; "
                                          f"{min_anchors} needed)")
    if n_tight >= min_anchors:
        for _ in range(3):  # median of the tight inliers; re-select around it
            tight = used[used["tight"]]
            o_new = float(np.median(tight["r_s"] - tight["res_s"] / 2))
            again = _inliers(anchors, o_new)
            if _count(again)[1] < min_anchors:
                break
            o, used = o_new, again
            if np.isclose(o_new, float(np.median(used[used["tight"]]["r_s"]
                                                - used[used["tight"]]["res_s"] / 2))):
                break
        tight = used[used["tight"]]
        resid = o - tight["r_s"]  # implied delays
        spread = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
        unc = max(resolution_s / 2, spread, DELAY_FLOOR_S)
        method = f"anchors: {len(tight)} tight pairs, median"
    else:
        lo_edge, hi_edge = float(used["left"].max()), float(used["right"].min())
        o = (lo_edge + hi_edge) / 2
        unc = max((hi_edge - lo_edge) / 2, resolution_s / 2)
        method = f"anchors: {n_lines} loose pairs only, middle of the agreeing range"
    used = used.assign(residual_s=o - used["r_s"])
    if zone_s is None:
        cand = zone_candidates()
        zone = float(cand[np.argmin(np.abs(cand + o))])
        note = f"zone inferred UTC{_fmt_zone(zone)}, {_skew(o + zone)}"
    else:
        zone = zone_s
        note = f"zone stated UTC{_fmt_zone(zone)}, {_skew(o)}"
    return ClockFit(offset_s=o, uncertainty_s=unc, method=method, zone_s=zone, note=note,
                    anchors=used.sort_values("line", kind="stable"))


def fixed(offset_s: float, zone_s: float | None, how: str) -> ClockFit:
    """An offset given by the user (``--clock-offset``)."""
    return ClockFit(offset_s=offset_s, uncertainty_s=0.0, method=how, zone_s=zone_s,
                    note="offset given by the user; anchors not used")


def _fallback(zone_s: float | None, n: int, why: str) -> ClockFit:
    if zone_s is not None:
        return ClockFit(offset_s=0.0, uncertainty_s=FALLBACK_SKEW_S, zone_s=zone_s,
                        method="fallback: zone stated in the log, skew unknown",
                        note=f"{why}; times taken at the zone the log states "
                             f"(UTC{_fmt_zone(zone_s)}), clock skew not measured")
    return ClockFit(offset_s=0.0, uncertainty_s=UNKNOWN_ZONE_S, zone_s=None,
                    method="fallback: no zone, zero offset",
                    note=f"{why}; the log states no zone, so its times are taken as UTC on "
                         f"the capture's clock (could be off by any whole time zone)")


def _best_offset(a: pd.DataFrame, centres: np.ndarray,
                 max_skew_s: float) -> float | None:
    """The offset where the most anchored lines agree, inside
    ``max_skew_s`` of some centre. Each line's intervals are merged so it counts once."""
    lines = _merged_intervals(a)
    if not lines:
        return None
    L = np.array([x[0] for x in lines])
    R = np.array([x[1] for x in lines])
    W = np.array([x[2] for x in lines])
    lo_order, hi_order = np.argsort(L), np.argsort(R)
    Ls, Rs = L[lo_order], R[hi_order]
    cumL, cumR = np.cumsum(W[lo_order]), np.cumsum(W[hi_order])

    def score(points: np.ndarray) -> np.ndarray:
        i = np.searchsorted(Ls, points, side="right")
        j = np.searchsorted(Rs, points, side="left")
        return np.where(i > 0, cumL[i - 1], 0.0) - np.where(j > 0, cumR[j - 1], 0.0)

    pts = np.concatenate([L, centres - max_skew_s, centres + max_skew_s])
    dist = np.min(np.abs(pts[:, None] - centres[None, :]), axis=1)
    ok = dist <= max_skew_s + 1e-9
    if not ok.any():
        return None
    pts, dist = pts[ok], dist[ok]
    s = score(pts)
    if s.max() <= 0:
        return None
    top = np.flatnonzero(np.isclose(s, s.max()))
    near = centres[np.argmin(np.abs(pts[top][:, None] - centres[None, :]), axis=1)]
    key = [(round(dist[t] / 60), _zone_rank(-c), dist[t]) for t, c in zip(top, near)]
    return float(pts[top[min(range(len(top)), key=key.__getitem__)]])


def _merged_intervals(a: pd.DataFrame) -> list[tuple[float, float, float]]:
    out: list[tuple[float, float, float]] = []
    for _, g in a.sort_values(["line", "left"]).groupby("line", sort=False):
        w = float(g["weight"].max())
        cur_l = cur_r = None
        for left, right in zip(g["left"].to_numpy(), g["right"].to_numpy()):
            if cur_l is None:
                cur_l, cur_r = left, right
            elif left <= cur_r:
                cur_r = max(cur_r, right)
            else:
                out.append((cur_l, cur_r, w))
                cur_l, cur_r = left, right
        out.append((cur_l, cur_r, w))
    return out


def _inliers(a: pd.DataFrame, o: float) -> pd.DataFrame:
    """Anchors consistent with offset ``o``, one event per line and one line per event: lines
    in time order take the earliest free event (a second-stamped log may name two refused
    dials within one second; they are two packets, not one)."""
    hit = a[(a["left"] <= o + 1e-9) & (a["right"] >= o - 1e-9)]
    if hit.empty:
        return hit.assign(event_key=pd.Series(dtype=object))
    hit = hit.assign(event_key=list(zip(hit["event_ts_ns"], hit["kind"].astype(str))))
    hit = hit.sort_values(["base_ns", "line", "event_ts_ns"], kind="stable")
    taken: set = set()
    keep: list[int] = []
    done: set = set()
    for idx, line, key in zip(hit.index, hit["line"], hit["event_key"]):
        if line in done or key in taken:
            continue
        done.add(line)
        taken.add(key)
        keep.append(idx)
    return hit.loc[keep]


def _count(used: pd.DataFrame) -> tuple[int, int]:
    if used.empty:
        return 0, 0
    return int(used["line"].nunique()), int(used.loc[used["tight"], "line"].nunique())


def _describe(used: pd.DataFrame) -> str:
    if used.empty:
        return ""
    kinds = ", ".join(sorted(set(used["kind"].astype(str))))
    return f": {kinds}"


def _skew(add_s: float) -> str:
    side = "behind" if add_s >= 0 else "ahead of"
    return f"clock {abs(add_s):.3f} s {side} the capture's"


def _fmt_zone(zone_s: float) -> str:
    sign = "-" if zone_s < 0 else "+"
    m = int(round(abs(zone_s) / 60))
    return f"{sign}{m // 60:02d}:{m % 60:02d}"
