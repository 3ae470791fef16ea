"""Crafted sessions for the verdict and report tests: the field report's three tests
(UDP echo, TCP client, TCP server) on one phone, torn down the way Huawei and iOS do, plus
look-alikes that must NOT be blamed on the phone (server close, a normal close).

Addresses and ports are the field report's (../shared/MISSION.md). Times: the app goes to
background at T0+30 s and comes back at T0+90 s.

Each builder returns (packets, logs): the packets for `write_pcap`, and a logs DataFrame in
the shape the log-alignment stage hands on (ts_ns already on the capture clock).
"""

from __future__ import annotations

import pandas as pd

from tests.dissect.crafted import TcpConversation, icmp_port_unreachable, udp

HUAWEI = "10.0.0.159"
IPHONE = "10.0.0.110"
SERVER = "10.0.1.238"
APP_PORT = 33322
UDP_PORT = 15000
TCP_PORT = 15100
DIAL_PORT = 52980

T0 = 1720075971.250117          # 2024-07-04 06:52:51 UTC
BACKGROUND_AT = 30.0
RESUME_AT = 90.0

LOG_COLUMNS = ["ts_ns", "raw_time", "source", "role", "format", "level", "message", "errno",
               "op", "proto", "local_ip", "local_port", "remote_ip", "remote_port", "flow_id",
               "match", "lifecycle"]


def empty_logs() -> pd.DataFrame:
    return log_frame([])


def log_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame([{c: row.get(c) for c in LOG_COLUMNS} for row in rows], columns=LOG_COLUMNS)
    frame["ts_ns"] = pd.array(frame["ts_ns"].tolist(), dtype="Int64")
    for col in ("local_port", "remote_port", "flow_id"):
        frame[col] = pd.array(frame[col].tolist(), dtype="Int64")
    return frame


def _ns(dt: float) -> int:
    return int(round((T0 + dt) * 1e9))


def _line(dt, role, message, errno=None, op=None, proto=None, local=None, remote=None,
          lifecycle=None, source=None, fmt=None):
    local_ip, local_port = local if local else (None, None)
    remote_ip, remote_port = remote if remote else (None, None)
    return {"ts_ns": _ns(dt), "raw_time": f"+{dt:.3f}s", "role": role, "message": message,
            "source": source or ("app.log" if role == "app" else "server.log"),
            "format": fmt or ("logcat-threadtime" if role == "app" else "go-log"),
            "level": "info", "errno": errno, "op": op, "proto": proto,
            "local_ip": local_ip, "local_port": local_port, "remote_ip": remote_ip,
            "remote_port": remote_port, "flow_id": None, "match": None, "lifecycle": lifecycle}


def _healthy_traffic(phone: str, until: float, isn_base: int):
    """UDP echo, TCP client echo and the server's dialled connection, until `until` s."""
    packets = []
    for i in range(int(until // 3)):
        t = T0 + 3.0 * i
        packets.append(udp(t, phone, APP_PORT, SERVER, UDP_PORT, b"udp %d\n" % i))
        packets.append(udp(t + 0.004, SERVER, UDP_PORT, phone, APP_PORT, b"udp %d\n" % i))
    client = TcpConversation(phone, APP_PORT, SERVER, TCP_PORT, isn_base, isn_base + 7777, T0 + 1.0)
    client.syn("a", at=T0 + 1.0), client.synack("b"), client.ack("a")
    listener = TcpConversation(SERVER, DIAL_PORT, phone, APP_PORT, isn_base + 99, isn_base + 5555,
                               T0 + 2.0)
    listener.syn("a", at=T0 + 2.0), listener.synack("b"), listener.ack("a")
    for i in range(int((until - 3) // 3)):
        client.data("a", b"tcp %d\n" % i, at=T0 + 1.5 + 3 * i)
        client.data("b", b"tcp %d\n" % i)
        listener.data("a", b"srv %d\n" % i, at=T0 + 2.5 + 3 * i)
        listener.data("b", b"srv %d\n" % i)
    return packets, client, listener


def huawei(with_logs: bool = True):
    """RST from the phone on every TCP connection at background; the server's redial to the
    listener is silently dropped; after resume the app sees EDESTADDRREQ / ECONNABORTED."""
    packets, client, listener = _healthy_traffic(HUAWEI, BACKGROUND_AT, 0x3AC1F2D4)
    client.rst("a", at=T0 + BACKGROUND_AT + 0.010)
    listener.rst("b", at=T0 + BACKGROUND_AT + 0.012)
    redial = TcpConversation(SERVER, DIAL_PORT + 1, HUAWEI, APP_PORT, 0x0C55A7E2, 1, T0 + 35)
    for dt in (0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0):
        redial.syn("a", at=T0 + 35.0 + dt)
    packets += client.packets + listener.packets + redial.packets
    if not with_logs:
        return packets, empty_logs()
    app = (HUAWEI, APP_PORT)
    rows = [
        _line(RESUME_AT + 3, "app", "udp write err:  write udp 10.0.0.159:33322->10.0.1.238:15000: "
              "write: destination address required", "EDESTADDRREQ", "write", "udp", app,
              (SERVER, UDP_PORT)),
        _line(RESUME_AT + 3.5, "app", "tcp write err: write tcp 10.0.0.159:33322->10.0.1.238:15100: "
              "write: software caused connection abort", "ECONNABORTED", "write", "tcp", app,
              (SERVER, TCP_PORT)),
        _line(RESUME_AT + 4, "app", "dial tcp :33322->10.0.1.238:15100: bind: address already in use",
              "EADDRINUSE", "bind", "tcp", (None, APP_PORT), (SERVER, TCP_PORT)),
        _line(BACKGROUND_AT + 0.5, "server", "conn 10.0.0.159:33322 read error: read tcp "
              "10.0.1.238:15100->10.0.0.159:33322: read: connection reset by peer", "ECONNRESET",
              "read", "tcp", (SERVER, TCP_PORT), app),
        _line(BACKGROUND_AT + 2.5, "server", "conn 10.0.0.159:33322 write err: write tcp "
              "10.0.1.238:52980->10.0.0.159:33322: write: connection reset by peer", "ECONNRESET",
              "write", "tcp", (SERVER, DIAL_PORT), app),
        _line(35.0 + 130.0, "server", "dial 10.0.0.159:33322 err: dial tcp 10.0.0.159:33322: "
              "connect: connection timed out", "ETIMEDOUT", "dial", "tcp", None, app),
    ]
    return packets, log_frame(rows)


def ios(with_logs: bool = True):
    """FIN from the phone on every TCP connection at suspend (its kernel answers later writes
    with RST); the server's redials to the listener are refused, also after resume."""
    packets, client, listener = _healthy_traffic(IPHONE, BACKGROUND_AT, 0x71D04E93)
    client.fin("a", at=T0 + BACKGROUND_AT + 0.010)
    client.ack("b")
    client.fin("b", at=T0 + BACKGROUND_AT + 0.6)      # server read EOF, closes its side
    client.ack("a")
    listener.fin("b", at=T0 + BACKGROUND_AT + 0.012)
    listener.ack("a")
    listener.data("a", b"srv late\n", at=T0 + BACKGROUND_AT + 2.5)   # server keeps writing
    listener.rst("b", with_ack=False)
    convs = [client, listener]
    for k, at in enumerate((35.0, 45.0, RESUME_AT + 5)):
        c = TcpConversation(SERVER, DIAL_PORT + 1 + k, IPHONE, APP_PORT, 0x0C55A7E2 + k, 1, T0 + at)
        c.syn("a", at=T0 + at)
        c.refuse("b")
        convs.append(c)
    for c in convs:
        packets += c.packets
    if not with_logs:
        return packets, empty_logs()
    app = (IPHONE, APP_PORT)
    ios_fmt = "ios-xcode"
    rows = [
        _line(BACKGROUND_AT - 0.2, "app", "Received state update for 1088 (app<anet>, "
              "running-suspended-NotVisible", lifecycle="suspended", fmt=ios_fmt),
        _line(RESUME_AT, "app", "Received state update for 1088 (app<anet>, running-active-Visible",
              lifecycle="foreground", fmt=ios_fmt),
        _line(RESUME_AT + 3, "app", "udp write err:  write udp 10.0.0.110:33322->10.0.1.238:15000: "
              "write: broken pipe", "EPIPE", "write", "udp", app, (SERVER, UDP_PORT), fmt=ios_fmt),
        _line(RESUME_AT + 3.5, "app", "udp write err:  write tcp 10.0.0.110:33322->10.0.1.238:15100: "
              "write: broken pipe", "EPIPE", "write", "tcp", app, (SERVER, TCP_PORT), fmt=ios_fmt),
        _line(RESUME_AT + 4, "app", "conn read err: read tcp 10.0.0.110:33322->10.0.1.238:52980: "
              "read: socket is not connected", "ENOTCONN", "read", "tcp", app, (SERVER, DIAL_PORT),
              fmt=ios_fmt),
        _line(BACKGROUND_AT + 0.5, "server", "conn 10.0.0.110:33322 read error: EOF", "EOF", "read",
              "tcp", (SERVER, TCP_PORT), app),
        _line(BACKGROUND_AT + 0.6, "server", "conn 10.0.0.110:33322 read error: EOF", "EOF", "read",
              "tcp", (SERVER, DIAL_PORT), app),
        _line(35.0, "server", "panic: dial tcp 10.0.0.110:33322: connect: connection refused",
              "ECONNREFUSED", "dial", "tcp", None, app),
    ]
    return packets, log_frame(rows)


def server_close():
    """The server closes the TCP client connection (FIN) and then dies: the phone's redial is
    refused and its datagrams draw ICMP port unreachable. Nothing the phone did."""
    phone = HUAWEI
    packets = []
    for i in range(10):
        t = T0 + 3.0 * i
        packets.append(udp(t, phone, APP_PORT, SERVER, UDP_PORT, b"udp %d\n" % i))
        packets.append(udp(t + 0.004, SERVER, UDP_PORT, phone, APP_PORT, b"udp %d\n" % i))
    late = udp(T0 + 33.0, phone, APP_PORT, SERVER, UDP_PORT, b"udp late\n")
    packets += [late, icmp_port_unreachable(T0 + 33.001, SERVER, late)]
    client = TcpConversation(phone, APP_PORT, SERVER, TCP_PORT, 0x1111, 0x2222, T0 + 1.0)
    client.syn("a", at=T0 + 1.0), client.synack("b"), client.ack("a")
    for i in range(8):
        client.data("a", b"tcp %d\n" % i, at=T0 + 1.5 + 3 * i)
        client.data("b", b"tcp %d\n" % i)
    client.fin("b", at=T0 + 30.0)
    client.ack("a")
    client.fin("a")
    client.ack("b")
    again = TcpConversation(phone, APP_PORT, SERVER, TCP_PORT, 0x5555, 0x6666, T0 + 31.0)
    again.syn("a", at=T0 + 31.0)
    again.refuse("b")
    packets += client.packets + again.packets
    rows = [_line(31.2, "app", "dial tcp :33322->10.0.1.238:15100: connect: connection refused",
                  "ECONNREFUSED", "dial", "tcp", (None, APP_PORT), (SERVER, TCP_PORT)),
            _line(30.1, "app", "tcp read err: EOF", "EOF", "read", "tcp", (phone, APP_PORT),
                  (SERVER, TCP_PORT))]
    return packets, log_frame(rows)


def normal_close():
    """One TCP client connection the phone closes politely after a while: FIN both ways, no
    errors, no lifecycle."""
    c = TcpConversation(HUAWEI, APP_PORT, SERVER, TCP_PORT, 0x7777, 0x8888, T0)
    c.syn("a", at=T0), c.synack("b"), c.ack("a")
    for i in range(3):
        c.data("a", b"req %d\n" % i, at=T0 + 1 + i)
        c.data("b", b"resp %d\n" % i)
    c.fin("a", at=T0 + 5)
    c.ack("b")
    c.fin("b")
    c.ack("a")
    return c.packets, empty_logs()
