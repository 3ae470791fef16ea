"""The flow kernel's summaries (flows.summarise_slots): Zeek's conn_state and our teardown
label for every combination of endpoint states, checked against the same rules written as
array expressions (how labels.py stated them before the kernel took them over)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from analyzer.dissect import flows as F
from analyzer.dissect import kernels

CODE = {name: i for i, name in enumerate(F.CONN_STATES)}
TD = {name: i for i, name in enumerate(F.TEARDOWNS)}
BIG = np.iinfo(np.int64).max


def reference_conn_states(FL, EP, rstos0):
    os_, rs = EP[:, 0, F.ST], EP[:, 1, F.ST]
    o_inactive = (os_ == F.INACTIVE) | (os_ == F.PARTIAL)
    r_inactive = (rs == F.INACTIVE) | (rs == F.PARTIAL)
    no_bytes = (EP[:, 0, F.BYTES] == 0) & (EP[:, 1, F.BYTES] == 0)
    R, C = F.RESET, F.CLOSED
    conds = [
        (rs == R) & ((os_ == F.SYN_SENT) | (os_ == F.SYN_ACK_SENT) | ((os_ == R) & no_bytes)),
        (rs == R) & o_inactive, (rs == R),
        (os_ == R) & r_inactive & rstos0, (os_ == R) & r_inactive, (os_ == R),
        (rs == C) & (os_ == C), (os_ == C) & r_inactive, (os_ == C),
        (rs == C) & o_inactive, (rs == C),
        (os_ == F.SYN_SENT) & (rs == F.INACTIVE),
        (os_ == F.ESTABLISHED) & (rs == F.ESTABLISHED),
    ]
    names = ["REJ", "RSTRH", "RSTR", "RSTOS0", "OTH", "RSTO", "SF", "SH", "S2", "SHR", "S3", "S0", "S1"]
    tcp_state = np.select(conds, [CODE[x] for x in names], default=CODE["OTH"])
    oa, ra = os_ == F.UDP_ACTIVE, rs == F.UDP_ACTIVE
    udp_state = np.where(oa, np.where(ra, CODE["SF"], CODE["S0"]),
                         np.where(ra, CODE["SHR"], CODE["OTH"]))
    proto = FL[:, F.PROTO]
    return np.where(proto == 6, tcp_state, np.where(proto == 17, udp_state, CODE["OTH"]))


def reference_teardowns(FL, EP):
    n = len(FL)
    kind = np.full(n, TD["open"])
    side, frame, ts = np.full(n, -1), np.zeros(n, np.int64), np.zeros(n, np.int64)
    tcp, udp = FL[:, F.PROTO] == 6, FL[:, F.PROTO] == 17

    def first(field):
        fr = np.where(EP[:, :, field] > 0, EP[:, :, field], BIG)
        who = np.argmin(fr, axis=1)
        return fr[np.arange(n), who], who

    rows = np.arange(n)
    rst_fr, rst_side = first(F.RST_FRAME)
    fin_fr, fin_side = first(F.FIN_FRAME)
    icmp = FL[:, F.ICMP_FRAME] > 0
    refused = tcp & (FL[:, F.REFUSED] == 1)
    rst = tcp & ~refused & (rst_fr < BIG) & (rst_fr <= fin_fr)
    fin = tcp & ~refused & ~rst & (fin_fr < BIG)
    tcp_icmp = tcp & ~refused & ~rst & ~fin & icmp
    syn_un = tcp & ~refused & ~rst & ~fin & ~icmp & (EP[:, 0, F.SYN_N] > 0) & (EP[:, 1, F.PKTS] == 0)
    udp_icmp = udp & icmp
    udp_un = udp & ~icmp & (EP[:, 1, F.PKTS] == 0)
    for mask, k, s, fr, t in (
            (refused, "refused", 1, FL[:, F.REFUSED_FRAME], FL[:, F.REFUSED_TS]),
            (rst, "rst", rst_side, rst_fr, EP[rows, rst_side, F.RST_TS]),
            (fin, "fin", fin_side, fin_fr, EP[rows, fin_side, F.FIN_TS]),
            (tcp_icmp | udp_icmp, "icmp_unreachable", -2, FL[:, F.ICMP_FRAME], FL[:, F.ICMP_TS]),
            (syn_un, "syn_unanswered", 1, EP[:, 0, F.SYN_FRAME], EP[:, 0, F.SYN_TS]),
            (udp_un, "udp_unanswered", 1, EP[:, 0, F.LAST_EP_FRAME], EP[:, 0, F.LAST_EP_TS])):
        kind[mask] = TD[k]
        side[mask] = (s if np.ndim(s) == 0 else s[mask])
        frame[mask] = fr[mask]
        ts[mask] = t[mask]
    return kind, side, frame, ts


FRAMES = st.sampled_from([0, 0, 3, 5, 9])       # 0: never; ties between the sides included
ENDPOINT = st.fixed_dictionaries({
    "state": st.integers(F.INACTIVE, F.RESET), "bytes": st.sampled_from([0, 0, 7]),
    "pkts": st.sampled_from([0, 2]), "rst": FRAMES, "fin": FRAMES, "syn_n": st.sampled_from([0, 1, 3])})
FLOW = st.fixed_dictionaries({
    "proto": st.sampled_from([6, 6, 6, 17, 1]), "refused": st.booleans(), "icmp": FRAMES,
    "hlen": st.integers(0, F.HMAX), "ends": st.tuples(ENDPOINT, ENDPOINT)})


@settings(max_examples=300, deadline=None)
@given(st.lists(FLOW, min_size=1, max_size=40), st.data())
def test_conn_state_and_teardown_match_the_array_rules(specs, data):
    n = len(specs) + 3                              # spare slots the kernel must not read
    KEY = np.arange(n * 4, dtype=np.uint64).reshape(n, 4) + np.uint64(2**63)
    FL = np.zeros((n, F.N_FL), np.int64)
    EP = np.zeros((n, 2, F.N_EP), np.int64)
    HIST = np.full((n, F.HMAX), ord("x"), np.uint8)
    slots = np.array(data.draw(st.permutations(range(n)))[:len(specs)], np.int64)
    for s, spec in zip(slots, specs):
        FL[s, [F.FLOW_ID, F.PROTO, F.REFUSED, F.REFUSED_FRAME, F.REFUSED_TS]] = [
            s + 1, spec["proto"], spec["refused"], 11, 1100]
        FL[s, [F.ICMP_FRAME, F.ICMP_TS, F.HLEN]] = [spec["icmp"], spec["icmp"] * 100 + 1, spec["hlen"]]
        for side, end in enumerate(spec["ends"]):
            state = end["state"] if spec["proto"] == 6 else min(end["state"], F.UDP_ACTIVE)
            EP[s, side, [F.ST, F.BYTES, F.PKTS, F.RST_FRAME, F.FIN_FRAME, F.SYN_N]] = [
                state, end["bytes"], end["pkts"], end["rst"], end["fin"], end["syn_n"]]
            EP[s, side, [F.RST_TS, F.FIN_TS, F.SYN_FRAME, F.SYN_TS, F.LAST_EP_FRAME, F.LAST_EP_TS]] = [
                end["rst"] * 100 + side, end["fin"] * 100 + side, 13 + side, 1300 + side,
                17 + side, 1700 + side]
    S = np.empty((F.N_S, len(slots)), np.int64)
    H = np.empty((len(slots), F.HMAX), np.uint8)
    kernels.summarise_slots(slots, KEY, FL, EP, HIST, S, H)

    fl, ep = FL[slots], EP[slots]
    rstos0 = S[F.S_RSTOS0_IF] == 1
    # where the history would match RSTOS0, and where it would not
    want_if_match = reference_conn_states(fl, ep, np.ones(len(slots), bool))
    want_if_not = reference_conn_states(fl, ep, np.zeros(len(slots), bool))
    assert S[F.S_STATE].tolist() == want_if_not.tolist()
    assert np.where(rstos0, CODE["RSTOS0"], S[F.S_STATE]).tolist() == want_if_match.tolist()
    kind, side, frame, ts = reference_teardowns(fl, ep)
    assert S[F.S_TEARDOWN].tolist() == kind.tolist()
    assert S[F.S_TD_SIDE].tolist() == side.tolist()
    assert S[F.S_TD_FRAME].tolist() == frame.tolist()
    assert S[F.S_TD_TS].tolist() == ts.tolist()
    assert S[F.S_FLOW_ID].tolist() == (slots + 1).tolist()
    assert S[F.S_A_HI].view(np.uint64).tolist() == KEY[slots, 0].tolist()
    for i, s in enumerate(slots):
        hlen = FL[s, F.HLEN]
        assert H[i, :hlen].tolist() == [ord("x")] * hlen and not H[i, hlen:].any()
