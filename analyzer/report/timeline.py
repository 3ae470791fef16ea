"""timeline.png / timeline.svg: one lane per flow, grouped by socket kind.

Drawn from the flow and event tables (never from the capture): each lane shows the flow's
span per direction (phone -> server above the lane's centre, server -> phone below), its
labelled events as markers on the sender's side, the app's and the server's error lines on
the flow they were matched to, and background periods shaded. The bottom axis is the
capture's clock (UTC); the top one the phone's local time when its zone is known.

Scale: beyond MAX_LANES flows the least telling flows of each kind share one aggregate lane,
and markers are thinned to one per lane, kind and pixel column, so the number of artists
stays small whatever the capture's size.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import LineCollection, PolyCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from analyzer import memory
from analyzer.frames import codes, extremes, labels, lookup, text
from analyzer.spill import row_steps
from analyzer.correlate.signatures import KINDS, log_kinds, socket_kinds  # noqa: E402

MAX_LANES = 40
PIXEL_BINS = 1600          # thinning resolution along the time axis
MAX_MARKERS = 12000        # all event markers together: keeps the SVG to a few MB
MAX_LOG_LABELS = 40
MAX_PERIODS = 200
MAX_PERIOD_LABELS = 12
GROUP_ORDER = KINDS + ("other",)
GROUP_TITLE = {"udp": "UDP", "tcp_client": "TCP client (phone dialled)",
               "tcp_server": "TCP server (dialled to the phone)", "other": "other", "logs": "logs"}
UP, DOWN = 0.17, -0.17     # lane offsets: phone-sent above, server-sent below
PHONE_COLOR, SERVER_COLOR = "#3b6fb6", "#d9822b"

# kind -> (marker, colour, size, label); filled markers unless noted in _HOLLOW.
EVENT_STYLE = {
    "rst": ("X", "#d62728", 70, "RST"),
    "fin": ("|", "#1f77b4", 140, "FIN"),
    "refused": ("s", "#9467bd", 50, "refused (SYN answered by RST)"),
    "syn": (">", "#7f7f7f", 22, "SYN"),
    "synack": ("<", "#2ca02c", 22, "SYN-ACK"),
    "syn_retry": (">", "#ff7f0e", 34, "SYN retry"),
    "syn_unanswered": ("o", "#000000", 70, "SYN unanswered"),
    "udp_unanswered": ("D", "#555555", 45, "UDP unanswered"),
    "icmp_unreachable": ("v", "#8c564b", 55, "ICMP unreachable"),
    "data_after_fin": (".", "#e377c2", 40, "data after FIN"),
    "data_after_rst": (".", "#bcbd22", 40, "data after RST"),
}
_HOLLOW = {"syn_unanswered", "udp_unanswered"}
SIDE_INDEX = {"phone": 1, "server": 2}      # markers above their lane, or below; 0: on it
LOG_STYLE = {"app": ("^", "#17becf", "app error"), "server": ("v", "#8c4a2f", "server error")}


def draw(flows: pd.DataFrame, events: pd.DataFrame, logs: pd.DataFrame | None,
         lifecycle: list[dict], out_dir, phone_tz_s: float | None = None,
         title: str | None = None) -> dict:
    """Write timeline.png and timeline.svg into out_dir; return what was drawn (counts)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    flows = flows if flows is not None else pd.DataFrame()
    events = events if events is not None else pd.DataFrame()
    logs = logs if logs is not None else pd.DataFrame()
    lifecycle = lifecycle or []

    t0 = _origin(flows, events, logs, lifecycle)
    lanes, lane_of = _lanes(flows)
    err_logs, log_lane_rows = _error_logs(logs, flows, lane_of, lanes)
    n_lanes = max(len(lanes), 1)

    height = min(2.6 + 0.34 * n_lanes, 24.0)
    fig, ax = plt.subplots(figsize=(14, height))
    stats = {"lanes": len(lanes), "flows": int(len(flows)), "events": int(len(events)),
             "events_drawn": 0, "log_lines_drawn": 0, "aggregated_flows": 0}
    x_max = _x_extent(flows, events, err_logs, lifecycle, t0)

    _shade_periods(ax, lifecycle, t0, x_max)
    # each step's temporaries are as long as a table; the heap hands them back in between
    memory.release()
    stats["aggregated_flows"] = _draw_spans(ax, flows, lanes, lane_of, t0, x_max)
    memory.release()
    stats["events_drawn"] = _draw_events(ax, events, lane_of, t0, x_max)
    memory.release()
    stats["log_lines_drawn"] = _draw_logs(ax, err_logs, log_lane_rows, t0, x_max)
    _axes(ax, lanes, t0, x_max, phone_tz_s)

    ax.set_title(title or _default_title(flows, events, stats), fontsize=11, loc="left")
    _legend(ax, events, err_logs, lifecycle)
    if not len(flows) and not len(events):
        ax.text(0.5, 0.5, "no flows in this capture", transform=ax.transAxes, ha="center",
                va="center", fontsize=12, color="#666666")
    # Room at the bottom for the figure legend (about 0.45 in, whatever the height).
    fig.tight_layout(rect=(0, 0.5 / height, 1, 1))
    # the layout is set now: without this, each save would lay the figure out again first
    fig.set_layout_engine(None)
    fig.savefig(out_dir / "timeline.png", dpi=100)
    # text as SVG text, not glyph outlines: selectable and searchable in a browser, a
    # smaller file, and a quicker save (10M packets: 1.3 MB in 0.43 s, not 1.5 MB in 0.53 s).
    # A fixed salt and no date: the same tables give the same file, so runs can be diffed.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "analyzer"}):
        fig.savefig(out_dir / "timeline.svg", metadata={"Date": None})
    plt.close(fig)
    return stats


# --------------------------------------------------------------------------- layout


def _origin(flows, events, logs, lifecycle) -> int:
    candidates = []
    if len(flows):
        candidates.append(extremes(flows["first_ts_ns"])[0])
    if len(events):
        candidates.append(extremes(events["ts_ns"])[0])
    if not candidates and len(logs) and "ts_ns" in logs and logs["ts_ns"].notna().any():
        candidates.append(int(logs["ts_ns"].dropna().min()))
    if not candidates and lifecycle:
        candidates.append(min(p["start_ns"] for p in lifecycle))
    return min(candidates) if candidates else 0


def _x_extent(flows, events, err_logs, lifecycle, t0) -> float:
    ends = [0.0]
    if len(flows):
        ends.append((extremes(flows["last_ts_ns"])[1] - t0) / 1e9)
    if len(events):
        ends.append((extremes(events["ts_ns"])[1] - t0) / 1e9)
    if len(err_logs):
        ends.append((int(err_logs["ts_ns"].max()) - t0) / 1e9)
    for p in lifecycle:
        ends.append((p["start_ns"] - t0) / 1e9)
        if p["end_ns"] is not None:
            ends.append((p["end_ns"] - t0) / 1e9)
    span = max(ends)
    return span * 1.02 + 1.0 if span > 0 else 1.0


def _integers(ids) -> np.ndarray:
    ids = np.asarray(ids)
    return ids if ids.dtype.kind == "i" else ids.astype(np.int64)


def _dense(ids: np.ndarray) -> bool:
    """Whether these flow ids are dense enough to index a table by (ours are numbered
    from 1)."""
    return int(ids.min()) >= 0 and int(ids.max()) <= 4 * len(ids) + 1024


class LaneMap:
    """flow_id -> lane index. Flow ids are numbered from 1, so the map is one small integer
    per id, looked up by indexing (10M packets: 2 MB, and a million events placed in a few
    milliseconds). Ids too sparse for that (not ours) are searched in sorted arrays."""

    def __init__(self, ids: list[np.ndarray], lanes: list[np.ndarray]):
        def joined(parts, empty):
            return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else empty
        keys = _integers(joined(ids, np.empty(0, np.int64)))
        values = joined(lanes, np.empty(0, np.int64))
        self.lane_count = int(values.max()) + 1 if len(values) else 0
        self.table = None
        if len(keys) == 0 or _dense(keys):
            self.table = np.full(int(keys.max(initial=-1)) + 1, -1, dtype=np.int32)
            self.table[keys] = values
        else:
            order = np.argsort(keys, kind="stable")
            self.keys, self.values = keys[order], values[order]

    @classmethod
    def of_rows(cls, ids: np.ndarray, pieces) -> "LaneMap":
        """The map from every flow's id (`ids`, in row order) to its lane, the lanes given a
        step at a time by `pieces` as (first row, lanes from there)."""
        ids = _integers(ids)
        if len(ids) and _dense(ids):
            lane_map = cls([], [])
            lane_map.table = np.full(int(ids.max()) + 1, -1, np.int16)   # lanes are few
            for at, lane in pieces:
                lane_map.table[ids[at:at + len(lane)]] = lane
            lane_map.lane_count = int(lane_map.table.max()) + 1
            return lane_map
        steps = list(pieces)
        return cls([ids], [np.concatenate([lane for _, lane in steps]) if steps else np.empty(0, np.int16)])

    def lookup(self, fids: np.ndarray) -> np.ndarray:
        """The lane of each flow id, -1 for none."""
        fids = np.asarray(fids, dtype=np.int64)
        if self.table is not None:
            inside = (fids >= 0) & (fids < len(self.table))
            if inside.all():
                return self.table[fids].astype(np.int64)
            lane = np.full(len(fids), -1, dtype=np.int64)
            lane[inside] = self.table[fids[inside]]
            return lane
        # sparse ids: there is at least one key (no keys at all take the table)
        pos = np.searchsorted(self.keys, fids)
        np.minimum(pos, len(self.keys) - 1, out=pos)
        missing = self.keys[pos] != fids
        lane = self.values[pos].astype(np.int64)
        lane[missing] = -1
        return lane

    def get(self, fid: int, default: int = -1) -> int:
        lane = int(self.lookup(np.array([fid]))[0])
        return default if lane < 0 else lane


LANE_STEP = 262144      # flows ranked and given their lane per step


def _lanes(flows: pd.DataFrame) -> tuple[list[dict], LaneMap]:
    """Lanes top to bottom: [{group, label, flows (count), aggregate}], and the lane map.
    The flows are read LANE_STEP at a time: each step's best candidates for a lane of their
    own are kept from step to step (no group's flows are sorted, or even listed, whole),
    only the few that get a lane are taken out of the frame, and every flow's lane is one
    small integer in the map."""
    if not len(flows):
        return [], LaneMap([], [])
    total = len(flows)
    ranked = total > MAX_LANES

    def steps():
        for at in row_steps(total, LANE_STEP):
            part = flows.iloc[at:at + LANE_STEP]
            kinds = socket_kinds(part)
            rank = None
            if ranked:
                # the telling flows first: by the phone, then ended (lower ranks first)
                rank = ((labels(part["teardown_by"]) != "phone").to_numpy().astype(np.int8) * 2
                        + (labels(part["teardown"]) == "open").to_numpy())
            yield at, codes(kinds), list(kinds.cat.categories), rank

    # per group: its size, and its first MAX_LANES flows by (rank, first_ts, row), as
    # (rows, ranks, times): a group's quota of lanes is always fewer
    sizes: dict[str, int] = {}
    best: dict[str, tuple] = {}
    first_ts = flows["first_ts_ns"].to_numpy(np.int64)
    for at, kind_code, names, rank in steps():
        for code, group in enumerate(names):
            local = np.flatnonzero(kind_code == code)
            if not len(local):
                continue
            sizes[group] = sizes.get(group, 0) + len(local)
            ts = first_ts[at:at + LANE_STEP]
            pick = _first_ranked(local, rank, ts, MAX_LANES) if ranked else local
            found = (at + pick, rank[pick] if ranked else np.zeros(len(pick), np.int8), ts[pick])
            if group in best:
                found = tuple(np.concatenate(pair) for pair in zip(best[group], found))
            order = np.lexsort((found[0], found[2], found[1]))[:MAX_LANES if ranked else None]
            best[group] = tuple(a[order] for a in found)

    lanes: list[dict] = []
    aggregate = {}                 # group -> its aggregated lane
    kept_rows, kept_lanes = [], []
    for group in GROUP_ORDER:
        if not sizes.get(group):
            continue
        rows, rank, ts = best[group]
        if ranked:
            # One lane is kept for the aggregate; quota flows get lanes of their own
            quota = max(1, int(MAX_LANES * sizes[group] / total) - 1)
            rows, rank, ts = rows[:quota], rank[:quota], ts[:quota]
        # in time order; ties by (rank, row)
        keep = rows[np.lexsort((rows, rank, ts))]
        for row in flows.iloc[keep][_LANE_COLUMNS].itertuples(index=False):
            lanes.append({"group": group, "label": _flow_label(row), "aggregate": False, "flows": 1})
        kept_rows.append(keep)
        kept_lanes.append(np.arange(len(lanes) - len(keep), len(lanes)))
        rest = sizes[group] - len(keep)
        if rest:
            aggregate[group] = len(lanes)
            lanes.append({"group": group, "label": f"{rest:,} more {group} flows (aggregated)",
                          "aggregate": True, "flows": rest})
    kept_rows, kept_lanes = np.concatenate(kept_rows), np.concatenate(kept_lanes)
    order = np.argsort(kept_rows)
    kept_rows, kept_lanes = kept_rows[order], kept_lanes[order]

    def pieces():
        for at, kind_code, names, _ in steps():
            lut = np.array([aggregate.get(group, -1) for group in names] + [-1], np.int16)
            lane = lut[kind_code]          # a missing kind (-1) reads the last entry: none
            lo, hi = np.searchsorted(kept_rows, [at, at + len(kind_code)])
            lane[kept_rows[lo:hi] - at] = kept_lanes[lo:hi]
            yield at, lane

    return lanes, LaneMap.of_rows(flows["flow_id"].to_numpy(), pieces())


def _first_ranked(rows: np.ndarray, rank: np.ndarray, ts: np.ndarray, need: int) -> np.ndarray:
    """The `need` rows (ascending row numbers) that come first by (rank, ts, row), without
    sorting them all."""
    out = []
    for level in range(int(rank.max(initial=0)) + 1):
        if need <= 0:
            break
        cand = rows[rank[rows] == level]
        if len(cand) > need:
            t = ts[cand]
            kth = np.partition(t, need - 1)[need - 1]
            cand = cand[t <= kth]                          # ascending: ties stay in row order
            cand = cand[np.argsort(ts[cand], kind="stable")][:need]
        out.append(cand)
        need -= len(cand)
    return np.concatenate(out) if out else rows[:0]


# what labelling a lane reads
_LANE_COLUMNS = ["flow_id", "initiator_ip", "initiator_port", "responder_ip", "responder_port",
                 "teardown", "teardown_by"]


def _flow_label(row) -> str:
    ends = f"{row.initiator_ip}:{row.initiator_port} → {row.responder_ip}:{row.responder_port}"
    teardown = str(row.teardown)
    how = teardown if teardown == "open" else f"{teardown} by {row.teardown_by}"
    return f"#{row.flow_id} {ends}  [{how}]"


def _y(lane: int) -> float:
    return -float(lane)  # lane 0 at the top


# --------------------------------------------------------------------------- drawing


def _shade_periods(ax, lifecycle, t0, x_max) -> None:
    periods = sorted(lifecycle, key=lambda p: p["start_ns"])
    if len(periods) > MAX_PERIODS:  # merge neighbours: a soak test can flap all day
        step = len(periods) / MAX_PERIODS
        periods = [periods[int(i * step)] for i in range(MAX_PERIODS)]
    # one collection of full-height bands, not a patch per period (axvspan): hundreds of
    # periods are common, and each patch costs its own artist when drawn
    bands, colors = [], []
    for p in periods:
        start = (p["start_ns"] - t0) / 1e9
        end = x_max if p["end_ns"] is None else (p["end_ns"] - t0) / 1e9
        bands.append([(start, 0), (start, 1), (end, 1), (end, 0)])
        colors.append("#9e9e9e" if p.get("basis") == "log" else "#c7b3e6")
        if len(periods) > MAX_PERIOD_LABELS:
            continue    # labels that many would only overlap; the legend names the shading
        ax.text(start, 1.0, f" {p.get('state', 'background')} ({p.get('basis')})",
                transform=ax.get_xaxis_transform(), fontsize=7, va="top", ha="left", color="#555555")
    if bands:
        ax.add_collection(PolyCollection(bands, facecolors=colors, alpha=0.22, linewidths=0,
                                         zorder=0, transform=ax.get_xaxis_transform()),
                          autolim=False)


def _merge(intervals: np.ndarray, tol: float) -> np.ndarray:
    """Intervals that overlap or lie within `tol` of each other, merged (sorted by start).
    A new run starts where a start lies beyond every earlier end plus tol."""
    if len(intervals) == 0:
        return intervals
    intervals = intervals[np.argsort(intervals[:, 0], kind="stable")]
    starts, ends = intervals[:, 0], intervals[:, 1]
    new = np.ones(len(starts), dtype=bool)
    new[1:] = starts[1:] > np.maximum.accumulate(ends)[:-1] + tol
    first = np.flatnonzero(new)
    return np.column_stack([starts[first], np.maximum.reduceat(ends, first)])


SPAN_STEP = 262144      # flows drawn per step: each step's temporaries are ~70 B a flow


def _draw_spans(ax, flows, lanes, lane_of, t0, x_max) -> int:
    """Each flow's life as a bar in its lane, one for each direction that carried packets;
    an aggregated lane's bars merged where they touch at the figure's resolution."""
    if not len(flows):
        return 0
    tol = x_max / PIXEL_BINS
    # per lane and direction, the bars of each step (an aggregated lane's merged already:
    # merging the steps' merged bars gives what one merge of them all would)
    bars = [([], []) for _ in lanes]
    sums = np.zeros((len(lanes) + 1, 2), np.int64)    # packets up and down per lane
    members = np.zeros(len(lanes) + 1, np.int64)      # the last row: flows with no lane
    for a in row_steps(len(flows), SPAN_STEP):
        part = flows.iloc[a:a + SPAN_STEP]
        lane = lane_of.lookup(part["flow_id"].astype("int64").to_numpy())
        start = (part["first_ts_ns"].to_numpy(np.int64) - t0) / 1e9
        end = (part["last_ts_ns"].to_numpy(np.int64) - t0) / 1e9
        end = np.maximum(end, start + x_max * 0.002)  # a one-packet flow still shows
        initiator_is_phone = (labels(part["phone_role"]) != "responder").to_numpy()
        i2r = part["packets_i2r"].to_numpy(np.int64)
        r2i = part["packets_r2i"].to_numpy(np.int64)
        up = np.where(initiator_is_phone, i2r, r2i)      # phone -> server
        down = np.where(initiator_is_phone, r2i, i2r)    # server -> phone
        at = np.where(lane >= 0, lane, len(lanes))
        members += np.bincount(at, minlength=len(lanes) + 1)
        for direction, count in enumerate((up, down)):
            sums[:, direction] += np.bincount(at, weights=count, minlength=len(lanes) + 1).astype(np.int64)
        for index, info in enumerate(lanes):
            sel = lane == index
            for direction, count in enumerate((up, down)):
                has = sel & (count > 0)
                if not has.any():
                    continue
                spans = np.column_stack([start[has], end[has]])
                bars[index][direction].append(_merge(spans, tol) if info["aggregate"] else spans)
    segments, colors = [], []
    aggregated = 0
    for index, info in enumerate(lanes):
        y = _y(index)
        for direction, (offset, color) in enumerate(((UP, PHONE_COLOR), (DOWN, SERVER_COLOR))):
            parts = bars[index][direction]
            spans = np.concatenate(parts) if parts else np.empty((0, 2))
            if info["aggregate"]:
                spans = _merge(spans, tol)
            for a, b in spans:
                segments.append([(a, y + offset), (b, y + offset)])
                colors.append(color)
        if info["aggregate"]:
            aggregated += int(members[index])
        else:
            ax.text(x_max, y, f" ↑{int(sums[index, 0])} ↓{int(sums[index, 1])}", fontsize=6,
                    va="center", ha="left", color="#555555", clip_on=False)
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=3.2, alpha=0.55,
                                     capstyle="butt", zorder=1))
    return aggregated


def _levels() -> list[int]:
    """The time-column counts _thin tries, finest first."""
    levels = [PIXEL_BINS]
    while levels[-1] > 16:
        levels.append(levels[-1] // 2)
    return levels


def _columns(x: np.ndarray, x_max: float, bins: int) -> np.ndarray:
    return np.clip((x / x_max * bins).astype(np.int64), 0, bins)


def _thin(x: np.ndarray, keys: np.ndarray, x_max: float, budget: int | None = None) -> np.ndarray:
    """Indices of one point per (key, time column): never a million artists or points.
    Columns start at pixel width and widen until at most `budget` points remain."""
    if len(x) == 0:
        return np.empty(0, dtype=np.int64)
    levels = _levels()
    for bins in levels:
        combined = keys.astype(np.int64) * (bins + 1) + _columns(x, x_max, bins)
        _, first = np.unique(combined, return_index=True)
        if budget is None or len(first) <= budget or bins == levels[-1]:
            return np.sort(first)


def _cells(x: np.ndarray, keys: np.ndarray, x_max: float) -> np.ndarray:
    """A number per (key, column at every level of _thin). Points that share it share a
    column at every level, so only the first of them can ever be picked. A level is implied
    by the finer one when it is exactly half of it (x * bins / 2 halves exactly in floating
    point); the others are added to the number."""
    levels = _levels()
    cells = keys.astype(np.int64)
    for i, bins in enumerate(levels):
        if i == 0 or levels[i - 1] != 2 * bins:
            cells = cells * (bins + 1) + _columns(x, x_max, bins)
    return cells


EVENT_CHUNK = 65536        # events placed per step (10M packets: +11 MB, not +96 MB in one go)


def _event_points(events, lane_of, t0, x_max) -> tuple[np.ndarray, ...]:
    """(x, lane, side, kind) of the events that have a lane, in row order; side is 0, 1
    (phone, drawn above) or 2 (server, below), kind an index into EVENT_STYLE. Only the
    first event of each kind and _cells() is kept, which leaves _thin's picks unchanged at
    every level: a million events become at most a few points per lane and pixel column,
    and no array as long as the table is made."""
    kind_index = {name: index for index, name in enumerate(EVENT_STYLE)}
    n_keys = 3 * max(lane_of.lane_count, 1)
    ts, fid_all = events["ts_ns"], events["flow_id"]
    parts: list[tuple[np.ndarray, ...]] = []
    for start in row_steps(len(events), EVENT_CHUNK):
        stop = min(start + EVENT_CHUNK, len(events))
        fid = fid_all.iloc[start:stop]
        if fid.isna().any():
            rows = np.flatnonzero(fid.notna().to_numpy())
            lane = lane_of.lookup(fid.iloc[rows].to_numpy(np.int64))
        else:
            rows = None
            lane = lane_of.lookup(fid.to_numpy(np.int64))
        has_lane = lane >= 0
        rows = np.flatnonzero(has_lane) if rows is None else rows[has_lane]
        lane = lane[has_lane]
        kind = lookup(events["kind"].iloc[start:stop], kind_index, -1)[rows]
        side = lookup(events["sender"].iloc[start:stop], SIDE_INDEX, 0)[rows]
        drawn = kind >= 0
        rows, lane, kind, side = rows[drawn], lane[drawn], kind[drawn], side[drawn]
        x = (ts.iloc[start:stop].to_numpy(np.int64)[rows] - t0) / 1e9
        _, first = np.unique(_cells(x, kind * n_keys + lane * 3 + side, x_max), return_index=True)
        first.sort()
        parts.append((x[first], lane[first], side[first], kind[first]))
    if not parts:
        return tuple(np.empty(0, dtype=d) for d in (np.float64, np.int64, np.int64, np.int64))
    x, lane, side, kind = (np.concatenate(p) for p in zip(*parts))
    # a cell seen in an earlier chunk keeps that chunk's first event
    _, first = np.unique(_cells(x, kind * n_keys + lane * 3 + side, x_max), return_index=True)
    first.sort()
    return x[first], lane[first], side[first], kind[first]


def _draw_events(ax, events, lane_of, t0, x_max) -> int:
    if not len(events):
        return 0
    x, lane, side, kind = _event_points(events, lane_of, t0, x_max)
    offset = np.array([0.0, UP, DOWN])[side]
    present = {k: np.flatnonzero(kind == index) for index, k in enumerate(EVENT_STYLE)}
    drawn = 0
    budget = MAX_MARKERS // max(1, sum(1 for sel in present.values() if len(sel)))
    for k_index, (k, (marker, color, size, _)) in enumerate(EVENT_STYLE.items()):
        sel = present[k]
        if not len(sel):
            continue
        keys = lane[sel] * 3 + (offset[sel] > 0) + 2 * (offset[sel] < 0)
        pick = sel[_thin(x[sel], keys, x_max, budget)]
        face = "none" if k in _HOLLOW else color
        ax.scatter(x[pick], [_y(lane_i) + off for lane_i, off in zip(lane[pick], offset[pick])],
                   marker=marker, s=size,
                   linewidths=1.3 if k in _HOLLOW or marker in "|" else 0.6, zorder=3 + k_index * 0.01,
                   **({"c": color} if marker in "|." else {"facecolors": face, "edgecolors": color}))
        drawn += len(pick)
    return drawn


def _error_logs(logs, flows, lane_of, lanes) -> tuple[pd.DataFrame, dict]:
    """Error lines with a capture time, each with its lane: its flow's, its socket kind's
    aggregate lane, or a shared 'unmatched' lane added at the bottom."""
    if not len(logs) or "errno" not in logs or "ts_ns" not in logs:
        return pd.DataFrame(), {}
    mask = logs["errno"].notna() & logs["ts_ns"].notna()
    rows = logs.loc[mask].copy()
    if not len(rows):
        return rows, {}
    lane = np.full(len(rows), -1, dtype=np.int64)
    if "flow_id" in rows:
        fids = rows["flow_id"]
        for i, f in enumerate(fids):
            if f is not None and not pd.isna(f):
                lane[i] = lane_of.get(int(f), -1)
    if (lane < 0).any() and len(flows):
        # Not matched to a flow: the first lane of the same socket kind.
        kinds = log_kinds(rows, flows).to_numpy()
        first_of = {}
        for index, info in enumerate(lanes):
            first_of.setdefault(info["group"], index)
        for i in np.flatnonzero(lane < 0):
            if kinds[i] in first_of:
                lane[i] = first_of[kinds[i]]
    extra = {}
    if (lane < 0).any():
        lanes.append({"group": "logs", "label": "log lines not tied to a flow", "flows": 0,
                      "aggregate": True})
        lane[lane < 0] = len(lanes) - 1
    rows["_lane"] = lane
    return rows, extra


def _draw_logs(ax, rows, _extra, t0, x_max) -> int:
    if not len(rows):
        return 0
    x = (rows["ts_ns"].astype("int64").to_numpy() - t0) / 1e9
    role = text(rows["role"]).to_numpy() if "role" in rows else np.full(len(rows), "app")
    lane = rows["_lane"].to_numpy()
    errno = text(rows["errno"]).to_numpy()
    drawn = 0
    labelled = 0
    for r_index, (r, (marker, color, _)) in enumerate(LOG_STYLE.items()):
        sel = np.flatnonzero(role == r)
        if not len(sel):
            continue
        pick = sel[_thin(x[sel], lane[sel], x_max, MAX_MARKERS // 4)]
        offset = UP * 1.9 if r == "app" else DOWN * 1.9
        ax.scatter(x[pick], [_y(l) + offset for l in lane[pick]], marker=marker, s=55, c=color,
                   edgecolors="black", linewidths=0.4, zorder=4)
        drawn += len(pick)
        seen = set()
        placed: dict = {}   # (lane, role) -> x of labels already there, to stack close ones
        for i in pick:
            key = (lane[i], errno[i], r)
            if key in seen or labelled >= MAX_LOG_LABELS:
                continue
            seen.add(key)
            labelled += 1
            near = [px for px in placed.setdefault((lane[i], r), []) if abs(px - x[i]) < x_max * 0.08]
            placed[(lane[i], r)].append(x[i])
            step = 8 * len(near)
            ax.annotate(errno[i], (x[i], _y(lane[i]) + offset),
                        xytext=(4, 3 + step if r == "app" else -9 - step),
                        textcoords="offset points", fontsize=7, color=color, zorder=5,
                        bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none", "alpha": 0.75})
    return drawn


# --------------------------------------------------------------------------- axes


def _clock(t0: int, shift_s: float):
    def fmt(x, _pos=None):
        when = dt.datetime.fromtimestamp(t0 / 1e9 + x + shift_s, tz=dt.timezone.utc)
        return when.strftime("%H:%M:%S")
    return fmt


def _zone(seconds: float) -> str:
    sign = "+" if seconds >= 0 else "-"
    seconds = abs(int(round(seconds)))
    return f"UTC{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _axes(ax, lanes, t0, x_max, phone_tz_s) -> None:
    n = max(len(lanes), 1)
    ax.set_xlim(0, x_max)
    ax.set_ylim(_y(n - 1) - 0.7, 0.9)
    ax.set_yticks([_y(i) for i in range(len(lanes))])
    ax.set_yticklabels([lane["label"] for lane in lanes], fontsize=7)
    for i, lane in enumerate(lanes):
        if lane["aggregate"]:
            ax.get_yticklabels()[i].set_fontstyle("italic")
        if i == 0 or lanes[i - 1]["group"] != lane["group"]:
            if i:
                ax.axhline(_y(i) + 0.5, color="#bbbbbb", lw=0.8)
            # In the label margin, between lanes, so it never hides a marker.
            ax.text(-0.005, _y(i) + 0.45, GROUP_TITLE.get(lane["group"], lane["group"]),
                    transform=ax.get_yaxis_transform(), fontsize=8, fontweight="bold",
                    va="center", ha="right", color="#333333")
    for i in range(len(lanes)):
        ax.axhline(_y(i), color="#eeeeee", lw=0.5, zorder=0)
    date = dt.datetime.fromtimestamp(t0 / 1e9, tz=dt.timezone.utc).strftime("%Y-%m-%d")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(_clock(t0, 0.0)))
    ax.set_xlabel(f"capture time, UTC ({date}; capture starts at "
                  f"{_clock(t0, 0.0)(0)}.{int(t0 % 1_000_000_000):09d})", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    top = ax.secondary_xaxis("top")
    if phone_tz_s is not None:
        top.xaxis.set_major_formatter(plt.FuncFormatter(_clock(t0, float(phone_tz_s))))
        top.set_xlabel(f"phone local time ({_zone(phone_tz_s)})", fontsize=8)
    else:
        top.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _p=None: f"{x:g} s"))
        top.set_xlabel("seconds since capture start (phone time zone unknown)", fontsize=8)
    top.tick_params(labelsize=8)
    for side in ("right",):
        ax.spines[side].set_visible(False)


def _default_title(flows, events, stats) -> str:
    title = f"Socket timeline: {stats['flows']:,} flows, {stats['events']:,} events"
    # what was thinned goes on a line of its own: on one line with the counts, a big
    # capture's title ran past the figure's right edge
    notes = []
    if stats["events_drawn"] < stats["events"]:
        notes.append(f"{stats['events_drawn']:,} markers drawn (thinned per lane and time column)")
    if stats["aggregated_flows"]:
        notes.append(f"{stats['aggregated_flows']:,} flows in aggregate lanes")
    return title + ("\n" + ", ".join(notes) if notes else "")


def _legend(ax, events, err_logs, lifecycle) -> None:
    handles = [Line2D([0], [0], color=PHONE_COLOR, lw=3, alpha=0.6, label="phone → server packets"),
               Line2D([0], [0], color=SERVER_COLOR, lw=3, alpha=0.6, label="server → phone packets")]
    kinds = set(events["kind"].unique()) if len(events) else set()
    for k, (marker, color, size, label) in EVENT_STYLE.items():
        if k in kinds:
            handles.append(Line2D([0], [0], marker=marker, ls="", color=color, markersize=7,
                                  markerfacecolor="none" if k in _HOLLOW else color, label=label))
    if len(err_logs):
        roles = set(text(err_logs["role"])) if "role" in err_logs else {"app"}
        for r, (marker, color, label) in LOG_STYLE.items():
            if r in roles:
                handles.append(Line2D([0], [0], marker=marker, ls="", color=color, markersize=7,
                                      markeredgecolor="black", label=label))
    bases = {p.get("basis") for p in lifecycle}
    if "log" in bases:
        handles.append(Patch(color="#9e9e9e", alpha=0.3, label="background (from logs)"))
    if bases - {"log"}:
        handles.append(Patch(color="#c7b3e6", alpha=0.4, label="background (from capture)"))
    ax.figure.legend(handles=handles, loc="lower center", ncol=min(7, len(handles)), fontsize=7,
                     frameon=False)
