"""pcap -> pcapng, streaming, at the capture's own timestamp resolution.

tcpdump (libpcap 1.10) can only write pcap; the recorder promises pcapng, so a tcpdump
recording is rewritten here record by record (memory stays flat, timestamps are not rounded).
"""

from __future__ import annotations

import struct
from pathlib import Path

from analyzer.exceptions import RecordError

_MAGICS = {  # magic as read little-endian -> (byte order, decimal digits of the fraction)
    0xA1B2C3D4: ("<", 6), 0xA1B23C4D: ("<", 9),
    0xD4C3B2A1: (">", 6), 0x4D3CB2A1: (">", 9),
}


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad4(value)


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def convert(src: str | Path, dst: str | Path, if_name: str = "", app: str = "analyzer") -> int:
    """Write pcap file `src` as pcapng `dst`; returns the number of packets copied."""
    src, dst = Path(src), Path(dst)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        head = fin.read(24)
        if len(head) < 24:
            raise RecordError(f"{src}: capture is empty (no pcap header)")
        (magic,) = struct.unpack("<I", head[:4])
        if magic not in _MAGICS:
            raise RecordError(f"{src}: not a pcap file")
        order, digits = _MAGICS[magic]
        snaplen, network = struct.unpack(order + "II", head[16:24])
        linktype = network & 0x0FFFFFFF  # upper bits may carry FCS info

        shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
        shb += _option(4, app.encode()) + _option(0, b"")
        fout.write(_block(0x0A0D0D0A, shb))
        idb = struct.pack("<HHI", linktype, 0, snaplen)
        if if_name:
            idb += _option(2, if_name.encode())
        idb += _option(9, bytes([digits])) + _option(0, b"")
        fout.write(_block(1, idb))

        scale = 10 ** digits
        count = 0
        rec = struct.Struct(order + "IIII")
        while True:
            hdr = fin.read(16)
            if len(hdr) < 16:
                break  # a torn trailing header is not a packet
            sec, frac, incl, orig = rec.unpack(hdr)
            data = fin.read(incl)
            if len(data) < incl:
                break
            ts = sec * scale + frac
            epb = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, incl, orig)
            fout.write(_block(6, epb + _pad4(data)))
            count += 1
    return count
