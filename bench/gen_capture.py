#!/usr/bin/env python3
"""Write a synthetic classic pcap of exactly N packets, fast (vectorised with numpy).

    python bench/gen_capture.py --packets 1000000 --out /tmp/bench/1m.pcap [--seed 1] [--ns]

Content: one phone (an IPv4 and an IPv6 address) talking to many servers over Ethernet.
TCP flows: full handshakes with request/response data closed by FIN/FIN from either side,
RST teardowns from either side, SYN-only flows with retransmitted SYNs (exponential
backoff) and no answer, SYNs answered by RST (refused), handshakes that needed a SYN
retry, flows left open, inbound SYNs to a phone listener; UDP flows answered and
one-way; and the same 4-tuple reused for a new flow shortly after a RST.
Flows overlap in time (Poisson arrivals); timestamps never decrease; IPv4 header,
TCP and UDP checksums are correct (payloads are zero bytes).

Ground truth is written beside the capture as NAME.truth.json (also printed on stdout):
packet count, flow counts, SYN / SYN-ACK / FIN / RST packet counts and the teardown
each flow was built to have.

Memory: per-packet metadata is ~40 bytes/packet (about 0.5 GB peak for 10M packets);
packet bytes are built and written in chunks.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import time

import numpy as np

GENERATOR_VERSION = 2

# TCP flags
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# Packet direction in a step: initiator -> responder, or back.
I, R = 0, 1

# Payload kinds
P_NONE, P_REQ, P_RESP, P_UREQ, P_URESP = range(5)
# Gap kinds (time since the flow's previous packet)
G_FIRST, G_RTT, G_LOCAL, G_THINK, G_BACKOFF, G_UDPRETRY = range(6)

# A step: (name, direction, tcp flags (None for UDP), payload kind, gap kind, consumes seq)
# `consumes` is the sequence space taken by SYN / FIN (payload length is added to it).
# A SYN that will be retransmitted consumes 0 so the retry carries the same sequence number.
STEPS = {
    "syn":       (I, SYN, P_NONE, G_FIRST, 1),
    "syn_first": (I, SYN, P_NONE, G_FIRST, 0),       # first of several identical SYNs
    "syn_retry": (I, SYN, P_NONE, G_BACKOFF, 0),     # retransmission, same seq
    "syn_retry_last": (I, SYN, P_NONE, G_BACKOFF, 1),
    "synack":    (R, SYN | ACK, P_NONE, G_RTT, 1),
    "ack_i":     (I, ACK, P_NONE, G_LOCAL, 0),
    "ack_r":     (R, ACK, P_NONE, G_LOCAL, 0),
    "req":       (I, PSH | ACK, P_REQ, G_THINK, 0),
    "resp":      (R, PSH | ACK, P_RESP, G_RTT, 0),
    "fin_i":     (I, FIN | ACK, P_NONE, G_THINK, 1),
    "fin_i_ans": (I, FIN | ACK, P_NONE, G_RTT, 1),
    "fin_r":     (R, FIN | ACK, P_NONE, G_THINK, 1),
    "fin_r_ans": (R, FIN | ACK, P_NONE, G_RTT, 1),
    "rst_i":     (I, RST | ACK, P_NONE, G_THINK, 0),
    "rst_r":     (R, RST, P_NONE, G_THINK, 0),
    "refuse":    (R, RST | ACK, P_NONE, G_RTT, 0),
    "ureq":      (I, None, P_UREQ, G_THINK, 0),
    "uresp":     (R, None, P_URESP, G_RTT, 0),
    "ureq_retry": (I, None, P_UREQ, G_UDPRETRY, 0),
}
STEP_NAMES = list(STEPS)
STEP_ID = {n: i for i, n in enumerate(STEP_NAMES)}
STEP_DIR = np.array([STEPS[n][0] for n in STEP_NAMES], np.uint8)
STEP_FLAGS = np.array([STEPS[n][1] or 0 for n in STEP_NAMES], np.uint8)
STEP_PAY = np.array([STEPS[n][2] for n in STEP_NAMES], np.uint8)
STEP_GAP = np.array([STEPS[n][3] for n in STEP_NAMES], np.uint8)
STEP_CONS = np.array([STEPS[n][4] for n in STEP_NAMES], np.int64)

HS = ["syn", "synack", "ack_i"]
DATA = ["req", "resp", "ack_i"]

# Flow types: proto, prefix, repeated unit, suffix, unit-count distribution,
# expected (Zeek conn_state, our teardown, who tore it down: initiator/responder/-).
# k distribution: ("geom", mean, cap) or ("int", lo, hi) inclusive or ("fixed", n).
FLOW_TYPES = {
    "fin_i":      dict(tcp=True, prefix=HS, unit=DATA, suffix=["fin_i", "fin_r_ans", "ack_i"],
                       k=("geom", 8, 400), state="SF", teardown="fin", by="initiator"),
    "fin_r":      dict(tcp=True, prefix=HS, unit=DATA, suffix=["fin_r", "fin_i_ans", "ack_r"],
                       k=("geom", 8, 400), state="SF", teardown="fin", by="responder"),
    "fin_i_retry": dict(tcp=True, prefix=["syn_first", "syn_retry_last", "synack", "ack_i"],
                        unit=DATA, suffix=["fin_i", "fin_r_ans", "ack_i"],
                        k=("geom", 6, 400), state="SF", teardown="fin", by="initiator"),
    "rst_i":      dict(tcp=True, prefix=HS, unit=DATA, suffix=["rst_i"],
                       k=("geom", 6, 400), state="RSTO", teardown="rst", by="initiator"),
    "rst_r":      dict(tcp=True, prefix=HS, unit=DATA, suffix=["rst_r"],
                       k=("geom", 6, 400), state="RSTR", teardown="rst", by="responder"),
    "open":       dict(tcp=True, prefix=HS, unit=DATA, suffix=[],
                       k=("geom", 10, 400), state="S1", teardown="open", by="-"),
    "syn_unans":  dict(tcp=True, prefix=["syn_first"], unit=["syn_retry"], suffix=[],
                       k=("int", 0, 6), state="S0", teardown="syn_unanswered", by="-"),
    "refused":    dict(tcp=True, prefix=["syn"], unit=[], suffix=["refuse"],
                       k=("fixed", 0), state="REJ", teardown="refused", by="responder"),
    "udp_ans":    dict(tcp=False, prefix=[], unit=["ureq", "uresp"], suffix=[],
                       k=("geom", 4, 400), state="SF", teardown="open", by="-"),
    "udp_oneway": dict(tcp=False, prefix=["ureq"], unit=["ureq_retry"], suffix=[],
                       k=("geom", 1.5, 50), state="S0", teardown="udp_unanswered", by="-"),
    # same 4-tuple as a preceding rst_i / rst_r flow, started shortly after its RST
    "reuse_fin_i": dict(tcp=True, prefix=HS, unit=DATA, suffix=["fin_i", "fin_r_ans", "ack_i"],
                        k=("geom", 4, 400), state="SF", teardown="fin", by="initiator"),
}
TYPE_NAMES = list(FLOW_TYPES)
TYPE_ID = {n: i for i, n in enumerate(TYPE_NAMES)}

# Share of flows by type (primary flows; reuse flows come on top).
MIX = {
    "fin_i": 0.33, "fin_r": 0.13, "fin_i_retry": 0.03, "rst_i": 0.09, "rst_r": 0.07,
    "open": 0.02, "syn_unans": 0.05, "refused": 0.04, "udp_ans": 0.17, "udp_oneway": 0.07,
}
REUSE_AFTER_RST = 0.3     # share of rst_i / rst_r flows followed by a flow on the same 4-tuple
INBOUND_SHARE = 0.15      # share of syn_unans / refused flows that are inbound (to a phone listener)
IPV6_SHARE = 0.12
N_PHONES = 1              # phones per IP version (one device: an IPv4 and an IPv6 address)
PHONE_LISTEN_PORT = 33322
EPHEMERAL_LO, EPHEMERAL_N = 32768, 28232   # Linux ip_local_port_range 32768..60999
SERVERS_PER_CYCLE = 997
TCP_PORTS = np.array([443, 443, 443, 443, 80, 8080, 5228, 5223, 8443, 993], np.uint16)
UDP_PORTS = np.array([53, 53, 53, 443, 443, 443, 3478, 19302], np.uint16)
BASE_TIME_NS = 1_700_000_000 * 10**9

MAC_PHONE = bytes.fromhex("02aabbccdd01")
MAC_GW = bytes.fromhex("02aabbccdd02")


def parse_count(s: str) -> int:
    s = s.strip().lower().replace("_", "")
    mult = 1
    if s.endswith("k"):
        mult, s = 1000, s[:-1]
    elif s.endswith("m"):
        mult, s = 1_000_000, s[:-1]
    return int(float(s) * mult)


# --------------------------------------------------------------------------- planning

def _expected_size(tname: str) -> float:
    t = FLOW_TYPES[tname]
    kd = t["k"]
    mean_k = {"geom": lambda: kd[1], "int": lambda: (kd[1] + kd[2]) / 2, "fixed": lambda: kd[1]}[kd[0]]()
    return len(t["prefix"]) + len(t["unit"]) * mean_k + len(t["suffix"])


def _draw_k(rng, tname: str, m: int) -> np.ndarray:
    kd = FLOW_TYPES[tname]["k"]
    if kd[0] == "geom":
        # geometric on 1.. with the given mean, capped
        return np.minimum(rng.geometric(1.0 / kd[1], m), kd[2]).astype(np.int64)
    if kd[0] == "int":
        return rng.integers(kd[1], kd[2] + 1, m).astype(np.int64)
    return np.full(m, kd[1], np.int64)


def _sizes(tid: np.ndarray, k: np.ndarray) -> np.ndarray:
    pre = np.array([len(FLOW_TYPES[n]["prefix"]) for n in TYPE_NAMES], np.int64)
    uni = np.array([len(FLOW_TYPES[n]["unit"]) for n in TYPE_NAMES], np.int64)
    suf = np.array([len(FLOW_TYPES[n]["suffix"]) for n in TYPE_NAMES], np.int64)
    return pre[tid] + uni[tid] * k + suf[tid]


def plan_flows(n_packets: int, rng: np.random.Generator, rate: float) -> dict:
    """Choose flows whose packets add up to exactly n_packets. Returns per-flow arrays."""
    mix_names = list(MIX)
    p = np.array([MIX[n] for n in mix_names])
    p = p / p.sum()
    mix_tids = np.array([TYPE_ID[n] for n in mix_names])
    reuse_tid = TYPE_ID["reuse_fin_i"]
    mean_unit = sum(pi * _expected_size(n) for pi, n in zip(p, mix_names))
    mean_unit += REUSE_AFTER_RST * (p[mix_names.index("rst_i")] + p[mix_names.index("rst_r")]) \
        * _expected_size("reuse_fin_i")

    tids, ks, fks, total = [], [], [], 0
    while total < n_packets:
        m = int((n_packets - total) / mean_unit * 1.05) + 64
        tid = mix_tids[rng.choice(len(mix_names), m, p=p)]
        k = np.zeros(m, np.int64)
        for n in mix_names:
            sel = tid == TYPE_ID[n]
            k[sel] = _draw_k(rng, n, int(sel.sum()))
        is_rst = (tid == TYPE_ID["rst_i"]) | (tid == TYPE_ID["rst_r"])
        followed = is_rst & (rng.random(m) < REUSE_AFTER_RST)
        fk = np.where(followed, _draw_k(rng, "reuse_fin_i", m), -1)
        size = _sizes(tid, k) + np.where(followed, _sizes(np.full(m, reuse_tid), np.maximum(fk, 0)), 0)
        cs = total + np.cumsum(size)
        keep = int(np.searchsorted(cs, n_packets, side="right"))   # units with cs <= n
        tids.append(tid[:keep]); ks.append(k[:keep]); fks.append(fk[:keep])
        total = int(cs[keep - 1]) if keep else total
        if keep < m:
            break
    tid = np.concatenate(tids)
    k = np.concatenate(ks)
    fk = np.concatenate(fks)
    rem = n_packets - total
    if rem > 0:   # one filler: a one-way UDP flow of exactly `rem` packets
        tid = np.append(tid, TYPE_ID["udp_oneway"])
        k = np.append(k, rem - 1)
        fk = np.append(fk, -1)
        pos = rng.integers(0, len(tid))          # put it somewhere in the middle
        order = np.arange(len(tid))
        order = np.insert(order[:-1], pos, len(tid) - 1)
        tid, k, fk = tid[order], k[order], fk[order]

    n_units = len(tid)
    duration_ns = int(n_packets / rate * 1e9)
    start = np.sort(rng.integers(0, duration_ns, n_units)).astype(np.int64) + BASE_TIME_NS

    # Addresses: unit u (in time order) gets phone u % N_PHONES, ephemeral port from a
    # counter, and a server from a pool that changes every port cycle, so that no
    # 4-tuple repeats except where a reuse flow copies it on purpose.
    u = np.arange(n_units, dtype=np.int64)
    v6 = rng.random(n_units) < IPV6_SHARE
    phone = (u % N_PHONES).astype(np.int64)
    eph = EPHEMERAL_LO + (u // N_PHONES) % EPHEMERAL_N
    cycle = u // (N_PHONES * EPHEMERAL_N)
    server = cycle * SERVERS_PER_CYCLE + rng.integers(0, SERVERS_PER_CYCLE, n_units)
    tcp_unit = np.array([FLOW_TYPES[n]["tcp"] for n in TYPE_NAMES])[tid]
    sport = np.where(tcp_unit, TCP_PORTS[rng.integers(0, len(TCP_PORTS), n_units)],
                     UDP_PORTS[rng.integers(0, len(UDP_PORTS), n_units)]).astype(np.int64)
    can_inbound = (tid == TYPE_ID["syn_unans"]) | (tid == TYPE_ID["refused"])
    inbound = can_inbound & (rng.random(n_units) < INBOUND_SHARE)
    # inbound: the remote dials the phone's listener from its own ephemeral port
    phone_port = np.where(inbound, PHONE_LISTEN_PORT, eph)
    remote_port = np.where(inbound, eph, sport)
    rtt = np.clip(rng.lognormal(np.log(40e6), 0.8, n_units), 2e6, 800e6).astype(np.int64)

    # Expand to flows: each unit's flow, then the reuse flows (same address fields).
    has_f = fk >= 0
    fu = np.flatnonzero(has_f)
    def cat(a, b):
        return np.concatenate([a, b])
    flows = dict(
        tid=cat(tid, np.full(len(fu), reuse_tid)),
        k=cat(k, fk[fu]),
        start=cat(start, np.zeros(len(fu), np.int64)),   # reuse starts filled in later
        pred=cat(np.full(n_units, -1), fu),
        v6=cat(v6, v6[fu]),
        phone=cat(phone, phone[fu]),
        server=cat(server, server[fu]),
        inbound=cat(inbound, inbound[fu]),
        phone_port=cat(phone_port, phone_port[fu]),
        remote_port=cat(remote_port, remote_port[fu]),
        rtt=cat(rtt, rtt[fu]),
    )
    nf = len(flows["tid"])
    flows["isn_i"] = rng.integers(0, 2**32, nf, dtype=np.int64)
    flows["isn_r"] = rng.integers(0, 2**32, nf, dtype=np.int64)
    flows["ipid_i"] = rng.integers(0, 2**16, nf, dtype=np.int64)
    flows["ipid_r"] = rng.integers(0, 2**16, nf, dtype=np.int64)
    return flows


# --------------------------------------------------------------------------- expansion

def _group_excl_cumsum(vals: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Exclusive cumulative sum of vals within consecutive groups."""
    cs = np.cumsum(vals)
    cs -= vals
    base = np.repeat(cs[starts], sizes)
    return cs - base


def expand_type(tname: str, fidx: np.ndarray, flows: dict, rng: np.random.Generator) -> dict:
    """Packets of all flows of one type, in flow order."""
    t = FLOW_TYPES[tname]
    template = np.array([STEP_ID[s] for s in t["prefix"] + t["unit"] + t["suffix"]], np.int64)
    P, U = len(t["prefix"]), len(t["unit"])
    k = flows["k"][fidx]
    size = _sizes(np.full(len(fidx), TYPE_ID[tname]), k)
    total = int(size.sum())
    starts = np.zeros(len(fidx), np.int64)
    np.cumsum(size[:-1], out=starts[1:])
    local = np.repeat(np.arange(len(fidx), dtype=np.int64), size)
    pos = np.arange(total, dtype=np.int64) - starts[local]
    kk = k[local]
    in_unit = (pos >= P) & (pos < P + U * kk)
    if U:
        rel = pos - P
        tix = np.where(pos < P, pos, np.where(in_unit, P + rel % U, P + U + (rel - U * kk)))
        rep = np.where(in_unit, rel // U, 0)
    else:
        tix = pos
        rep = np.zeros(total, np.int64)
    del pos, kk
    step = template[tix].astype(np.uint8)
    del tix
    flow = fidx[local].astype(np.int64)

    # payload lengths
    pk = STEP_PAY[step]
    plen = np.zeros(total, np.int64)
    v6 = flows["v6"][flow]
    mss = np.where(v6, 1440, 1460)
    for kind, med, sig in ((P_REQ, 200, 0.9), (P_RESP, 450, 1.1), (P_UREQ, 60, 0.8), (P_URESP, 200, 1.0)):
        sel = np.flatnonzero(pk == kind)
        if len(sel):
            plen[sel] = np.clip(rng.lognormal(np.log(med), sig, len(sel)), 16, mss[sel]).astype(np.int64)
    del pk

    # time gaps
    gk = STEP_GAP[step]
    gap = np.zeros(total, np.int64)
    rtt = flows["rtt"][flow]
    sel = gk == G_RTT
    gap[sel] = (rtt[sel] * rng.uniform(0.9, 1.3, int(sel.sum()))).astype(np.int64)
    sel = gk == G_LOCAL
    gap[sel] = rng.integers(20_000, 500_000, int(sel.sum()))
    sel = gk == G_THINK
    gap[sel] = np.clip(rng.lognormal(np.log(80e6), 1.4, int(sel.sum())), 1e5, 120e9).astype(np.int64)
    sel = gk == G_BACKOFF   # 1 s, 2 s, 4 s ... (Linux initial RTO 1 s)
    gap[sel] = (1e9 * (2.0 ** rep[sel]) * rng.uniform(1.0, 1.02, int(sel.sum()))).astype(np.int64)
    sel = gk == G_UDPRETRY
    gap[sel] = rng.integers(1_000_000_000, 5_000_000_000, int(sel.sum()))
    del gk, rtt, sel, rep
    offset = np.cumsum(gap)
    offset -= np.repeat(offset[starts], size)   # first packet of each flow at offset 0

    # sequence numbers (TCP only)
    seq = np.zeros(total, np.int64)
    ack = np.zeros(total, np.int64)
    if t["tcp"]:
        d = STEP_DIR[step]
        cons = STEP_CONS[step] + plen
        cons_i = np.where(d == I, cons, 0)
        cons_r = np.where(d == R, cons, 0)
        del cons
        bi = _group_excl_cumsum(cons_i, starts, size)
        br = _group_excl_cumsum(cons_r, starts, size)
        del cons_i, cons_r
        isn_i = flows["isn_i"][flow]
        isn_r = flows["isn_r"][flow]
        seq = np.where(d == I, isn_i + bi, isn_r + br) & 0xFFFFFFFF
        ack = np.where(d == I, isn_r + br, isn_i + bi) & 0xFFFFFFFF
        ack[(STEP_FLAGS[step] & ACK) == 0] = 0
        del bi, br, isn_i, isn_r, d
    # ip id: a per-flow, per-direction counter
    d = STEP_DIR[step].astype(np.int64)
    n_i = _group_excl_cumsum(1 - d, starts, size)
    n_r = _group_excl_cumsum(d, starts, size)
    ipid = np.where(d == I, flows["ipid_i"][flow] + n_i, flows["ipid_r"][flow] + n_r) & 0xFFFF
    end_offset = offset[starts + size - 1]
    return dict(flow=flow.astype(np.int32), step=step, plen=plen.astype(np.uint16),
                offset=offset, seq=seq.astype(np.uint32), ack=ack.astype(np.uint32),
                ipid=ipid.astype(np.uint16), _end=(fidx, end_offset))


def build_packets(flows: dict, rng: np.random.Generator) -> dict:
    tid = flows["tid"]
    parts = []
    reuse_tid = TYPE_ID["reuse_fin_i"]
    end_ts = np.zeros(len(tid), np.int64)
    # primary flows first (their end times fix the reuse flows' starts), then reuse flows
    order = [n for n in TYPE_NAMES if n != "reuse_fin_i"] + ["reuse_fin_i"]
    for tname in order:
        fidx = np.flatnonzero(tid == TYPE_ID[tname])
        if not len(fidx):
            continue
        if tname == "reuse_fin_i":
            pred = flows["pred"][fidx]
            gap = np.clip(rng.lognormal(np.log(300e6), 1.0, len(fidx)), 5e6, 10e9).astype(np.int64)
            flows["start"][fidx] = end_ts[pred] + gap
        part = expand_type(tname, fidx, flows, rng)
        fi, eo = part.pop("_end")
        end_ts[fi] = flows["start"][fi] + eo
        part["ts"] = part.pop("offset")
        part["ts"] += flows["start"][part["flow"]]
        parts.append(part)
    pk = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    del parts
    order = np.argsort(pk["ts"], kind="stable")
    for key in list(pk):
        pk[key] = pk[key][order]
    return pk


# --------------------------------------------------------------------------- addresses

def _v4_addr(kind: str, idx: np.ndarray) -> np.ndarray:
    idx = idx.astype(np.int64)
    if kind == "phone":
        return (0xC0A80164 + idx).astype(np.uint32)            # 192.168.1.100 + i
    # servers: spread over a few public /8s, never .0 or .255
    firsts = np.array([13, 17, 23, 31, 34, 35, 52, 104, 142, 151, 157, 185], np.int64)
    a = firsts[idx % len(firsts)]
    rest = (idx // len(firsts)) * 2654435761 % (1 << 24)
    last = (rest & 0xFF) % 253 + 1
    return ((a << 24) | (rest & 0xFFFF00) | last).astype(np.uint32)


def _v6_addr(kind: str, idx: np.ndarray) -> np.ndarray:
    """(n, 16) uint8."""
    n = len(idx)
    out = np.zeros((n, 16), np.uint8)
    idx = idx.astype(np.int64)
    if kind == "phone":
        out[:, :8] = np.frombuffer(bytes.fromhex("20010db800010001"), np.uint8)
        out[:, 15] = 0x10 + idx
        out[:, 8] = 0x02
    else:
        out[:, :4] = np.frombuffer(bytes.fromhex("20010db8"), np.uint8)
        out[:, 4] = 0xFF
        v = idx * 2654435761
        for j in range(6):
            out[:, 10 + j] = (v >> (8 * j)) & 0xFF
        out[:, 15] |= 1
    return out


# --------------------------------------------------------------------------- writing

REC = np.dtype([("sec", "<u4"), ("frac", "<u4"), ("incl", "<u4"), ("orig", "<u4")])
IP4 = np.dtype([("vihl", "u1"), ("tos", "u1"), ("len", ">u2"), ("id", ">u2"), ("frag", ">u2"),
                ("ttl", "u1"), ("proto", "u1"), ("csum", ">u2"), ("src", ">u4"), ("dst", ">u4")])
IP6 = np.dtype([("vtcfl", ">u4"), ("plen", ">u2"), ("nh", "u1"), ("hlim", "u1"),
                ("src", "u1", (16,)), ("dst", "u1", (16,))])
TCP = np.dtype([("sport", ">u2"), ("dport", ">u2"), ("seq", ">u4"), ("ack", ">u4"),
                ("offflags", ">u2"), ("win", ">u2"), ("csum", ">u2"), ("urg", ">u2")])
UDP = np.dtype([("sport", ">u2"), ("dport", ">u2"), ("len", ">u2"), ("csum", ">u2")])
# SYN options: MSS 1460, SACK permitted, timestamps, NOP, window scale 7 (20 bytes, like Linux)
SYN_OPTS = np.frombuffer(bytes.fromhex("020405b4" "0402" "080a0000000000000000" "01" "030307"),
                         np.uint8)
assert len(SYN_OPTS) == 20


def _scatter(buf: np.ndarray, offs: np.ndarray, block: np.ndarray) -> None:
    for j in range(block.shape[1]):
        buf[offs + j] = block[:, j]


def _fold(s: np.ndarray) -> np.ndarray:
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return s


def _words(arr: np.ndarray) -> np.ndarray:
    """Sum of the big-endian 16-bit words of each structured record."""
    b = arr.view(np.uint8).reshape(len(arr), -1).astype(np.int64)
    return (b[:, 0::2] << 8).sum(axis=1) + b[:, 1::2].sum(axis=1)


def encode_chunk(pk: dict, sl: slice, flows: dict, addr: dict, nanosecond: bool) -> np.ndarray:
    ts = pk["ts"][sl]
    flow = pk["flow"][sl].astype(np.int64)
    step = pk["step"][sl]
    plen = pk["plen"][sl].astype(np.int64)
    n = len(ts)
    d = STEP_DIR[step]
    flags = STEP_FLAGS[step]
    tcp = flows["tcp"][flow]
    v6 = flows["v6"][flow]
    from_phone = (d == I) != flows["inbound"][flow]
    l3 = np.where(v6, 40, 20)
    syn = tcp & ((flags & SYN) != 0)
    l4 = np.where(tcp, np.where(syn, 40, 20), 8)
    caplen = 14 + l3 + l4 + plen
    rec_len = 16 + caplen
    offs = np.zeros(n, np.int64)
    np.cumsum(rec_len[:-1], out=offs[1:])
    buf = np.zeros(int(rec_len.sum()), np.uint8)

    rec = np.zeros(n, REC)
    rec["sec"] = ts // 10**9
    rec["frac"] = ts % 10**9 if nanosecond else (ts % 10**9) // 1000
    rec["incl"] = caplen
    rec["orig"] = caplen
    _scatter(buf, offs, rec.view(np.uint8).reshape(n, 16))

    eth = np.zeros((4, 14), np.uint8)   # [v6 * 2 + from_phone]
    for i6 in (0, 1):
        for fp in (0, 1):
            dst, src = (MAC_GW, MAC_PHONE) if fp else (MAC_PHONE, MAC_GW)
            et = b"\x86\xdd" if i6 else b"\x08\x00"
            eth[i6 * 2 + fp] = np.frombuffer(dst + src + et, np.uint8)
    _scatter(buf, offs + 16, eth[v6.astype(np.int64) * 2 + from_phone])

    ip_off = offs + 30
    l4_off = ip_off + l3
    l4_len = l4 + plen
    phone_i = flows["phone"][flow]
    server_i = flows["server"][flow]
    proto = np.where(tcp, 6, 17)
    ttl = np.where(from_phone, 64, 52)

    # pseudo-header sums for the L4 checksum
    pseudo = np.zeros(n, np.int64)
    sel4 = np.flatnonzero(~v6)
    if len(sel4):
        m = len(sel4)
        h = np.zeros(m, IP4)
        fp = from_phone[sel4]
        pa = addr["v4phone"][phone_i[sel4]].astype(np.int64)
        sa = addr["v4server"][server_i[sel4]].astype(np.int64)
        src = np.where(fp, pa, sa)
        dst = np.where(fp, sa, pa)
        h["vihl"] = 0x45
        h["len"] = 20 + l4_len[sel4]
        h["id"] = pk["ipid"][sl][sel4]
        h["frag"] = 0x4000
        h["ttl"] = ttl[sel4]
        h["proto"] = proto[sel4]
        h["src"] = src
        h["dst"] = dst
        h["csum"] = ~_fold(_words(h)) & 0xFFFF
        _scatter(buf, ip_off[sel4], h.view(np.uint8).reshape(m, 20))
        pseudo[sel4] = ((src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF)
                        + proto[sel4] + l4_len[sel4])
    sel6 = np.flatnonzero(v6)
    if len(sel6):
        m = len(sel6)
        h = np.zeros(m, IP6)
        fp = from_phone[sel6][:, None]
        pa = addr["v6phone"][phone_i[sel6]]
        sa = addr["v6server"][server_i[sel6]]
        src = np.where(fp, pa, sa)
        dst = np.where(fp, sa, pa)
        h["vtcfl"] = 0x60000000
        h["plen"] = l4_len[sel6]
        h["nh"] = proto[sel6]
        h["hlim"] = ttl[sel6]
        h["src"] = src
        h["dst"] = dst
        _scatter(buf, ip_off[sel6], h.view(np.uint8).reshape(m, 40))
        s16, d16 = src.astype(np.int64), dst.astype(np.int64)
        pseudo[sel6] = ((s16[:, 0::2] << 8).sum(1) + s16[:, 1::2].sum(1)
                        + (d16[:, 0::2] << 8).sum(1) + d16[:, 1::2].sum(1)
                        + proto[sel6] + l4_len[sel6])

    pport = flows["phone_port"][flow]
    rport = flows["remote_port"][flow]
    sport = np.where(from_phone, pport, rport)
    dport = np.where(from_phone, rport, pport)
    selt = np.flatnonzero(tcp)
    if len(selt):
        m = len(selt)
        h = np.zeros(m, TCP)
        h["sport"] = sport[selt]
        h["dport"] = dport[selt]
        h["seq"] = pk["seq"][sl][selt]
        h["ack"] = pk["ack"][sl][selt]
        h["offflags"] = ((l4[selt] // 4) << 12) | flags[selt]
        h["win"] = np.where(syn[selt], 65535, 502)
        h["win"][(flags[selt] & RST) != 0] = 0
        s = pseudo[selt] + _words(h)
        s += np.where(syn[selt], int(((SYN_OPTS[0::2].astype(np.int64) << 8).sum()
                                      + SYN_OPTS[1::2].sum())), 0)
        h["csum"] = ~_fold(s) & 0xFFFF
        _scatter(buf, l4_off[selt], h.view(np.uint8).reshape(m, 20))
        so = selt[syn[selt]]
        if len(so):
            _scatter(buf, l4_off[so] + 20, np.broadcast_to(SYN_OPTS, (len(so), 20)))
    selu = np.flatnonzero(~tcp)
    if len(selu):
        m = len(selu)
        h = np.zeros(m, UDP)
        h["sport"] = sport[selu]
        h["dport"] = dport[selu]
        h["len"] = l4_len[selu]
        c = ~_fold(pseudo[selu] + _words(h)) & 0xFFFF
        h["csum"] = np.where(c == 0, 0xFFFF, c)
        _scatter(buf, l4_off[selu], h.view(np.uint8).reshape(m, 8))
    return buf


def truth_of(pk: dict, flows: dict, addr: dict, args, path: str, elapsed: float) -> dict:
    flags = STEP_FLAGS[pk["step"]]
    tcp_pkt = flows["tcp"][pk["flow"]]
    tid = flows["tid"]
    n_tcp = int(flows["tcp"].sum())
    by_type = {n: int((tid == TYPE_ID[n]).sum()) for n in TYPE_NAMES}
    teardown: dict[str, int] = {}
    state: dict[str, int] = {}
    teardown_by: dict[str, int] = {}
    inbound = flows["inbound"]
    for n in TYPE_NAMES:
        t = FLOW_TYPES[n]
        sel = tid == TYPE_ID[n]
        c = int(sel.sum())
        if not c:
            continue
        teardown[t["teardown"]] = teardown.get(t["teardown"], 0) + c
        state[t["state"]] = state.get(t["state"], 0) + c
        if t["by"] != "-":
            for inb in (False, True):
                cc = int((sel & (inbound == inb)).sum())
                if cc:
                    # the initiator is the phone unless the flow is inbound
                    who = "phone" if (t["by"] == "initiator") != inb else "server"
                    key = f"{t['teardown']}:{who}"
                    teardown_by[key] = teardown_by.get(key, 0) + cc
    syn_steps = flags & (SYN | ACK)
    fp = STEP_DIR[pk["step"]] == I
    retry = pk["step"] == STEP_ID["syn_retry"]
    retry |= pk["step"] == STEP_ID["syn_retry_last"]
    return {
        "generator_version": GENERATOR_VERSION,
        "file": os.path.abspath(path),
        "file_size": os.path.getsize(path),
        "seed": args.seed,
        "nanosecond": bool(args.ns),
        "rate_pps": args.rate,
        "packets": int(len(flags)),
        "tcp_packets": int(tcp_pkt.sum()),
        "udp_packets": int((~tcp_pkt).sum()),
        "ipv6_packets": int(flows["v6"][pk["flow"]].sum()),
        "flows": int(len(tid)),
        "tcp_flows": n_tcp,
        "udp_flows": int(len(tid) - n_tcp),
        "ipv6_flows": int(flows["v6"].sum()),
        "reused_tuple_flows": by_type["reuse_fin_i"],
        "inbound_flows": int(inbound.sum()),
        "syn_packets": int((tcp_pkt & (syn_steps == SYN)).sum()),           # SYN without ACK
        "syn_retransmissions": int(retry.sum()),
        "synack_packets": int((tcp_pkt & (syn_steps == (SYN | ACK))).sum()),
        "fin_packets": int((tcp_pkt & ((flags & FIN) != 0)).sum()),
        "rst_packets": int((tcp_pkt & ((flags & RST) != 0)).sum()),
        "rst_packets_refused": by_type["refused"],
        "flows_by_type": by_type,
        "expected_teardown": teardown,
        "expected_teardown_by": teardown_by,
        "expected_conn_state": state,
        "phones": [".".join(str(b) for b in int(a).to_bytes(4, "big")) for a in addr["v4phone"]]
                  + [str(ipaddress.IPv6Address(bytes(a))) for a in addr["v6phone"]],
        "first_ts": float(pk["ts"][0] / 1e9),
        "last_ts": float(pk["ts"][-1] / 1e9),
        "packets_from_initiator": int(fp.sum()),
        "generation_seconds": round(elapsed, 2),
    }


def generate(args) -> dict:
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    n = args.packets
    if n < 1:
        raise SystemExit("--packets must be >= 1")
    flows = plan_flows(n, rng, args.rate)
    flows["tcp"] = np.array([FLOW_TYPES[t]["tcp"] for t in TYPE_NAMES])[flows["tid"]]
    pk = build_packets(flows, rng)
    assert len(pk["ts"]) == n, (len(pk["ts"]), n)
    n_srv = int(flows["server"].max()) + 1
    addr = {
        "v4phone": _v4_addr("phone", np.arange(N_PHONES)),
        "v4server": _v4_addr("server", np.arange(n_srv)),
        "v6phone": _v6_addr("phone", np.arange(N_PHONES)),
        "v6server": _v6_addr("server", np.arange(n_srv)),
    }
    out = args.out
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".part"
    magic = 0xA1B23C4D if args.ns else 0xA1B2C3D4
    ghdr = np.array([(magic, 2, 4, 0, 0, 262144, 1)],
                    dtype=[("m", "<u4"), ("maj", "<u2"), ("min", "<u2"), ("tz", "<i4"),
                           ("sig", "<u4"), ("snap", "<u4"), ("lt", "<u4")])
    chunk = args.chunk
    with open(tmp, "wb") as f:
        f.write(ghdr.tobytes())
        for s in range(0, n, chunk):
            buf = encode_chunk(pk, slice(s, min(n, s + chunk)), flows, addr, args.ns)
            f.write(memoryview(buf))
            del buf
    os.replace(tmp, out)
    truth = truth_of(pk, flows, addr, args, out, time.perf_counter() - t0)
    with open(truth_path(out), "w") as f:
        json.dump(truth, f, indent=1)
    return truth


def truth_path(pcap: str) -> str:
    return pcap[:-5] + ".truth.json" if pcap.endswith(".pcap") else pcap + ".truth.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=parse_count, default=1_000_000,
                    help="number of packets (accepts 1m, 500k)")
    ap.add_argument("--out", required=True, help="output .pcap; truth goes to NAME.truth.json")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ns", action="store_true", help="nanosecond magic (default microsecond)")
    ap.add_argument("--rate", type=float, default=2000.0,
                    help="mean packets per second of capture time (default 2000)")
    ap.add_argument("--chunk", type=int, default=500_000, help="packets encoded per write")
    args = ap.parse_args(argv)
    truth = generate(args)
    json.dump(truth, sys.stdout, indent=1)
    print()
    print(f"wrote {truth['packets']:,} packets, {truth['file_size'] / 1e6:.1f} MB in "
          f"{truth['generation_seconds']:.1f} s -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
