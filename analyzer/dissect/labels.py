"""From the flow engine's finished flows and events to the flows and events tables.

Flows are summarised as they leave the engine: the flow kernel (`flows.summarise_slots`)
decides Zeek's `conn_state` (the same decision list as Zeek's conn.log) and our own
`teardown` label, and `Interner.summarise` makes compact columns of its rows, in which
addresses and histories are small codes into tables kept once: ~100 bytes per finished
flow, appended to files by the pipeline (spill.py), from which the tables are built column
by column into mapped files. Sides stay sides (originator 0 / responder 1): which side is
the phone is decided later (phones.py).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from analyzer import frames, memory
from analyzer.dissect import flows as F
from analyzer.dissect.packets import halves_to_addr
from analyzer.spill import HEAP, Blocks, Spill, row_steps

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}
CONN_STATES = list(F.CONN_STATES)     # coded by the flow kernel (flows.summarise_slots)
TEARDOWNS = list(F.TEARDOWNS)
RSTOS0_HISTORY = re.compile(r"\^?S[^HAFGIQ]*R.*")
KIND_NAMES = list(F.EVENT_NAMES) + ["syn_unanswered", "udp_unanswered"]


def code_type(count: int):
    """The integer type pandas gives the codes of `count` categories: codes already of that
    type are taken as they are, not copied."""
    for kind in (np.int8, np.int16, np.int32):
        if count < np.iinfo(kind).max:
            return kind
    return np.int64


def _categorical(codes: np.ndarray, labels, spill: Spill = HEAP) -> pd.Categorical:
    """Categorical from codes into labels that may repeat (merged), its codes made in
    `spill` (mapped files, or the heap)."""
    labels = np.asarray(labels, dtype=object)
    # merged in order of first sight by a hash table (the event details: one text per
    # unanswered flow, most of them alike)
    remap, uniq = pd.factorize(labels)
    uniq = list(uniq)
    kind = code_type(len(uniq))
    if len(uniq) != len(labels):
        return pd.Categorical.from_codes(spill.gather(remap.astype(kind), np.asarray(codes)),
                                         categories=uniq)
    return pd.Categorical.from_codes(spill.gather(np.asarray(codes), dtype=kind), categories=uniq)


_MIX = np.uint64(0x9E3779B97F4A7C15)     # odd: multiplying by it loses no bits


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inverse, first) for the distinct rows of a uint8 matrix: each row's number among
    them, and each one's first position. Rows are hashed to one word and the words put in a
    hash table (9x quicker than sorting 40-byte rows); every row is then checked against
    its number's first row, and a hash shared by unequal rows falls back to a sort."""
    if rows.shape[1] % 8 == 0 and rows.shape[1]:
        words = rows.view(np.uint64)
        h = words[:, 0].copy()
        for k in range(1, words.shape[1]):
            h *= _MIX
            h ^= words[:, k]
        inverse, _ = pd.factorize(h)
        # numbered in order of first sight: a row is a first where its number passes all before
        first = np.flatnonzero(np.diff(np.maximum.accumulate(inverse), prepend=-1) > 0)
        if (words == words[first[inverse]]).all():
            return inverse, first
    _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    return inverse.reshape(-1), first


class Interner:
    """Codes for addresses and histories, shared by every block of finished flows."""

    def __init__(self):
        self.addr_text: list[str] = [""]
        self.hist_code: dict[bytes, int] = {}
        self.hist_text: list[str] = []
        self.hist_rstos0: list[bool] = []
        # known addresses as sorted arrays, one pair for hi == 0 (IPv4-mapped ones, and
        # "none") and one for IPv6 (both halves as one 16-byte key): a block of flows is
        # coded with binary searches, and only addresses never seen before cost Python
        self._known = {"v4": (np.zeros(1, np.uint64), np.zeros(1, np.int32)),
                       "v6": (np.zeros(0, "V16"), np.zeros(0, np.int32))}

    def addresses(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """(hi, lo) halves -> int32 codes into addr_text. New addresses are numbered as
        they come: IPv4 in order of first sight, then IPv6 in numeric order."""
        if len(hi) == 0:
            return np.zeros(0, np.int32)
        hi = np.asarray(hi, np.uint64)
        lo = np.asarray(lo, np.uint64)
        v4 = hi == 0
        if v4.all():
            return self._code("v4", lo, None)
        out = np.empty(len(hi), np.int32)
        if v4.any():
            out[v4] = self._code("v4", lo[v4], None)
        pairs = np.ascontiguousarray(np.stack([hi[~v4], lo[~v4]], axis=1))
        out[~v4] = self._code("v6", pairs.view("V16").reshape(-1), pairs)
        return out

    def _code(self, family: str, values: np.ndarray, pairs: np.ndarray | None) -> np.ndarray:
        """Codes for `values` (lo halves, or 16-byte keys with their `pairs` of halves)."""
        keys, codes = self._known[family]
        if pairs is None:
            # a hash table, in order of first sight (a sort of every value took twice as long)
            inverse, uniq = pd.factorize(values)
        else:
            uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
        pos = np.minimum(np.searchsorted(keys, uniq), max(len(keys) - 1, 0))
        new = np.flatnonzero(keys[pos] != uniq) if len(keys) else np.arange(len(uniq))
        if len(new):
            fresh = uniq[new]
            if pairs is None:
                halves = [(0, int(v)) for v in fresh]
                order = range(len(new))                             # first sight
            else:
                sel = pairs[first[new]]
                halves = [(int(h), int(l)) for h, l in sel]
                order = np.lexsort((sel[:, 1], sel[:, 0]))         # numeric (hi, lo)
            new_codes = np.empty(len(new), np.int32)
            for i in order:
                new_codes[i] = len(self.addr_text)
                self.addr_text.append(halves_to_addr(*halves[i]))
            by_value = np.argsort(fresh)                # sorted, as np.insert needs
            fresh, new_codes = fresh[by_value], new_codes[by_value]
            at = np.searchsorted(keys, fresh)
            keys, codes = np.insert(keys, at, fresh), np.insert(codes, at, new_codes)
            self._known[family] = (keys, codes)
        return codes[np.searchsorted(keys, uniq)][np.asarray(inverse).reshape(-1)]

    def histories(self, H: np.ndarray) -> np.ndarray:
        """History letters (rows zero-padded) -> int32 codes into hist_text. Histories new
        to the interner are numbered in byte order."""
        if len(H) == 0:
            return np.zeros(0, np.int32)
        H = np.ascontiguousarray(H)
        inverse, first = _distinct_rows(H)
        uniq = H[first].view(f"S{H.shape[1]}").reshape(-1)
        table = np.empty(len(uniq), np.int32)
        for i in np.argsort(uniq, kind="stable"):
            u = uniq[i]
            code = self.hist_code.get(u)
            if code is None:
                code = self.hist_code[u] = len(self.hist_text)
                text = u.decode("ascii")
                self.hist_text.append(text)
                self.hist_rstos0.append(bool(RSTOS0_HISTORY.fullmatch(text)))
            table[i] = code
        return table[inverse]

    def summarise(self, S: np.ndarray, H: np.ndarray) -> dict[str, np.ndarray]:
        """Compact columns for a block of finished flows: the kernel's summary rows S (the
        flows.S_ fields) and histories H (flows.summarise_slots)."""
        hist = self.histories(H)
        state = S[F.S_STATE].astype(np.int8)
        if len(hist):
            # Zeek's RSTOS0 depends on the history's letters, which only this side reads
            rstos0 = (S[F.S_RSTOS0_IF] == 1) & np.array(self.hist_rstos0, dtype=bool)[hist]
            state[rstos0] = F.CS_RSTOS0

        def address(hi, lo):
            return self.addresses(S[hi].view(np.uint64), S[lo].view(np.uint64))

        return {
            "flow_id": S[F.S_FLOW_ID].copy(),
            "proto": S[F.S_PROTO].astype(np.uint8),
            "ip_version": S[F.S_IPVER].astype(np.uint8),
            "initiator_ip": address(F.S_A_HI, F.S_A_LO),
            "initiator_port": S[F.S_APORT].astype(np.int32),
            "responder_ip": address(F.S_B_HI, F.S_B_LO),
            "responder_port": S[F.S_BPORT].astype(np.int32),
            "first_ts_ns": S[F.S_FIRST_TS].copy(),
            "last_ts_ns": S[F.S_LAST_TS].copy(),
            "first_frame": S[F.S_FIRST_FRAME].copy(),
            "last_frame": S[F.S_LAST_FRAME].copy(),
            "packets_i2r": S[F.S_PKTS_I2R].astype(np.int32),
            "packets_r2i": S[F.S_PKTS_R2I].astype(np.int32),
            "bytes_i2r": S[F.S_BYTES_I2R].copy(),
            "bytes_r2i": S[F.S_BYTES_R2I].copy(),
            "conn_state": state,
            "history": hist,
            "teardown": S[F.S_TEARDOWN].astype(np.int8),
            "teardown_side": S[F.S_TD_SIDE].astype(np.int8),
            "teardown_frame": S[F.S_TD_FRAME].copy(),
            "teardown_ts_ns": S[F.S_TD_TS].copy(),
            "syn_count": S[F.S_SYN_COUNT].astype(np.int32),
            "icmp_sender": address(F.S_ICMP_HI, F.S_ICMP_LO),
        }

    def compact_events(self, ev: np.ndarray) -> dict[str, np.ndarray]:
        """Kernel events (rows of 8 int64) as compact columns."""
        icmp = ev[:, 3] == F.EV_ICMP_UNREACHABLE
        src = np.zeros(len(ev), np.int32)
        if icmp.any():
            src[icmp] = self.addresses(ev[icmp, 6].view(np.uint64), ev[icmp, 7].view(np.uint64))
        return {"frame": ev[:, 0].copy(), "ts_ns": ev[:, 1].copy(), "flow_id": ev[:, 2].copy(),
                "kind": ev[:, 3].astype(np.int8), "side": ev[:, 4].astype(np.int8),
                "code": ev[:, 5].astype(np.int32), "icmp_src": src}


def concat(blocks, empty: dict[str, np.ndarray], order_by: tuple[str, ...],
           spill: Spill = HEAP) -> dict[str, np.ndarray]:
    """Blocks of compact columns (a list of dicts, or spill.Blocks in files) as one, sorted
    by the given columns (last one first). Blocks in files come out as mapped columns
    (sorted a step at a time into new ones): the heap holds only the sort's order. Blocks
    in a list are emptied column by column, so at most one column is held twice."""
    if not len(blocks):
        return empty
    in_files = isinstance(blocks, Blocks)

    def whole(key, take):
        if in_files:
            return blocks.pop(key) if take else blocks.peek(key)
        return np.concatenate([b.pop(key) if take else b[key] for b in blocks])

    order = None
    if order_by:
        order = np.lexsort(tuple(whole(c, False) for c in reversed(order_by)))
    out = {}
    for key in (blocks.names() if in_files else list(blocks[0])):
        column = whole(key, True)
        out[key] = spill.gather(column, order)
        del column
        # the blocks' small arrays live on the heap: hand their pages back column by column
        memory.release()
    if not in_files:
        blocks.clear()
    return out


INT32_MAX = np.iinfo(np.int32).max


def counting_type(*columns: np.ndarray):
    """int32 for frame numbers and flow ids while they fit (below 2**31: any capture of
    fewer than two billion packets), else int64. A million events' two such columns are
    12 MB smaller, held through every stage."""
    ranges = [r for r in map(frames.extremes, columns) if r is not None]
    low = min((r[0] for r in ranges), default=0)
    top = max((r[1] for r in ranges), default=0)
    return np.int32 if 0 <= low and top <= INT32_MAX else np.int64


def flows_frame(cols: dict[str, np.ndarray], names: Interner, spill: Spill = HEAP) -> pd.DataFrame:
    """One row per flow, by side (phone attribution is added by phones.py). Text columns
    are categoricals over the interner's tables. Columns made here are made in `spill`
    (mapped files, or the heap), as the ones in `cols` were."""
    addr = names.addr_text
    counting = counting_type(cols["flow_id"], cols["first_frame"], cols["last_frame"], cols["teardown_frame"])
    for name in ("flow_id", "first_frame", "last_frame", "teardown_frame"):
        cols[name] = spill.gather(cols[name], dtype=counting)
    # protocol numbers -> codes in numeric order, by a lookup table (no sort of every flow)
    proto = cols["proto"]
    puniq = np.flatnonzero(np.bincount(proto, minlength=256)) if len(proto) else np.zeros(0, np.int64)
    lookup = np.full(256, -1, np.int8)
    lookup[puniq] = np.arange(len(puniq))
    pcodes = spill.gather(lookup, proto)

    # One type for the three address columns, over the interner's own strings: a pandas
    # text index of 80k addresses costs ~10 MB each (its own copy of the text, and a hash
    # table over Python strings made from it); this one ~3 MB, once.
    addr_type = pd.CategoricalDtype(pd.Index(addr, dtype=object))

    def address(name):
        return pd.Categorical.from_codes(spill.gather(cols[name], dtype=code_type(len(addr))),
                                         dtype=addr_type)

    df = pd.DataFrame({
        "flow_id": cols["flow_id"],
        "proto": _categorical(pcodes, [PROTO_NAMES.get(int(p), str(int(p))) for p in puniq], spill),
        "ip_version": cols["ip_version"],
        "initiator_ip": address("initiator_ip"),
        "initiator_port": cols["initiator_port"],
        "responder_ip": address("responder_ip"),
        "responder_port": cols["responder_port"],
        "first_ts_ns": cols["first_ts_ns"],
        "last_ts_ns": cols["last_ts_ns"],
        "first_frame": cols["first_frame"],
        "last_frame": cols["last_frame"],
        "packets_i2r": cols["packets_i2r"],
        "packets_r2i": cols["packets_r2i"],
        "bytes_i2r": cols["bytes_i2r"],
        "bytes_r2i": cols["bytes_r2i"],
        "conn_state": pd.Categorical.from_codes(cols["conn_state"], categories=CONN_STATES),
        "history": _categorical(cols["history"], names.hist_text or [""], spill),
        "teardown": pd.Categorical.from_codes(cols["teardown"], categories=TEARDOWNS),
        "teardown_side": cols["teardown_side"],
        "teardown_frame": cols["teardown_frame"],
        "teardown_ts_ns": cols["teardown_ts_ns"],
        "syn_count": cols["syn_count"],
        "icmp_sender": address("icmp_sender"),
    }, copy=False)   # the columns are ours: no consolidated copy
    return df


ENDPOINT_STEP = 262144     # events given their endpoints (and details) per step: small temporaries


DETAIL_LOW = (1 << 56) - 1


def _pack_details(kind, code, icmp_src, tail_no) -> np.ndarray:
    """Each event's detail key as one int64: the kind in the top byte; below it the
    unanswered flow's number (end-of-flow events) or the kernel's code, or for an ICMP error
    its type and code above the sender's address code. 56 bits for a flow number: a SYN
    scan's tens of millions of unanswered flows each keep their own."""
    kind = np.asarray(kind).astype(np.int64)
    key = np.where(tail_no >= 0, tail_no, code).astype(np.int64)
    icmp = ((code.astype(np.int64) & 0xFFFF) << 32) | icmp_src.astype(np.int64)
    return (kind << 56) | np.where(kind == F.EV_ICMP_UNREACHABLE, icmp, key & DETAIL_LOW)


def _unpack_detail(packed: int) -> tuple[int, int, int]:
    """(kind, code or flow number, ICMP sender's address code) of a _pack_details key."""
    kind, low = int(packed >> 56), int(packed & DETAIL_LOW)
    if kind == F.EV_ICMP_UNREACHABLE:
        return kind, low >> 32, low & 0xFFFFFFFF
    return kind, low, 0


def _factorize_details(kind, code, icmp_src, tail_no, spill: Spill = HEAP):
    """pd.factorize of each event's detail key (_pack_details), in steps: one hash table
    over a million events would take ~45 MB for a few hundred distinct keys. Same codes and
    uniques as one factorize."""
    n = len(kind)
    codes = spill.empty(n, np.int64)
    seen = pd.Index(np.empty(0, np.int64))
    for a in range(0, n, ENDPOINT_STEP):
        b = min(n, a + ENDPOINT_STEP)
        local, uniques = pd.factorize(_pack_details(kind[a:b], code[a:b], icmp_src[a:b], tail_no[a:b]))
        where = seen.get_indexer(uniques)
        new = where < 0
        if new.any():
            where[new] = len(seen) + np.arange(int(new.sum()))
            seen = seen.append(pd.Index(uniques[new]))
        codes[a:b] = where[local]
        # the mapped columns' pages read and written in this step, and the heap the step's
        # hash table took (left to the end, it held ~75 MB on 50M packets)
        memory.release()
    return codes, seen.to_numpy(np.int64)


def _detail_texts(packed_uniq: np.ndarray, un: pd.DataFrame, names: Interner) -> np.ndarray:
    """The text of each distinct detail key (_factorize_details' uniques), as an object
    array. An unanswered flow's key is its own, so there are as many as unanswered flows
    (440k on 50M packets), but few distinct texts: those are made once per distinct
    (SYN count, tenths of a second) or datagram count, and only the other kinds' few keys
    are read one by one."""
    kinds = (packed_uniq >> 56).astype(np.int64)
    low = packed_uniq & DETAIL_LOW
    texts = np.full(len(packed_uniq), "", dtype=object)
    syn_at = np.flatnonzero(kinds == KIND_NAMES.index("syn_unanswered"))
    if len(syn_at):
        flow = low[syn_at]
        texts[syn_at] = _unanswered_syn_texts(
            un["syn_count"].to_numpy(np.int64)[flow],
            (un["teardown_ts_ns"].to_numpy(np.int64) - un["first_ts_ns"].to_numpy(np.int64))[flow])
    udp_at = np.flatnonzero(kinds == KIND_NAMES.index("udp_unanswered"))
    if len(udp_at):
        counts, which = np.unique(un["packets_i2r"].to_numpy(np.int64)[low[udp_at]], return_inverse=True)
        texts[udp_at] = np.array([f"{c} datagrams, no reply" for c in counts.tolist()], object)[which]
    for i in np.flatnonzero(~np.isin(kinds, [KIND_NAMES.index("syn_unanswered"),
                                             KIND_NAMES.index("udp_unanswered")])).tolist():
        k, c, a = _unpack_detail(packed_uniq[i])
        name = KIND_NAMES[k]
        if name == "syn_retry":
            texts[i] = f"retry {c}"
        elif name in ("synack", "data_after_fin", "data_after_rst"):
            texts[i] = F.DETAIL_TEXT[c]
        elif name == "refused":
            texts[i] = "SYN answered by RST"
        elif name == "icmp_unreachable":
            texts[i] = f"ICMP type {c >> 8} code {c & 255} from {names.addr_text[a]}"
    return texts


TENTH_NS = 100_000_000


def _unanswered_syn_texts(syns: np.ndarray, span_ns: np.ndarray) -> np.ndarray:
    """f"{syns} SYNs over {span_ns / 1e9:.1f} s, no reply" for each flow, made once per
    distinct text. The tenths are rounded in integers: a span is never within a nanosecond
    of the half-way point unless it is on it (the float's error is under a nanosecond below
    ~100 days), and such spans, negative ones and any past 2**53 ns are formatted as the
    float says."""
    rest = span_ns % TENTH_NS
    tenths = span_ns // TENTH_NS + (rest > TENTH_NS // 2)
    exact = (np.abs(rest - TENTH_NS // 2) > 1) & (span_ns >= 0) & (span_ns < 2 ** 53) \
        & (syns >= 0) & (syns < 2 ** 22)
    out = np.empty(len(syns), dtype=object)
    keys, which = np.unique((syns << 41) | np.where(exact, tenths, 0), return_inverse=True)
    made = [f"{k >> 41} SYNs over {(k & (2 ** 41 - 1)) // 10}.{(k & (2 ** 41 - 1)) % 10} s, no reply"
            for k in keys.tolist()]
    out[:] = np.array(made, dtype=object)[which.reshape(-1)]
    for i in np.flatnonzero(~exact).tolist():
        out[i] = f"{syns[i]} SYNs over {span_ns[i] / 1e9:.1f} s, no reply"
    return out


def _endpoints(flows: pd.DataFrame, flow_id, side, kind, icmp_src, spill: Spill = HEAP):
    """Each event's source and destination (address codes, ports) from its flow and side.
    An ICMP error travels from its sender back to the host whose packet it quotes."""
    n = len(flow_id)
    ids = flows["flow_id"].to_numpy()
    ini_all = frames.codes(flows["initiator_ip"])
    res_all = frames.codes(flows["responder_ip"])
    iport_all = flows["initiator_port"].to_numpy(np.int32)
    rport_all = flows["responder_port"].to_numpy(np.int32)
    src_codes = spill.empty(n, ini_all.dtype)
    dst_codes = spill.empty(n, ini_all.dtype)
    src_port = spill.empty(n, np.int32)
    dst_port = spill.empty(n, np.int32)
    for a in row_steps(n, ENDPOINT_STEP):
        b = min(n, a + ENDPOINT_STEP)
        row = frames.id_rows(ids, flow_id[a:b])
        s1 = side[a:b] == 1
        ini, res = ini_all[row], res_all[row]
        iport, rport = iport_all[row], rport_all[row]
        src_codes[a:b] = np.where(s1, res, ini)
        dst_codes[a:b] = np.where(s1, ini, res)
        src_port[a:b] = np.where(s1, rport, iport)
        dst_port[a:b] = np.where(s1, iport, rport)
        icmp_o = kind[a:b] == F.EV_ICMP_UNREACHABLE
        if icmp_o.any():
            dst_codes[a:b] = np.where(icmp_o, src_codes[a:b], dst_codes[a:b])
            dst_port[a:b] = np.where(icmp_o, src_port[a:b], dst_port[a:b])
            src_codes[a:b] = np.where(icmp_o, icmp_src[a:b], src_codes[a:b])
    return src_codes, dst_codes, src_port, dst_port


# what the end-of-flow events (syn_unanswered, udp_unanswered) read of their flow
_UNANSWERED_COLUMNS = ["flow_id", "teardown", "teardown_frame", "teardown_ts_ns", "first_ts_ns",
                       "syn_count", "packets_i2r"]


def _merger(kernel_frame: np.ndarray, tail_frame: np.ndarray, spill: Spill = HEAP):
    """merged(kernel, tail, dtype): a column of the kernel's events (or one value for each of
    them) with the end-of-flow ones put in frame order, as a stable sort of the two one
    after the other would (an end-of-flow event after the kernel's events of its frame),
    made in `spill`. The kernel's events come in frame order, so each lands at its own
    position plus the number of end-of-flow events before it, found a step at a time: no
    sort of a million events, and no whole column on the heap."""
    n_k, n_t = len(kernel_frame), len(tail_frame)

    def whole(kernel):
        return np.full(n_k, kernel) if np.isscalar(kernel) else kernel

    if n_t == 0:
        return lambda kernel, tail, dtype: spill.gather(whole(kernel), dtype=dtype)
    if n_k and not (kernel_frame[1:] >= kernel_frame[:-1]).all():
        order = np.argsort(np.concatenate([kernel_frame, tail_frame]), kind="stable")
        return lambda kernel, tail, dtype: spill.gather(np.concatenate(
            [whole(kernel).astype(dtype, copy=False), tail.astype(dtype, copy=False)]), order)
    tail_order = np.argsort(tail_frame, kind="stable")
    at = np.searchsorted(kernel_frame, tail_frame[tail_order], side="right")
    tail_at = at + np.arange(n_t)       # where each end-of-flow event lands, in frame order

    def merged(kernel, tail, dtype):
        out = spill.empty(n_k + n_t, dtype)
        out[tail_at] = np.asarray(tail)[tail_order]
        for a in row_steps(n_k, ENDPOINT_STEP):
            b = min(n_k, a + ENDPOINT_STEP)
            # kernel rows a..b-1 fill, in order, the places between the end-of-flow events
            # that land among them: a mask, not a scatter by computed positions (8x faster)
            lo = a + int(np.searchsorted(at, a, side="right"))
            hi = b + int(np.searchsorted(at, b - 1, side="right"))
            first, last = np.searchsorted(tail_at, (lo, hi))
            free = np.ones(hi - lo, bool)
            free[tail_at[first:last] - lo] = False
            out[lo:hi][free] = kernel if np.isscalar(kernel) else kernel[a:b]
        return out

    return merged


def events_frame(ev: dict[str, np.ndarray], flows: pd.DataFrame, names: Interner,
                 spill: Spill = HEAP) -> pd.DataFrame:
    """Kernel events plus the end-of-flow ones, with the flow's endpoints attached, in frame
    order. `side` is the sending side. Text columns are categoricals: each distinct address
    or detail is formatted once, whatever the number of events. Small integer types keep a
    million events to tens of megabytes; with a `spill` folder, every whole column is made
    in a mapped file (spill.py), and only one at a time is on the heap."""
    un = flows.loc[frames.isin(flows["teardown"], ("syn_unanswered", "udp_unanswered")),
                   _UNANSWERED_COLUMNS]
    n_t = len(un)
    un_kind = np.where(frames.isin(un["teardown"], ("syn_unanswered",)),
                       KIND_NAMES.index("syn_unanswered"), KIND_NAMES.index("udp_unanswered"))
    tail_frame = un["teardown_frame"].to_numpy(np.int64)
    merged = _merger(ev["frame"], tail_frame, spill)
    counting = counting_type(ev["frame"], ev["flow_id"], tail_frame, un["flow_id"].to_numpy())
    # the kernel's columns are let go of as they are merged (pop), to keep the peak low
    frame = merged(ev.pop("frame"), tail_frame, counting)
    ts = merged(ev.pop("ts_ns"), un["teardown_ts_ns"].to_numpy(np.int64), np.int64)
    flow_id = merged(ev.pop("flow_id"), un["flow_id"].to_numpy(), counting)
    kind = merged(ev.pop("kind"), un_kind, np.int8)
    side = merged(ev.pop("side"), np.zeros(n_t, np.int8), np.int8)
    code = merged(ev.pop("code"), np.zeros(n_t, np.int32), np.int32)
    icmp_src = merged(ev.pop("icmp_src"), np.zeros(n_t, np.int32), np.int32)
    tail_no = merged(-1, np.arange(n_t, dtype=np.int32), np.int32)
    merged = None    # let its positions go
    memory.release()

    # details: one text per distinct (kind, code, ICMP sender); unanswered ones per flow
    inverse, packed_uniq = _factorize_details(kind, code, icmp_src, tail_no, spill)
    del tail_no, code
    texts = _detail_texts(packed_uniq, un, names)
    detail = _categorical(inverse, texts, spill) if len(inverse) else pd.Categorical([], categories=[""])
    del inverse

    src_codes, dst_codes, src_port, dst_port = _endpoints(flows, flow_id, side, kind, icmp_src, spill)
    icmp_o = spill.keep(kind == F.EV_ICMP_UNREACHABLE)
    categories = flows["initiator_ip"].cat.categories
    events = pd.DataFrame({
        "ts_ns": ts, "frame": frame, "flow_id": flow_id,
        "kind": pd.Categorical.from_codes(kind, categories=KIND_NAMES),
        "side": side,
        "src_ip": pd.Categorical.from_codes(src_codes, categories=categories),
        "src_port": pd.arrays.IntegerArray(src_port, icmp_o),
        "dst_ip": pd.Categorical.from_codes(dst_codes, categories=categories),
        "dst_port": dst_port,
        "detail": detail,
    }, copy=False)    # an ICMP sender has no port: src_port is masked there
    return events
