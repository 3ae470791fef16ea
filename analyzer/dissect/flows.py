"""Flow table: packets -> bidirectional flows with Zeek's endpoint states, and events.

Per packet, the compiled kernel finds the packet's flow (a hash table over the canonical
5-tuple), splits a reused 4-tuple into a new flow exactly where Zeek does (a SYN on a
closed connection, or a SYN with a new initial sequence number), runs Zeek's TCP endpoint
state machine (INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET) and
its history letters, and records the teardown evidence we label flows with: SYNs and their
retries, SYN-ACKs, FINs, RSTs, refused SYNs, data after FIN or RST, and ICMP errors
linked to the flow whose header they quote.

Finished flows leave the table (and memory) once idle: terminal flows after
`close_linger` seconds, unanswered attempts after `attempt_timeout`, UDP and other flows
after `udp_timeout` (Zeek's UDP inactivity timeout); a later packet on the same tuple then
starts a new flow. Established TCP flows stay until they close or the capture ends, so a
write after a long background period still lands on its connection.
"""

from __future__ import annotations

import numpy as np

from analyzer.dissect import kernels
from analyzer.dissect.kernels import njit
from analyzer.dissect.packets import FLOW_INPUT_COLUMNS
from analyzer.dissect.ports import port_table

# Zeek's TCP endpoint states
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
STATE_NAMES = ("INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED", "RESET")
UDP_ACTIVE = 1

# Flow-level fields: FL[slot, field]
(USED, PROTO, IPVER, APORT, BPORT, FLOW_ID, FIRST_TS, LAST_TS, FIRST_FRAME, LAST_FRAME,
 SEEN, HLEN, FLIPPED, SYN_COUNT, REFUSED, REFUSED_FRAME, REFUSED_TS, ICMP_FRAME, ICMP_TS,
 ICMP_TYPE, ICMP_CODE, ICMP_SRC_HI, ICMP_SRC_LO, ICMP_DIR, N_FL) = range(25)

# Endpoint fields: EP[slot, side, field]; side 0 = originator, 1 = responder
(ST, PST, START, LASTSEQ, HSYN, HFIN, HRST, DIDCLOSE, RXC, RXT, W0C, W0T, PKTS, BYTES,
 FIN_FRAME, FIN_TS, RST_FRAME, RST_TS, LAST_EP_FRAME, LAST_EP_TS, SYN_N, DAF, DAR,
 SYNACK_N, SYN_FRAME, SYN_TS, N_EP) = range(27)

HMAX = 40        # history letters kept per flow

# Event kinds emitted by the kernel (syn_unanswered / udp_unanswered come at the end)
EV_SYN, EV_SYN_RETRY, EV_SYNACK, EV_FIN, EV_RST, EV_REFUSED, EV_DATA_AFTER_FIN, \
    EV_DATA_AFTER_RST, EV_ICMP_UNREACHABLE = range(9)
EVENT_NAMES = ("syn", "syn_retry", "synack", "fin", "rst", "refused", "data_after_fin",
               "data_after_rst", "icmp_unreachable")

# Counters C[...]
C_NEXT_ID, C_NFREE, C_EV_N, C_DETACHED, N_C = range(5)

# Kernel return codes
DONE, NEED_SLOTS, NEED_EVENT_ROOM = range(3)

# Event detail codes
D_NONE, D_RETRANSMIT, D_AFTER_OWN_FIN, D_AFTER_PEER_FIN, D_AFTER_OWN_RST, D_AFTER_PEER_RST = range(6)
DETAIL_TEXT = {
    D_NONE: "", D_RETRANSMIT: "retransmission", D_AFTER_OWN_FIN: "after its own FIN",
    D_AFTER_PEER_FIN: "after the peer's FIN", D_AFTER_OWN_RST: "after its own RST",
    D_AFTER_PEER_RST: "after the peer's RST",
}

# History "seen" bits (per direction; the responder's are shifted by 16)
H_SYN, H_FIN, H_RST, H_FIN_RST, H_DATA, H_ACK, H_MULTI = 1, 2, 4, 8, 16, 32, 64

K1 = np.uint64(0x9E3779B97F4A7C15)
K2 = np.uint64(0xC2B2AE3D27D4EB4F)
K3 = np.uint64(0x165667B19E3779F9)


@njit(cache=True)
def _mix(h, v):
    h ^= v * K1
    h = (h << np.uint64(31)) | (h >> np.uint64(33))
    return h * K2


@njit(cache=True)
def _hash(proto, ahi, alo, ap, bhi, blo, bp):
    h = np.uint64(proto) * K3
    h = _mix(h, ahi)
    h = _mix(h, alo)
    h = _mix(h, bhi)
    h = _mix(h, blo)
    h = _mix(h, np.uint64(ap) << np.uint64(16) | np.uint64(bp))
    return h ^ (h >> np.uint64(29))


@njit(cache=True)
def _canon(shi, slo, sp, dhi, dlo, dp):
    """Order the two endpoints so both directions share one key; True if swapped."""
    if shi < dhi or (shi == dhi and (slo < dlo or (slo == dlo and sp <= dp))):
        return shi, slo, sp, dhi, dlo, dp, False
    return dhi, dlo, dp, shi, slo, sp, True


@njit(cache=True)
def _find(index, KEY, FL, proto, shi, slo, sp, dhi, dlo, dp):
    """Index position holding the flow of this tuple, or the empty position to insert at.
    Returns (position, slot or -1)."""
    chi, clo, cp, ehi, elo, ep, _ = _canon(shi, slo, sp, dhi, dlo, dp)
    mask = np.uint64(len(index) - 1)
    pos = np.int64(_hash(proto, chi, clo, cp, ehi, elo, ep) & mask)
    while True:
        s = index[pos]
        if s < 0:
            return pos, -1
        if FL[s, USED] == 1 and FL[s, PROTO] == proto:   # retired slots wait for collection
            ahi, alo, ap = KEY[s, 0], KEY[s, 1], FL[s, APORT]
            bhi, blo, bp = KEY[s, 2], KEY[s, 3], FL[s, BPORT]
            if ((ahi == shi and alo == slo and ap == sp and bhi == dhi and blo == dlo and bp == dp)
                    or (ahi == dhi and alo == dlo and ap == dp and bhi == shi and blo == slo
                        and bp == sp)):
                return pos, s
        pos = (pos + 1) & np.int64(mask)


@njit(cache=True, nogil=True)
def rebuild_index(index, KEY, FL):
    """Refill the hash index from the live slots (after flows left the table)."""
    index[:] = -1
    mask = np.uint64(len(index) - 1)
    for s in range(FL.shape[0]):
        if FL[s, USED] != 1:
            continue
        chi, clo, cp, ehi, elo, ep, _ = _canon(KEY[s, 0], KEY[s, 1], FL[s, APORT],
                                             KEY[s, 2], KEY[s, 3], FL[s, BPORT])
        pos = np.int64(_hash(FL[s, PROTO], chi, clo, cp, ehi, elo, ep) & mask)
        while index[pos] >= 0:
            pos = (pos + 1) & np.int64(mask)
        index[pos] = s


@njit(cache=True)
def _add_hist(HIST, FL, s, code, side):
    if side == 1 and code != 94:       # '^' has no case
        code += 32                       # lower case for the responder
    n = FL[s, HLEN]
    if n < HMAX:
        HIST[s, n] = code
        FL[s, HLEN] = n + 1


@njit(cache=True)
def _check_hist(HIST, FL, s, bit, code, side):
    """Zeek's CheckHistory: add the letter the first time; True if it was seen before."""
    b = bit << (16 * side)
    if FL[s, SEEN] & b:
        return True
    FL[s, SEEN] |= b
    _add_hist(HIST, FL, s, code, side)
    return False


@njit(cache=True)
def _scaled_hist(HIST, FL, EP, s, side, cnt_f, thr_f, code):
    """Zeek's logarithmic letters (t, w): at the 1st, 10th, 100th... occurrence."""
    EP[s, side, cnt_f] += 1
    if EP[s, side, cnt_f] == EP[s, side, thr_f]:
        _add_hist(HIST, FL, s, code, side)
        EP[s, side, thr_f] *= 10


@njit(cache=True)
def _set_state(EP, s, side, new):
    if EP[s, side, ST] != new:
        EP[s, side, PST] = EP[s, side, ST]
        EP[s, side, ST] = new


@njit(cache=True)
def _seq_delta(a, b):
    d = (a - b) & 0xFFFFFFFF
    if d >= 0x80000000:
        d -= 0x100000000
    return d


@njit(cache=True)
def _new_flow(FL, EP, KEY, HIST, C, s, proto, ipver, shi, slo, sp, dhi, dlo, dp, flip,
              ts, frame):
    FL[s, :] = 0
    EP[s, :, :] = 0
    for side in range(2):
        EP[s, side, RXT] = 1
        EP[s, side, W0T] = 1
    FL[s, USED] = 1
    FL[s, PROTO] = proto
    FL[s, IPVER] = ipver
    if flip:
        KEY[s, 0], KEY[s, 1], FL[s, APORT] = dhi, dlo, dp
        KEY[s, 2], KEY[s, 3], FL[s, BPORT] = shi, slo, sp
    else:
        KEY[s, 0], KEY[s, 1], FL[s, APORT] = shi, slo, sp
        KEY[s, 2], KEY[s, 3], FL[s, BPORT] = dhi, dlo, dp
    FL[s, FLOW_ID] = C[C_NEXT_ID]
    C[C_NEXT_ID] += 1
    FL[s, FIRST_TS] = ts
    FL[s, FIRST_FRAME] = frame
    if flip:
        FL[s, FLIPPED] = 1
        _add_hist(HIST, FL, s, 94, 0)     # '^'


@njit(cache=True)
def _emit(EV, C, frame, ts, flow_id, kind, side, detail, aux_hi, aux_lo):
    k = C[C_EV_N]
    EV[k, 0] = frame
    EV[k, 1] = ts
    EV[k, 2] = flow_id
    EV[k, 3] = kind
    EV[k, 4] = side
    EV[k, 5] = detail
    EV[k, 6] = aux_hi
    EV[k, 7] = aux_lo
    C[C_EV_N] = k + 1


@njit(cache=True)
def _is_reuse(FL, EP, s, flags, seq):
    """Zeek's IsReuse: does this SYN start a new connection on an existing tuple?"""
    if not (flags & 0x02):
        return False
    conn_orig = 0
    if flags & 0x10:
        if EP[s, 0, ST] != INACTIVE:
            return False
        conn_orig = 1
    closed = EP[s, 0, DIDCLOSE] or EP[s, 1, DIDCLOSE]
    if not closed:
        if seq == EP[s, conn_orig, START]:
            return False
        if (not (flags & 0x10) and EP[s, conn_orig, ST] == SYN_ACK_SENT
                and EP[s, 1, ST] == INACTIVE and seq == EP[s, 1, START]):
            return False
    return True


@njit(cache=True)
def _tcp(FL, EP, HIST, EV, C, s, side, flags, seq, ack, window, plen, ts, frame):
    """One TCP packet on flow s from `side`: Zeek's Process() plus our teardown events."""
    E = side
    P = 1 - side
    SYN = (flags & 0x02) != 0
    FIN = (flags & 0x01) != 0
    RST = (flags & 0x04) != 0
    ACK = (flags & 0x10) != 0
    fid = FL[s, FLOW_ID]
    seg_len = plen + (1 if SYN else 0) + (1 if FIN else 0) - (plen if RST else 0)
    seq_past = (seq + seg_len) & 0xFFFFFFFF
    st_e = EP[s, E, ST]
    st_p = EP[s, P, ST]

    # --- our events, judged on the state before this packet
    if SYN and not ACK:
        FL[s, SYN_COUNT] += 1
        if EP[s, E, SYN_N] == 0:
            _emit(EV, C, frame, ts, fid, EV_SYN, E, D_NONE, 0, 0)
        else:
            _emit(EV, C, frame, ts, fid, EV_SYN_RETRY, E, D_RETRANSMIT, EP[s, E, SYN_N], 0)
        EP[s, E, SYN_N] += 1
        EP[s, E, SYN_FRAME] = frame
        EP[s, E, SYN_TS] = ts
    elif SYN and ACK:
        _emit(EV, C, frame, ts, fid, EV_SYNACK, E,
              D_RETRANSMIT if EP[s, E, SYNACK_N] > 0 else D_NONE, 0, 0)
        EP[s, E, SYNACK_N] += 1
    if RST:
        refused = (st_e == INACTIVE and (st_p == SYN_SENT or st_p == SYN_ACK_SENT)
                   and EP[s, E, PKTS] == 0)
        if refused:
            FL[s, REFUSED] = 1
            FL[s, REFUSED_FRAME] = frame
            FL[s, REFUSED_TS] = ts
            _emit(EV, C, frame, ts, fid, EV_REFUSED, E, D_NONE, 0, 0)
        else:
            _emit(EV, C, frame, ts, fid, EV_RST, E, D_NONE, 0, 0)
        if EP[s, E, RST_FRAME] == 0:
            EP[s, E, RST_FRAME] = frame
            EP[s, E, RST_TS] = ts
    elif plen > 0:
        if EP[s, 0, RST_FRAME] or EP[s, 1, RST_FRAME]:
            if EP[s, E, DAR] == 0:
                EP[s, E, DAR] = 1
                _emit(EV, C, frame, ts, fid, EV_DATA_AFTER_RST, E,
                      D_AFTER_OWN_RST if EP[s, E, RST_FRAME] else D_AFTER_PEER_RST, 0, 0)
        elif EP[s, E, FIN_FRAME] or EP[s, P, FIN_FRAME]:
            if EP[s, E, DAF] == 0:
                EP[s, E, DAF] = 1
                _emit(EV, C, frame, ts, fid, EV_DATA_AFTER_FIN, E,
                      D_AFTER_OWN_FIN if EP[s, E, FIN_FRAME] else D_AFTER_PEER_FIN, 0, 0)
    if FIN and EP[s, E, FIN_FRAME] == 0:
        EP[s, E, FIN_FRAME] = frame
        EP[s, E, FIN_TS] = ts
        _emit(EV, C, frame, ts, fid, EV_FIN, E, D_NONE, 0, 0)

    # --- init_endpoint
    if st_e == INACTIVE:
        if SYN:
            EP[s, E, START] = seq
            EP[s, E, LASTSEQ] = seq_past
        else:
            EP[s, E, START] = (seq - 1) & 0xFFFFFFFF
            EP[s, E, LASTSEQ] = seq
    elif st_e == SYN_SENT or st_e == SYN_ACK_SENT:
        if SYN and seq != EP[s, E, START]:
            EP[s, E, START] = seq
            EP[s, E, LASTSEQ] = seq_past
    elif st_e == ESTABLISHED or st_e == PARTIAL:
        if SYN:
            EP[s, E, START] = seq
            EP[s, E, LASTSEQ] = seq_past
    elif st_e == RESET:
        if SYN and EP[s, E, PST] == INACTIVE:
            EP[s, E, START] = seq
            EP[s, E, LASTSEQ] = seq_past
    rel_seq = _seq_delta(seq, EP[s, E, START])

    # --- update_history
    bits = (1 if SYN else 0) + (1 if FIN else 0) + (1 if RST else 0)
    if bits > 1:
        if FIN and RST:
            _check_hist(HIST, FL, s, H_FIN_RST, 73, E)          # 'I'
        else:
            _check_hist(HIST, FL, s, H_MULTI, 81, E)            # 'Q'
    elif bits == 1:
        if SYN:
            code = 72 if ACK else 83                            # 'H' / 'S'
            if _check_hist(HIST, FL, s, H_SYN, code, E) and rel_seq != EP[s, E, HSYN]:
                _add_hist(HIST, FL, s, code, E)
            EP[s, E, HSYN] = rel_seq
        if FIN:
            if _check_hist(HIST, FL, s, H_FIN, 70, E) and rel_seq + plen != EP[s, E, HFIN]:
                _add_hist(HIST, FL, s, 70, E)
            EP[s, E, HFIN] = rel_seq + plen
        if RST:
            if _check_hist(HIST, FL, s, H_RST, 82, E) and rel_seq != EP[s, E, HRST]:
                _add_hist(HIST, FL, s, 82, E)
            EP[s, E, HRST] = rel_seq
    else:
        if plen:
            _check_hist(HIST, FL, s, H_DATA, 68, E)             # 'D'
        elif ACK:
            _check_hist(HIST, FL, s, H_ACK, 65, E)              # 'A'

    # --- zero window (scaled 'W'), as in update_window
    if window == 0 and not RST and st_p != CLOSED and st_e != RESET:
        _scaled_hist(HIST, FL, EP, s, E, W0C, W0T, 87)

    # --- init_peer: an ACK for a side we have not heard from sets its sequence base
    if ACK and st_p == INACTIVE:
        EP[s, P, START] = (ack - 1) & 0xFFFFFFFF
        EP[s, P, LASTSEQ] = (ack - 1) & 0xFFFFFFFF

    # --- update_last_seq
    delta_last = _seq_delta(seq_past, EP[s, E, LASTSEQ])
    if (SYN or RST) and (delta_last > 1048576 or delta_last < -1048576):
        pass
    elif FIN and EP[s, E, LASTSEQ] == ((EP[s, E, START] + 1) & 0xFFFFFFFF):
        EP[s, E, LASTSEQ] = seq_past
    elif st_e == RESET:
        pass
    elif delta_last > 0:
        EP[s, E, LASTSEQ] = seq_past
    elif plen > 0:
        _scaled_hist(HIST, FL, EP, s, E, RXC, RXT, 84)          # 'T'

    # --- UpdateStateMachine
    do_close = False
    if st_e == INACTIVE:
        if SYN:
            if E == 0:
                _set_state(EP, s, E, SYN_ACK_SENT if ACK else SYN_SENT)
            else:
                if EP[s, P, ST] == SYN_SENT:
                    _set_state(EP, s, P, ESTABLISHED)
                _set_state(EP, s, E, ESTABLISHED)
        if FIN:
            _set_state(EP, s, E, CLOSED)
            do_close = True
        if RST:
            _set_state(EP, s, E, RESET)
            do_close = True
        if EP[s, E, ST] == INACTIVE:
            if E == 1 and plen == 0 and EP[s, 0, ST] == SYN_SENT:
                pass
            elif ACK and EP[s, P, ST] == ESTABLISHED:
                _set_state(EP, s, E, ESTABLISHED)
            else:
                _set_state(EP, s, E, PARTIAL)
    elif st_e == SYN_SENT or st_e == SYN_ACK_SENT:
        if FIN:
            _set_state(EP, s, E, CLOSED)
            do_close = True
        if RST:
            _set_state(EP, s, E, RESET)
            do_close = True
    elif st_e == ESTABLISHED or st_e == PARTIAL:
        if SYN and st_e == PARTIAL and EP[s, P, ST] == INACTIVE and not ACK:
            _set_state(EP, s, E, SYN_SENT)
        if FIN and not RST:
            _set_state(EP, s, E, CLOSED)
            if EP[s, P, ST] == RESET and EP[s, P, PST] == CLOSED:
                _set_state(EP, s, P, CLOSED)
            do_close = True
        if RST:
            _set_state(EP, s, E, RESET)
            do_close = True
    elif st_e == CLOSED:
        if RST and EP[s, P, ST] != CLOSED:
            _set_state(EP, s, E, RESET)
            if not EP[s, E, DIDCLOSE]:
                do_close = True
    if do_close:
        EP[s, E, DIDCLOSE] = 1


# LIMITS[...]: the idle times (ns) after which a flow is over (see the module doc), and the
# shortest of them (below it nothing is over: the per-packet check is one comparison)
L_CLOSE_LINGER, L_ATTEMPT, L_UDP, L_TCP_IDLE, L_SHORTEST, N_LIMITS = range(6)


@njit(cache=True)
def _expired(FL, EP, s, now, limits):
    """Is flow s over at time `now`? The same rule decides at a packet's lookup and in
    mark_idle, so where a flow ends never depends on where batches begin."""
    idle = now - FL[s, LAST_TS]
    if FL[s, PROTO] == 6:
        o, r = EP[s, 0, ST], EP[s, 1, ST]
        terminal = (o == RESET or r == RESET or (EP[s, 0, DIDCLOSE] and EP[s, 1, DIDCLOSE])
                    or FL[s, REFUSED] == 1)
        if terminal and idle > limits[L_CLOSE_LINGER]:
            return True
        if r == INACTIVE and idle > limits[L_ATTEMPT]:
            return True
        return limits[L_TCP_IDLE] > 0 and idle > limits[L_TCP_IDLE]
    return idle > limits[L_UDP]


@njit(cache=True, nogil=True)
def mark_idle(FL, EP, now, limits):
    """Detach flows that are over (see _expired), to free their slots. Returns how many."""
    count = 0
    for s in range(FL.shape[0]):
        if FL[s, USED] == 1 and now - FL[s, LAST_TS] > limits[L_SHORTEST] and _expired(FL, EP, s, now, limits):
            FL[s, USED] = 2
            count += 1
    return count


@njit(cache=True, nogil=True)
def process_batch(start, n, frame, ts_ns, status, fragment, proto, ipver, src_hi, src_lo,
                  dst_hi, dst_lo, sport, dport, tcp_flags, seq, ack, window, payload,
                  icmp_type, icmp_code, q_proto, q_src_hi, q_src_lo, q_dst_hi, q_dst_lo,
                  q_sport, q_dport, KEY, FL, EP, HIST, index, free, C, EV, likely, limits):
    """Feed packets [start, n) to the table. Returns (next packet index, code)."""
    ev_cap = EV.shape[0]
    for i in range(start, n):
        if C[C_EV_N] + 4 > ev_cap:
            return i, NEED_EVENT_ROOM
        if status[i] != 0 or fragment[i] == 2 or ipver[i] == 0:
            continue
        pr = np.int64(proto[i])
        ts = ts_ns[i]
        fr = frame[i]
        shi, slo, dhi, dlo = src_hi[i], src_lo[i], dst_hi[i], dst_lo[i]
        sp = np.int64(0)
        dp = np.int64(0)

        # ICMP errors go to the flow whose header they quote
        if (pr == 1 and icmp_type[i] == 3 and icmp_code[i] != 4) or (pr == 58 and icmp_type[i] == 1):
            qp = np.int64(q_proto[i])
            if qp == 6 or qp == 17:
                pos, s = _find(index, KEY, FL, qp, q_src_hi[i], q_src_lo[i], np.int64(q_sport[i]),
                               q_dst_hi[i], q_dst_lo[i], np.int64(q_dport[i]))
                if s >= 0 and ts - FL[s, LAST_TS] > limits[L_SHORTEST] and _expired(FL, EP, s, ts, limits):
                    FL[s, USED] = 2            # over: the error quotes a flow that has ended
                    C[C_DETACHED] += 1
                    s = -1
                if s >= 0:
                    qside = 0 if (KEY[s, 0] == q_src_hi[i] and KEY[s, 1] == q_src_lo[i]
                                  and FL[s, APORT] == q_sport[i]) else 1
                    if FL[s, ICMP_FRAME] == 0:
                        FL[s, ICMP_FRAME] = fr
                        FL[s, ICMP_TS] = ts
                        FL[s, ICMP_TYPE] = icmp_type[i]
                        FL[s, ICMP_CODE] = icmp_code[i]
                        FL[s, ICMP_SRC_HI] = np.int64(shi)
                        FL[s, ICMP_SRC_LO] = np.int64(slo)
                        FL[s, ICMP_DIR] = qside
                    _emit(EV, C, fr, ts, FL[s, FLOW_ID], EV_ICMP_UNREACHABLE, qside,
                          np.int64(icmp_type[i]) * 256 + np.int64(icmp_code[i]),
                          np.int64(shi), np.int64(slo))
                    FL[s, LAST_TS] = ts
                    FL[s, LAST_FRAME] = fr
                    continue
        if pr == 6 or pr == 17:
            sp = np.int64(sport[i])
            dp = np.int64(dport[i])
        flags = np.int64(tcp_flags[i]) if pr == 6 else np.int64(0)

        pos, s = _find(index, KEY, FL, pr, shi, slo, sp, dhi, dlo, dp)
        if s >= 0 and ts - FL[s, LAST_TS] > limits[L_SHORTEST] and _expired(FL, EP, s, ts, limits):
            FL[s, USED] = 2            # idle past its time: this packet starts a new flow
            C[C_DETACHED] += 1
            s = -1
        if s >= 0 and pr == 6 and (flags & 0x02) and _is_reuse(FL, EP, s, flags, np.int64(seq[i])):
            FL[s, USED] = 2            # detached: leaves the table, collected by Python
            C[C_DETACHED] += 1
            s = -1                     # the new flow takes this index position
        if s < 0:
            if C[C_NFREE] == 0:
                return i, NEED_SLOTS
            C[C_NFREE] -= 1
            s = free[C[C_NFREE]]
            flip = False
            if pr == 6:
                if not (flags & 0x02) or (flags & 0x10):
                    if likely[0, sp]:
                        if likely[0, dp]:
                            flip = not (flags & 0x02) and sp < dp
                        else:
                            flip = True
            elif pr == 17:
                flip = likely[1, sp] and not likely[1, dp]
            _new_flow(FL, EP, KEY, HIST, C, s, pr, np.int64(ipver[i]), shi, slo, sp,
                      dhi, dlo, dp, flip, ts, fr)
            index[pos] = s
        side = 0 if (KEY[s, 0] == shi and KEY[s, 1] == slo and FL[s, APORT] == sp) else 1
        plen = np.int64(payload[i])
        if pr == 6:
            _tcp(FL, EP, HIST, EV, C, s, side, flags, np.int64(seq[i]), np.int64(ack[i]),
                 np.int64(window[i]), plen, ts, fr)
        elif pr == 17:
            EP[s, side, ST] = UDP_ACTIVE
            _check_hist(HIST, FL, s, H_DATA, 68, side)
        else:
            EP[s, side, ST] = UDP_ACTIVE
        EP[s, side, PKTS] += 1
        EP[s, side, BYTES] += plen
        EP[s, side, LAST_EP_FRAME] = fr
        EP[s, side, LAST_EP_TS] = ts
        FL[s, LAST_TS] = ts
        FL[s, LAST_FRAME] = fr
    return n, DONE


# Zeek's conn_state names, and our teardown labels, in the order of the codes below
CONN_STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH",
               "SHR", "OTH")
(CS_S0, CS_S1, CS_SF, CS_REJ, CS_S2, CS_S3, CS_RSTO, CS_RSTR, CS_RSTOS0, CS_RSTRH, CS_SH,
 CS_SHR, CS_OTH) = range(13)
TEARDOWNS = ("rst", "fin", "refused", "syn_unanswered", "udp_unanswered", "icmp_unreachable",
             "open")
TD_RST, TD_FIN, TD_REFUSED, TD_SYN_UNANSWERED, TD_UDP_UNANSWERED, TD_ICMP, TD_OPEN = range(7)
SIDE_UNKNOWN, SIDE_ICMP_SENDER = -1, -2     # teardown sides besides 0 (originator) / 1

# Summary rows: S[field, flow] for a block of finished flows (summarise_slots)
(S_FLOW_ID, S_PROTO, S_IPVER, S_APORT, S_BPORT, S_FIRST_TS, S_LAST_TS, S_FIRST_FRAME,
 S_LAST_FRAME, S_PKTS_I2R, S_PKTS_R2I, S_BYTES_I2R, S_BYTES_R2I, S_STATE, S_RSTOS0_IF,
 S_TEARDOWN, S_TD_SIDE, S_TD_FRAME, S_TD_TS, S_SYN_COUNT, S_A_HI, S_A_LO, S_B_HI, S_B_LO,
 S_ICMP_HI, S_ICMP_LO, N_S) = range(27)


@njit(cache=True)
def _conn_state(FL, EP, s):
    """Zeek's conn_state decision list for flow s, as a code into CONN_STATES, and whether
    it is RSTOS0 rather than OTH should the history match Zeek's RSTOS0 pattern (the caller
    knows the histories' texts)."""
    o, r = EP[s, 0, ST], EP[s, 1, ST]
    proto = FL[s, PROTO]
    if proto == 17:
        if o == UDP_ACTIVE:
            return (CS_SF if r == UDP_ACTIVE else CS_S0), 0
        return (CS_SHR if r == UDP_ACTIVE else CS_OTH), 0
    if proto != 6:
        return CS_OTH, 0
    o_inactive = o == INACTIVE or o == PARTIAL
    r_inactive = r == INACTIVE or r == PARTIAL
    if r == RESET:
        if (o == SYN_SENT or o == SYN_ACK_SENT
                or (o == RESET and EP[s, 0, BYTES] == 0 and EP[s, 1, BYTES] == 0)):
            return CS_REJ, 0
        return (CS_RSTRH if o_inactive else CS_RSTR), 0
    if o == RESET:
        return (CS_OTH, 1) if r_inactive else (CS_RSTO, 0)
    if r == CLOSED and o == CLOSED:
        return CS_SF, 0
    if o == CLOSED:
        return (CS_SH if r_inactive else CS_S2), 0
    if r == CLOSED:
        return (CS_SHR if o_inactive else CS_S3), 0
    if o == SYN_SENT and r == INACTIVE:
        return CS_S0, 0
    if o == ESTABLISHED and r == ESTABLISHED:
        return CS_S1, 0
    return CS_OTH, 0


@njit(cache=True)
def _teardown(FL, EP, s):
    """Our teardown label for flow s: (code into TEARDOWNS, side, frame, ts_ns). The side is
    0 or 1, SIDE_UNKNOWN, or SIDE_ICMP_SENDER (resolved later by address)."""
    big = np.int64(0x7FFFFFFFFFFFFFFF)
    proto = FL[s, PROTO]
    icmp = FL[s, ICMP_FRAME] > 0
    if proto == 6:
        if FL[s, REFUSED] == 1:
            return TD_REFUSED, 1, FL[s, REFUSED_FRAME], FL[s, REFUSED_TS]
        r0 = EP[s, 0, RST_FRAME] if EP[s, 0, RST_FRAME] > 0 else big
        r1 = EP[s, 1, RST_FRAME] if EP[s, 1, RST_FRAME] > 0 else big
        f0 = EP[s, 0, FIN_FRAME] if EP[s, 0, FIN_FRAME] > 0 else big
        f1 = EP[s, 1, FIN_FRAME] if EP[s, 1, FIN_FRAME] > 0 else big
        rst_side = 1 if r1 < r0 else 0
        fin_side = 1 if f1 < f0 else 0
        rst_fr, fin_fr = min(r0, r1), min(f0, f1)
        if rst_fr < big and rst_fr <= fin_fr:
            return TD_RST, rst_side, rst_fr, EP[s, rst_side, RST_TS]
        if fin_fr < big:
            return TD_FIN, fin_side, fin_fr, EP[s, fin_side, FIN_TS]
        if icmp:
            return TD_ICMP, SIDE_ICMP_SENDER, FL[s, ICMP_FRAME], FL[s, ICMP_TS]
        # an unanswered attempt is the silent end's doing: it never replied
        if EP[s, 0, SYN_N] > 0 and EP[s, 1, PKTS] == 0:
            return TD_SYN_UNANSWERED, 1, EP[s, 0, SYN_FRAME], EP[s, 0, SYN_TS]
    elif proto == 17:
        if icmp:
            return TD_ICMP, SIDE_ICMP_SENDER, FL[s, ICMP_FRAME], FL[s, ICMP_TS]
        if EP[s, 1, PKTS] == 0:
            return TD_UDP_UNANSWERED, 1, EP[s, 0, LAST_EP_FRAME], EP[s, 0, LAST_EP_TS]
    return TD_OPEN, SIDE_UNKNOWN, 0, 0


@njit(cache=True, nogil=True)
def summarise_slots(slots, KEY, FL, EP, HIST, S, H):
    """The summary of each finished flow in `slots`: S[field, i] (the S_ fields) and its
    history letters in H[i] (zero past the flow's last letter)."""
    for i in range(len(slots)):
        s = slots[i]
        S[S_FLOW_ID, i] = FL[s, FLOW_ID]
        S[S_PROTO, i] = FL[s, PROTO]
        S[S_IPVER, i] = FL[s, IPVER]
        S[S_APORT, i] = FL[s, APORT]
        S[S_BPORT, i] = FL[s, BPORT]
        S[S_FIRST_TS, i] = FL[s, FIRST_TS]
        S[S_LAST_TS, i] = FL[s, LAST_TS]
        S[S_FIRST_FRAME, i] = FL[s, FIRST_FRAME]
        S[S_LAST_FRAME, i] = FL[s, LAST_FRAME]
        S[S_PKTS_I2R, i] = EP[s, 0, PKTS]
        S[S_PKTS_R2I, i] = EP[s, 1, PKTS]
        S[S_BYTES_I2R, i] = EP[s, 0, BYTES]
        S[S_BYTES_R2I, i] = EP[s, 1, BYTES]
        S[S_STATE, i], S[S_RSTOS0_IF, i] = _conn_state(FL, EP, s)
        S[S_TEARDOWN, i], S[S_TD_SIDE, i], S[S_TD_FRAME, i], S[S_TD_TS, i] = _teardown(FL, EP, s)
        S[S_SYN_COUNT, i] = FL[s, SYN_COUNT]
        S[S_A_HI, i] = np.int64(KEY[s, 0])
        S[S_A_LO, i] = np.int64(KEY[s, 1])
        S[S_B_HI, i] = np.int64(KEY[s, 2])
        S[S_B_LO, i] = np.int64(KEY[s, 3])
        S[S_ICMP_HI, i] = FL[s, ICMP_SRC_HI]
        S[S_ICMP_LO, i] = FL[s, ICMP_SRC_LO]
        n = FL[s, HLEN]
        for k in range(HIST.shape[1]):
            H[i, k] = HIST[s, k] if k < n else 0


SWEEP_PACKETS = 65536    # how often the table is swept for flows that are over


class FlowTable:
    """Holds the live flows; feed it packet batches, then call finish().

    Finished flows are summarised into compact columns as they leave (`drain()`), so
    memory holds only live flows plus what the caller keeps."""

    def __init__(self, capacity: int = 4096, event_capacity: int = 65536,
                 close_linger: float = 120.0, attempt_timeout: float = 300.0,
                 udp_timeout: float = 60.0, tcp_idle_timeout: float = 0.0, spill=None):
        from analyzer.spill import HEAP
        # where finished flows and events go: files (the pipeline's), or lists on the heap
        self.spill = spill if spill is not None else HEAP
        self.capacity = 0
        self.KEY = np.zeros((0, 4), np.uint64)
        self.FL = np.zeros((0, N_FL), np.int64)
        self.EP = np.zeros((0, 2, N_EP), np.int64)
        self.HIST = np.zeros((0, HMAX), np.uint8)
        self.C = np.zeros(N_C, np.int64)
        self.C[C_NEXT_ID] = 1
        self.free = np.zeros(0, np.int64)
        self.EV = np.zeros((event_capacity, 8), np.int64)
        self.likely = port_table()
        self.limits = np.zeros(N_LIMITS, np.int64)
        self.limits[[L_CLOSE_LINGER, L_ATTEMPT, L_UDP, L_TCP_IDLE]] = [
            int(close_linger * 1e9), int(attempt_timeout * 1e9), int(udp_timeout * 1e9),
            int(tcp_idle_timeout * 1e9)]
        # the TCP idle limit counts only when set; the others always apply
        active = [L_CLOSE_LINGER, L_ATTEMPT, L_UDP] + ([L_TCP_IDLE] if self.limits[L_TCP_IDLE] > 0 else [])
        self.limits[L_SHORTEST] = self.limits[active].min()
        self._now = np.iinfo(np.int64).min      # latest packet time seen
        self._unswept = 0                       # packets fed since the last sweep
        self._grow(capacity)
        from analyzer.dissect.labels import Interner   # labels builds on this module
        self.names = Interner()
        self.finished = self.spill.blocks()   # compact summaries of flows that left the table
        self.events = self.spill.blocks()
        self.tcp_flag_counts = np.zeros(4, np.int64)   # syn, synack, fin, rst packets
        self.peak_live = 0

    def _grow(self, new_capacity: int) -> None:
        old = self.capacity
        n = new_capacity
        # each array copied into a zeroed one twice its size, one after another: the new
        # half's pages are not touched until flows move in (concatenate held the old
        # array, a zeroed half and the new one at once)
        def grown(array):
            bigger = np.zeros((n,) + array.shape[1:], array.dtype)
            bigger[:old] = array
            return bigger
        self.KEY = grown(self.KEY)
        self.FL = grown(self.FL)
        self.EP = grown(self.EP)
        self.HIST = grown(self.HIST)
        nfree = int(self.C[C_NFREE])
        free = np.empty(n, np.int64)      # room for every slot: all may be free at once
        free[:nfree] = self.free[:nfree]
        free[nfree:nfree + n - old] = np.arange(n - 1, old - 1, -1)
        self.free = free
        self.C[C_NFREE] = nfree + n - old
        self.capacity = n
        size = 1
        while size < 2 * n:
            size <<= 1
        self.index = np.full(size, -1, np.int64)
        kernels.rebuild_index(self.index, self.KEY, self.FL)

    def feed(self, b: dict[str, np.ndarray]) -> None:
        n = len(b["frame"])
        if n == 0:
            return
        flags = b["tcp_flags"]
        tcp = (b["proto"] == 6) & (b["status"] == 0)
        syn = tcp & ((flags & 0x02) != 0)
        ackf = (flags & 0x10) != 0
        self.tcp_flag_counts += [np.count_nonzero(syn & ~ackf), np.count_nonzero(syn & ackf),
                                 np.count_nonzero(tcp & ((flags & 0x01) != 0)),
                                 np.count_nonzero(tcp & ((flags & 0x04) != 0))]
        columns = [b[name] for name in FLOW_INPUT_COLUMNS]
        i = 0
        while i < n:
            i, code = kernels.process_batch(
                i, n, *columns, self.KEY, self.FL, self.EP, self.HIST, self.index, self.free,
                self.C, self.EV, self.likely, self.limits)
            if code == NEED_SLOTS:
                self._collect()
                if self.C[C_NFREE] == 0:
                    self._grow(self.capacity * 2)
            elif code == NEED_EVENT_ROOM:
                self._take_events()
        self.peak_live = max(self.peak_live, self.capacity - int(self.C[C_NFREE]))
        self._unswept += n
        if self._unswept >= SWEEP_PACKETS:
            self._sweep(int(b["ts_ns"].max()))
        # summarising retired flows in big blocks is cheaper than in many small ones
        if self.C[C_DETACHED] >= max(8192, self.capacity // 4):
            self._collect()
        self._take_events()

    def _sweep(self, now: int) -> None:
        """Detach every flow that is over by `now` (every SWEEP_PACKETS). Only memory depends
        on when this runs: a packet on a flow that is over starts a new one whenever it
        comes."""
        self._now = max(self._now, now)
        self.C[C_DETACHED] += kernels.mark_idle(self.FL, self.EP, self._now, self.limits)
        self._unswept = 0

    def _collect(self) -> None:
        """Move detached flows out of the table."""
        slots = np.flatnonzero(self.FL[:, USED] == 2)
        if len(slots) == 0:
            return
        self.finished.append(self.names.summarise(*self._summaries(slots)))
        self.FL[slots, USED] = 0
        nfree = int(self.C[C_NFREE])
        self.free[nfree:nfree + len(slots)] = slots
        self.C[C_NFREE] = nfree + len(slots)
        self.C[C_DETACHED] = 0
        kernels.rebuild_index(self.index, self.KEY, self.FL)

    def _summaries(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(S, H) of the flows in `slots`: only the fields a summary needs leave the table."""
        S = np.empty((N_S, len(slots)), np.int64)
        H = np.empty((len(slots), HMAX), np.uint8)
        kernels.summarise_slots(slots.astype(np.int64, copy=False), self.KEY, self.FL,
                                self.EP, self.HIST, S, H)
        return S, H

    def _take_events(self) -> None:
        k = int(self.C[C_EV_N])
        if k:
            self.events.append(self.names.compact_events(self.EV[:k]))
            self.C[C_EV_N] = 0

    def finish(self) -> None:
        """End of capture: every live flow leaves the table, and the table's memory goes
        (~700 B per slot: tens of MB, before the finished flows are sorted)."""
        self.FL[self.FL[:, USED] == 1, USED] = 2
        self._collect()
        self._take_events()
        self.KEY, self.FL, self.EP, self.HIST = (a[:0].copy() for a in (self.KEY, self.FL, self.EP, self.HIST))
        self.index, self.free, self.EV = self.index[:0].copy(), self.free[:0].copy(), self.EV[:0].copy()
        self.capacity = 0

    def drain(self) -> dict[str, np.ndarray]:
        """All finished flows so far as compact columns, sorted by flow id."""
        empty = self.names.summarise(*self._summaries(np.zeros(0, np.int64)))
        from analyzer.dissect.labels import concat
        return concat(self.finished, empty, ("flow_id",), self.spill)

    def drain_events(self) -> dict[str, np.ndarray]:
        empty = self.names.compact_events(np.zeros((0, 8), np.int64))
        from analyzer.dissect.labels import concat
        return concat(self.events, empty, (), self.spill)   # emitted in frame order already
