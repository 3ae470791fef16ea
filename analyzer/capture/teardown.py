"""Real kernel mechanisms that tear a socket down the way a phone's OS does.

- `destroy`: SOCK_DESTROY over sock_diag netlink, what Android's netd uses: a TCP socket
  sends RST and its next call fails ECONNABORTED; a connected UDP socket is disconnected
  (next send: EDESTADDRREQ). The fd stays open and keeps its port, as on the phone. Needs
  CAP_NET_ADMIN; without it, `disconnect` (connect(AF_UNSPEC)) does the same on the wire
  (RST; UDP disconnected), only the app's next TCP error is ECONNRESET.
- `drop_incoming`: a socket filter that drops everything the socket would receive. On a
  listener that is every SYN, dropped before any answer: the same silence as Android's
  eBPF firewall DROP, scoped to this one socket, and gone when the socket closes.
- `defunct`: shutdown(SHUT_RDWR), the visible part of xnu's sodefunct: FIN on a
  connection, RST to new SYNs on a listener (no longer listening, port still held).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import ipaddress
import socket
import struct

SOCK_DIAG_BY_FAMILY = 20
SOCK_DESTROY = 21
NETLINK_SOCK_DIAG = 4
SO_COOKIE = 57
SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
_NLM_F_REQUEST, _NLM_F_ACK = 0x1, 0x4
_NLMSG_ERROR = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _addr_words(ip: str) -> bytes:
    packed = ipaddress.ip_address(ip).packed
    return packed + b"\0" * (16 - len(packed))


def destroy_request(sock: socket.socket) -> bytes:
    """The netlink SOCK_DESTROY message naming `sock` by its 4-tuple and cookie."""
    local, remote = sock.getsockname(), sock.getpeername()
    proto = socket.IPPROTO_TCP if sock.type == socket.SOCK_STREAM else socket.IPPROTO_UDP
    cookie = struct.unpack("=Q", sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0]
    sockid = (struct.pack("!HH", local[1], remote[1]) + _addr_words(local[0])
              + _addr_words(remote[0])
              + struct.pack("=III", 0, cookie & 0xFFFFFFFF, cookie >> 32))
    body = struct.pack("=BBBxI", sock.family, proto, 0, 0xFFFFFFFF) + sockid
    return struct.pack("=IHHII", 16 + len(body), SOCK_DESTROY, _NLM_F_REQUEST | _NLM_F_ACK,
                       1, 0) + body


def destroy(sock: socket.socket) -> None:
    """SOCK_DESTROY `sock` (must be connected). Raises OSError with the kernel's errno."""
    msg = destroy_request(sock)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(2)
        nl.sendto(msg, (0, 0))
        reply = nl.recv(4096)
    _, mtype = struct.unpack_from("=IH", reply)
    if mtype == _NLMSG_ERROR:
        (code,) = struct.unpack_from("=i", reply, 16)
        if code:
            raise OSError(-code, f"SOCK_DESTROY: {errno.errorcode.get(-code, -code)}")


def disconnect(sock: socket.socket) -> None:
    """connect(AF_UNSPEC): TCP aborts with RST, UDP forgets its peer; the fd keeps its port."""
    addr = struct.pack("=H14x", socket.AF_UNSPEC)
    if _libc.connect(sock.fileno(), ctypes.c_char_p(addr), len(addr)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"connect(AF_UNSPEC): {errno.errorcode.get(code, code)}")


def abort(sock: socket.socket) -> str:
    """Tear `sock` down as Android does; returns the mechanism used."""
    try:
        destroy(sock)
        return "sock_destroy"
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EACCES, errno.EPROTONOSUPPORT):
            raise
    disconnect(sock)
    return "connect_af_unspec"


def drop_incoming(sock: socket.socket) -> None:
    """Attach a classic BPF program `ret #0`: the kernel drops all the socket would get."""
    insn = struct.pack("=HBBI", 0x06, 0, 0, 0)  # BPF_RET | BPF_K, accept 0 bytes
    buf = ctypes.create_string_buffer(insn, len(insn))
    prog = struct.pack("@HP", 1, ctypes.addressof(buf))  # struct sock_fprog, native layout
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)


def allow_incoming(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
    except OSError as exc:
        if exc.errno != errno.ENOENT:  # no filter attached: nothing to undo
            raise


def defunct(sock: socket.socket) -> None:
    """shutdown(SHUT_RDWR): FIN on a connection; a listener stops listening (SYN -> RST)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError as exc:
        if exc.errno != errno.ENOTCONN:
            raise
