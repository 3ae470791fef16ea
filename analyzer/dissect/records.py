"""Record walkers: find the packet records in a buffer of pcap or pcapng bytes.

These loops run once per record over millions of records, so they are compiled with
numba. They only locate records (offset, lengths, timestamp, interface); decoding the
packet bytes is decode.py's job. Structural pcapng blocks (SHB, IDB, unknown types) are
rare and are left to Python: the walker stops in front of them and says so.
"""

from __future__ import annotations

import numpy as np

from analyzer.dissect.kernels import njit

# Walker return codes
NEED_MORE = 0     # stopped at an incomplete record (or the output arrays are full)
CORRUPT = 1       # a record header that cannot be right (see the reason code)
STRUCTURAL = 2    # pcapng: a block Python must handle (SHB, IDB, unknown type)

# Reason codes that go with CORRUPT
R_NONE = 0
R_CAPLEN_TOO_BIG = 1
R_BLOCK_LEN = 2         # pcapng block length < 12 or not a multiple of 4
R_TRAILER = 3           # pcapng trailing block length differs from the leading one
R_BAD_INTERFACE = 4     # pcapng packet for an interface no IDB described
R_PACKET_BEYOND_BLOCK = 5

REASONS = {
    R_CAPLEN_TOO_BIG: "record length is larger than any capture allows",
    R_BLOCK_LEN: "block length is not a multiple of 4 or is smaller than a block header",
    R_TRAILER: "block's trailing length does not match its leading length",
    R_BAD_INTERFACE: "packet refers to an interface that no Interface Description Block describes",
    R_PACKET_BEYOND_BLOCK: "packet data runs past the end of its block",
}

# Per-record flags
F_TS_FRACTION_RANGE = 1   # pcap: microsecond/nanosecond field out of range
F_CAPLEN_GT_WIRELEN = 2
F_NON_PACKET = 4          # pcapng custom block kept as a frame (Wireshark numbers it)
F_NO_TIMESTAMP = 8        # pcapng simple packet block: no timestamp of its own

MAX_RECORD = 256 * 1024 * 1024

# pcapng timestamp modes per interface
TS_MUL = 0      # ns = units * mul
TS_DIV = 1      # ns = units // div
TS_BIN = 2      # units are 2**-shift seconds


@njit(cache=True, nogil=True)
def rd16(buf, pos, big):
    if big:
        return (np.int64(buf[pos]) << 8) | np.int64(buf[pos + 1])
    return np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8)


@njit(cache=True, nogil=True)
def rd32(buf, pos, big):
    if big:
        return ((np.int64(buf[pos]) << 24) | (np.int64(buf[pos + 1]) << 16)
                | (np.int64(buf[pos + 2]) << 8) | np.int64(buf[pos + 3]))
    return (np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8)
            | (np.int64(buf[pos + 2]) << 16) | (np.int64(buf[pos + 3]) << 24))


@njit(cache=True, nogil=True)
def walk_pcap(buf, pos, end, big, nanos, hdr_len, max_caplen, max_n,
              off, caplen, wirelen, ts_ns, flags):
    """Walk classic pcap records from pos. Returns (n_records, new_pos, code, reason)."""
    n = 0
    frac_limit = 1000000000 if nanos else 1000000
    frac_mul = 1 if nanos else 1000
    while n < max_n:
        if pos + hdr_len > end:
            return n, pos, NEED_MORE, R_NONE
        sec = rd32(buf, pos, big)
        frac = rd32(buf, pos + 4, big)
        cl = rd32(buf, pos + 8, big)
        wl = rd32(buf, pos + 12, big)
        if cl > max_caplen:
            return n, pos, CORRUPT, R_CAPLEN_TOO_BIG
        if pos + hdr_len + cl > end:
            return n, pos, NEED_MORE, R_NONE
        f = 0
        if frac >= frac_limit:
            f |= F_TS_FRACTION_RANGE
        if cl > wl:
            f |= F_CAPLEN_GT_WIRELEN
        ts_ns[n] = sec * 1000000000 + frac * frac_mul
        off[n] = pos + hdr_len
        caplen[n] = cl
        wirelen[n] = wl
        flags[n] = f
        pos += hdr_len + cl
        n += 1
    return n, pos, NEED_MORE, R_NONE


@njit(cache=True, nogil=True)
def _units_to_ns(units, mode, factor, tsoff_ns):
    if mode == TS_MUL:
        return np.int64(units) * factor + tsoff_ns
    if mode == TS_DIV:
        return np.int64(units // np.uint64(factor)) + tsoff_ns
    shift = np.uint64(factor)
    sec = units >> shift
    frac = units & ((np.uint64(1) << shift) - np.uint64(1))
    if factor > 34:
        # keep 34 bits of fraction so frac * 1e9 stays inside 64 bits
        frac = frac >> np.uint64(factor - 34)
        shift = np.uint64(34)
    return (np.int64(sec) * 1000000000
            + np.int64((frac * np.uint64(1000000000)) >> shift) + tsoff_ns)


@njit(cache=True, nogil=True)
def walk_pcapng(buf, pos, end, big, if_count, if_snaplen, if_tsmode, if_tsfactor, if_tsoff,
                last_ts, max_n, off, caplen, wirelen, ts_ns, iface, flags, skipped):
    """Walk pcapng blocks from pos. Packet blocks become records; ISB/NRB/DSB are skipped
    (counted in skipped[0..2]); custom blocks become non-packet records, as Wireshark
    numbers them. Returns (n_records, new_pos, code, reason, last_ts)."""
    n = 0
    while n < max_n:
        if pos + 12 > end:
            return n, pos, NEED_MORE, R_NONE, last_ts
        btype = rd32(buf, pos, big)
        blen = rd32(buf, pos + 4, big)
        if btype == 0x0A0D0D0A:
            return n, pos, STRUCTURAL, R_NONE, last_ts
        if blen < 12 or (blen & 3) != 0:
            return n, pos, CORRUPT, R_BLOCK_LEN, last_ts
        if blen > MAX_RECORD:
            return n, pos, CORRUPT, R_CAPLEN_TOO_BIG, last_ts
        if pos + blen > end:
            return n, pos, NEED_MORE, R_NONE, last_ts
        if rd32(buf, pos + blen - 4, big) != blen:
            return n, pos, CORRUPT, R_TRAILER, last_ts
        if btype == 6 or btype == 2:
            # Enhanced Packet Block (6) / obsolete Packet Block (2)
            if blen < 32:
                return n, pos, CORRUPT, R_BLOCK_LEN, last_ts
            if btype == 6:
                ifc = rd32(buf, pos + 8, big)
            else:
                ifc = rd16(buf, pos + 8, big)
            if ifc >= if_count:
                return n, pos, CORRUPT, R_BAD_INTERFACE, last_ts
            hi = np.uint64(rd32(buf, pos + 12, big))
            lo = np.uint64(rd32(buf, pos + 16, big))
            cl = rd32(buf, pos + 20, big)
            wl = rd32(buf, pos + 24, big)
            if 28 + cl > blen - 4:
                return n, pos, CORRUPT, R_PACKET_BEYOND_BLOCK, last_ts
            units = (hi << np.uint64(32)) | lo
            t = _units_to_ns(units, if_tsmode[ifc], if_tsfactor[ifc], if_tsoff[ifc])
            f = 0
            if cl > wl:
                f |= F_CAPLEN_GT_WIRELEN
            off[n] = pos + 28
            caplen[n] = cl
            wirelen[n] = wl
            ts_ns[n] = t
            iface[n] = ifc
            flags[n] = f
            last_ts = t
            n += 1
        elif btype == 3:
            # Simple Packet Block: interface 0, no timestamp; captured length is
            # what the block holds, bounded by the original length and snaplen.
            if if_count == 0:
                return n, pos, CORRUPT, R_BAD_INTERFACE, last_ts
            if blen < 16:
                return n, pos, CORRUPT, R_BLOCK_LEN, last_ts
            wl = rd32(buf, pos + 8, big)
            cl = blen - 16
            if wl < cl:
                cl = wl
            if if_snaplen[0] > 0 and if_snaplen[0] < cl:
                cl = if_snaplen[0]
            off[n] = pos + 12
            caplen[n] = cl
            wirelen[n] = wl
            ts_ns[n] = last_ts
            iface[n] = 0
            flags[n] = F_NO_TIMESTAMP
            n += 1
        elif btype == 0xBAD or btype == 0x40000BAD:
            off[n] = pos
            caplen[n] = 0
            wirelen[n] = 0
            ts_ns[n] = last_ts
            iface[n] = -1
            flags[n] = F_NON_PACKET | F_NO_TIMESTAMP
            n += 1
        elif btype == 5:
            skipped[0] += 1
        elif btype == 4:
            skipped[1] += 1
        elif btype == 0xA:
            skipped[2] += 1
        else:
            return n, pos, STRUCTURAL, R_NONE, last_ts
        pos += blen
    return n, pos, NEED_MORE, R_NONE, last_ts
