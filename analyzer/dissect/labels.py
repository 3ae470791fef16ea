"""From the flow engine's finished flows and events to the flows and events tables.

Here the per-endpoint states become Zeek's `conn_state` (the same decision list as
Zeek's conn.log) and our own `teardown` label; sides (originator 0 / responder 1) stay
as they are: which side is the phone is decided later (phones.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyzer.dissect import flows as F
from analyzer.dissect.packets import halves_to_addr

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}


def _addresses(hi: np.ndarray, lo: np.ndarray) -> pd.Categorical:
    """Address text for (hi, lo) halves as a categorical: each distinct address is
    formatted once, and a million flows cost a million small codes, not strings."""
    if len(hi) == 0:
        return pd.Categorical([], categories=[""])
    hi = np.asarray(hi).astype(np.uint64, copy=False)
    lo = np.asarray(lo).astype(np.uint64, copy=False)
    codes = np.empty(len(hi), np.int64)
    text: list[str] = []
    # hashing (factorize) beats sorting here; IPv4-mapped and zero addresses have hi == 0
    v4 = hi == 0
    if v4.any():
        c, uniq = pd.factorize(lo[v4])
        codes[v4] = c
        text += ["" if l == 0 else halves_to_addr(0, l) for l in uniq]
    if (~v4).any():
        pairs = np.stack([hi[~v4], lo[~v4]], axis=1)
        uniq6, inverse = np.unique(pairs, axis=0, return_inverse=True)
        codes[~v4] = inverse.reshape(-1) + len(text)
        text += [halves_to_addr(h, l) for h, l in uniq6]
    return _categorical(codes, text)


def _categorical(codes: np.ndarray, labels) -> pd.Categorical:
    """Categorical from codes into labels that may repeat (merged)."""
    labels = list(labels)
    uniq = list(dict.fromkeys(labels))
    if len(uniq) != len(labels):
        remap = np.array([uniq.index(x) for x in labels], dtype=np.int64)
        codes = remap[codes]
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int64), categories=uniq)


def _histories(FL: np.ndarray, HIST: np.ndarray) -> pd.Categorical:
    """History strings as a categorical (a capture has few distinct histories)."""
    n = len(FL)
    if n == 0:
        return pd.Categorical([], categories=[""])
    masked = HIST.copy()
    masked[np.arange(HIST.shape[1])[None, :] >= FL[:, F.HLEN][:, None]] = 0
    fixed = np.ascontiguousarray(masked).view(f"S{HIST.shape[1]}").reshape(-1)
    uniq, inverse = np.unique(fixed, return_inverse=True)
    return _categorical(inverse.reshape(-1), [u.decode("ascii") for u in uniq])


def conn_states(FL: np.ndarray, EP: np.ndarray, history) -> np.ndarray:
    """Zeek's conn_state for each flow (TCP and UDP; other protocols OTH)."""
    n = len(FL)
    out = np.full(n, "OTH", dtype=object)
    os_, rs = EP[:, 0, F.ST], EP[:, 1, F.ST]
    o_inactive = (os_ == F.INACTIVE) | (os_ == F.PARTIAL)
    r_inactive = (rs == F.INACTIVE) | (rs == F.PARTIAL)
    tcp = FL[:, F.PROTO] == 6
    udp = FL[:, F.PROTO] == 17
    no_bytes = (EP[:, 0, F.BYTES] == 0) & (EP[:, 1, F.BYTES] == 0)
    cats = pd.Series(history.categories, dtype=object)
    cat_match = cats.str.fullmatch(r"\^?S[^HAFGIQ]*R.*").fillna(False).to_numpy(bool)
    rstos0 = cat_match[history.codes] if n else np.zeros(0, bool)
    R, C = F.RESET, F.CLOSED
    conds = [
        (rs == R) & ((os_ == F.SYN_SENT) | (os_ == F.SYN_ACK_SENT) | ((os_ == R) & no_bytes)),
        (rs == R) & o_inactive,
        (rs == R),
        (os_ == R) & r_inactive & rstos0,
        (os_ == R) & r_inactive,
        (os_ == R),
        (rs == C) & (os_ == C),
        (os_ == C) & r_inactive,
        (os_ == C),
        (rs == C) & o_inactive,
        (rs == C),
        (os_ == F.SYN_SENT) & (rs == F.INACTIVE),
        (os_ == F.ESTABLISHED) & (rs == F.ESTABLISHED),
    ]
    names = ["REJ", "RSTRH", "RSTR", "RSTOS0", "OTH", "RSTO", "SF", "SH", "S2", "SHR", "S3", "S0", "S1"]
    out[tcp] = np.select(conds, names, default="OTH")[tcp]
    oa, ra = os_ == F.UDP_ACTIVE, rs == F.UDP_ACTIVE
    udp_state = np.where(oa, np.where(ra, "SF", "S0"), np.where(ra, "SHR", "OTH"))
    out[udp] = udp_state[udp]
    return out


def teardowns(FL: np.ndarray, EP: np.ndarray):
    """Our teardown label per flow: (kind, side (0/1, -1 unknown), frame, ts_ns)."""
    n = len(FL)
    kind = np.full(n, "open", dtype=object)
    side = np.full(n, -1, np.int64)
    frame = np.zeros(n, np.int64)
    ts = np.zeros(n, np.int64)
    tcp = FL[:, F.PROTO] == 6
    udp = FL[:, F.PROTO] == 17
    big = np.iinfo(np.int64).max

    def first(field):
        fr = np.where(EP[:, :, field] > 0, EP[:, :, field], big)
        who = np.argmin(fr, axis=1)
        return fr[np.arange(n), who], who

    rst_fr, rst_side = first(F.RST_FRAME)
    fin_fr, fin_side = first(F.FIN_FRAME)
    rows = np.arange(n)
    icmp = FL[:, F.ICMP_FRAME] > 0
    refused = tcp & (FL[:, F.REFUSED] == 1)
    rst = tcp & ~refused & (rst_fr < big) & (rst_fr <= fin_fr)
    fin = tcp & ~refused & ~rst & (fin_fr < big)
    tcp_icmp = tcp & ~refused & ~rst & ~fin & icmp
    syn_un = (tcp & ~refused & ~rst & ~fin & ~icmp & (EP[:, 0, F.SYN_N] > 0)
              & (EP[:, 1, F.PKTS] == 0))
    udp_icmp = udp & icmp
    udp_un = udp & ~icmp & (EP[:, 1, F.PKTS] == 0)

    kind[refused] = "refused"
    side[refused] = 1
    frame[refused] = FL[refused, F.REFUSED_FRAME]
    ts[refused] = FL[refused, F.REFUSED_TS]
    kind[rst] = "rst"
    side[rst] = rst_side[rst]
    frame[rst] = rst_fr[rst]
    ts[rst] = EP[rows, rst_side, F.RST_TS][rst]
    kind[fin] = "fin"
    side[fin] = fin_side[fin]
    frame[fin] = fin_fr[fin]
    ts[fin] = EP[rows, fin_side, F.FIN_TS][fin]
    for mask in (tcp_icmp, udp_icmp):
        kind[mask] = "icmp_unreachable"
        side[mask] = -2            # resolved by address: whoever sent the ICMP
        frame[mask] = FL[mask, F.ICMP_FRAME]
        ts[mask] = FL[mask, F.ICMP_TS]
    # an unanswered attempt is the silent end's doing: it never replied
    kind[syn_un] = "syn_unanswered"
    side[syn_un] = 1
    frame[syn_un] = EP[syn_un, 0, F.SYN_FRAME]
    ts[syn_un] = EP[syn_un, 0, F.SYN_TS]
    kind[udp_un] = "udp_unanswered"
    side[udp_un] = 1
    frame[udp_un] = EP[udp_un, 0, F.LAST_EP_FRAME]
    ts[udp_un] = EP[udp_un, 0, F.LAST_EP_TS]
    return kind, side, frame, ts


def flows_frame(KEY, FL, EP, HIST) -> pd.DataFrame:
    """One row per flow, by side (phone attribution is added by phones.py)."""
    n = len(FL)
    hist = _histories(FL, HIST)
    # initiator, responder and ICMP sender share one dictionary of address texts
    addrs = _addresses(np.concatenate([KEY[:, 0], KEY[:, 2], FL[:, F.ICMP_SRC_HI].view(np.uint64)]),
                       np.concatenate([KEY[:, 1], KEY[:, 3], FL[:, F.ICMP_SRC_LO].view(np.uint64)]))
    kind, side, tframe, tts = teardowns(FL, EP)
    proto = FL[:, F.PROTO]
    pcodes, puniq = np.unique(proto, return_inverse=True)[::-1] if n else (np.zeros(0, np.int64), [])
    df = pd.DataFrame({
        "flow_id": FL[:, F.FLOW_ID],
        "proto": _categorical(pcodes.reshape(-1), [PROTO_NAMES.get(int(p), str(int(p))) for p in puniq]),
        "ip_version": FL[:, F.IPVER],
        "initiator_ip": addrs[:n],
        "initiator_port": FL[:, F.APORT],
        "responder_ip": addrs[n:2 * n],
        "responder_port": FL[:, F.BPORT],
        "first_ts_ns": FL[:, F.FIRST_TS],
        "last_ts_ns": FL[:, F.LAST_TS],
        "first_frame": FL[:, F.FIRST_FRAME],
        "last_frame": FL[:, F.LAST_FRAME],
        "packets_i2r": EP[:, 0, F.PKTS],
        "packets_r2i": EP[:, 1, F.PKTS],
        "bytes_i2r": EP[:, 0, F.BYTES],
        "bytes_r2i": EP[:, 1, F.BYTES],
        "conn_state": pd.Categorical(conn_states(FL, EP, hist)),
        "history": hist,
        "teardown": pd.Categorical(kind),
        "teardown_side": side,
        "teardown_frame": tframe,
        "teardown_ts_ns": tts,
        "syn_count": FL[:, F.SYN_COUNT],
        "icmp_sender": addrs[2 * n:],
        "syn_frames": EP[:, 0, F.SYN_N],
        "first_syn_ts_ns": FL[:, F.FIRST_TS],
        "orig_last_frame": EP[:, 0, F.LAST_EP_FRAME],
        "orig_last_ts_ns": EP[:, 0, F.LAST_EP_TS],
    })
    return df


def events_frame(ev: np.ndarray, flows: pd.DataFrame) -> pd.DataFrame:
    """Kernel events plus the end-of-flow ones, with the flow's endpoints attached.
    `side` is the sending side. Text columns are categoricals: each distinct address or
    detail is formatted once, whatever the number of events."""
    un = flows[flows["teardown"].isin(["syn_unanswered", "udp_unanswered"])]
    n_k, n_t = len(ev), len(un)
    un_kind = np.where(un["teardown"].to_numpy(object) == "syn_unanswered",
                       len(F.EVENT_NAMES), len(F.EVENT_NAMES) + 1)
    kind_names = list(F.EVENT_NAMES) + ["syn_unanswered", "udp_unanswered"]
    ts = np.concatenate([ev[:, 1], un["teardown_ts_ns"].to_numpy(np.int64)])
    frame = np.concatenate([ev[:, 0], un["teardown_frame"].to_numpy(np.int64)])
    flow_id = np.concatenate([ev[:, 2], un["flow_id"].to_numpy(np.int64)])
    kind = np.concatenate([ev[:, 3], un_kind]).astype(np.int64)
    side = np.concatenate([ev[:, 4], np.zeros(n_t, np.int64)])
    code = np.concatenate([ev[:, 5], np.zeros(n_t, np.int64)])
    icmp_hi = np.concatenate([ev[:, 6], np.zeros(n_t, np.int64)]).view(np.uint64)
    icmp_lo = np.concatenate([ev[:, 7], np.zeros(n_t, np.int64)]).view(np.uint64)
    is_icmp = kind == F.EV_ICMP_UNREACHABLE
    icmp_hi[~is_icmp] = 0
    icmp_lo[~is_icmp] = 0

    # details: one text per distinct (kind, code, ICMP sender); unanswered ones per flow
    icmp_text = _addresses(icmp_hi, icmp_lo)
    code_key = code.copy()
    code_key[n_k:] = np.arange(n_t)       # unanswered details differ per flow
    packed = (kind << 56) | ((code_key & 0xFFFFFF) << 32) | icmp_text.codes.astype(np.int64)
    inverse, packed_uniq = pd.factorize(packed)
    uniq = [(int(p >> 56), int((p >> 32) & 0xFFFFFF),
             int(p & 0xFFFFFFFF)) for p in packed_uniq]
    span = ((un["teardown_ts_ns"] - un["first_syn_ts_ns"]) / 1e9).to_numpy()
    syns = un["syn_count"].to_numpy()
    dgrams = un["packets_i2r"].to_numpy()
    texts = []
    for k, c, a in uniq:
        name = kind_names[k]
        if name == "syn_retry":
            texts.append(f"retry {c}")
        elif name in ("synack", "data_after_fin", "data_after_rst"):
            texts.append(F.DETAIL_TEXT[int(c)])
        elif name == "refused":
            texts.append("SYN answered by RST")
        elif name == "icmp_unreachable":
            texts.append(f"ICMP type {c >> 8} code {c & 255} from {icmp_text.categories[a]}")
        elif name == "syn_unanswered":
            texts.append(f"{syns[c]} SYNs over {span[c]:.1f} s, no reply")
        elif name == "udp_unanswered":
            texts.append(f"{dgrams[c]} datagrams, no reply")
        else:
            texts.append("")
    detail = _categorical(inverse, texts) if len(packed) else pd.Categorical([], categories=[""])

    order = np.lexsort((flow_id, frame))
    row = np.searchsorted(flows["flow_id"].to_numpy(), flow_id[order])
    s1 = side[order] == 1
    ini, res = flows["initiator_ip"].array, flows["responder_ip"].array
    ini_codes, res_codes = ini.codes[row], res.codes[row]
    src_codes = np.where(s1, res_codes, ini_codes)
    dst_codes = np.where(s1, ini_codes, res_codes)
    iport = flows["initiator_port"].to_numpy()[row]
    rport = flows["responder_port"].to_numpy()[row]
    src_port = np.where(s1, rport, iport)
    dst_port = np.where(s1, iport, rport)
    categories = list(ini.categories)
    icmp_o = is_icmp[order]
    if icmp_o.any():
        # an ICMP error travels from its sender back to the host whose packet it quotes
        extra = [a for a in icmp_text.categories if a not in categories]
        categories += extra
        lookup = np.array([categories.index(a) for a in icmp_text.categories], dtype=np.int64)
        dst_codes = np.where(icmp_o, src_codes, dst_codes)
        dst_port = np.where(icmp_o, src_port, dst_port)
        src_codes = np.where(icmp_o, lookup[icmp_text.codes[order]], src_codes)
    events = pd.DataFrame({
        "ts_ns": ts[order], "frame": frame[order], "flow_id": flow_id[order],
        "kind": pd.Categorical.from_codes(kind[order], categories=kind_names),
        "side": side[order],
        "src_ip": pd.Categorical.from_codes(src_codes, categories=categories),
        "src_port": pd.array(src_port, dtype="Int64"),
        "dst_ip": pd.Categorical.from_codes(dst_codes, categories=categories),
        "dst_port": dst_port,
        "detail": detail[order],
    })
    events.loc[icmp_o, "src_port"] = pd.NA
    return events
