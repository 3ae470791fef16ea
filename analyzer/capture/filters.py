"""Capture filters (BPF syntax, as dumpcap, tcpdump and scapy take them) for a test session."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def _port(p) -> int:
    try:
        value = int(p)
    except (TypeError, ValueError):
        raise ValueError(f"bad port {p!r}") from None
    if not 1 <= value <= 65535:
        raise ValueError(f"port out of range: {value}")
    return value


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"bad IP address {text!r}") from None


def build_filter(phone: str | None = None, server: str | None = None,
                 udp_ports: Iterable[int] = (), tcp_ports: Iterable[int] = (),
                 ports: Iterable[int] = ()) -> str:
    """The filter for one session: traffic on the test's ports, between the given hosts.

    `udp_ports` / `tcp_ports` are per-protocol (the server's echo ports); `ports` match either
    protocol (the phone's fixed local ports). ICMP is always kept for the phone's address,
    because an ICMP unreachable is itself a teardown the dissector reports.
    Empty everything gives "" (capture all).
    """
    terms = [f"udp port {_port(p)}" for p in dict.fromkeys(udp_ports)]
    terms += [f"tcp port {_port(p)}" for p in dict.fromkeys(tcp_ports)]
    terms += [f"port {_port(p)}" for p in dict.fromkeys(ports)]
    hosts = [f"host {_ip(h)}" for h in (phone, server) if h]
    if terms:
        # ICMP errors quote the offending packet, so their own ports are not ours: keep them.
        terms += ["icmp", "icmp6"]
    parts = []
    if hosts:
        parts.append(" and ".join(hosts))
    if terms:
        parts.append("(" + " or ".join(terms) + ")")
    return " and ".join(parts)
