"""Errno catalogue: every OS / language spelling of a socket error -> one canonical name.

Canonical names are the POSIX symbols (EPIPE, ECONNRESET, ...) plus three conditions that
are not errnos but matter just as much for teardown forensics:

- ``EOF``      the peer closed cleanly (Go io.EOF, Java EOFException, OkHttp "end of stream")
- ``DEADLINE`` a timer the application set fired (Go "i/o timeout", SocketTimeoutException)
- ``CLOSED``   the socket was closed locally ("use of closed network connection")

Everything is table-driven: add a spelling by adding a row, not a branch.
"""

from __future__ import annotations

import re

# name: (Linux/bionic number, Darwin number, strerror spellings seen on either system).
# Numbers from the kernel headers; strings from glibc/bionic, Darwin libc and Go's tables.
ERRNO_TABLE: dict[str, tuple[int, int, tuple[str, ...]]] = {
    "EPERM": (1, 1, ("operation not permitted",)),
    "EBADF": (9, 9, ("bad file descriptor",)),
    "EINVAL": (22, 22, ("invalid argument",)),
    "EPIPE": (32, 32, ("broken pipe",)),
    "EDESTADDRREQ": (89, 39, ("destination address required",)),
    # Darwin has both ENOTSUP (45) and EOPNOTSUPP (102); Linux makes them one (95).
    "EOPNOTSUPP": (95, 102, ("operation not supported on socket", "operation not supported")),
    "EADDRINUSE": (98, 48, ("address already in use",)),
    "EADDRNOTAVAIL": (99, 49, ("cannot assign requested address",
                               "can't assign requested address",
                               "can\u2019t assign requested address")),
    "ENETDOWN": (100, 50, ("network is down",)),
    "ENETUNREACH": (101, 51, ("network is unreachable",)),
    "ECONNABORTED": (103, 53, ("software caused connection abort",)),
    "ECONNRESET": (104, 54, ("connection reset by peer",)),
    "ENOBUFS": (105, 55, ("no buffer space available",)),
    "ENOTCONN": (107, 57, ("transport endpoint is not connected", "socket is not connected")),
    "ETIMEDOUT": (110, 60, ("connection timed out", "operation timed out")),
    "ECONNREFUSED": (111, 61, ("connection refused",)),
    "EHOSTUNREACH": (113, 65, ("no route to host",)),
}

# Extra numbers that mean a catalogued name on one system only.
_EXTRA_NUMBERS = {"darwin": {45: "EOPNOTSUPP"}, "linux": {}}

# Symbol spellings printed verbatim (libcore "sendto failed: EPIPE (...)", Swift ".posix(.EPIPE)").
_SYMBOL_ALIASES = {name: name for name in ERRNO_TABLE} | {
    "ENOTSUP": "EOPNOTSUPP",
}

# Spellings that are not strerror texts. Lower case; matched as whole phrases.
_PHRASES: tuple[tuple[str, str], ...] = (
    # Java / OpenJDK paths print these without "by peer" or an errno.
    ("connection reset", "ECONNRESET"),
    ("connection abort", "ECONNABORTED"),
    # NSURLError descriptions.
    ("the network connection was lost", "ECONNRESET"),
    ("could not connect to the server", "ECONNREFUSED"),
    ("the internet connection appears to be offline", "ENETDOWN"),
    ("the request timed out", "DEADLINE"),
    # Deadlines the application set.
    ("i/o timeout", "DEADLINE"),
    ("deadline exceeded", "DEADLINE"),
    ("sockettimeoutexception", "DEADLINE"),
    ("read timed out", "DEADLINE"),
    ("connect timed out", "DEADLINE"),
    # Locally closed sockets.
    ("use of closed network connection", "CLOSED"),
    ("socket closed", "CLOSED"),
    ("socket is closed", "CLOSED"),
    # Clean end of stream.
    ("unexpected end of stream", "EOF"),
    ("end of stream", "EOF"),
    ("eofexception", "EOF"),
)

# NSURLError / kCFErrorDomainCFNetwork codes (same numbers in both domains).
NSURL_CODES: dict[int, str] = {
    -1001: "DEADLINE",       # NSURLErrorTimedOut: the request's own timer
    -1004: "ECONNREFUSED",   # NSURLErrorCannotConnectToHost
    -1005: "ECONNRESET",     # NSURLErrorNetworkConnectionLost
    -1009: "ENETDOWN",       # NSURLErrorNotConnectedToInternet
}
_NSURL_NAMES = {
    "timedout": -1001, "cannotconnecttohost": -1004,
    "networkconnectionlost": -1005, "notconnectedtointernet": -1009,
}

# Text that only one OS family prints; used to read bare numbers when no hint is given.
_DARWIN_MARKERS = ("nsposixerrordomain", "posixerrorcode", "nsurlerror", "kcfstream",
                   "kcferrordomain", ".posix(", "can't assign", "socket is not connected",
                   "operation timed out", "operation not supported on socket")
_LINUX_MARKERS = ("transport endpoint", "cannot assign requested", "connection timed out",
                  "libcore", "java.", "android")


def _build_phrase_regex() -> tuple[re.Pattern[str], dict[str, str]]:
    mapping: dict[str, str] = {}
    for name, (_, _, texts) in ERRNO_TABLE.items():
        for text in texts:
            mapping[text] = name
    for text, name in _PHRASES:
        mapping[text] = name
    # Longest first so "connection reset by peer" wins over "connection reset".
    alternatives = sorted(mapping, key=len, reverse=True)
    pattern = r"(?<![a-z])(?:" + "|".join(re.escape(a) for a in alternatives) + r")(?![a-z])"
    return re.compile(pattern), mapping


_PHRASE_RE, _PHRASE_MAP = _build_phrase_regex()
_SYMBOL_RE = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(sorted(_SYMBOL_ALIASES, key=len, reverse=True))
                        + r")(?![A-Za-z0-9_])")
# Go's io.EOF / io.ErrUnexpectedEOF print as upper-case EOF; "eof" in prose is not that.
_EOF_RE = re.compile(r"(?<![A-Za-z0-9_])EOF(?![A-Za-z0-9_])")
# Darwin-only numeric forms: Swift and Foundation print Darwin errno numbers.
_DARWIN_NUMBER_RES = (
    re.compile(r"POSIXErrorCode\(rawValue:\s*(\d+)\)"),
    re.compile(r"NSPOSIXErrorDomain\s+Code=(\d+)"),
    re.compile(r"_kCFStreamErrorCodeKey=(\d+)"),
)
_KCF_DOMAIN_RE = re.compile(r"_kCFStreamErrorDomainKey=(\d+)")
_NSURL_CODE_RE = re.compile(
    r"(?:NSURLErrorDomain|kCFErrorDomainCFNetwork|URLError)[^\n]{0,40}?(?:Code=|code[:= ]\s*|\()(-\d{3,5})")
_NSURL_NAME_RE = re.compile(r"(?:NSURLError|URLError(?:\.Code)?\.|\.)(" + "|".join(_NSURL_NAMES) + r")\b",
                            re.IGNORECASE)
_PY_ERRNO_RE = re.compile(r"\[Errno (\d+)\]")

_BY_NUMBER = {
    "linux": {linux: name for name, (linux, _, _) in ERRNO_TABLE.items()} | _EXTRA_NUMBERS["linux"],
    "darwin": {darwin: name for name, (_, darwin, _) in ERRNO_TABLE.items()} | _EXTRA_NUMBERS["darwin"],
}

CANONICAL_NAMES = tuple(ERRNO_TABLE) + ("EOF", "DEADLINE", "CLOSED")


def errno_from_number(number: int, os_name: str) -> str | None:
    """Canonical name of errno ``number`` on ``os_name`` ('linux' or 'darwin'), or None."""
    return _BY_NUMBER.get(os_name, {}).get(number)


def infer_os(text: str) -> str | None:
    """'darwin' or 'linux' when the text carries a spelling only that OS prints."""
    low = text.lower()
    if any(m in low for m in _DARWIN_MARKERS):
        return "darwin"
    if any(m in low for m in _LINUX_MARKERS):
        return "linux"
    return None


def _last(matches: list[tuple[int, str]]) -> str | None:
    # Wrapped errors (Go, Java "Caused by") print the root cause last.
    return max(matches)[1] if matches else None


def canonical_errno(text: str, os_hint: str | None = None) -> str | None:
    """The canonical error named anywhere in ``text``, or None.

    Explicit spellings win over prose: an errno symbol, then a Darwin error code, then a
    strerror / Go / Java phrase, then a Python ``[Errno N]`` read with the OS numbering
    (``os_hint`` or what the text itself reveals), then NSURLError codes.
    """
    if not text:
        return None
    symbols = [(m.start(), _SYMBOL_ALIASES[m.group(1)]) for m in _SYMBOL_RE.finditer(text)]
    if symbols:
        return _last(symbols)

    darwin: list[tuple[int, str]] = []
    kcf_domain = _KCF_DOMAIN_RE.search(text)
    for regex in _DARWIN_NUMBER_RES:
        for m in regex.finditer(text):
            # kCFStream codes are errnos only in the POSIX domain (1); other domains reuse numbers.
            if "kCFStream" in regex.pattern and kcf_domain and kcf_domain.group(1) != "1":
                continue
            name = errno_from_number(int(m.group(1)), "darwin")
            if name:
                darwin.append((m.start(), name))
    if darwin:
        return _last(darwin)

    low = text.lower()
    phrases = [(m.start(), _PHRASE_MAP[m.group(0)]) for m in _PHRASE_RE.finditer(low)]
    phrases += [(m.start(), "EOF") for m in _EOF_RE.finditer(text)]
    if phrases:
        return _last(phrases)

    py = list(_PY_ERRNO_RE.finditer(text))
    if py:
        os_name = os_hint or infer_os(text)
        found = []
        for m in py:
            number = int(m.group(1))
            if os_name:
                name = errno_from_number(number, os_name)
            else:
                # Without a hint, accept a number only where both numberings agree
                # (Linux 39 is ENOTEMPTY, Darwin 39 EDESTADDRREQ: guessing would mislead).
                lin, dar = errno_from_number(number, "linux"), errno_from_number(number, "darwin")
                name = lin if lin == dar else None
            if name:
                found.append((m.start(), name))
        if found:
            return _last(found)

    codes = [(m.start(), NSURL_CODES[int(m.group(1))]) for m in _NSURL_CODE_RE.finditer(text)
             if int(m.group(1)) in NSURL_CODES]
    codes += [(m.start(), NSURL_CODES[_NSURL_NAMES[m.group(1).lower()]])
              for m in _NSURL_NAME_RE.finditer(text)]
    return _last(codes)
