"""Log events <-> the capture: which packet a log line saw (anchors), which flow it is about.

Both questions are answered from the line's own facts: its endpoints (local/remote ip:port,
either may be partial, e.g. Go's ``:33322``), the operation and errno, and the log's role
(the app's log speaks for the phone's end of a flow, the server's for the other end).

Anchor kinds (what the line saw on the wire, and how long after it the line may come):

====================  =====================  ===========  ==========================
log line              capture event          sent by      delay window
====================  =====================  ===========  ==========================
read ECONNRESET       rst                    peer         tight
read EOF              fin                    peer         tight
dial ECONNREFUSED     refused (RST to SYN)   peer         tight
accept / new conn     synack                 this end     tight
connected (dial ok)   synack                 peer         tight
first UDP send        the flow's first packet this end    tight
write ECONNRESET/EPIPE rst                   peer         loose: the next write
dial ETIMEDOUT        syn_unanswered (last   this end     loose: the kernel's last
                      SYN retry)                          retransmission timeout
====================  =====================  ===========  ==========================
"""

from __future__ import annotations

import ipaddress
import re

import numpy as np
import pandas as pd

from analyzer.frames import text

TIGHT_S = 0.5        # an app blocked in read/accept/dial wakes up within this
LATENCY_S = 0.05     # the capture may see a packet this much after its sender logged it
LOOSE_WRITE_S = 60.0  # a periodic writer hits the dead socket at its next tick
LOOSE_DIAL_S = 140.0  # Linux gives up a SYN ~130 s after the first, ~64 s after the last retry
MAX_PER_LINE = 2000  # candidate events per endpoint-less line before it stops being an anchor

_EP = r"(?P<ep>\[?[0-9A-Fa-f:.]*\]?:\d{1,5})"
# Success lines the reader gives no endpoints for (it reads errors); ours, the emulator's,
# and the field report's wording.
_ACCEPT_RE = re.compile(r"\b(?:new connection from|accepted(?: connection from)?|accept(?:ed)? from)\s+"
                        + _EP, re.I)
_CONNECTED_RE = re.compile(r"\bconnected\s+(?P<a>\S+:\d{1,5})->(?P<b>\S+:\d{1,5})|"
                           r"\bdial (?P<t>\S+:\d{1,5}) connected from (?P<f>\S+:\d{1,5})", re.I)
_SEND_RE = re.compile(r"\b(?:(?P<proto>udp|tcp)\s+)?(?:write|wrote|send|sent)\s+\d+\s+bytes to\s+"
                      + _EP, re.I)
_LISTEN_RE = re.compile(r"\blisten(?:ing)?\b", re.I)

# errno -> the teardowns of a flow it is consistent with
_FITS = {
    "ECONNRESET": {"rst"},
    "EOF": {"fin"},
    "ECONNREFUSED": {"refused"},
    "EPIPE": {"rst", "fin", "open", "udp_unanswered", "icmp_unreachable"},
    "ECONNABORTED": {"rst", "fin", "open"},
    "ENOTCONN": {"rst", "fin", "open"},
}
_NO_WIRE_SYSCALLS = {"bind", "listen", "socket", "setsockopt"}


def _norm_ip(ip: object) -> str | None:
    if ip is None or ip is pd.NA or (isinstance(ip, float) and np.isnan(ip)) or ip == "":
        return None
    text = str(ip).strip("[]")
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return text
    if addr.version == 6 and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return None if addr.is_unspecified else str(addr)


def _split(ep: str) -> tuple[str | None, int | None]:
    host, _, port = ep.rpartition(":")
    return _norm_ip(host), int(port) if port.isdigit() and int(port) <= 65535 else None


def line_facts(ev: pd.DataFrame) -> pd.DataFrame:
    """Per log event: normalised endpoints (reader's, filled from success phrases), errno,
    op, proto, and the anchor class (``kind`` of capture event it can be paired with)."""
    n = len(ev)
    msg = ev["message"].astype(object).where(ev["message"].notna(), "").to_numpy(object)
    li = [_norm_ip(x) for x in ev["local_ip"].astype(object)]
    ri = [_norm_ip(x) for x in ev["remote_ip"].astype(object)]
    lp = [None if pd.isna(x) else int(x) for x in ev["local_port"]]
    rp = [None if pd.isna(x) else int(x) for x in ev["remote_port"]]
    errno = [None if pd.isna(x) else str(x) for x in ev["errno"]]
    op = [None if pd.isna(x) else str(x) for x in ev["op"]]
    proto = [None if pd.isna(x) else str(x).lower() for x in ev["proto"]]
    syscall = [None if pd.isna(x) else str(x) for x in ev["syscall"]]
    cls: list[str | None] = [None] * n
    for i in range(n):
        m, e, o = msg[i], errno[i], op[i]
        if e is None and m:
            if (a := _ACCEPT_RE.search(m)):
                cls[i], op[i] = "accept", o or "accept"
                ri[i], rp[i] = (ri[i], rp[i]) if rp[i] else _split(a.group("ep"))
            elif (c := _CONNECTED_RE.search(m)):
                cls[i], op[i], proto[i] = "connected", o or "dial", proto[i] or "tcp"
                if c.group("a"):
                    (li[i], lp[i]), (ri[i], rp[i]) = _split(c.group("a")), _split(c.group("b"))
                else:
                    (ri[i], rp[i]), (li[i], lp[i]) = _split(c.group("t")), _split(c.group("f"))
            elif (s := _SEND_RE.search(m)):
                op[i] = o or "write"
                proto[i] = proto[i] or (s.group("proto") or "").lower() or None
                ri[i], rp[i] = _split(s.group("ep"))
                if proto[i] == "udp":  # a datagram write is a packet; a TCP write maybe not yet
                    cls[i] = "first_send"
            continue
        if e == "ECONNRESET":
            cls[i] = "reset_write" if o == "write" else "reset_read"
        elif e == "EPIPE" and o == "write":
            cls[i] = "reset_write"
        elif e == "EOF":
            cls[i] = "eof"
        elif e == "ECONNREFUSED":
            cls[i] = "refused"
        elif e == "ETIMEDOUT" and (o in ("dial", "connect") or syscall[i] == "connect"):
            cls[i] = "dial_timeout"
    return pd.DataFrame({"local_ip": li, "local_port": lp, "remote_ip": ri, "remote_port": rp,
                         "errno": errno, "op": op, "proto": proto, "syscall": syscall,
                         "anchor": cls, "message": msg}, index=ev.index, dtype=object)


# ------------------------------------------------------------------ flows by endpoints
class FlowIndex:
    """The flow table as plain arrays, for per-line endpoint tests."""

    def __init__(self, flows: pd.DataFrame, phones: list[str]):
        flows = flows.sort_values("flow_id", kind="stable").reset_index(drop=True)
        self.n = len(flows)
        self.first_frame = flows["first_frame"].to_numpy(np.int64)
        self.flow_id = flows["flow_id"].to_numpy(np.int64)
        self.proto = text(flows["proto"]).str.lower().to_numpy(object)
        self.ip = (np.array([_norm_ip(x) for x in flows["initiator_ip"].astype(object)], object),
                   np.array([_norm_ip(x) for x in flows["responder_ip"].astype(object)], object))
        self.port = (flows["initiator_port"].to_numpy(np.int64),
                     flows["responder_port"].to_numpy(np.int64))
        self.first = flows["first_ts_ns"].to_numpy(np.int64)
        self.last = flows["last_ts_ns"].to_numpy(np.int64)
        self.teardown = text(flows["teardown"]).to_numpy(object)
        td = flows["teardown_ts_ns"]
        self.teardown_ts = np.where(td.isna(), self.last, td.fillna(0)).astype(np.int64)
        self.phones = {_norm_ip(p) for p in phones}
        self.is_phone = tuple(np.isin(ip, list(self.phones)) for ip in self.ip)
        self.has_phone = self.is_phone[0] | self.is_phone[1]
        self._cache: dict[tuple, np.ndarray] = {}

    def by_endpoints(self, li, lp, ri, rp, proto, op, role) -> tuple[np.ndarray, np.ndarray]:
        """(flow rows, which end is the line's own: 0 initiator / 1 responder)."""
        key = (li, lp, ri, rp, proto, op, role)
        if key not in self._cache:
            rows, ends = [], []
            for own in (0, 1):
                if (op in ("dial", "connect") and own == 1) or (op == "accept" and own == 0):
                    continue  # who dialled decides the orientation
                other = 1 - own
                m = np.ones(self.n, bool)
                if li is not None:
                    m &= self.ip[own] == li
                if lp is not None:
                    m &= self.port[own] == lp
                if ri is not None:
                    m &= self.ip[other] == ri
                if rp is not None:
                    m &= self.port[other] == rp
                if proto in ("tcp", "udp"):
                    m &= self.proto == proto
                if self.phones and role in ("app", "server"):
                    # the app's log speaks for the phone's end, the server's for the other
                    m &= self.is_phone[own] if role == "app" else (~self.is_phone[own] & self.has_phone)
                idx = np.flatnonzero(m)
                rows.append(idx)
                ends.append(np.full(len(idx), own))
            r, e = np.concatenate(rows), np.concatenate(ends)
            order = np.argsort(self.first[r], kind="stable")
            self._cache[key] = (r[order], e[order])
        return self._cache[key]


def has_endpoints(f: dict) -> bool:
    return f["remote_port"] is not None or f["local_port"] is not None


# ------------------------------------------------------------------ anchors
def anchor_candidates(facts: pd.DataFrame, base_ns: np.ndarray, res_s: np.ndarray, role: str,
                      fi: FlowIndex, events: pd.DataFrame) -> pd.DataFrame:
    """Every (log line, capture event) pair that could be the same moment (see module doc)."""
    ev_flow_row = np.searchsorted(fi.flow_id, events["flow_id"].to_numpy(np.int64))
    ev_kind = text(events["kind"]).to_numpy(object)
    ev_ts = events["ts_ns"].to_numpy(np.int64)
    ev_frame = events["frame"].to_numpy(np.int64)
    ev_src = (np.array([_norm_ip(x) for x in events["src_ip"].astype(object)], object),
              events["src_port"].to_numpy(np.int64))
    sender = text(events["sender"]).to_numpy(object) if "sender" in events else None
    by_kind = {k: np.flatnonzero(ev_kind == k) for k in np.unique(ev_kind)}
    own_side = "phone" if role == "app" else "server"
    out: list[dict] = []
    for pos, f in enumerate(facts.to_dict("records")):
        cls = f["anchor"]
        if cls is None or base_ns[pos] == np.iinfo(np.int64).min:
            continue
        kind, by_self, lo, hi, tight = _ANCHOR_SPEC[cls]
        if cls == "first_send":
            cand = _first_send(f, role, fi)
        else:
            idx = by_kind.get(kind, np.empty(0, np.int64))
            if has_endpoints(f):
                rows, _ = fi.by_endpoints(f["local_ip"], f["local_port"], f["remote_ip"],
                                          f["remote_port"], f["proto"], f["op"], role)
                idx = idx[np.isin(ev_flow_row[idx], rows)]
                # the sender is this end or its peer: the remote endpoint tells which
                if f["remote_port"] is not None and kind != "syn_unanswered":
                    is_remote = ev_src[1][idx] == f["remote_port"]
                    if f["remote_ip"] is not None:
                        is_remote &= ev_src[0][idx] == f["remote_ip"]
                    idx = idx[~is_remote] if by_self else idx[is_remote]
            else:
                if sender is not None and fi.phones:
                    want = own_side if by_self else ("server" if own_side == "phone" else "phone")
                    idx = idx[sender[idx] == want]
                if len(idx) > MAX_PER_LINE:
                    continue
            cand = [(int(ev_ts[j]), int(ev_frame[j]), int(fi.flow_id[ev_flow_row[j]])) for j in idx]
        w = (1.0 if tight else 0.25) * (1.0 if has_endpoints(f) else 0.5)
        for ts, frame, flow_id in cand:
            out.append(dict(line=pos, line_no=None, base_ns=int(base_ns[pos]), event_ts_ns=ts,
                            frame=frame, kind=kind, flow_id=flow_id, lo_s=lo, hi_s=hi,
                            res_s=float(res_s[pos]), weight=w,
                            tight=bool(tight and has_endpoints(f))))
    cols = ["line", "line_no", "base_ns", "event_ts_ns", "frame", "kind", "flow_id", "lo_s",
            "hi_s", "res_s", "weight", "tight"]
    return pd.DataFrame(out, columns=cols)


# class -> (event kind, sent by this end?, delay window lo, hi, tight)
_ANCHOR_SPEC = {
    "reset_read": ("rst", False, -LATENCY_S, TIGHT_S, True),
    "eof": ("fin", False, -LATENCY_S, TIGHT_S, True),
    "refused": ("refused", False, -LATENCY_S, TIGHT_S, True),
    "accept": ("synack", True, -LATENCY_S, TIGHT_S, True),
    "connected": ("synack", False, -LATENCY_S, TIGHT_S, True),
    "first_send": ("first_packet", True, -LATENCY_S, TIGHT_S, True),
    "reset_write": ("rst", False, -LATENCY_S, LOOSE_WRITE_S, False),
    "dial_timeout": ("syn_unanswered", True, -LATENCY_S, LOOSE_DIAL_S, False),
}


def _first_send(f: dict, role: str, fi: FlowIndex) -> list:
    rows, own = fi.by_endpoints(f["local_ip"], f["local_port"], f["remote_ip"],
                                f["remote_port"], "udp", None, role)
    rows = rows[own == 0]  # the line's end sent the flow's first datagram
    return [(int(fi.first[r]), int(fi.first_frame[r]), int(fi.flow_id[r])) for r in rows]


# ------------------------------------------------------------------ line -> flow
def match_flows(facts: pd.DataFrame, ts_ns: np.ndarray, slack_s: np.ndarray, role: str,
                fi: FlowIndex, anchored: dict[int, tuple[int, str, int]]
                ) -> tuple[list[int | None], list[str]]:
    """(flow_id, how) per log event. ``anchored`` maps an event position to the
    (flow_id, event kind, frame) of the packet it was paired with for the clock."""
    nat = np.iinfo(np.int64).min
    flow_ids: list[int | None] = []
    hows: list[str] = []
    for pos, f in enumerate(facts.to_dict("records")):
        t = None if ts_ns[pos] == nat else int(ts_ns[pos])
        slack = int(slack_s[pos] * 1e9)
        if pos in anchored:
            fid, kind, frame = anchored[pos]
            basis = "endpoints+time" if has_endpoints(f) else "time+role"
            flow_ids.append(fid)
            hows.append(f"{basis} (clock anchor: {kind}, frame {frame})")
            continue
        if has_endpoints(f):
            fid, how = _by_endpoints(f, t, slack, role, fi)
        elif f["errno"] is not None and t is not None:
            fid, how = _by_time_role(f, t, slack, role, fi)
        else:
            fid, how = None, ("none: no endpoints or error in the line" if t is not None
                              else "none: no time, no endpoints")
        flow_ids.append(fid)
        hows.append(how)
    return flow_ids, hows


def _by_endpoints(f: dict, t: int | None, slack: int, role: str,
                  fi: FlowIndex) -> tuple[int | None, str]:
    no_wire = f["syscall"] in _NO_WIRE_SYSCALLS or f["errno"] == "EADDRINUSE"
    if no_wire:
        return None, _no_wire(f, t, slack, role, fi)
    if f["remote_port"] is None and f["errno"] is None and _LISTEN_RE.search(f["message"] or ""):
        return None, "none: a listening socket has no flow of its own"
    rows, _ = fi.by_endpoints(f["local_ip"], f["local_port"], f["remote_ip"], f["remote_port"],
                              f["proto"], f["op"], role)
    if len(rows) == 0:
        return None, "none: no flow in the capture has these endpoints"
    if t is None:
        if len(rows) == 1:
            return int(fi.flow_id[rows[0]]), "endpoints"
        return None, (f"none: no time to choose among flows "
                      f"{', '.join(str(fi.flow_id[r]) for r in rows[:5])}")
    k = int(np.searchsorted(fi.first[rows], t + slack, side="right")) - 1
    if k < 0:
        return None, (f"none: the line precedes every flow with these endpoints "
                      f"(flow {fi.flow_id[rows[0]]} starts "
                      f"{(fi.first[rows[0]] - t) / 1e9:.1f} s later)")
    # The errno names how the flow ended (EOF: a FIN, refused: a RST to the SYN...): the
    # latest flow that ended so before the line, even if newer attempts came after it.
    fits = _FITS.get(f["errno"] or "")
    if fits:
        before = rows[:k + 1]
        ok = before[np.isin(fi.teardown[before], list(fits))
                    & (fi.teardown_ts[before] <= t + slack)]
        if len(ok):
            k = int(np.flatnonzero(rows == ok[-1])[0])
    r = rows[k]
    gap = (t - fi.last[r]) / 1e9
    if gap > slack / 1e9 + TIGHT_S:
        return int(fi.flow_id[r]), f"endpoints+time ({gap:.1f} s after the flow's last packet)"
    return int(fi.flow_id[r]), "endpoints+time"


def _no_wire(f: dict, t: int | None, slack: int, role: str, fi: FlowIndex) -> str:
    """A bind/listen error sends nothing: point to the flow still holding the port."""
    what = f["syscall"] or f["op"] or "the call"
    port = f["local_port"]
    if port is None or t is None:
        return f"none: {what} never reached the wire"
    rows, _ = fi.by_endpoints(f["local_ip"], port, None, None, None, None, role)
    rows = rows[fi.first[rows] <= t + slack]
    if len(rows) == 0:
        return f"none: {what} never reached the wire"
    same = rows[(fi.proto[rows] == f["proto"])] if f["proto"] else rows
    r = (same if len(same) else rows)[-1]
    return f"none: {what} never reached the wire (flow {fi.flow_id[r]} concerns the same port)"


_TIME_ROLE_WINDOW_S = 600.0  # an error surfaces at the next use of the socket, minutes later


def _by_time_role(f: dict, t: int, slack: int, role: str,
                  fi: FlowIndex) -> tuple[int | None, str]:
    """No endpoints: the flow of this end that most recently ended the way the errno says."""
    fits = _FITS.get(f["errno"])
    if fits is None:
        return None, f"none: no endpoints, and {f['errno']} names no kind of teardown"
    m = np.isin(fi.teardown, list(fits)) & (fi.teardown_ts <= t + slack) \
        & (fi.teardown_ts >= t - int(_TIME_ROLE_WINDOW_S * 1e9))
    if f["proto"] in ("tcp", "udp"):
        m &= fi.proto == f["proto"]
    if fi.phones:
        m &= fi.has_phone
    idx = np.flatnonzero(m)
    if len(idx) == 0:
        return None, "none: no endpoints, and no flow ended that way shortly before"
    r = idx[np.argmax(fi.teardown_ts[idx])]
    return int(fi.flow_id[r]), f"time+role ({fi.teardown[r]} {(t - fi.teardown_ts[r]) / 1e9:.1f} s before; {len(idx)} candidates)"
