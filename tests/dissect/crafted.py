"""Craft small captures for the flow-label tests (scapy).

Packets are built from plain specs (time, addresses, ports, flags, sequence numbers) and
written as a classic Ethernet pcap. `write_pcap` orders them by timestamp (stable), so frame
numbers are 1-based positions in that order, as Wireshark numbers them.

`TcpConversation` keeps sequence and acknowledgement numbers realistic (random-looking
ISNs, SYN and FIN each taking one sequence number, every ACK acknowledging what the peer has
sent so far) so that an engine which reads sequence numbers is not fooled by toy values.
"""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

MOD32 = 2 ** 32
SYN_OPTIONS = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b"")]


def _mac(addr: str) -> str:
    digest = hashlib.sha1(addr.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def is_v6(addr: str) -> bool:
    return ipaddress.ip_address(addr).version == 6


def _ip(src: str, dst: str) -> Packet:
    if is_v6(src) != is_v6(dst):
        raise ValueError(f"mixed address families: {src} -> {dst}")
    if is_v6(src):
        return IPv6(src=src, dst=dst, hlim=64)
    return IP(src=src, dst=dst, ttl=64, flags="DF")


def _frame(src: str, dst: str, l3: Packet, t: float) -> Packet:
    pkt = Ether(src=_mac(src), dst=_mac(dst)) / l3
    pkt = Ether(bytes(pkt))  # freeze lengths and checksums
    pkt.time = t
    return pkt


def tcp(t: float, src: str, sport: int, dst: str, dport: int, flags: str, seq: int = 0,
        ack: int = 0, payload: bytes = b"", window: int = 502, options=None) -> Packet:
    """One TCP segment. flags in scapy notation: S, SA, A, PA, FA, F, R, RA..."""
    seg = TCP(sport=sport, dport=dport, flags=flags, seq=seq % MOD32, ack=ack % MOD32,
              window=window, options=options or [])
    l3 = _ip(src, dst) / seg
    if payload:
        l3 = l3 / Raw(payload)
    return _frame(src, dst, l3, t)


def udp(t: float, src: str, sport: int, dst: str, dport: int, payload: bytes = b"") -> Packet:
    l3 = _ip(src, dst) / UDP(sport=sport, dport=dport)
    if payload:
        l3 = l3 / Raw(payload)
    return _frame(src, dst, l3, t)


def icmp_port_unreachable(t: float, src: str, quoted: Packet) -> Packet:
    """ICMP (v4 type 3 code 3) or ICMPv6 (type 1 code 4) port unreachable sent by `src`
    back to the sender of `quoted`, quoting the whole offending IP datagram (as Linux does)."""
    if IPv6 in quoted:
        inner = quoted[IPv6]
        l3 = _ip(src, inner.src) / ICMPv6DestUnreach(code=4) / Raw(bytes(inner))
        return _frame(src, inner.src, l3, t)
    inner = quoted[IP]
    l3 = _ip(src, inner.src) / ICMP(type=3, code=3) / Raw(bytes(inner))
    return _frame(src, inner.src, l3, t)


def write_pcap(path: Path | str, packets: list[Packet]) -> list[Packet]:
    """Write `packets` ordered by time (stable) to `path`; return them in frame order."""
    ordered = sorted(packets, key=lambda p: float(p.time))
    wrpcap(str(path), ordered)
    return ordered


class TcpConversation:
    """One TCP connection between side "a" (the dialer) and side "b" (the listener).

    Every method appends one segment to `self.packets` and returns it. `at` is the
    absolute timestamp; without it the segment comes `dt` seconds after the previous one.
    """

    def __init__(self, a: str, a_port: int, b: str, b_port: int, a_isn: int, b_isn: int,
                 t0: float, dt: float = 0.000350):
        self.ep = {"a": (a, a_port), "b": (b, b_port)}
        self.isn = {"a": a_isn % MOD32, "b": b_isn % MOD32}
        self.nxt = {"a": a_isn % MOD32, "b": b_isn % MOD32}  # next sequence number to send
        self.t = t0
        self.dt = dt
        self.packets: list[Packet] = []

    @staticmethod
    def peer(side: str) -> str:
        return "b" if side == "a" else "a"

    def _emit(self, side: str, flags: str, seq: int, ack: int = 0, payload: bytes = b"",
              at: float | None = None, window: int = 502, options=None) -> Packet:
        t = self.t if at is None and not self.packets else (self.t + self.dt if at is None else at)
        self.t = t
        src, sport = self.ep[side]
        dst, dport = self.ep[self.peer(side)]
        pkt = tcp(t, src, sport, dst, dport, flags, seq, ack, payload, window, options)
        self.packets.append(pkt)
        return pkt

    # -- handshake -------------------------------------------------------------------
    def syn(self, side: str = "a", at: float | None = None) -> Packet:
        """A SYN with this side's ISN; calling it again is a retransmission (same ISN)."""
        self.nxt[side] = (self.isn[side] + 1) % MOD32
        return self._emit(side, "S", self.isn[side], 0, at=at, window=64240,
                          options=SYN_OPTIONS)

    def synack(self, side: str = "b", at: float | None = None) -> Packet:
        self.nxt[side] = (self.isn[side] + 1) % MOD32
        return self._emit(side, "SA", self.isn[side], self.isn[self.peer(side)] + 1, at=at,
                          window=65160, options=SYN_OPTIONS)

    def syn_not_captured(self, side: str = "a") -> None:
        """The side sent its SYN but the capture missed it (sequence space still moves)."""
        self.nxt[side] = (self.isn[side] + 1) % MOD32

    def refuse(self, side: str = "b", at: float | None = None) -> Packet:
        """RST+ACK answering the peer's SYN, as a closed port does (seq 0, ack ISN+1)."""
        return self._emit(side, "RA", 0, self.isn[self.peer(side)] + 1, at=at, window=0)

    # -- established -------------------------------------------------------------------
    def ack(self, side: str, at: float | None = None) -> Packet:
        return self._emit(side, "A", self.nxt[side], self.nxt[self.peer(side)], at=at)

    def data(self, side: str, payload: bytes, at: float | None = None,
             ack: int | None = None) -> Packet:
        seq = self.nxt[side]
        self.nxt[side] = (seq + len(payload)) % MOD32
        return self._emit(side, "PA", seq,
                          self.nxt[self.peer(side)] if ack is None else ack, payload, at=at)

    def fin(self, side: str, at: float | None = None, retransmit: bool = False,
            with_ack: bool = True) -> Packet:
        if retransmit:
            seq = (self.nxt[side] - 1) % MOD32
        else:
            seq = self.nxt[side]
            self.nxt[side] = (seq + 1) % MOD32
        if with_ack:
            return self._emit(side, "FA", seq, self.nxt[self.peer(side)], at=at)
        return self._emit(side, "F", seq, 0, at=at)

    def rst(self, side: str, at: float | None = None, seq: int | None = None,
            with_ack: bool = True) -> Packet:
        """An abortive close (SO_LINGER 0, or the kernel answering a segment for a dead
        socket). By default seq is this side's next sequence number."""
        seq = self.nxt[side] if seq is None else seq
        if with_ack:
            return self._emit(side, "RA", seq, self.nxt[self.peer(side)], at=at, window=0)
        return self._emit(side, "R", seq, 0, at=at, window=0)
