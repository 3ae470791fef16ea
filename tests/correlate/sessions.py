"""Realistic test sessions: a crafted capture plus the app's and the server's logs, written in
the real formats against device clocks with a known zone and skew (the truth to compare with).

The three tests of the field report run one after another in one capture (UDP, TCP client,
TCP server), each with its own background / resume, with the field report's addresses and
the app's fixed local port 33322, so one 4-tuple is reused and one phone port serves both
TCP tests. Every log line knows the flow it is about (a tag) or that it has none.

Time model: the capture's clock is the truth. A device clock reads ``true + skew`` and shows
it in its zone. An app learns of a packet a little after the capture saw it (``learn``); a
packet an app sends reaches the capture (on the server's side) a little after the app logged.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analyzer.dissect import phones as phone_rules
from analyzer.pipeline import Options, read_flows

try:
    from ..dissect.crafted import TcpConversation, udp, write_pcap
except ImportError:  # pragma: no cover - rootdir-relative import mode
    from dissect.crafted import TcpConversation, udp, write_pcap

HUAWEI = "10.0.0.159"
IPHONE = "10.0.0.110"
SERVER = "10.0.1.238"
APP_PORT = 33322
TCP_PORT = 15100
UDP_PORT = 15000
T0 = 1720075971.250117  # 2024-07-04 06:52:51 UTC
WIRE = 0.0021           # phone <-> capture point (on the server's side), one way


@dataclass
class Device:
    """A device clock: reads true + skew_s, shown in zone zone_s (seconds east of UTC)."""

    zone_s: int
    skew_s: float

    def local(self, true_ts: float) -> dt.datetime:
        us = round((true_ts + self.skew_s + self.zone_s) * 1e6)
        return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=us)

    def utc(self, true_ts: float) -> dt.datetime:
        us = round((true_ts + self.skew_s) * 1e6)
        return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=us)

    @property
    def offset_s(self) -> float:
        """The truth the estimator must find: add to the log's local time."""
        return -(self.zone_s + self.skew_s)


@dataclass
class Line:
    true_ts: float
    msg: str
    tag: str | None          # the flow it is about, or None: no flow of its own
    error: bool = False


@dataclass
class Session:
    phone: str
    app_clock: Device
    server_clock: Device
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    packets: list = field(default_factory=list)
    app: list[Line] = field(default_factory=list)
    server: list[Line] = field(default_factory=list)
    starts: dict[str, tuple[str, float]] = field(default_factory=dict)  # tag -> (proto, first ts)

    # -- log helpers ------------------------------------------------------------
    def learn(self, lo: float = 0.0002, hi: float = 0.004) -> float:
        return self.rng.uniform(lo, hi)

    def log_app(self, t: float, msg: str, tag: str | None = None, error: bool = False) -> None:
        self.app.append(Line(t, msg, tag, error))

    def log_server(self, t: float, msg: str, tag: str | None = None, error: bool = False) -> None:
        self.server.append(Line(t, msg, tag, error))

    def conv(self, tag: str, a: str, a_port: int, b: str, b_port: int, t: float) -> TcpConversation:
        c = TcpConversation(a, a_port, b, b_port, self.rng.getrandbits(32), self.rng.getrandbits(32), t)
        self.starts[tag] = ("tcp", t)
        return c

    def add(self, c: TcpConversation) -> None:
        self.packets += c.packets

    # -- writing ----------------------------------------------------------------
    def write(self, folder: Path, app_format: str) -> "Written":
        pcap = folder / "capture.pcap"
        write_pcap(pcap, self.packets)
        flows, events, info, _, _ = read_flows(Options(capture=pcap, out=folder / "out"))
        phone_rules.attribute(flows, events, [self.phone])
        tag_flow = {}
        for tag, (proto, t) in self.starts.items():
            hit = flows[(flows["proto"].astype(str).str.lower() == proto)
                        & ((flows["first_ts_ns"] - round(t * 1e9)).abs() < 2000)]
            assert len(hit) == 1, f"flow {tag} not found once in the capture"
            tag_flow[tag] = int(hit["flow_id"].iloc[0])
        app_path = folder / ("app.log" if app_format == "logcat" else "xcode.log")
        server_path = folder / "server.log"
        app_lines = sorted(self.app, key=lambda x: x.true_ts)
        server_lines = sorted(self.server, key=lambda x: x.true_ts)
        with open(app_path, "w") as f:
            for line in app_lines:
                for text in self._app_text(line, app_format):
                    f.write(text + "\n")
        with open(server_path, "w") as f:
            for line in server_lines:
                f.write(f"{self.server_clock.local(line.true_ts):%Y/%m/%d %H:%M:%S} {line.msg}\n")
        return Written(pcap, app_path, server_path, flows, events, info, tag_flow,
                       app_lines, server_lines, self)

    def _app_text(self, line: Line, fmt: str) -> list[str]:
        local = self.app_clock.local(line.true_ts)
        if fmt == "logcat":  # threadtime: no year, no zone, milliseconds truncated
            return [f"{local:%m-%d %H:%M:%S}.{local.microsecond // 1000:03d} 18044 18070 I GoLog   : "
                    f"{line.msg}"]
        utc = self.app_clock.utc(line.true_ts)
        inner = f"{utc:%Y/%m/%d %H:%M:%S} {line.msg}"
        z = self.app_clock.zone_s
        zone = f"{'+' if z >= 0 else '-'}{abs(z) // 3600:02d}{abs(z) % 3600 // 60:02d}"
        stamp = f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond:06d}{zone}"
        return [inner, f"{stamp} anet[1088:374879] [os_log] {inner}"]


@dataclass
class Written:
    pcap: Path
    app_log: Path
    server_log: Path
    flows: pd.DataFrame
    events: pd.DataFrame
    info: dict
    tag_flow: dict[str, int]
    app_lines: list[Line]
    server_lines: list[Line]
    session: Session


# ---------------------------------------------------------------------- the sessions
def huawei(app_clock: Device, server_clock: Device) -> Session:
    """Huawei: RST at background, unanswered SYNs to the listener, EDESTADDRREQ/ECONNABORTED."""
    s = Session(HUAWEI, app_clock, server_clock)
    P, S = HUAWEI, SERVER
    me, srv, udp_srv = f"{P}:{APP_PORT}", f"{S}:{TCP_PORT}", f"{S}:{UDP_PORT}"
    _udp_phase(s, 0.0, "udp write err:  write udp {me}->{udp}: write: destination address required")

    # TCP client: RST from the phone at background; ECONNABORTED on write after resume
    b = 60.0
    c1 = s.conv("tcp1", P, APP_PORT, S, TCP_PORT, T0 + b + 1)
    _connect(s, c1, "tcp1", app_side="a")
    for k in range(3):
        _exchange(s, c1, "tcp1", T0 + b + 2 + 3 * k, phone_side="a")
    rst = c1.rst("a", at=T0 + b + 10.5)
    s.log_server(float(rst.time) + s.learn(), f"conn {me} read error: read tcp {srv}->{me}: "
                 f"read: connection reset by peer", "tcp1", error=True)
    s.add(c1)
    s.log_app(T0 + b + 10.0, "app did enter background")
    s.log_app(T0 + b + 40.0, "app will enter foreground")
    s.log_app(T0 + b + 40.2, f"tcp write err:  write tcp {me}->{srv}: write: software caused "
              f"connection abort", "tcp1", error=True)
    s.log_app(T0 + b + 40.21, f"tcp dial err:  dial tcp :{APP_PORT}->{srv}: bind: address "
              f"already in use", None, error=True)
    c2 = s.conv("tcp2", P, APP_PORT, S, TCP_PORT, T0 + b + 43)  # the same 4-tuple again
    _connect(s, c2, "tcp2", app_side="a")
    _exchange(s, c2, "tcp2", T0 + b + 44, phone_side="a")
    fin = c2.fin("a", at=T0 + b + 50)
    s.log_server(float(fin.time) + s.learn(), f"conn {me} read error: EOF", "tcp2", error=True)
    c2.ack("b")
    c2.fin("b")
    c2.ack("a")
    s.add(c2)

    # TCP server: RST on every connection at background; new SYNs unanswered, then refused
    b = 130.0
    s.log_app(T0 + b, f"tcp server listening on :{APP_PORT}")
    d1 = s.conv("dial1", S, 52980, P, APP_PORT, T0 + b + 1)
    _dialled(s, d1, "dial1")
    for k in range(3):
        _exchange(s, d1, "dial1", T0 + b + 2 + 3 * k, phone_side="b")
    s.log_app(T0 + b + 10.0, "app did enter background")
    d1.rst("b", at=T0 + b + 10.3)
    s.add(d1)
    s.log_server(T0 + b + 11.0 + s.learn(), f"conn {me} write error: write tcp {S}:52980->{me}: "
                 f"write: connection reset by peer", "dial1", error=True)
    d2 = s.conv("dial2", S, 52981, P, APP_PORT, T0 + b + 12)
    for k, at in enumerate((0, 1, 3, 7, 15, 31, 63)):
        d2.syn("a", at=T0 + b + 12 + at)
    s.add(d2)
    s.log_server(T0 + b + 12 + 127.1, f"dial {me} err: dial tcp {me}: connect: connection timed out",
                 "dial2", error=True)
    s.log_app(T0 + b + 110.0, "app will enter foreground")
    s.log_app(T0 + b + 110.1, f"listen err:  listen tcp :{APP_PORT}: bind: address already in use",
              None, error=True)
    d3 = s.conv("dial3", S, 52982, P, APP_PORT, T0 + b + 140)
    d3.syn("a")
    rej = d3.refuse("b", at=float(d3.packets[-1].time) + 2 * WIRE)
    s.add(d3)
    s.log_server(float(rej.time) + s.learn(), f"dial {me} err: dial tcp {me}: connect: "
                 f"connection refused", "dial3", error=True)
    return s


def ios(app_clock: Device, server_clock: Device) -> Session:
    """iOS: FIN at suspend, refused SYNs to the listener, EPIPE/ENOTCONN after resume."""
    s = Session(IPHONE, app_clock, server_clock)
    P, S = IPHONE, SERVER
    me, srv = f"{P}:{APP_PORT}", f"{S}:{TCP_PORT}"
    _udp_phase(s, 0.0, "udp write err:  write udp {me}->{udp}: write: broken pipe")

    b = 60.0
    c1 = s.conv("tcp1", P, APP_PORT, S, TCP_PORT, T0 + b + 1)
    _connect(s, c1, "tcp1", app_side="a")
    for k in range(3):
        _exchange(s, c1, "tcp1", T0 + b + 2 + 3 * k, phone_side="a")
    s.log_app(T0 + b + 10.0, "app did enter background")
    fin = c1.fin("a", at=T0 + b + 10.2)
    s.log_server(float(fin.time) + s.learn(), f"conn {me} read error: EOF", "tcp1", error=True)
    c1.ack("b")
    c1.fin("b")
    c1.ack("a")
    s.add(c1)
    s.log_app(T0 + b + 40.0, "app will enter foreground")
    # the real line: the app's label says udp, the error says tcp
    s.log_app(T0 + b + 40.2, f"udp write err:  write tcp {me}->{srv}: write: broken pipe",
              "tcp1", error=True)
    s.log_app(T0 + b + 40.3, f"tcp dial err:  dial tcp :{APP_PORT}->{srv}: bind: address already "
              f"in use", None, error=True)
    c2 = s.conv("tcp2", P, APP_PORT, S, TCP_PORT, T0 + b + 46)
    _connect(s, c2, "tcp2", app_side="a")
    _exchange(s, c2, "tcp2", T0 + b + 47, phone_side="a")
    fin = c2.fin("a", at=T0 + b + 55)
    s.log_server(float(fin.time) + s.learn(), f"conn {me} read error: EOF", "tcp2", error=True)
    c2.ack("b")
    c2.fin("b")
    c2.ack("a")
    s.add(c2)

    b = 130.0
    s.log_app(T0 + b, f"tcp server listening on :{APP_PORT}")
    d1 = s.conv("dial1", S, 52980, P, APP_PORT, T0 + b + 1)
    _dialled(s, d1, "dial1")
    for k in range(3):
        _exchange(s, d1, "dial1", T0 + b + 2 + 3 * k, phone_side="b")
    s.log_app(T0 + b + 10.0, "app did enter background")
    fin = d1.fin("b", at=T0 + b + 10.2)
    s.log_server(float(fin.time) + s.learn(), f"conn {me} read error: EOF", "dial1", error=True)
    d1.ack("a")
    d1.fin("a")
    d1.ack("b")
    s.add(d1)
    for k, at in enumerate((12.0, 22.0)):
        d = s.conv(f"refused{k}", S, 52981 + k, P, APP_PORT, T0 + b + at)
        d.syn("a")
        rej = d.refuse("b", at=T0 + b + at + 2 * WIRE)
        s.add(d)
        s.log_server(float(rej.time) + s.learn(), f"dial {me} err: dial tcp {me}: connect: "
                     f"connection refused", f"refused{k}", error=True)
    s.log_app(T0 + b + 30.0, "app will enter foreground")
    s.log_app(T0 + b + 30.5, f"conn {S}:52980 read err:  read tcp {me}->{S}:52980: read: socket "
              f"is not connected", "dial1", error=True)
    return s


def _udp_phase(s: Session, b: float, err: str) -> None:
    P, S = s.phone, SERVER
    me, udp_srv = f"{P}:{APP_PORT}", f"{S}:{UDP_PORT}"
    s.starts["udp"] = ("udp", T0 + b + 1 + WIRE)
    for k in range(5):
        t = T0 + b + 1 + 3 * k
        s.log_app(t, f"udp write 12 bytes to {udp_srv}", "udp")
        s.packets.append(udp(t + WIRE, P, APP_PORT, S, UDP_PORT, b"hello %05d\n" % k))
        s.log_server(t + WIRE + s.learn(), f"udp read 12 bytes from {me}", "udp")
        s.packets.append(udp(t + WIRE + 0.0004, S, UDP_PORT, P, APP_PORT, b"hello %05d\n" % k))
        s.log_server(t + WIRE + 0.0005, f"udp write 12 bytes to {me}", "udp")
        s.log_app(t + 2 * WIRE + s.learn(), f"udp read 12 bytes from {udp_srv}", "udp")
    s.log_app(T0 + b + 15.0, "app did enter background")
    s.log_app(T0 + b + 40.0, "app will enter foreground")
    s.log_app(T0 + b + 41.0, err.format(me=me, udp=udp_srv), "udp", error=True)
    s.log_app(T0 + b + 41.01, f"udp dial err:  dial udp :{APP_PORT}->{udp_srv}: bind: address "
              f"already in use", None, error=True)


def _connect(s: Session, c: TcpConversation, tag: str, app_side: str) -> None:
    """The phone dials: the capture (server side) sees the SYN one wire delay after it left."""
    syn = c.syn("a")
    synack = c.synack("b", at=float(syn.time) + 0.00015)
    ack = c.ack("a", at=float(synack.time) + 2 * WIRE)
    a, b = c.ep["a"], c.ep["b"]
    s.log_app(float(synack.time) + WIRE + s.learn(), f"tcp connected {a[0]}:{a[1]}->{b[0]}:{b[1]}", tag)
    s.log_server(float(ack.time) + s.learn(), f"recv new connection from {a[0]}:{a[1]}", tag)


def _dialled(s: Session, c: TcpConversation, tag: str) -> None:
    """The server dials the phone's listener."""
    syn = c.syn("a")
    synack = c.synack("b", at=float(syn.time) + 2 * WIRE)
    ack = c.ack("a", at=float(synack.time) + 0.0001)
    a, b = c.ep["a"], c.ep["b"]
    s.log_server(float(synack.time) + s.learn(), f"dial {b[0]}:{b[1]} connected from {a[0]}:{a[1]}", tag)
    s.log_app(float(ack.time) + WIRE + s.learn(), f"tcp server accepted {a[0]}:{a[1]}", tag)


def _exchange(s: Session, c: TcpConversation, tag: str, t: float, phone_side: str) -> None:
    """One write and its echo; the phone's packets reach the capture a wire delay later."""
    other = c.peer(phone_side)
    pa, pb = c.ep[phone_side], c.ep[other]
    if phone_side == "a":  # the app writes, the server echoes
        s.log_app(t, f"tcp write 12 bytes to {pb[0]}:{pb[1]}", tag)
        c.data("a", b"hello world\n", at=t + WIRE)
        s.log_server(t + WIRE + s.learn(), f"conn {pa[0]}:{pa[1]} read 12 bytes", tag)
        c.data("b", b"hello world\n", at=t + WIRE + 0.0003)
        s.log_server(t + WIRE + 0.0004, f"conn {pa[0]}:{pa[1]} write 12 bytes", tag)
        c.ack("a", at=t + 3 * WIRE + 0.0003)
        s.log_app(t + 2 * WIRE + 0.0003 + s.learn(), f"tcp read 12 bytes from {pb[0]}:{pb[1]}", tag)
    else:  # the server writes, the app echoes
        c.data("a", b"hello world\n", at=t)
        s.log_server(t + 0.0001, f"conn {pa[0]}:{pa[1]} write 12 bytes", tag)
        s.log_app(t + WIRE + s.learn(), f"conn {pb[0]}:{pb[1]} read 12 bytes", tag)
        c.data("b", b"hello world\n", at=t + 2 * WIRE + 0.004)
        c.ack("a", at=t + 2 * WIRE + 0.0045)
        s.log_server(t + 2 * WIRE + 0.0046, f"conn {pa[0]}:{pa[1]} read 12 bytes", tag)
