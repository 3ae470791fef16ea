"""Our reader on hand-built files: every container variant, link type and header path."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import zstandard
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from analyzer.dissect import packets as P
from analyzer.dissect.reader import read_all
from analyzer.exceptions import CaptureError

from . import capfiles as cf

V4 = IP(src="10.0.0.159", dst="10.0.1.238") / TCP(sport=33322, dport=15100, flags="S", seq=1000)
V4B = bytes(V4)


def write(tmp_path, data, name="c.pcap"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def one(tmp_path, data, name="c.pcap"):
    table, info = read_all(write(tmp_path, data, name))
    return table, info


def assert_v4_syn(table, i=0):
    assert table["status"][i] == P.DECODE_OK
    assert P.halves_to_addr(table["src_hi"][i], table["src_lo"][i]) == "10.0.0.159"
    assert P.halves_to_addr(table["dst_hi"][i], table["dst_lo"][i]) == "10.0.1.238"
    assert (table["sport"][i], table["dport"][i]) == (33322, 15100)
    assert table["tcp_flags"][i] == P.TCP_SYN and table["seq"][i] == 1000


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("nanos", [False, True])
def test_classic_pcap_byte_orders_and_resolutions(tmp_path, big, nanos):
    frac = 123456789 if nanos else 123456
    table, info = one(tmp_path, cf.pcap([(1720089481, frac, bytes(Ether() / V4))], big=big, nanos=nanos))
    assert info.byte_order == ("be" if big else "le")
    assert table["ts_ns"][0] == 1720089481 * 10**9 + (123456789 if nanos else 123456000)
    assert_v4_syn(table)


def test_modified_kuznetzov_pcap(tmp_path):
    table, info = one(tmp_path, cf.pcap([(1, 2, bytes(Ether() / V4))] * 3, modified=True))
    assert info.packets == 3 and "modified" in info.format
    assert_v4_syn(table, 2)


def test_pcapng_sections_interfaces_and_resolutions(tmp_path):
    eth = bytes(Ether() / V4)
    data = (cf.shb() + cf.idb(1, tsresol=9) + cf.idb(101, tsresol=0x88)
            + cf.epb(0, 1720089481_123456789, eth) + cf.epb(1, (1720089481 << 8) | 128, V4B)
            + cf.custom() + cf.unknown_block()
            + cf.shb(big=True) + cf.idb(228, big=True, tsresol=3, tsoffset=10)
            + cf.epb(0, 1720089481_500, V4B, big=True) + cf.spb(V4B, big=True)
            + cf.opb(0, 1720089482_000, V4B, big=True))
    table, info = one(tmp_path, data, "x.pcap")      # pcapng content under a .pcap name
    assert info.format == "pcapng" and info.sections == 2
    assert info.packets == 6 and info.non_packet == 1
    assert list(table["linktype"]) == [1, 101, -1, 228, 228, 228]
    assert table["ts_ns"][0] == 1720089481_123456789
    assert table["ts_ns"][1] == 1720089481_500000000          # 2^-8 units: 128/256 s
    assert table["ts_ns"][3] == (1720089481 + 10) * 10**9 + 500_000_000   # ms + if_tsoffset
    assert table["ts_ns"][4] == table["ts_ns"][3]               # SPB: no timestamp of its own
    for i in (0, 1, 3, 4, 5):
        assert_v4_syn(table, i)
    assert any("0x1234" in w for w in info.warnings)


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_compressed_files_are_read_by_magic(tmp_path, compress):
    raw = cf.pcap([(5, 0, bytes(Ether() / V4))] * 4)
    data = gzip.compress(raw) if compress == "gzip" else zstandard.ZstdCompressor().compress(raw)
    table, info = one(tmp_path, data, "plain-name.pcap")
    assert info.compression == compress and info.packets == 4
    assert_v4_syn(table, 3)


LINK_CASES = {
    "ethernet": (1, lambda: bytes(Ether() / V4)),
    "vlan": (1, lambda: bytes(Ether() / Dot1Q(vlan=5) / V4)),
    "qinq": (1, lambda: bytes(Ether() / Dot1AD(vlan=7) / Dot1Q(vlan=5) / V4)),
    "raw101": (101, lambda: V4B),
    "raw12": (12, lambda: V4B),
    "raw14": (14, lambda: V4B),
    "ipv4_228": (228, lambda: V4B),
    "null_le": (0, lambda: struct.pack("<I", 2) + V4B),
    "null_be": (0, lambda: struct.pack(">I", 2) + V4B),
    "loop": (108, lambda: struct.pack(">I", 2) + V4B),
    "sll": (113, lambda: struct.pack(">HHH8sH", 0, 1, 6, b"\0" * 8, 0x0800) + V4B),
    "sll2": (276, lambda: struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\0" * 8) + V4B),
    "pktap": (258, lambda: struct.pack("<III", 108, 1, 101) + b"\0" * 96 + V4B),
    "pktap149": (149, lambda: struct.pack("<III", 108, 1, 1) + b"\0" * 96 + bytes(Ether() / V4)),
}


@pytest.mark.parametrize("case", sorted(LINK_CASES))
def test_link_types(tmp_path, case):
    linktype, build = LINK_CASES[case]
    table, info = one(tmp_path, cf.pcap([(1, 0, build())], linktype=linktype))
    assert_v4_syn(table)


def test_ipv6_extension_headers_fragments_and_icmp_quotes(tmp_path):
    v6 = IPv6(src="2001:db8::1", dst="2001:db8::2")
    recs = [
        bytes(Ether() / v6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / TCP(sport=1, dport=2, flags="R")),
        bytes(Ether() / v6 / IPv6ExtHdrFragment(offset=0, m=1, id=9) / UDP(sport=53, dport=5353) / (b"x" * 40)),
        bytes(Ether() / v6 / IPv6ExtHdrFragment(offset=5, m=0, id=9) / (b"y" * 16)),
        bytes(Ether() / IP(src="10.0.1.238", dst="10.0.0.159", flags="MF", frag=0) / UDP(sport=15000, dport=33322) / (b"z" * 64)),
        bytes(Ether() / IP(src="10.0.1.238", dst="10.0.0.159", frag=9) / (b"z" * 16)),
        bytes(Ether() / IP(src="10.0.1.238", dst="10.0.0.159") / ICMP(type=3, code=3)
              / IP(src="10.0.0.159", dst="10.0.1.238") / UDP(sport=33322, dport=15000)),
    ]
    table, info = one(tmp_path, cf.pcap([(1, i, r) for i, r in enumerate(recs)]))
    assert table["proto"][0] == 6 and table["tcp_flags"][0] == P.TCP_RST
    assert P.halves_to_addr(table["src_hi"][0], table["src_lo"][0]) == "2001:db8::1"
    assert table["fragment"][1] == P.FRAG_FIRST and (table["sport"][1], table["dport"][1]) == (53, 5353)
    assert table["fragment"][2] == P.FRAG_LATER and table["sport"][2] == 0
    assert table["fragment"][3] == P.FRAG_FIRST and table["dport"][3] == 33322
    assert table["fragment"][4] == P.FRAG_LATER
    assert (table["icmp_type"][5], table["icmp_code"][5], table["q_proto"][5]) == (3, 3, 17)
    assert (table["q_sport"][5], table["q_dport"][5]) == (33322, 15000)
    assert P.halves_to_addr(table["q_src_hi"][5], table["q_src_lo"][5]) == "10.0.0.159"


def test_unknown_link_type_is_counted_not_fatal(tmp_path):
    table, info = one(tmp_path, cf.pcap([(1, 0, b"\x01\x02\x03")] * 2, linktype=4242))
    assert info.packets == 2 and info.undecodable == 2
    assert any("4242" in w for w in info.warnings)


def test_truncated_tcp_header_is_marked(tmp_path):
    table, info = one(tmp_path, cf.pcap([(1, 0, bytes(Ether() / V4)[:14 + 20 + 8])]))
    assert table["status"][0] == P.DECODE_TRUNCATED and table["sport"][0] == 33322


@pytest.mark.parametrize("cut", [10, 7, 16 + 30])
def test_cut_files(tmp_path, cut):
    data = cf.pcap([(1, 0, bytes(Ether() / V4))] * 2)
    whole_first = 24 + 16 + len(bytes(Ether() / V4))
    cut_at = cut if cut == 10 else whole_first + cut
    path = write(tmp_path, data[:cut_at])
    if cut_at < 24:
        with pytest.raises(CaptureError, match="header cut short"):
            read_all(path)
        return
    table, info = read_all(path)
    assert info.packets == 1 and info.damaged and "cut short" in info.warnings[0]


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CaptureError, match="no such file"):
        read_all(tmp_path / "nope.pcap")
    with pytest.raises(CaptureError, match="directory"):
        read_all(tmp_path)


def test_streaming_batches_keep_frame_numbers(tmp_path):
    recs = [(i, 0, bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=i + 1, dport=80)))
            for i in range(1000)]
    table, info = read_all(write(tmp_path, cf.pcap(recs)), chunk_bytes=4096, batch_size=64)
    assert info.packets == 1000
    assert np.array_equal(table["frame"], np.arange(1, 1001))
    assert np.array_equal(table["sport"], np.arange(1, 1001))


def test_broken_gzip_keeps_frames_read_before_the_break(tmp_path):
    from scapy.layers.inet import IP, TCP
    recs = [(i, 0, bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=i + 1, dport=80) / (b"q" * 200)))
            for i in range(400)]
    data = gzip.compress(cf.pcap(recs), compresslevel=0)
    table, info = read_all(write(tmp_path, data[: len(data) // 2], "half.pcap.gz"))
    assert 0 < info.packets < 400 and info.damaged
    assert np.array_equal(table["sport"], np.arange(1, info.packets + 1))
    assert any("compressed stream is broken" in w for w in info.warnings)


def _mixed_records(n):
    """TCP, UDP and ICMP errors (whose quoted-header columns must not leak between batches)."""
    out = []
    for i in range(n):
        ip = IP(src="10.0.0.1", dst=f"10.0.{i % 7}.2")
        if i % 3 == 0:
            pkt = ip / TCP(sport=i + 1, dport=80, flags="SA", seq=i, ack=2 * i)
        elif i % 3 == 1:
            pkt = ip / UDP(sport=i + 1, dport=53) / (b"x" * (i % 50))
        else:
            pkt = ip / ICMP(type=3, code=3) / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=53, dport=i + 1)
        out.append((i, 0, bytes(Ether() / pkt)))
    return out


def _batches(path, **kw):
    from analyzer.dissect.reader import CaptureReader
    # copy each batch at once: a recycled batch is only valid until the ring comes round
    return [{k: v.copy() for k, v in b.items()} for b in CaptureReader(path, **kw).batches()]


@pytest.mark.parametrize("container", ["pcap", "pcapng"])
def test_recycled_batches_equal_fresh_ones(tmp_path, container, monkeypatch):
    from analyzer.dissect import reader as R
    recs = _mixed_records(600)
    if container == "pcap":
        data = cf.pcap(recs)
    else:
        data = cf.shb() + cf.idb(1) + b"".join(cf.epb(0, t * 10**6, d) for t, _, d in recs)
    path = write(tmp_path, data, f"c.{container}")
    # drop pages behind the window every page, so that path runs too
    monkeypatch.setattr(R._MappedChunks, "DROP_BYTES", 4096)
    fresh = _batches(path, chunk_bytes=8192, batch_size=37)
    recycled = _batches(path, chunk_bytes=8192, batch_size=37, recycle=2)
    assert len(fresh) == len(recycled) > 10
    for a, b in zip(fresh, recycled):
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(a[key], b[key]), key
    table = {k: np.concatenate([b[k] for b in recycled]) for k in recycled[0]}
    assert np.array_equal(table["frame"], np.arange(1, 601))
    icmp = table["proto"] == 1
    assert (table["icmp_type"][icmp] == 3).all() and (table["icmp_type"][~icmp] == -1).all()
    assert (table["q_sport"][~icmp] == 0).all() and (table["q_dport"][icmp] > 0).all()


def test_a_file_that_cannot_be_mapped_is_read_instead(tmp_path, monkeypatch):
    from analyzer.dissect import reader as R
    recs = _mixed_records(50)
    path = write(tmp_path, cf.pcap(recs))

    def refuse(*args, **kwargs):
        raise OSError("mmap not supported here")
    monkeypatch.setattr(R.mmap, "mmap", refuse)
    table, info = read_all(path)
    assert info.packets == 50 and np.array_equal(table["frame"], np.arange(1, 51))
