"""The errno catalogue: every spelling in PLATFORMS.md section 3 -> one canonical name."""

import pytest

from analyzer.logs.errors import ERRNO_TABLE, canonical_errno, errno_from_number, infer_os

# (text, os_hint, expected)
SPELLINGS = [
    # Go texts, Linux and Darwin (lower case, from syscall/zerrors tables)
    ("write: broken pipe", None, "EPIPE"),
    ("write: destination address required", None, "EDESTADDRREQ"),
    ("bind: address already in use", None, "EADDRINUSE"),
    ("bind: cannot assign requested address", None, "EADDRNOTAVAIL"),
    ("bind: can't assign requested address", None, "EADDRNOTAVAIL"),
    ("connect: network is down", None, "ENETDOWN"),
    ("connect: network is unreachable", None, "ENETUNREACH"),
    ("read: software caused connection abort", None, "ECONNABORTED"),
    ("read: connection reset by peer", None, "ECONNRESET"),
    ("write: no buffer space available", None, "ENOBUFS"),
    ("read: transport endpoint is not connected", None, "ENOTCONN"),
    ("read: socket is not connected", None, "ENOTCONN"),
    ("connect: connection timed out", None, "ETIMEDOUT"),
    ("connect: operation timed out", None, "ETIMEDOUT"),
    ("connect: connection refused", None, "ECONNREFUSED"),
    ("connect: no route to host", None, "EHOSTUNREACH"),
    ("close: bad file descriptor", None, "EBADF"),
    ("setsockopt: operation not permitted", None, "EPERM"),
    ("setsockopt: invalid argument", None, "EINVAL"),
    ("write: operation not supported", None, "EOPNOTSUPP"),
    # glibc / bionic / Darwin strerror (capitalised)
    ("Transport endpoint is not connected", None, "ENOTCONN"),
    ("Socket is not connected", None, "ENOTCONN"),
    ("Operation timed out", None, "ETIMEDOUT"),
    ("Can't assign requested address", None, "EADDRNOTAVAIL"),
    ("Operation not supported on socket", None, "EOPNOTSUPP"),
    # Java / Kotlin libcore
    ("java.net.SocketException: sendto failed: EPIPE (Broken pipe)", None, "EPIPE"),
    ("recvfrom failed: ECONNRESET (Connection reset by peer)", None, "ECONNRESET"),
    ("java.net.BindException: bind failed: EADDRINUSE (Address already in use)", None, "EADDRINUSE"),
    ("java.net.ConnectException: failed to connect to /10.0.1.238 (port 15100) from /10.0.0.159 "
     "(port 33322) after 10000ms: isConnected failed: ECONNREFUSED (Connection refused)", None,
     "ECONNREFUSED"),
    ("... connect failed: ECONNABORTED (Software caused connection abort)", None, "ECONNABORTED"),
    ("java.net.SocketException: Software caused connection abort", None, "ECONNABORTED"),
    ("java.net.SocketException: Connection reset", None, "ECONNRESET"),
    ("java.net.SocketException: Broken pipe", None, "EPIPE"),
    ("java.net.SocketException: Socket closed", None, "CLOSED"),
    ("java.net.SocketTimeoutException: timeout", None, "DEADLINE"),
    ("java.net.SocketTimeoutException: failed to connect to /10.0.1.238 (port 15100) after 10000ms",
     None, "DEADLINE"),
    ("java.io.IOException: unexpected end of stream on http://10.0.1.238:15100/...", None, "EOF"),
    ("java.io.EOFException", None, "EOF"),
    # Go special conditions
    ("read tcp 10.0.0.1:1->10.0.0.2:2: i/o timeout", None, "DEADLINE"),
    ("context deadline exceeded", None, "DEADLINE"),
    ("accept tcp [::]:15101: use of closed network connection", None, "CLOSED"),
    ("conn 10.0.0.110:33322 read error: EOF", None, "EOF"),
    ("unexpected EOF", None, "EOF"),
    # Swift / Foundation (Darwin numbers)
    ("POSIXErrorCode(rawValue: 57): Socket is not connected", None, "ENOTCONN"),
    ("POSIXErrorCode(rawValue: 32)", None, "EPIPE"),
    (".posix(.ENOTCONN)", None, "ENOTCONN"),
    ("Error Domain=NSPOSIXErrorDomain Code=54", None, "ECONNRESET"),
    ('Error Domain=NSURLErrorDomain Code=-1005 "The network connection was lost."', None, "ECONNRESET"),
    ('Error Domain=NSURLErrorDomain Code=-1001 "The request timed out."', None, "DEADLINE"),
    ('Error Domain=NSURLErrorDomain Code=-1004 "Could not connect to the server."', None, "ECONNREFUSED"),
    ("Error Domain=NSURLErrorDomain Code=-1005 (null) UserInfo={_kCFStreamErrorCodeKey=53, "
     "_kCFStreamErrorDomainKey=1}", None, "ECONNABORTED"),
    ("Error Domain=NSURLErrorDomain Code=-1005 UserInfo={_kCFStreamErrorCodeKey=57, "
     "_kCFStreamErrorDomainKey=1}", None, "ENOTCONN"),
    # Python, with the right numbering
    ("ConnectionAbortedError: [Errno 103] Software caused connection abort", "linux", "ECONNABORTED"),
    ("BrokenPipeError: [Errno 32] Broken pipe", None, "EPIPE"),
    ("OSError: [Errno 89] Destination address required", "linux", "EDESTADDRREQ"),
    ("ConnectionResetError: [Errno 54] Connection reset by peer", "darwin", "ECONNRESET"),
    ("OSError: [Errno 89]", "linux", "EDESTADDRREQ"),
    ("OSError: [Errno 39]", "darwin", "EDESTADDRREQ"),
    ("OSError: [Errno 57]", "darwin", "ENOTCONN"),
    ("OSError: [Errno 107]", "linux", "ENOTCONN"),
    ("[Errno 32]", None, "EPIPE"),  # same number on both systems
]


@pytest.mark.parametrize("text,os_hint,expected", SPELLINGS)
def test_spelling(text, os_hint, expected):
    assert canonical_errno(text, os_hint) == expected


@pytest.mark.parametrize("text", ["", "hello world", "connected to server", "the eof marker",
                                  "OSError: [Errno 2] No such file or directory",
                                  "timeout=30s configured"])
def test_no_error_named(text):
    assert canonical_errno(text) is None


def test_bare_number_read_with_os_numbering():
    # Linux 39 is ENOTEMPTY, Darwin 39 EDESTADDRREQ: without an OS we must not guess.
    assert canonical_errno("OSError: [Errno 39]", "linux") is None
    assert canonical_errno("OSError: [Errno 39]") is None
    assert canonical_errno("OSError: [Errno 89]", "darwin") is None
    # The text itself can say which OS it came from.
    assert canonical_errno("NSPOSIXErrorDomain [Errno 57]") == "ENOTCONN"


def test_kcfstream_code_only_in_posix_domain():
    text = "Code=-1005 UserInfo={_kCFStreamErrorCodeKey=53, _kCFStreamErrorDomainKey=12}"
    assert canonical_errno("NSURLErrorDomain " + text) == "ECONNRESET"  # falls back to -1005


def test_tables_cover_both_numberings():
    for name, (linux, darwin, texts) in ERRNO_TABLE.items():
        assert errno_from_number(linux, "linux") == name
        assert errno_from_number(darwin, "darwin") == name
        assert all(canonical_errno(t) == name for t in texts)
    assert errno_from_number(45, "darwin") == "EOPNOTSUPP"  # ENOTSUP


def test_infer_os():
    assert infer_os("Socket is not connected") == "darwin"
    assert infer_os("Transport endpoint is not connected") == "linux"
    assert infer_os("broken pipe") is None


def test_root_cause_printed_last_wins():
    # Go wraps errors outside-in, so the last named condition is the cause.
    assert canonical_errno("context deadline exceeded: read: connection reset by peer") == "ECONNRESET"
