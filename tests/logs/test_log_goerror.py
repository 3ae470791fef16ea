"""Go net.OpError text and endpoint phrases (PLATFORMS.md section 3, MISSION.md)."""

import pytest

from analyzer.logs.fields import message_fields
from analyzer.logs.goerror import endpoint_phrases, parse_go_error, split_hostport

# text -> (op, syscall, proto, local_ip, local_port, remote_ip, remote_port, errno)
OP_ERRORS = [
    ("write tcp 10.0.0.159:33322->10.0.1.238:15100: write: broken pipe",
     ("write", "write", "tcp", "10.0.0.159", 33322, "10.0.1.238", 15100, "EPIPE")),
    ("read tcp 10.0.0.159:33322->10.0.1.238:15100: read: software caused connection abort",
     ("read", "read", "tcp", "10.0.0.159", 33322, "10.0.1.238", 15100, "ECONNABORTED")),
    ("read tcp 10.0.0.110:33322->10.0.1.238:52980: read: socket is not connected",
     ("read", "read", "tcp", "10.0.0.110", 33322, "10.0.1.238", 52980, "ENOTCONN")),
    ("write udp 10.0.0.159:33323->10.0.1.238:15102: write: destination address required",
     ("write", "write", "udp", "10.0.0.159", 33323, "10.0.1.238", 15102, "EDESTADDRREQ")),
    ("dial tcp :33322->10.0.1.238:15100: bind: address already in use",
     ("dial", "bind", "tcp", None, 33322, "10.0.1.238", 15100, "EADDRINUSE")),
    ("dial tcp 10.0.1.238:15100: connect: connection refused",
     ("dial", "connect", "tcp", None, None, "10.0.1.238", 15100, "ECONNREFUSED")),
    ("listen tcp :15101: bind: address already in use",
     ("listen", "bind", "tcp", None, 15101, None, None, "EADDRINUSE")),
    ("accept tcp [::]:15101: use of closed network connection",
     ("accept", None, "tcp", "::", 15101, None, None, "CLOSED")),
    ("read tcp 10.0.1.238:15100->10.0.0.159:33322: i/o timeout",
     ("read", None, "tcp", "10.0.1.238", 15100, "10.0.0.159", 33322, "DEADLINE")),
    ("read tcp …: i/o timeout",  # the shortened form PLATFORMS.md quotes
     ("read", None, "tcp", None, None, None, None, "DEADLINE")),
    ("write udp6 [fe80::1%wlan0]:33322->[2001:db8::7]:15000: sendto: network is unreachable",
     ("write", "sendto", "udp", "fe80::1%wlan0", 33322, "2001:db8::7", 15000, "ENETUNREACH")),
    ("read udp 0.0.0.0:15000: recvfrom: connection refused",
     ("read", "recvfrom", "udp", "0.0.0.0", 15000, None, None, "ECONNREFUSED")),
    ("dial tcp4 10.0.0.159:33322: connect: connection timed out",
     ("dial", "connect", "tcp", None, None, "10.0.0.159", 33322, "ETIMEDOUT")),
]


@pytest.mark.parametrize("text,expected", OP_ERRORS)
def test_op_error(text, expected):
    err = parse_go_error(text)
    assert err is not None
    got = (err.op, err.syscall, err.proto, err.local_ip, err.local_port, err.remote_ip,
           err.remote_port, err.errno)
    assert got == expected


def test_op_error_after_label_and_in_quotes():
    text = 'time=2024-07-04T14:52:51.123+08:00 level=INFO msg="peer reset" ' \
           'err="read tcp 10.0.1.238:15100->10.0.0.159:33322: read: connection reset by peer" n=3'
    err = parse_go_error(text)
    assert err.err_text == "read: connection reset by peer"
    assert (err.local_port, err.remote_port, err.errno) == (15100, 33322, "ECONNRESET")


def test_not_an_op_error():
    assert parse_go_error("udp write err: nothing here") is None
    assert parse_go_error("") is None


def test_split_hostport():
    assert split_hostport("10.0.0.1:80") == ("10.0.0.1", 80)
    assert split_hostport(":33322") == (None, 33322)
    assert split_hostport("[::1]:443") == ("::1", 443)
    assert split_hostport("example.com:443") == (None, 443)
    assert split_hostport("10.0.0.1:99999") == (None, None)
    assert split_hostport("…") == (None, None)


def test_error_text_wins_over_label():
    # A real iOS line: the app says "udp", the error says tcp.
    f = message_fields("udp write err:  write tcp 10.0.0.110:33322->10.0.1.238:15100: write: broken pipe")
    assert f["label"] == "udp write err"
    assert (f["proto"], f["op"], f["errno"]) == ("tcp", "write", "EPIPE")
    assert (f["local_ip"], f["local_port"], f["remote_ip"], f["remote_port"]) == \
        ("10.0.0.110", 33322, "10.0.1.238", 15100)


@pytest.mark.parametrize("text,expected", [
    ("recv new connection from 10.0.0.159:33322", {"remote_ip": "10.0.0.159", "remote_port": 33322}),
    ("conn 10.0.1.238:52980 write err", {"remote_ip": "10.0.1.238", "remote_port": 52980}),
    ("dial 10.0.0.159:33322 err: timeout", {"remote_ip": "10.0.0.159", "remote_port": 33322}),
    ("listening on 10.0.1.238:15100", {"local_ip": "10.0.1.238", "local_port": 15100}),
    ("failed to connect to /10.0.1.238 (port 15100) from /10.0.0.159 (port 33322) after 10000ms",
     {"remote_ip": "10.0.1.238", "remote_port": 15100, "local_ip": "10.0.0.159", "local_port": 33322}),
    ("nothing to see 1.2.3.4", {}),
])
def test_endpoint_phrases(text, expected):
    assert endpoint_phrases(text) == expected


def test_label_gives_op_when_no_go_error():
    f = message_fields("conn 10.0.0.110:33322 read error: EOF")
    assert (f["errno"], f["op"], f["label"]) == ("EOF", "read", "conn 10.0.0.110:33322 read error")
    assert (f["remote_ip"], f["remote_port"], f["proto"]) == ("10.0.0.110", 33322, None)


def test_java_function_gives_op():
    f = message_fields("java.net.SocketException: sendto failed: EPIPE (Broken pipe)")
    assert (f["errno"], f["syscall"], f["op"]) == ("EPIPE", "sendto", "write")
    f = message_fields("java.net.BindException: bind failed: EADDRINUSE (Address already in use)")
    assert (f["errno"], f["op"]) == ("EADDRINUSE", "bind")
