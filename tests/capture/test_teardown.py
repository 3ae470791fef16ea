"""The kernel mechanisms behind the profiles, on real loopback sockets."""

import errno
import os
import socket

import pytest

from analyzer.capture import teardown
from tests.capture.support import PHONE, SERVER

needs_admin = pytest.mark.skipif(os.geteuid() != 0, reason="SOCK_DESTROY needs CAP_NET_ADMIN (root)")


@pytest.fixture
def pair(ports):
    """A connected TCP pair: phone (fixed port) -> server; closed afterwards."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((SERVER, ports["tcp"]))
    srv.listen()
    phone = socket.socket()
    phone.bind((PHONE, ports["client"]))
    phone.connect((SERVER, ports["tcp"]))
    peer, _ = srv.accept()
    peer.settimeout(2)
    yield phone, peer
    for s in (phone, peer, srv):
        s.close()


@needs_admin
def test_destroy_is_android_abort(pair, ports):
    phone, peer = pair
    assert teardown.abort(phone) == "sock_destroy"
    with pytest.raises(ConnectionResetError):   # the server saw an RST
        peer.recv(10)
    with pytest.raises(OSError) as first:
        phone.send(b"x")
    assert first.value.errno == errno.ECONNABORTED
    with pytest.raises(OSError) as rebind:      # the fd still holds the fixed port
        socket.socket().bind((PHONE, ports["client"]))
    assert rebind.value.errno == errno.EADDRINUSE


@needs_admin
def test_destroy_disconnects_udp(ports):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind((PHONE, ports["phone"]))
        u.connect((SERVER, ports["udp"]))
        teardown.abort(u)
        with pytest.raises(OSError) as exc:
            u.send(b"x")
        assert exc.value.errno == errno.EDESTADDRREQ


def test_disconnect_sends_rst_and_keeps_port(pair, ports):
    phone, peer = pair
    teardown.disconnect(phone)
    with pytest.raises(ConnectionResetError):
        peer.recv(10)
    with pytest.raises(OSError) as rebind:
        socket.socket().bind((PHONE, ports["client"]))
    assert rebind.value.errno == errno.EADDRINUSE


def test_drop_filter_silences_listener_until_removed(ports):
    with socket.socket() as lst:
        lst.bind((PHONE, ports["phone"]))
        lst.listen()
        teardown.drop_incoming(lst)
        with socket.socket() as c:
            c.setsockopt(socket.IPPROTO_TCP, 18, 500)  # TCP_USER_TIMEOUT
            c.settimeout(5)
            with pytest.raises(OSError) as exc:
                c.connect((PHONE, ports["phone"]))
            assert exc.value.errno == errno.ETIMEDOUT  # no SYN-ACK, no RST
        teardown.allow_incoming(lst)
        with socket.socket() as c:
            c.settimeout(2)
            c.connect((PHONE, ports["phone"]))


def test_defunct_listener_refuses_and_holds_port(ports):
    with socket.socket() as lst:
        lst.bind((PHONE, ports["phone"]))
        lst.listen()
        teardown.defunct(lst)
        with socket.socket() as c, pytest.raises(ConnectionRefusedError):
            c.connect((PHONE, ports["phone"]))
        with socket.socket() as again, pytest.raises(OSError) as exc:
            again.bind((PHONE, ports["phone"]))
        assert exc.value.errno == errno.EADDRINUSE


def test_defunct_connection_sends_fin_then_epipe(pair):
    phone, peer = pair
    teardown.defunct(phone)
    assert peer.recv(10) == b""                 # FIN: the server reads EOF
    with pytest.raises(BrokenPipeError):
        phone.send(b"x")
