"""Packet decoding: link layer -> IPv4/IPv6 -> TCP/UDP/ICMP, into packet-table columns.

Compiled with numba: one pass over the records of a batch, writing one row each. Every
bound is checked against the captured length; a frame that ends early is marked
DECODE_TRUNCATED with whatever was decoded before the cut kept.
"""

from __future__ import annotations

import numpy as np

from analyzer.dissect.kernels import njit
from analyzer.dissect.packets import (
    DECODE_MALFORMED, DECODE_NOT_IP, DECODE_OK, DECODE_TRUNCATED, DECODE_UNKNOWN_LINK,
    FRAG_FIRST, FRAG_LATER, FRAG_NONE,
)

DECODE_NON_PACKET = 5   # a pcapng custom block: a frame without packet data

# Link types we decode (values from the tcpdump.org LINKTYPE list)
LT_NULL = 0
LT_ETHERNET = 1
LT_PPP = 9
LT_RAW_12 = 12
LT_RAW_14 = 14
LT_PPP_HDLC = 50
LT_RAW = 101
LT_LOOP = 108
LT_LINUX_SLL = 113
LT_USER2_APPLE_PKTAP = 149
LT_IPV4 = 228
LT_IPV6 = 229
LT_NFLOG = 239
LT_PKTAP = 258
LT_LINUX_SLL2 = 276

KNOWN_LINKTYPES = {
    LT_NULL: "NULL", LT_ETHERNET: "ETHERNET", LT_PPP: "PPP", LT_RAW_12: "RAW (12)",
    LT_RAW_14: "RAW (14)", LT_PPP_HDLC: "PPP_HDLC", LT_RAW: "RAW", LT_LOOP: "LOOP",
    LT_LINUX_SLL: "LINUX_SLL", LT_USER2_APPLE_PKTAP: "PKTAP (149)", LT_IPV4: "IPV4",
    LT_IPV6: "IPV6", LT_NFLOG: "NFLOG", LT_PKTAP: "PKTAP", LT_LINUX_SLL2: "LINUX_SLL2",
}

# Some well-known names for link types we do not decode, for warnings.
OTHER_LINKTYPE_NAMES = {
    105: "IEEE802_11", 107: "FRELAY", 127: "IEEE802_11_RADIOTAP", 147: "USER0",
    148: "USER1", 150: "USER3", 187: "BLUETOOTH_HCI_H4", 195: "IEEE802_15_4",
    220: "USB_LINUX_MMAPPED", 249: "USBPCAP", 253: "NETLINK", 281: "DSA_TAG_BRCM",
}

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
V4_PREFIX = np.uint64(0xFFFF00000000)

# IPv6 extension headers we walk over
IP6_HOPOPTS, IP6_ROUTING, IP6_FRAGMENT, IP6_AH, IP6_DSTOPTS, IP6_MOBILITY = 0, 43, 44, 51, 60, 135


@njit(cache=True, nogil=True)
def _u16(buf, p):
    return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])


@njit(cache=True, nogil=True)
def _u32(buf, p):
    return ((np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16)
            | (np.int64(buf[p + 2]) << 8) | np.int64(buf[p + 3]))


@njit(cache=True, nogil=True)
def _u64(buf, p):
    v = np.uint64(0)
    for k in range(8):
        v = (v << np.uint64(8)) | np.uint64(buf[p + k])
    return v


@njit(cache=True, nogil=True)
def _le32(buf, p):
    return (np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)
            | (np.int64(buf[p + 2]) << 16) | (np.int64(buf[p + 3]) << 24))


@njit(cache=True, nogil=True)
def _skip_mpls(buf, q, end):
    """Skip an MPLS label stack; what follows is IP, told by its version nibble."""
    while True:
        if q + 4 > end:
            return q, 0, DECODE_TRUNCATED
        bottom = buf[q + 2] & 1
        q += 4
        if bottom:
            return q, -1, DECODE_OK


@njit(cache=True, nogil=True)
def _link_to_l3(buf, p, end, lt):
    """Skip the link layer. Returns (l3_start, ethertype-like code, status).
    Code: 4 / 6 = IP version known, 0 = not IP, -1 = look at the version nibble."""
    if lt == LT_PKTAP or lt == LT_USER2_APPLE_PKTAP:
        # Apple PKTAP: little-endian header whose first field is its own length and
        # whose third is the link type of the frame that follows.
        if p + 12 > end:
            return p, 0, DECODE_TRUNCATED
        hlen = _le32(buf, p)
        inner = _le32(buf, p + 8)
        if hlen < 12 or p + hlen > end:
            return p, 0, DECODE_MALFORMED
        if inner == LT_PKTAP or inner == LT_USER2_APPLE_PKTAP:
            return p, 0, DECODE_MALFORMED
        return _plain_link_to_l3(buf, p + hlen, end, inner)
    return _plain_link_to_l3(buf, p, end, lt)


@njit(cache=True, nogil=True)
def _plain_link_to_l3(buf, p, end, lt):
    """_link_to_l3 for every link type but PKTAP (kept separate: no recursion, which
    numba's on-disk cache does not support)."""
    if lt == LT_ETHERNET:
        if p + 14 > end:
            return p, 0, DECODE_TRUNCATED
        etype = _u16(buf, p + 12)
        q = p + 14
        # 802.1Q / 802.1ad / QinQ / VN-Tag stacks, then PPPoE session and MPLS
        while True:
            if etype == 0x8100 or etype == 0x88A8 or etype == 0x9100 or etype == 0x9200:
                if q + 4 > end:
                    return q, 0, DECODE_TRUNCATED
                etype = _u16(buf, q + 2)
                q += 4
            elif etype == 0x8926:
                if q + 6 > end:
                    return q, 0, DECODE_TRUNCATED
                etype = _u16(buf, q + 4)
                q += 6
            else:
                break
        if etype == 0x8864:
            if q + 8 > end:
                return q, 0, DECODE_TRUNCATED
            proto = _u16(buf, q + 6)
            q += 8
            if proto == 0x0021:
                return q, 4, DECODE_OK
            if proto == 0x0057:
                return q, 6, DECODE_OK
            return q, 0, DECODE_NOT_IP
        if etype == 0x8847 or etype == 0x8848:
            return _skip_mpls(buf, q, end)
        if etype == ETH_IPV4:
            return q, 4, DECODE_OK
        if etype == ETH_IPV6:
            return q, 6, DECODE_OK
        return q, 0, DECODE_NOT_IP
    if lt == LT_RAW or lt == LT_RAW_12 or lt == LT_RAW_14:
        return p, -1, DECODE_OK
    if lt == LT_IPV4:
        return p, 4, DECODE_OK
    if lt == LT_IPV6:
        return p, 6, DECODE_OK
    if lt == LT_NULL or lt == LT_LOOP:
        if p + 4 > end:
            return p, 0, DECODE_TRUNCATED
        if lt == LT_LOOP:
            af = _u32(buf, p)
        else:
            # host byte order of the writer: whichever reading is small is the right one
            af = _le32(buf, p)
            if af > 0xFFFF:
                af = _u32(buf, p)
        if af == 2:
            return p + 4, 4, DECODE_OK
        if af == 10 or af == 24 or af == 28 or af == 30:
            return p + 4, 6, DECODE_OK
        return p + 4, 0, DECODE_NOT_IP
    if lt == LT_LINUX_SLL:
        if p + 16 > end:
            return p, 0, DECODE_TRUNCATED
        proto = _u16(buf, p + 14)
        if proto == ETH_IPV4:
            return p + 16, 4, DECODE_OK
        if proto == ETH_IPV6:
            return p + 16, 6, DECODE_OK
        return p + 16, 0, DECODE_NOT_IP
    if lt == LT_LINUX_SLL2:
        if p + 20 > end:
            return p, 0, DECODE_TRUNCATED
        proto = _u16(buf, p)
        if proto == ETH_IPV4:
            return p + 20, 4, DECODE_OK
        if proto == ETH_IPV6:
            return p + 20, 6, DECODE_OK
        return p + 20, 0, DECODE_NOT_IP
    if lt == LT_PPP or lt == LT_PPP_HDLC:
        q = p
        if q + 2 <= end and buf[q] == 0xFF and buf[q + 1] == 0x03:
            q += 2
        if q + 1 > end:
            return q, 0, DECODE_TRUNCATED
        if buf[q] & 1:
            proto = np.int64(buf[q])       # compressed protocol field
            q += 1
        else:
            if q + 2 > end:
                return q, 0, DECODE_TRUNCATED
            proto = _u16(buf, q)
            q += 2
        if proto == 0x21:
            return q, 4, DECODE_OK
        if proto == 0x57:
            return q, 6, DECODE_OK
        if proto == 0x281 or proto == 0x283:
            return _skip_mpls(buf, q, end)
        return q, 0, DECODE_NOT_IP
    if lt == LT_NFLOG:
        # 4-byte header, then TLVs (host byte order, 4-byte aligned); type 9 is the payload
        if p + 4 > end:
            return p, 0, DECODE_TRUNCATED
        family = buf[p]
        q = p + 4
        while q + 4 <= end:
            tlen = np.int64(buf[q]) | (np.int64(buf[q + 1]) << 8)
            ttype = np.int64(buf[q + 2]) | (np.int64(buf[q + 3]) << 8)
            if tlen < 4:
                return q, 0, DECODE_MALFORMED
            if ttype == 9:
                if family == 2:
                    return q + 4, 4, DECODE_OK
                if family == 10:
                    return q + 4, 6, DECODE_OK
                return q + 4, -1, DECODE_OK
            q += (tlen + 3) & ~3
        return q, 0, DECODE_NOT_IP
    return p, 0, DECODE_UNKNOWN_LINK


@njit(cache=True, nogil=True)
def _ip_header(buf, p, end, ver):
    """Parse an IPv4/IPv6 header at p. Returns
    (status, src_hi, src_lo, dst_hi, dst_lo, proto, l4_start, l4_len, frag)."""
    z = np.uint64(0)
    if p + 1 > end:
        return DECODE_TRUNCATED, z, z, z, z, 0, p, 0, FRAG_NONE
    nib = buf[p] >> 4
    if ver == -1:
        ver = nib
    if ver == 4:
        if nib != 4:
            return DECODE_MALFORMED, z, z, z, z, 0, p, 0, FRAG_NONE
        if p + 20 > end:
            return DECODE_TRUNCATED, z, z, z, z, 0, p, 0, FRAG_NONE
        ihl = (buf[p] & 0x0F) * 4
        if ihl < 20:
            return DECODE_MALFORMED, z, z, z, z, 0, p, 0, FRAG_NONE
        total = _u16(buf, p + 2)
        fl = _u16(buf, p + 6)
        proto = buf[p + 9]
        src = V4_PREFIX | np.uint64(_u32(buf, p + 12))
        dst = V4_PREFIX | np.uint64(_u32(buf, p + 16))
        if total == 0:
            total = end - p          # TSO captures leave the length 0
        if total < ihl:
            return DECODE_MALFORMED, z, src, z, dst, proto, p, 0, FRAG_NONE
        frag = FRAG_NONE
        if (fl & 0x1FFF) != 0:
            frag = FRAG_LATER
        elif fl & 0x2000:
            frag = FRAG_FIRST
        if p + ihl > end:
            return DECODE_TRUNCATED, z, src, z, dst, proto, p, 0, frag
        return DECODE_OK, z, src, z, dst, proto, p + ihl, total - ihl, frag
    if ver == 6:
        if nib != 6:
            return DECODE_MALFORMED, z, z, z, z, 0, p, 0, FRAG_NONE
        if p + 40 > end:
            return DECODE_TRUNCATED, z, z, z, z, 0, p, 0, FRAG_NONE
        plen = _u16(buf, p + 4)
        nh = buf[p + 6]
        s_hi = _u64(buf, p + 8)
        s_lo = _u64(buf, p + 16)
        d_hi = _u64(buf, p + 24)
        d_lo = _u64(buf, p + 32)
        q = p + 40
        if plen == 0:
            plen = end - q           # jumbogram or TSO
        remaining = plen
        frag = FRAG_NONE
        for _ in range(16):
            if (nh == IP6_HOPOPTS or nh == IP6_ROUTING or nh == IP6_DSTOPTS
                    or nh == IP6_MOBILITY or nh == IP6_AH):
                if q + 2 > end:
                    return DECODE_TRUNCATED, s_hi, s_lo, d_hi, d_lo, nh, q, 0, frag
                # AH counts its length in 4-byte units less 2; the others in 8-byte units less 1
                if nh == IP6_AH:
                    hl = (np.int64(buf[q + 1]) + 2) * 4
                else:
                    hl = (np.int64(buf[q + 1]) + 1) * 8
                nh = buf[q]
                q += hl
                remaining -= hl
            elif nh == IP6_FRAGMENT:
                if q + 8 > end:
                    return DECODE_TRUNCATED, s_hi, s_lo, d_hi, d_lo, nh, q, 0, frag
                fo = _u16(buf, q + 2)
                nh = buf[q]
                if (fo & 0xFFF8) != 0:
                    frag = FRAG_LATER
                elif fo & 1:
                    frag = FRAG_FIRST
                q += 8
                remaining -= 8
                if frag == FRAG_LATER:
                    break
            else:
                break
        if remaining < 0:
            return DECODE_MALFORMED, s_hi, s_lo, d_hi, d_lo, nh, q, 0, frag
        return DECODE_OK, s_hi, s_lo, d_hi, d_lo, nh, q, remaining, frag
    return DECODE_MALFORMED, z, z, z, z, 0, p, 0, FRAG_NONE


@njit(cache=True, nogil=True)
def decode_batch(buf, off, caplen, linktype, n, out_status, out_ipver, src_hi, src_lo,
                 dst_hi, dst_lo, proto, fragment, sport, dport, tcp_flags, seq, ack, window,
                 payload, icmp_type, icmp_code, q_proto, q_src_hi, q_src_lo, q_dst_hi,
                 q_dst_lo, q_sport, q_dport):
    """Decode n records; every output array must hold at least n rows (pre-zeroed,
    icmp_type/icmp_code pre-filled with -1)."""
    for i in range(n):
        lt = linktype[i]
        if lt < 0:
            out_status[i] = DECODE_NON_PACKET
            continue
        p = off[i]
        end = p + caplen[i]
        l3, ver, st = _link_to_l3(buf, p, end, lt)
        if st != DECODE_OK:
            out_status[i] = st
            continue
        if ver == 0:
            out_status[i] = DECODE_NOT_IP
            continue
        st, shi, slo, dhi, dlo, pr, l4, l4len, frag = _ip_header(buf, l3, end, ver)
        if shi == 0 and slo == 0 and dhi == 0 and dlo == 0 and st != DECODE_OK:
            out_status[i] = st
            continue
        v = buf[l3] >> 4
        out_ipver[i] = v
        src_hi[i] = shi
        src_lo[i] = slo
        dst_hi[i] = dhi
        dst_lo[i] = dlo
        proto[i] = pr
        fragment[i] = frag
        if st != DECODE_OK:
            out_status[i] = st
            continue
        if frag == FRAG_LATER:
            continue
        if pr == 6:
            if l4 + 14 > end:
                if l4 + 4 <= end:
                    sport[i] = _u16(buf, l4)
                    dport[i] = _u16(buf, l4 + 2)
                out_status[i] = DECODE_TRUNCATED
                continue
            sport[i] = _u16(buf, l4)
            dport[i] = _u16(buf, l4 + 2)
            seq[i] = _u32(buf, l4 + 4)
            ack[i] = _u32(buf, l4 + 8)
            doff = (buf[l4 + 12] >> 4) * 4
            tcp_flags[i] = ((np.int64(buf[l4 + 12]) & 1) << 8) | np.int64(buf[l4 + 13])
            if l4 + 16 <= end:
                window[i] = _u16(buf, l4 + 14)
            if doff < 20:
                out_status[i] = DECODE_MALFORMED
                continue
            pl = l4len - doff
            payload[i] = pl if pl > 0 else 0
        elif pr == 17:
            if l4 + 8 > end:
                if l4 + 4 <= end:
                    sport[i] = _u16(buf, l4)
                    dport[i] = _u16(buf, l4 + 2)
                out_status[i] = DECODE_TRUNCATED
                continue
            sport[i] = _u16(buf, l4)
            dport[i] = _u16(buf, l4 + 2)
            ulen = _u16(buf, l4 + 4)
            pl = l4len - 8
            if ulen >= 8 and (ulen - 8 < pl or frag == FRAG_FIRST):
                pl = ulen - 8      # a first fragment carries the whole datagram's length
            payload[i] = pl if pl > 0 else 0
        elif pr == 1 or pr == 58:
            if l4 + 2 > end:
                out_status[i] = DECODE_TRUNCATED
                continue
            t = buf[l4]
            icmp_type[i] = t
            icmp_code[i] = buf[l4 + 1]
            is_err = False
            if pr == 1:
                is_err = t == 3 or t == 4 or t == 5 or t == 11 or t == 12
            else:
                is_err = t >= 1 and t <= 4
            if is_err and l4 + 8 < end:
                qv = 4 if pr == 1 else 6
                qst, qshi, qslo, qdhi, qdlo, qpr, ql4, ql4len, qfrag = _ip_header(
                    buf, l4 + 8, end, qv)
                if qshi != 0 or qslo != 0:
                    q_proto[i] = qpr
                    q_src_hi[i] = qshi
                    q_src_lo[i] = qslo
                    q_dst_hi[i] = qdhi
                    q_dst_lo[i] = qdlo
                    if qst == DECODE_OK and qfrag != FRAG_LATER and (qpr == 6 or qpr == 17) \
                            and ql4 + 4 <= end:
                        q_sport[i] = _u16(buf, ql4)
                        q_dport[i] = _u16(buf, ql4 + 2)
