"""Byte-exact writers for the capture layouts the reader must accept (test helpers)."""

from __future__ import annotations

import struct


def pcap(records, linktype=1, big=False, nanos=False, modified=False, version=(2, 4), snaplen=65535):
    """records: [(ts_sec, ts_frac, data)] -> classic pcap bytes."""
    e = ">" if big else "<"
    magic = 0xA1B2CD34 if modified else (0xA1B23C4D if nanos else 0xA1B2C3D4)
    out = [struct.pack(e + "IHHiIII", magic, version[0], version[1], 0, 0, snaplen, linktype)]
    for sec, frac, data in records:
        out.append(struct.pack(e + "IIII", sec, frac, len(data), len(data)))
        if modified:
            out.append(struct.pack(e + "IHBB", 0, 0, 0, 0))
        out.append(data)
    return b"".join(out)


def _block(e, btype, body):
    body += b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack(e + "II", btype, length) + body + struct.pack(e + "I", length)


def _opt(e, code, value):
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(big=False, version=(1, 0)):
    e = ">" if big else "<"
    return _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, version[0], version[1], -1))


def idb(linktype, big=False, tsresol=None, snaplen=0, tsoffset=None):
    e = ">" if big else "<"
    opts = b""
    if tsresol is not None:
        opts += _opt(e, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += _opt(e, 14, struct.pack(e + "q", tsoffset))
    if opts:
        opts += struct.pack(e + "HH", 0, 0)
    return _block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts)


def epb(iface, units, data, big=False):
    e = ">" if big else "<"
    return _block(e, 6, struct.pack(e + "IIIII", iface, units >> 32, units & 0xFFFFFFFF,
                                    len(data), len(data)) + data)


def opb(iface, units, data, big=False):
    e = ">" if big else "<"
    return _block(e, 2, struct.pack(e + "HHIIII", iface, 0, units >> 32, units & 0xFFFFFFFF,
                                    len(data), len(data)) + data)


def spb(data, big=False):
    e = ">" if big else "<"
    return _block(e, 3, struct.pack(e + "I", len(data)) + data)


def custom(big=False):
    e = ">" if big else "<"
    return _block(e, 0xBAD, struct.pack(e + "I", 32473) + b"hello")


def unknown_block(btype=0x1234, big=False):
    e = ">" if big else "<"
    return _block(e, btype, b"abcd")
