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


def _addresses(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Address text for (hi, lo) halves, formatting each distinct address once."""
    if len(hi) == 0:
        return np.array([], dtype=object)
    pairs = np.stack([hi.astype(np.uint64), lo.astype(np.uint64)], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    text = np.array([halves_to_addr(h, l) for h, l in uniq], dtype=object)
    return text[inverse.reshape(-1)]


def conn_states(FL: np.ndarray, EP: np.ndarray, history: np.ndarray) -> np.ndarray:
    """Zeek's conn_state for each flow (TCP and UDP; other protocols OTH)."""
    n = len(FL)
    out = np.full(n, "OTH", dtype=object)
    os_, rs = EP[:, 0, F.ST], EP[:, 1, F.ST]
    o_inactive = (os_ == F.INACTIVE) | (os_ == F.PARTIAL)
    r_inactive = (rs == F.INACTIVE) | (rs == F.PARTIAL)
    tcp = FL[:, F.PROTO] == 6
    udp = FL[:, F.PROTO] == 17
    no_bytes = (EP[:, 0, F.BYTES] == 0) & (EP[:, 1, F.BYTES] == 0)
    rstos0 = pd.Series(history, dtype=object).str.fullmatch(r"\^?S[^HAFGIQ]*R.*").fillna(False).to_numpy(bool)
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
    kind[syn_un] = "syn_unanswered"
    side[syn_un] = 0
    frame[syn_un] = EP[syn_un, 0, F.SYN_FRAME]
    ts[syn_un] = EP[syn_un, 0, F.SYN_TS]
    kind[udp_un] = "udp_unanswered"
    side[udp_un] = 0
    frame[udp_un] = EP[udp_un, 0, F.LAST_EP_FRAME]
    ts[udp_un] = EP[udp_un, 0, F.LAST_EP_TS]
    return kind, side, frame, ts


def flows_frame(KEY, FL, EP, HIST) -> pd.DataFrame:
    """One row per flow, by side (phone attribution is added by phones.py)."""
    n = len(FL)
    hist = np.array([bytes(HIST[i, :FL[i, F.HLEN]]).decode("ascii") for i in range(n)], dtype=object)
    kind, side, tframe, tts = teardowns(FL, EP)
    proto = FL[:, F.PROTO]
    df = pd.DataFrame({
        "flow_id": FL[:, F.FLOW_ID],
        "proto": [PROTO_NAMES.get(int(p), str(int(p))) for p in proto] if n else [],
        "ip_version": FL[:, F.IPVER],
        "initiator_ip": _addresses(KEY[:, 0], KEY[:, 1]),
        "initiator_port": FL[:, F.APORT],
        "responder_ip": _addresses(KEY[:, 2], KEY[:, 3]),
        "responder_port": FL[:, F.BPORT],
        "first_ts_ns": FL[:, F.FIRST_TS],
        "last_ts_ns": FL[:, F.LAST_TS],
        "first_frame": FL[:, F.FIRST_FRAME],
        "last_frame": FL[:, F.LAST_FRAME],
        "packets_i2r": EP[:, 0, F.PKTS],
        "packets_r2i": EP[:, 1, F.PKTS],
        "bytes_i2r": EP[:, 0, F.BYTES],
        "bytes_r2i": EP[:, 1, F.BYTES],
        "conn_state": conn_states(FL, EP, hist),
        "history": hist,
        "teardown": kind,
        "teardown_side": side,
        "teardown_frame": tframe,
        "teardown_ts_ns": tts,
        "syn_count": FL[:, F.SYN_COUNT],
        "icmp_sender": _addresses(FL[:, F.ICMP_SRC_HI].view(np.uint64), FL[:, F.ICMP_SRC_LO].view(np.uint64)),
        "syn_frames": EP[:, 0, F.SYN_N],
        "first_syn_ts_ns": FL[:, F.FIRST_TS],
        "orig_last_frame": EP[:, 0, F.LAST_EP_FRAME],
        "orig_last_ts_ns": EP[:, 0, F.LAST_EP_TS],
    })
    if "proto" in df and n == 0:
        df["proto"] = df["proto"].astype(object)
    df.loc[FL[:, F.ICMP_FRAME] == 0, "icmp_sender"] = ""
    return df


def events_frame(ev: np.ndarray, flows: pd.DataFrame) -> pd.DataFrame:
    """Kernel events plus the end-of-flow ones, with the flow's endpoints attached.
    `side` is the sending side; `icmp_src` the ICMP sender's address (ICMP events)."""
    kernel = pd.DataFrame({
        "ts_ns": ev[:, 1], "frame": ev[:, 0], "flow_id": ev[:, 2],
        "kind": np.array(F.EVENT_NAMES, dtype=object)[ev[:, 3]] if len(ev) else np.array([], object),
        "side": ev[:, 4], "code": ev[:, 5],
        "icmp_src": _addresses(ev[:, 6].view(np.uint64), ev[:, 7].view(np.uint64)),
    })
    kernel.loc[kernel["kind"] != "icmp_unreachable", "icmp_src"] = ""
    k = kernel["kind"]
    detail = np.full(len(kernel), "", dtype=object)
    code = kernel["code"].to_numpy()
    is_retry = (k == "syn_retry").to_numpy()
    detail[is_retry] = ["retry " + str(c) for c in code[is_retry]]
    for name in ("synack", "data_after_fin", "data_after_rst"):
        m = (k == name).to_numpy()
        detail[m] = [F.DETAIL_TEXT[int(c)] for c in code[m]]
    m = (k == "refused").to_numpy()
    detail[m] = "SYN answered by RST"
    m = (k == "icmp_unreachable").to_numpy()
    detail[m] = [f"ICMP type {c >> 8} code {c & 255} from {a}"
                 for c, a in zip(code[m], kernel["icmp_src"].to_numpy()[m])]
    kernel["detail"] = detail

    un = flows[flows["teardown"].isin(["syn_unanswered", "udp_unanswered"])]
    syn = un["teardown"] == "syn_unanswered"
    span = (un["teardown_ts_ns"] - un["first_syn_ts_ns"]) / 1e9
    end_detail = np.where(
        syn, [f"{n} SYNs over {s:.1f} s, no reply" for n, s in zip(un["syn_count"], span)],
        [f"{n} datagrams, no reply" for n in un["packets_i2r"]]) if len(un) else []
    tail = pd.DataFrame({
        "ts_ns": un["teardown_ts_ns"].to_numpy(), "frame": un["teardown_frame"].to_numpy(),
        "flow_id": un["flow_id"].to_numpy(), "kind": un["teardown"].to_numpy(),
        "side": np.zeros(len(un), np.int64), "code": np.zeros(len(un), np.int64),
        "icmp_src": np.full(len(un), "", dtype=object), "detail": np.asarray(end_detail, dtype=object),
    })
    events = pd.concat([kernel, tail], ignore_index=True) if len(tail) else kernel
    events = events.sort_values(["frame", "flow_id"], kind="stable").reset_index(drop=True)
    ends = flows.set_index("flow_id")[["initiator_ip", "initiator_port", "responder_ip", "responder_port"]]
    j = ends.reindex(events["flow_id"].to_numpy())
    side1 = events["side"].to_numpy() == 1
    src_ip = np.where(side1, j["responder_ip"], j["initiator_ip"])
    src_port = np.where(side1, j["responder_port"], j["initiator_port"])
    dst_ip = np.where(side1, j["initiator_ip"], j["responder_ip"])
    dst_port = np.where(side1, j["initiator_port"], j["responder_port"])
    icmp = (events["kind"] == "icmp_unreachable").to_numpy()
    # an ICMP error travels from its sender back to the host whose packet it quotes
    dst_ip = np.where(icmp, src_ip, dst_ip)
    dst_port = np.where(icmp, src_port, dst_port)
    src_ip = np.where(icmp, events["icmp_src"].to_numpy(), src_ip)
    events["src_ip"] = src_ip
    events["src_port"] = pd.array(np.where(icmp, -1, src_port).astype(np.int64), dtype="Int64")
    events.loc[icmp, "src_port"] = pd.NA
    events["dst_ip"] = dst_ip
    events["dst_port"] = dst_port.astype(np.int64) if len(events) else dst_port
    return events
