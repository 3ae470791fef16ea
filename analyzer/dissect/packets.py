"""The packet table: the columnar form every capture engine produces.

Both engines (our own reader and `--engine tshark`) hand the flow table batches of
these columns, one numpy array per column, all of the same length, in frame order.
Addresses are stored as two uint64 halves of the 16-byte IPv6 form; IPv4 addresses are
IPv4-mapped (::ffff:a.b.c.d), so one key layout serves both families.
"""

from __future__ import annotations

import ipaddress
import socket

import numpy as np

# Column name -> dtype. Order matters only for readability.
PACKET_COLUMNS: dict[str, np.dtype] = {
    "frame": np.dtype(np.int64),      # 1-based, as Wireshark numbers frames
    "ts_ns": np.dtype(np.int64),      # POSIX time in nanoseconds (capture resolution kept)
    "linktype": np.dtype(np.int32),   # link type of the interface the frame came on
    "caplen": np.dtype(np.int32),
    "wirelen": np.dtype(np.int32),
    "status": np.dtype(np.uint8),     # DECODE_* below
    "ip_version": np.dtype(np.uint8), # 0 (not IP), 4 or 6
    "src_hi": np.dtype(np.uint64), "src_lo": np.dtype(np.uint64),
    "dst_hi": np.dtype(np.uint64), "dst_lo": np.dtype(np.uint64),
    "proto": np.dtype(np.uint8),      # IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6)
    "fragment": np.dtype(np.uint8),   # FRAG_* below
    "sport": np.dtype(np.uint16), "dport": np.dtype(np.uint16),
    "tcp_flags": np.dtype(np.uint16), # FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 URG 0x20 ECE 0x40 CWR 0x80 NS 0x100
    "seq": np.dtype(np.uint32), "ack": np.dtype(np.uint32),
    "window": np.dtype(np.uint16),
    "payload": np.dtype(np.int32),    # TCP/UDP payload bytes per the IP (UDP: datagram) length, not caplen; 0 otherwise
    "icmp_type": np.dtype(np.int16), "icmp_code": np.dtype(np.int16),  # -1 when not ICMP
    # For ICMP errors: the quoted packet's header (as the quoted packet was sent).
    "q_proto": np.dtype(np.uint8),
    "q_src_hi": np.dtype(np.uint64), "q_src_lo": np.dtype(np.uint64),
    "q_dst_hi": np.dtype(np.uint64), "q_dst_lo": np.dtype(np.uint64),
    "q_sport": np.dtype(np.uint16), "q_dport": np.dtype(np.uint16),
}

# The packet columns in the order the compiled kernels take them: the scanners fill
# DECODED_COLUMNS, the flow table reads FLOW_INPUT_COLUMNS.
DECODED_COLUMNS = (
    "linktype", "status", "ip_version", "src_hi", "src_lo", "dst_hi", "dst_lo", "proto",
    "fragment", "sport", "dport", "tcp_flags", "seq", "ack", "window", "payload", "icmp_type",
    "icmp_code", "q_proto", "q_src_hi", "q_src_lo", "q_dst_hi", "q_dst_lo", "q_sport", "q_dport")
FLOW_INPUT_COLUMNS = (
    "frame", "ts_ns", "status", "fragment", "proto", "ip_version", "src_hi", "src_lo", "dst_hi",
    "dst_lo", "sport", "dport", "tcp_flags", "seq", "ack", "window", "payload", "icmp_type",
    "icmp_code", "q_proto", "q_src_hi", "q_src_lo", "q_dst_hi", "q_dst_lo", "q_sport", "q_dport")

# status: how far decoding got
DECODE_OK = 0            # IP packet decoded (L4 fields valid where the protocol has them)
DECODE_NOT_IP = 1        # link layer decoded, payload is not IPv4/IPv6 (ARP, LLDP...)
DECODE_UNKNOWN_LINK = 2  # link type we cannot decode
DECODE_TRUNCATED = 3     # frame too short for the headers it announces
DECODE_MALFORMED = 4     # header fields inconsistent (bad IHL, bad version...)

STATUS_NAMES = {
    DECODE_OK: "ok", DECODE_NOT_IP: "not_ip", DECODE_UNKNOWN_LINK: "unknown_link",
    DECODE_TRUNCATED: "truncated", DECODE_MALFORMED: "malformed",
}

# fragment
FRAG_NONE = 0
FRAG_FIRST = 1   # first fragment: L4 header present, ports valid
FRAG_LATER = 2   # later fragment: no L4 header

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

V4_MAPPED_HI = np.uint64(0)
V4_MAPPED_LO_PREFIX = np.uint64(0xFFFF00000000)


def empty_batch(n: int) -> dict[str, np.ndarray]:
    """A batch of n zeroed rows (ICMP fields set to -1)."""
    batch = {name: np.zeros(n, dtype=dt) for name, dt in PACKET_COLUMNS.items()}
    batch["icmp_type"][:] = -1
    batch["icmp_code"][:] = -1
    return batch


def addr_to_halves(text: str) -> tuple[int, int]:
    """'10.0.0.1' or '::1' -> (hi, lo) as stored in the packet table."""
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return 0, 0xFFFF00000000 | int(ip)
    value = int(ip)
    return value >> 64, value & 0xFFFFFFFFFFFFFFFF


def halves_to_addr(hi: int, lo: int) -> str:
    """(hi, lo) -> address text; IPv4-mapped addresses print as plain IPv4."""
    hi, lo = int(hi), int(lo)
    if hi == 0 and (lo >> 32) == 0xFFFF:
        # inet_ntoa prints IPv4 exactly as ipaddress does, twenty times faster
        return socket.inet_ntoa((lo & 0xFFFFFFFF).to_bytes(4, "big"))
    if hi:
        # with a non-zero first half the C library prints what ipaddress does (RFC 5952),
        # about twelve times faster; below it, it would print IPv4-compatible ones dotted
        return socket.inet_ntop(socket.AF_INET6, ((hi << 64) | lo).to_bytes(16, "big"))
    return str(ipaddress.IPv6Address((hi << 64) | lo))
