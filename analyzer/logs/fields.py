"""One log message -> the facts the correlator needs: errno, operation, endpoints, label.

The error text is trusted over the app's own words: a real iOS line says "udp write err:"
in front of a "write tcp" error, so the label is kept separately and never sets proto.
"""

from __future__ import annotations

from functools import lru_cache

from analyzer.logs.errors import canonical_errno
from analyzer.logs.goerror import (endpoint_phrases, java_function, op_from_label, op_from_word,
                                   parse_go_error)
from analyzer.logs.lifecycle import lifecycle_of

FIELD_NAMES = ("label", "errno", "op", "syscall", "proto", "local_ip", "local_port",
               "remote_ip", "remote_port", "lifecycle")


def _label(prefix: str) -> str | None:
    # "udp write err:  " -> "udp write err"; logfmt 'msg="x" err="' -> 'msg="x" err'
    label = prefix.strip().rstrip(":=\"' ").strip()
    return label or None


def message_fields(message: str, os_hint: str | None = None) -> dict[str, object]:
    """Fields named by one message; absent ones are None."""
    return dict(_message_fields(message, os_hint))


@lru_cache(maxsize=16384)  # soak-test logs repeat the same messages many times
def _message_fields(message: str, os_hint: str | None) -> tuple[tuple[str, object], ...]:
    out: dict[str, object] = dict.fromkeys(FIELD_NAMES)
    if not message:
        return tuple(out.items())
    go = parse_go_error(message, os_hint)
    if go is not None:
        out.update(label=_label(message[:go.start]), errno=go.errno, op=go.op,
                   syscall=go.syscall, proto=go.proto, local_ip=go.local_ip,
                   local_port=go.local_port, remote_ip=go.remote_ip, remote_port=go.remote_port)
        if go.errno is None:  # e.g. an error wrapped after the OpError text
            out["errno"] = canonical_errno(message[go.start:], os_hint)
    else:
        errno = canonical_errno(message, os_hint)
        out["errno"] = errno
        if errno is not None:
            fn = java_function(message)
            if fn:
                out.update(syscall=fn, op=op_from_word(fn))
            else:
                # "conn 10.0.0.110:33322 read error: EOF": the op is only in the label.
                head, sep, _ = message.rpartition(":")
                if sep:
                    out["label"] = _label(head)
                    out["op"] = op_from_label(head)
    for key, value in endpoint_phrases(message).items():
        if out[key] is None:
            out[key] = value
    out["lifecycle"] = lifecycle_of(message)
    return tuple(out.items())


def merged_fields(lines: list[str], os_hint: str | None = None) -> dict[str, object]:
    """Fields of a multi-line event: the head line first, continuation lines fill the gaps.

    A Go ``panic: dial tcp ...`` line attached to an unrelated line before it still gives
    the event its errno and endpoints.
    """
    out = message_fields(lines[0], os_hint) if lines else dict.fromkeys(FIELD_NAMES)
    for line in lines[1:]:
        if out["errno"] is not None and out["lifecycle"] is not None:
            break
        extra = message_fields(line, os_hint)
        if out["errno"] is None and extra["errno"] is not None:
            for key in FIELD_NAMES:
                if key != "lifecycle" and (out[key] is None or key in ("errno", "label")):
                    out[key] = extra[key]
        if out["lifecycle"] is None:
            out["lifecycle"] = extra["lifecycle"]
    return out
