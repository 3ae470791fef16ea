"""One pass over a buffer: find records and decode them while their bytes are in cache.

Walking a large batch and then decoding it reads every packet from memory twice; doing
both in steps of a few thousand records (a few hundred KB, well inside the CPU caches)
reads it once. Captures of millions of packets are memory-bound, so this halves the time.
"""

from __future__ import annotations

from analyzer.dissect.kernels import njit
from analyzer.dissect.decode import decode_batch
from analyzer.dissect.records import NEED_MORE, walk_pcap, walk_pcapng

STEP = 2048


@njit(cache=True, nogil=True)
def scan_pcap(buf, pos, end, big, nanos, hdr_len, max_caplen, max_n, off, caplen, wirelen,
              ts_ns, flags, linktype, status, ipver, src_hi, src_lo, dst_hi, dst_lo, proto,
              fragment, sport, dport, tcp_flags, seq, ack, window, payload, icmp_type,
              icmp_code, q_proto, q_src_hi, q_src_lo, q_dst_hi, q_dst_lo, q_sport, q_dport):
    """walk_pcap + decode_batch in cache-sized steps. Returns (n, pos, code, reason)."""
    n = 0
    code = NEED_MORE
    reason = 0
    while n < max_n:
        want = min(STEP, max_n - n)
        k, pos, code, reason = walk_pcap(buf, pos, end, big, nanos, hdr_len, max_caplen, want,
                                         off[n:], caplen[n:], wirelen[n:], ts_ns[n:], flags[n:])
        decode_batch(buf, off[n:], caplen[n:], linktype[n:], k, status[n:], ipver[n:],
                     src_hi[n:], src_lo[n:], dst_hi[n:], dst_lo[n:], proto[n:], fragment[n:],
                     sport[n:], dport[n:], tcp_flags[n:], seq[n:], ack[n:], window[n:],
                     payload[n:], icmp_type[n:], icmp_code[n:], q_proto[n:], q_src_hi[n:],
                     q_src_lo[n:], q_dst_hi[n:], q_dst_lo[n:], q_sport[n:], q_dport[n:])
        n += k
        if k < want or code != NEED_MORE:
            break
    return n, pos, code, reason


@njit(cache=True, nogil=True)
def scan_pcapng(buf, pos, end, big, if_count, if_snaplen, if_tsmode, if_tsfactor, if_tsoff,
                if_lt, last_ts, max_n, off, caplen, wirelen, ts_ns, iface, flags, skipped,
                linktype, status, ipver, src_hi, src_lo, dst_hi, dst_lo, proto, fragment, sport,
                dport, tcp_flags, seq, ack, window, payload, icmp_type, icmp_code, q_proto,
                q_src_hi, q_src_lo, q_dst_hi, q_dst_lo, q_sport, q_dport):
    """walk_pcapng + decode_batch in cache-sized steps.
    Returns (n, pos, code, reason, last_ts)."""
    n = 0
    code = NEED_MORE
    reason = 0
    while n < max_n:
        want = min(STEP, max_n - n)
        k, pos, code, reason, last_ts = walk_pcapng(
            buf, pos, end, big, if_count, if_snaplen, if_tsmode, if_tsfactor, if_tsoff, last_ts,
            want, off[n:], caplen[n:], wirelen[n:], ts_ns[n:], iface[n:], flags[n:], skipped)
        for j in range(n, n + k):
            linktype[j] = if_lt[iface[j]] if iface[j] >= 0 else -1
        decode_batch(buf, off[n:], caplen[n:], linktype[n:], k, status[n:], ipver[n:],
                     src_hi[n:], src_lo[n:], dst_hi[n:], dst_lo[n:], proto[n:], fragment[n:],
                     sport[n:], dport[n:], tcp_flags[n:], seq[n:], ack[n:], window[n:],
                     payload[n:], icmp_type[n:], icmp_code[n:], q_proto[n:], q_src_hi[n:],
                     q_src_lo[n:], q_dst_hi[n:], q_dst_lo[n:], q_sport[n:], q_dport[n:])
        n += k
        if k < want or code != NEED_MORE:
            break
    return n, pos, code, reason, last_ts
