"""Go net.OpError text -> operation, protocol, endpoints and errno.

Go prints an OpError as ``Op Net [Source->]Addr: Err`` (src/net/net.go), where ``Err`` is
usually ``<syscall>: <errno text>``. Either address may be missing. This module also reads
the endpoint phrases apps and servers put around such errors ("recv new connection from
A:P", "conn A:P write err") and the Java libcore ``<fn> failed: ERRNO`` form.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

from analyzer.logs.errors import canonical_errno

GO_OPS = ("dial", "listen", "accept", "read", "write", "close", "set", "file")
SYSCALLS = frozenset({
    "read", "write", "connect", "bind", "listen", "accept", "accept4", "sendto", "recvfrom",
    "sendmsg", "recvmsg", "socket", "setsockopt", "getsockopt", "close", "shutdown",
    "writev", "readv", "sendfile", "getsockname", "getpeername", "wsarecv", "wsasend",
})

_NET = r"(?:tcp[46]?|udp[46]?|ip[46]?(?::\w+)?|unix(?:gram|packet)?)"
# Address tokens are taken loosely (anything without blanks) and validated afterwards, so a
# shortened example such as "read tcp …: i/o timeout" still yields op, proto and errno.
_OP_RE = re.compile(
    r"(?<![\w./-])(?P<op>" + "|".join(GO_OPS) + r") (?P<net>" + _NET + r")"
    r"(?: (?P<a1>[^\s>]+?)(?:->(?P<a2>\S+?))?)?: (?P<err>.*)$")
_SYSCALL_RE = re.compile(r"(?P<sys>[a-z0-9]+): (?P<rest>.*)$", re.DOTALL)
_HOSTPORT_RE = re.compile(r"^(?:\[(?P<v6>[^\]]*)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})$")

# Java libcore: "sendto failed: EPIPE (Broken pipe)", "isConnected failed: ECONNREFUSED (...)".
_JAVA_FN_RE = re.compile(r"\b(?P<fn>[a-zA-Z]+) failed: E[A-Z]+\b")
# Function or label word -> the operation column's vocabulary.
OP_ALIASES = {
    "sendto": "write", "send": "write", "sendmsg": "write", "write": "write", "writev": "write",
    "recvfrom": "read", "recv": "read", "recvmsg": "read", "read": "read", "readv": "read",
    "connect": "dial", "isconnected": "dial", "dial": "dial",
    "bind": "bind", "listen": "listen", "accept": "accept", "close": "close",
}
_LABEL_OP_RE = re.compile(r"\b(read|write|dial|accept|listen|bind|connect|send|recv|sendto|recvfrom)",
                          re.IGNORECASE)

_IP = r"(?:\[[0-9A-Fa-f:.%\w]+\]|\d{1,3}(?:\.\d{1,3}){3})"
_EP = r"(?P<ep>" + _IP + r":\d{1,5})"
# Endpoint phrases around errors: (regex, side). Only used to fill what the error text lacks.
ENDPOINT_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), side) for p, side in (
        (r"\bfrom /(?P<ip>[\d.]+|[0-9a-f:]+) \(port (?P<port>\d+)\)", "local"),  # Java connect
        (r"\bto /(?P<ip>[\d.]+|[0-9a-f:]+) \(port (?P<port>\d+)\)", "remote"),
        (r"\b(?:listen(?:ing)?|bound|bind(?:ing)?|local(?:[ _]?addr(?:ess)?)?)\s*(?:on|to|=|:)?\s*" + _EP,
         "local"),
        (r"\b(?:from|conn(?:ection)?|dial(?:ing)?(?: to)?|connect(?:ing|ed)? to|send(?:ing)? to|"
         r"sendto|peer|remote(?:[ _]?addr(?:ess)?)?|client|server)\s*[=:]?\s*" + _EP, "remote"),
    ))


@dataclass(frozen=True)
class GoOpError:
    """One Go net.OpError found in a text."""

    op: str                  # Go's Op: dial, listen, accept, read, write, close
    net: str                 # as printed: tcp, tcp4, udp6, ip:icmp...
    proto: str               # net without the address family: tcp, udp, ip, unix
    syscall: str | None      # connect, bind, write, sendto... (None for i/o timeout, EOF...)
    local_ip: str | None
    local_port: int | None
    remote_ip: str | None
    remote_port: int | None
    err_text: str            # everything after "ADDR: "
    errno: str | None        # canonical name (errors.canonical_errno)
    start: int               # offset of the op word in the text searched


def split_hostport(text: str | None) -> tuple[str | None, int | None]:
    """('10.0.0.1', 80) from '10.0.0.1:80', (None, 33322) from ':33322', IPv6 in brackets."""
    if not text:
        return None, None
    m = _HOSTPORT_RE.match(text)
    if not m:
        return None, None
    port = int(m.group("port"))
    if port > 65535:
        return None, None
    host = m.group("v6") if m.group("v6") is not None else m.group("host")
    return _valid_ip(host), port


@lru_cache(maxsize=4096)  # the same few addresses recur on every line
def _valid_ip(host: str | None) -> str | None:
    if not host:
        return None
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None  # a host name: not an address we can match to packets
    return host


def parse_go_error(text: str, os_hint: str | None = None) -> GoOpError | None:
    """The first Go OpError in ``text`` (it may follow an app's own label), or None."""
    if not text:
        return None
    offset = 0
    for line in text.split("\n"):  # the pattern runs to the end of one line
        m = _OP_RE.search(line)
        if m:
            return _from_match(m, line, offset, os_hint)
        offset += len(line) + 1
    return None


def _from_match(m: re.Match[str], line: str, offset: int, os_hint: str | None) -> GoOpError:
    op, net = m.group("op"), m.group("net")
    a1, a2 = m.group("a1"), m.group("a2")
    if a2 is not None:               # "SRC->DST": Source is ours, Addr the peer's
        local, remote = split_hostport(a1), split_hostport(a2)
    elif op in ("dial",):            # only Addr printed: the peer dialled
        local, remote = (None, None), split_hostport(a1)
    else:                            # listen/accept/unconnected read-write print the local side
        local, remote = split_hostport(a1), (None, None)
    err_text = m.group("err")
    quote = line[m.start() - 1] if m.start() else ""
    if quote in ("\"", "'"):       # quoted inside logfmt/JSON: the error ends at the quote
        err_text = err_text.split(quote, 1)[0]
    err_text = err_text.rstrip()
    sm = _SYSCALL_RE.match(err_text)
    syscall = sm.group("sys") if sm and sm.group("sys") in SYSCALLS else None
    return GoOpError(
        op=op, net=net, proto=re.sub(r"[46]$", "", net.split(":")[0]), syscall=syscall,
        local_ip=local[0], local_port=local[1], remote_ip=remote[0], remote_port=remote[1],
        err_text=err_text, errno=canonical_errno(err_text, os_hint), start=offset + m.start())


def endpoint_phrases(text: str) -> dict[str, object]:
    """local_ip/local_port/remote_ip/remote_port named by phrases in ``text`` (first wins)."""
    found: dict[str, object] = {}
    for regex, side in ENDPOINT_PHRASES:
        for m in regex.finditer(text):
            if "ep" in m.groupdict() and m.group("ep"):
                ip, port = split_hostport(m.group("ep"))
            else:
                ip, port = _valid_ip(m.group("ip")), int(m.group("port"))
                port = port if port <= 65535 else None
            if ip is None or port is None or f"{side}_ip" in found:
                continue
            found[f"{side}_ip"], found[f"{side}_port"] = ip, port
    return found


def java_function(text: str) -> str | None:
    """The failing libcore function in '... sendto failed: EPIPE (...)', or None."""
    found = _JAVA_FN_RE.findall(text)
    return found[-1] if found else None


def op_from_word(word: str | None) -> str | None:
    """Normalised operation for a syscall, Java function or label word."""
    return OP_ALIASES.get(word.lower()) if word else None


def op_from_label(label: str | None) -> str | None:
    """The operation an app's label names ('conn X read error' -> 'read'), or None."""
    if not label:
        return None
    m = _LABEL_OP_RE.search(label)
    return op_from_word(m.group(1)) if m else None
