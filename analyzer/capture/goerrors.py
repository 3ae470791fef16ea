"""Error texts exactly as a Go program prints them (net.OpError, os.SyscallError, io.EOF).

The capture layer's server and phone stand-in both write Go-style logs, so the log reader
is exercised on the same spellings the field report shows. Our sockets are Linux sockets;
the phone stand-in may speak for an iPhone, so errno texts are looked up by errno *name*
in the table of the platform being emulated.
"""

from __future__ import annotations

import errno as _errno
import ipaddress
import os

# Go's syscall tables (lowercase). Only where Darwin differs does it get its own entry.
_LINUX = {
    "EBADF": "bad file descriptor",
    "EINVAL": "invalid argument",
    "EPERM": "operation not permitted",
    "EPIPE": "broken pipe",
    "EDESTADDRREQ": "destination address required",
    "EADDRINUSE": "address already in use",
    "EADDRNOTAVAIL": "cannot assign requested address",
    "ENETDOWN": "network is down",
    "ENETUNREACH": "network is unreachable",
    "ECONNABORTED": "software caused connection abort",
    "ECONNRESET": "connection reset by peer",
    "ENOBUFS": "no buffer space available",
    "ENOTCONN": "transport endpoint is not connected",
    "ETIMEDOUT": "connection timed out",
    "ECONNREFUSED": "connection refused",
    "EHOSTUNREACH": "no route to host",
    "EOPNOTSUPP": "operation not supported",
}
_DARWIN = dict(_LINUX, **{
    "EADDRNOTAVAIL": "can't assign requested address",
    "ENOTCONN": "socket is not connected",
    "ETIMEDOUT": "operation timed out",
    "EOPNOTSUPP": "operation not supported on socket",
})
_TABLES = {"linux": _LINUX, "android": _LINUX, "darwin": _DARWIN, "ios": _DARWIN}

EOF_TEXT = "EOF"  # io.EOF is never wrapped in an OpError
TIMEOUT_TEXT = "i/o timeout"  # a Go deadline: no syscall part
CLOSED_TEXT = "use of closed network connection"


def errno_text(code: int, platform: str = "linux") -> str:
    """Go's text for errno `code` (a Linux number, as our sockets report it)."""
    name = _errno.errorcode.get(code, "")
    table = _TABLES[platform]
    if name in table:
        return table[name]
    return os.strerror(code).lower()


def hostport(ip: str, port: int) -> str:
    """net.JoinHostPort: IPv6 literals in brackets."""
    if ip and ipaddress.ip_address(ip.split("%")[0]).version == 6:
        return f"[{ip}]:{port}"
    return f"{ip}:{port}"


def op_error(op: str, net: str, addr: str, err: str, source: str | None = None) -> str:
    """net.OpError.Error(): `op net [source->]addr: err`."""
    where = f"{source}->{addr}" if source else addr
    return f"{op} {net} {where}: {err}"


def syscall_error(syscall: str, code: int, platform: str = "linux") -> str:
    """os.SyscallError.Error(): `syscall: errno text`."""
    return f"{syscall}: {errno_text(code, platform)}"


def describe(exc: BaseException, op: str, net: str, addr: str, source: str | None = None,
             syscall: str | None = None, platform: str = "linux") -> str:
    """The Go error text for a Python socket exception raised by `op`.

    `syscall` defaults to `op` (Go's read/write/connect/bind syscalls share the op's name
    except for dial, whose syscall is connect or bind).
    """
    if isinstance(exc, TimeoutError) and not exc.errno:  # socket.timeout is TimeoutError
        return op_error(op, net, addr, TIMEOUT_TEXT, source)
    code = getattr(exc, "errno", None)
    if code is None:
        return op_error(op, net, addr, str(exc), source)
    return op_error(op, net, addr, syscall_error(syscall or op, code, platform), source)
