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
import socket

import numpy as np
import pandas as pd

from analyzer import frames
from analyzer.frames import labels, text

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


_DOTTED_QUAD = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


def _norm_ip(ip: object) -> str | None:
    if ip is None or ip is pd.NA or (isinstance(ip, float) and np.isnan(ip)) or ip == "":
        return None
    text = str(ip).strip("[]")
    if _DOTTED_QUAD.fullmatch(text):
        # what ipaddress gives, ~15x sooner (a capture names tens of thousands): a valid
        # address prints as written, and one it refuses (an octet over 255, a leading zero)
        # is kept as written too
        return None if text == "0.0.0.0" else text
    try:
        packed = socket.inet_pton(socket.AF_INET6, text)
    except OSError:         # not IPv6 to the C library (a zone id, a name): ipaddress says
        packed = None
    if packed is not None and any(packed[:8]):
        # with a non-zero first half, neither IPv4-mapped nor unspecified, the C library
        # prints what ipaddress does (RFC 5952; tests/dissect/test_interner.py), ~10x sooner
        return socket.inet_ntop(socket.AF_INET6, packed)
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return text
    if addr.version == 6 and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return None if addr.is_unspecified else str(addr)


class Coded:
    """A text column as codes into a table of values: `coded[rows]` reads table[codes[rows]].
    A categorical keeps its own codes, so a million-row column costs no pointer per row;
    the table's last entry stands for a missing value (code -1)."""

    def __init__(self, codes: np.ndarray, table: np.ndarray):
        self.codes, self.table = codes, table

    def __getitem__(self, rows):
        return self.table[self.codes[rows]]

    def isin(self, values) -> np.ndarray:
        """Per row: is its value one of these."""
        return np.isin(self.table, list(values))[self.codes]


def coded_text(column: pd.Series, lower: bool = False) -> Coded:
    """A text column as Coded ("" where missing), optionally lower-cased."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, uniques = frames.codes(column), column.cat.categories
    else:
        codes, uniques = pd.factorize(text(column).to_numpy(object))
    values = [str(u).lower() if lower else str(u) for u in uniques]
    return Coded(codes, np.array(values + [""], dtype=object))


def coded_ips(column: pd.Series, memo: dict | None = None) -> Coded:
    """An address column as Coded _norm_ip values (None where missing). Each distinct
    address is parsed once: a capture's million events name a few thousand. `memo` keeps
    the parsed categories for the next column that shares them (the flows' and the
    events' addresses do, sometimes under another id)."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        codes, uniques = pd.factorize(column.astype(object))
        return Coded(codes, np.array([_norm_ip(u) for u in uniques] + [None], dtype=object))
    categories = column.cat.categories
    known = (memo or {}).get(id(categories))
    if known is None:
        known = next((k for k in (memo or {}).values() if len(k[0]) == len(categories)
                      and k[0].equals(categories)), None)
    if known is None:
        # kept with its categories, so that their id stays theirs
        known = (categories, np.array([_norm_ip(u) for u in categories] + [None], object))
        if memo is not None:
            memo[id(categories)] = known
    return Coded(frames.codes(column), known[1])


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
def _ints(column: pd.Series) -> np.ndarray:
    """An integer column's own array (no int64 copy of an int32 column)."""
    return column.to_numpy() if column.dtype.kind in "iu" else column.to_numpy(np.int64)


def _order(values: np.ndarray) -> np.ndarray:
    """A stable argsort, as int32 when the rows fit (half the memory of int64)."""
    order = np.argsort(values, kind="stable")
    return order.astype(np.int32) if len(values) < 2**31 else order


class FlowIndex:
    """The flow table as plain arrays, for per-line endpoint tests."""

    def __init__(self, flows: pd.DataFrame, phones: list[str]):
        if not flows["flow_id"].is_monotonic_increasing:   # the reader's tables already are
            flows = flows.sort_values("flow_id", kind="stable")
        self.n = len(flows)
        self.first_frame = _ints(flows["first_frame"])
        self.flow_id = _ints(flows["flow_id"])
        # text columns stay codes (see Coded): read row by row only for the few rows a line tests
        self.proto = coded_text(flows["proto"], lower=True)
        self.parsed: dict = {}          # addresses parsed, by categories (see coded_ips)
        self.ip = (coded_ips(flows["initiator_ip"], self.parsed),
                   coded_ips(flows["responder_ip"], self.parsed))
        self.port = (_ints(flows["initiator_port"]), _ints(flows["responder_port"]))
        # Per end, the rows in port order: every line names a port, so each of its tests
        # reads the few flows with that port, not the whole table.
        self._by_port = tuple(_order(port) for port in self.port)
        self._ports = tuple(port[order] for port, order in zip(self.port, self._by_port))
        self.first = flows["first_ts_ns"].to_numpy(np.int64)
        self.last = flows["last_ts_ns"].to_numpy(np.int64)
        self.teardown = coded_text(flows["teardown"])
        td = flows["teardown_ts_ns"]
        # no teardown time: the last packet's (the reader's tables always have one: no copy)
        self.teardown_ts = (np.where(td.isna(), self.last, td.fillna(0)).astype(np.int64)
                            if td.hasnans else td.to_numpy(np.int64))
        self._by_teardown_ts = _order(self.teardown_ts)
        self._teardown_ts_sorted = self.teardown_ts[self._by_teardown_ts]
        self._fits: dict[frozenset, np.ndarray] = {}
        self.phones = {_norm_ip(p) for p in phones}
        self.is_phone = tuple(ip.isin(self.phones) for ip in self.ip)
        self.has_phone = self.is_phone[0] | self.is_phone[1]
        self._cache: dict[tuple, np.ndarray] = {}

    def _port_range(self, end: int, port: int) -> tuple[int, int]:
        ports = self._ports[end]
        if ports.dtype.kind in "iu" and not np.iinfo(ports.dtype).min <= port <= np.iinfo(ports.dtype).max:
            return 0, 0
        # the port in the array's own type: an int64 key would have numpy cast the whole array
        key = np.asarray(port, dtype=ports.dtype)
        return int(np.searchsorted(ports, key, "left")), int(np.searchsorted(ports, key, "right"))

    def with_port(self, *ends_ports: tuple[int, int | None]) -> np.ndarray:
        """Rows (ascending) that may have these (end, port) pairs (end 0: initiator, 1:
        responder; a None port asks nothing): those with the rarest of the ports. A server's
        port is on half the capture's flows, the phone's on a few."""
        ranges = [(self._port_range(end, port), end) for end, port in ends_ports if port is not None]
        if not ranges:
            return np.arange(self.n)
        (lo, hi), end = min(ranges, key=lambda r: r[0][1] - r[0][0])
        return np.sort(self._by_port[end][lo:hi])

    def ended_between(self, lo_ns: int, hi_ns: int) -> np.ndarray:
        """Rows (ascending) whose teardown (or last packet) time is in [lo_ns, hi_ns]."""
        times = self._teardown_ts_sorted
        lo, hi = np.searchsorted(times, lo_ns, "left"), np.searchsorted(times, hi_ns, "right")
        return np.sort(self._by_teardown_ts[lo:hi])

    def ended_as(self, fits: set) -> np.ndarray:
        """Per row: did the flow end in one of these teardowns (computed once per set)."""
        key = frozenset(fits)
        if key not in self._fits:
            self._fits[key] = self.teardown.isin(key)
        return self._fits[key]

    def by_endpoints(self, li, lp, ri, rp, proto, op, role) -> tuple[np.ndarray, np.ndarray]:
        """(flow rows, which end is the line's own: 0 initiator / 1 responder)."""
        key = (li, lp, ri, rp, proto, op, role)
        if key not in self._cache:
            rows, ends = [], []
            for own in (0, 1):
                if (op in ("dial", "connect") and own == 1) or (op == "accept" and own == 0):
                    continue  # who dialled decides the orientation
                other = 1 - own
                idx = self.with_port((own, lp), (other, rp))
                m = np.ones(len(idx), bool)
                if lp is not None:
                    m &= self.port[own][idx] == lp
                if rp is not None:
                    m &= self.port[other][idx] == rp
                if li is not None:
                    m &= self.ip[own][idx] == li
                if ri is not None:
                    m &= self.ip[other][idx] == ri
                if proto in ("tcp", "udp"):
                    m &= self.proto[idx] == proto
                if self.phones and role in ("app", "server"):
                    # the app's log speaks for the phone's end, the server's for the other
                    m &= self.is_phone[own][idx] if role == "app" \
                        else (~self.is_phone[own][idx] & self.has_phone[idx])
                idx = idx[m]
                rows.append(idx)
                ends.append(np.full(len(idx), own))
            r, e = np.concatenate(rows), np.concatenate(ends)
            order = np.argsort(self.first[r], kind="stable")
            self._cache[key] = (r[order], e[order])
        return self._cache[key]


def has_endpoints(f: dict) -> bool:
    return f["remote_port"] is not None or f["local_port"] is not None


# ------------------------------------------------------------------ anchors
class EventIndex:
    """The capture's events as the anchor search reads them, built once for every log: the
    table's own arrays and codes (no object column a million rows long), and each kind's
    rows (by flow, by sender) found when first asked for."""

    def __init__(self, events: pd.DataFrame, fi: FlowIndex):
        self.ts = events["ts_ns"].to_numpy(np.int64)
        self.frame = _ints(events["frame"])
        self.flow_id = _ints(events["flow_id"])
        self._src_port = events["src_port"]
        self._src_ip = coded_ips(events["src_ip"], fi.parsed)
        self._kind_column = events["kind"]
        self._kind: dict[str, np.ndarray] = {}
        self._sender = events["sender"] if "sender" in events else None
        self._by_flow: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._sent_by: dict[tuple[str, str], np.ndarray] = {}

    @property
    def has_sender(self) -> bool:
        return self._sender is not None

    def of_kind(self, kind: str) -> np.ndarray:
        """Rows (ascending) of this kind."""
        if kind not in self._kind:
            self._kind[kind] = np.flatnonzero((labels(self._kind_column) == kind).to_numpy())
        return self._kind[kind]

    def src_port(self, rows: np.ndarray) -> np.ndarray:
        """The source port of these rows; an ICMP error has none: -1, which no port equals."""
        return self._src_port.iloc[rows].to_numpy(np.int64, na_value=-1)

    def on_flows(self, kind: str, flow_ids: np.ndarray) -> np.ndarray:
        """Rows (ascending) of this kind on these flows: a few binary searches in the kind's
        rows ordered by flow, not a pass over every event of the kind."""
        if kind not in self._by_flow:
            rows = self.of_kind(kind)
            order = np.argsort(self.flow_id[rows], kind="stable")
            self._by_flow[kind] = (self.flow_id[rows][order], rows[order])
        flows_of, rows = self._by_flow[kind]
        flow_ids = np.unique(flow_ids)
        if not len(flow_ids):
            return np.empty(0, np.int64)
        if flows_of.dtype != flow_ids.dtype and flow_ids.max() <= np.iinfo(flows_of.dtype).max:
            # the keys in the array's own type: else numpy would cast the array on every call
            flow_ids = flow_ids.astype(flows_of.dtype)
        lo = np.searchsorted(flows_of, flow_ids, "left")
        hi = np.searchsorted(flows_of, flow_ids, "right")
        return np.sort(np.concatenate([rows[a:b] for a, b in zip(lo, hi)]))

    def sent_by(self, kind: str, sender: str) -> np.ndarray:
        """Rows (ascending) of this kind sent by this end (phone, server, unknown)."""
        if (kind, sender) not in self._sent_by:
            rows = self.of_kind(kind)
            # compared on the categorical's codes: no text copy of the kind's rows
            self._sent_by[kind, sender] = rows[(labels(self._sender) == sender).to_numpy()[rows]]
        return self._sent_by[kind, sender]

    def src_ip(self, rows: np.ndarray) -> np.ndarray:
        """The normalised source address of these rows."""
        return self._src_ip[rows]


def anchor_candidates(facts: pd.DataFrame, base_ns: np.ndarray, res_s: np.ndarray, role: str,
                      fi: FlowIndex, ei: EventIndex) -> pd.DataFrame:
    """Every (log line, capture event) pair that could be the same moment (see module doc)."""
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
            if has_endpoints(f):
                rows, _ = fi.by_endpoints(f["local_ip"], f["local_port"], f["remote_ip"],
                                          f["remote_port"], f["proto"], f["op"], role)
                idx = ei.on_flows(kind, fi.flow_id[rows])
                # the sender is this end or its peer: the remote endpoint tells which
                if f["remote_port"] is not None and kind != "syn_unanswered":
                    is_remote = ei.src_port(idx) == f["remote_port"]
                    if f["remote_ip"] is not None:
                        is_remote &= ei.src_ip(idx) == f["remote_ip"]
                    idx = idx[~is_remote] if by_self else idx[is_remote]
            else:
                if ei.has_sender and fi.phones:
                    want = own_side if by_self else ("server" if own_side == "phone" else "phone")
                    idx = ei.sent_by(kind, want)
                else:
                    idx = ei.of_kind(kind)
                if len(idx) > MAX_PER_LINE:
                    continue
            cand = [(int(ei.ts[j]), int(ei.frame[j]), int(ei.flow_id[j])) for j in idx]
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
    idx = fi.ended_between(t - int(_TIME_ROLE_WINDOW_S * 1e9), t + slack)
    m = fi.ended_as(fits)[idx]
    if f["proto"] in ("tcp", "udp"):
        m &= fi.proto[idx] == f["proto"]
    if fi.phones:
        m &= fi.has_phone[idx]
    idx = idx[m]
    if len(idx) == 0:
        return None, "none: no endpoints, and no flow ended that way shortly before"
    r = idx[np.argmax(fi.teardown_ts[idx])]
    return int(fi.flow_id[r]), f"time+role ({fi.teardown[r]} {(t - fi.teardown_ts[r]) / 1e9:.1f} s before; {len(idx)} candidates)"
