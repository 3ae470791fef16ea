"""pcap -> pcapng conversion keeps every packet and the full timestamp resolution."""

import shutil
import struct
import subprocess
from decimal import Decimal

import pytest

from analyzer.capture.pcapng import convert
from analyzer.exceptions import RecordError


def _pcap(path, records, nano=True, big_endian=False, linktype=1):
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    data = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for sec, frac, payload in records:
        data += struct.pack(order + "IIII", sec, frac, len(payload), len(payload) + 4) + payload
    path.write_bytes(data)


def _blocks(data):
    off, out = 0, []
    while off < len(data):
        btype, length = struct.unpack_from("<II", data, off)
        out.append((btype, data[off + 8: off + length - 4]))
        off += length
    return out


@pytest.mark.parametrize("nano,big", [(True, False), (False, True)])
def test_convert_structure_and_timestamps(tmp_path, nano, big):
    src, dst = tmp_path / "a.pcap", tmp_path / "a.pcapng"
    _pcap(src, [(1720089481, 123456789 if nano else 123456, b"\x01" * 61),
                (1720089482, 5, b"\x02" * 64)], nano=nano, big_endian=big)
    assert convert(src, dst, if_name="lo") == 2
    blocks = _blocks(dst.read_bytes())
    assert [b[0] for b in blocks] == [0x0A0D0D0A, 1, 6, 6]
    idb = blocks[1][1]
    assert struct.unpack_from("<H", idb)[0] == 1
    assert bytes([9 if nano else 6]) in idb[8:]  # if_tsresol option value
    _, hi, lo, caplen, origlen = struct.unpack_from("<IIIII", blocks[2][1])
    scale = 10 ** (9 if nano else 6)
    assert (hi << 32 | lo) == 1720089481 * scale + (123456789 if nano else 123456)
    assert (caplen, origlen) == (61, 65)
    assert blocks[2][1][20:20 + 61] == b"\x01" * 61


def test_torn_last_record_is_dropped_not_invented(tmp_path):
    src, dst = tmp_path / "t.pcap", tmp_path / "t.pcapng"
    _pcap(src, [(1, 0, b"x" * 40), (2, 0, b"y" * 40)])
    src.write_bytes(src.read_bytes()[:-10])
    assert convert(src, dst) == 1


def test_not_a_pcap(tmp_path):
    (tmp_path / "bad.pcap").write_bytes(b"hello world, this is not a capture file")
    with pytest.raises(RecordError, match="not a pcap"):
        convert(tmp_path / "bad.pcap", tmp_path / "out.pcapng")


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark on PATH")
def test_tshark_reads_converted_file_with_ns_times(tmp_path):
    # A real Ethernet/IPv4/UDP frame, so tshark dissects it fully.
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    frame = bytes(Ether() / IP(src="127.0.0.2", dst="127.0.0.1") / UDP(sport=33322, dport=15000)
                  / b"udp 1\n")
    src, dst = tmp_path / "r.pcap", tmp_path / "r.pcapng"
    _pcap(src, [(1720089481, 123456789, frame)])
    convert(src, dst, if_name="lo")
    out = subprocess.run(["tshark", "-r", str(dst), "-T", "fields", "-e", "frame.time_epoch",
                          "-e", "udp.srcport"], capture_output=True, text=True, check=True)
    ts, sport = out.stdout.strip().split("\t")
    assert Decimal(ts) == Decimal("1720089481.123456789")
    assert sport == "33322"
