"""`--engine tshark`: the packet table through tshark, checked column by column.

Frames are built with scapy, written by a tiny pcap writer here (so timestamps are exact
to the nanosecond), read back through TsharkCapture and compared with what went in.
"""

from __future__ import annotations

import asyncio
import csv
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, CookedLinux, Dot1Q, Ether
from scapy.packet import Raw

from analyzer.dissect import tshark_engine
from analyzer.dissect.packets import (
    DECODE_MALFORMED,
    DECODE_NOT_IP,
    DECODE_OK,
    DECODE_TRUNCATED,
    FRAG_FIRST,
    FRAG_LATER,
    FRAG_NONE,
    PACKET_COLUMNS,
    addr_to_halves,
)
from analyzer.dissect.tshark_engine import TSHARK_NOT_FOUND, TsharkCapture, _time_ns, _wrap_time
from analyzer.exceptions import CaptureError

pytestmark = [
    pytest.mark.tshark,
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not on PATH"),
]

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"

T0 = 1_700_000_000  # seconds

PHONE, SERVER = "10.1.2.3", "93.184.216.34"
PHONE6, SERVER6 = "2001:db8::1", "2001:db8:ffff::2"


def write_pcap(path: Path, frames, nano: bool = False, linktype: int = 1, big_endian=False) -> Path:
    """frames: [(sec, frac, bytes)] where frac is in ns (nano) or us; caplen = len(bytes)."""
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for sec, frac, data, *wire in frames:
        wirelen = wire[0] if wire else len(data)
        out.append(struct.pack(e + "IIII", sec, frac, len(data), wirelen) + data)
    path.write_bytes(b"".join(out))
    return path


def read_all(path, batch_size=50_000):
    cap = TsharkCapture(path, batch_size=batch_size)
    batches = list(cap.batches())
    if not batches:
        return cap, {}
    table = {name: np.concatenate([b[name] for b in batches]) for name in PACKET_COLUMNS}
    return cap, table


def row(table, i):
    return {name: table[name][i].item() for name in table}


def eth(payload, src="02:00:00:00:00:01", dst="02:00:00:00:00:02"):
    return bytes(Ether(src=src, dst=dst) / payload)


def expect(r, **want):
    """Assert row r has the wanted values; addresses given as text compare as halves."""
    for key, value in want.items():
        if key in ("src", "dst", "q_src", "q_dst"):
            hi, lo = addr_to_halves(value)
            assert (r[f"{key}_hi"], r[f"{key}_lo"]) == (hi, lo), (key, r)
        else:
            assert r[key] == value, (key, r[key], value, r)


# -- fixtures -------------------------------------------------------------------------

@pytest.fixture
def tcp_session(tmp_path):
    """Handshake, data both ways, FIN from the phone, RST from the server; ECE/CWR SYN."""
    isn_c, isn_s = 0xFFFFFF00, 123456789
    segs = [
        TCP(sport=33322, dport=443, flags="SEC", seq=isn_c, window=65535),
        TCP(sport=443, dport=33322, flags="SAE", seq=isn_s, ack=isn_c + 1, window=28960),
        TCP(sport=33322, dport=443, flags="A", seq=isn_c + 1, ack=isn_s + 1, window=502),
        TCP(sport=33322, dport=443, flags="PA", seq=isn_c + 1, ack=isn_s + 1, window=502) / Raw(b"x" * 300),
        TCP(sport=443, dport=33322, flags="PA", seq=isn_s + 1, ack=(isn_c + 301) % 2**32, window=235) / Raw(b"y" * 1200),
        TCP(sport=33322, dport=443, flags="FA", seq=(isn_c + 301) % 2**32, ack=isn_s + 1201, window=500),
        TCP(sport=443, dport=33322, flags="R", seq=isn_s + 1201, ack=0, window=0),
    ]
    frames = []
    for k, seg in enumerate(segs):
        src, dst = (PHONE, SERVER) if seg.sport == 33322 else (SERVER, PHONE)
        frames.append((T0 + k, 1000 * k + 7, eth(IP(src=src, dst=dst) / seg)))
    return write_pcap(tmp_path / "tcp.pcap", frames), segs


# -- column by column ----------------------------------------------------------------

def test_tcp_session_columns(tcp_session):
    path, segs = tcp_session
    cap, t = read_all(path)
    assert len(t["frame"]) == len(segs)
    assert t["frame"].tolist() == list(range(1, len(segs) + 1))
    assert t["ts_ns"].tolist() == [(T0 + k) * 10**9 + (1000 * k + 7) * 1000 for k in range(len(segs))]
    for name, dtype in PACKET_COLUMNS.items():
        assert t[name].dtype == dtype, name
    flag_bits = [0x02 | 0x40 | 0x80, 0x12 | 0x40, 0x10, 0x18, 0x18, 0x11, 0x04]
    payloads = [0, 0, 0, 300, 1200, 0, 0]
    for k, seg in enumerate(segs):
        r = row(t, k)
        src, dst = (PHONE, SERVER) if seg.sport == 33322 else (SERVER, PHONE)
        frame_len = 14 + 20 + 20 + payloads[k]
        expect(r, status=DECODE_OK, linktype=1, caplen=frame_len, wirelen=frame_len,
               ip_version=4, proto=6, fragment=FRAG_NONE, src=src, dst=dst,
               sport=seg.sport, dport=seg.dport, tcp_flags=flag_bits[k],
               seq=seg.seq, ack=seg.ack, window=seg.window, payload=payloads[k],
               icmp_type=-1, icmp_code=-1, q_proto=0, q_sport=0, q_dport=0)
    # raw, not relative, sequence numbers (relative ones would be 0 and 1 here)
    assert t["seq"][0] == 0xFFFFFF00 and t["ack"][1] == 0xFFFFFF01
    assert cap.info == {"file": str(path), "format": "pcap", "link_types": [1],
                        "packets": len(segs), "warnings": []}


def test_ns_flag_and_scaled_window_are_raw(tmp_path):
    # NS is bit 8 of the flags (scapy's 'N'); a window of 3 stays 3 (no scaling applied)
    seg = TCP(sport=1, dport=2, flags="NA", seq=5, ack=6, window=3)
    path = write_pcap(tmp_path / "ns.pcap", [(T0, 0, eth(IP(src=PHONE, dst=SERVER) / seg))])
    _, t = read_all(path)
    expect(row(t, 0), tcp_flags=0x110, window=3, seq=5, ack=6)


def test_udp_and_icmp_port_unreachable_quote(tmp_path):
    dgram = IP(src=PHONE, dst=SERVER) / UDP(sport=33322, dport=3478) / Raw(b"z" * 20)
    err = IP(src=SERVER, dst=PHONE) / ICMP(type=3, code=3) / Raw(bytes(dgram))
    path = write_pcap(tmp_path / "udp.pcap", [(T0, 1, eth(dgram)), (T0, 2, eth(err))])
    _, t = read_all(path)
    expect(row(t, 0), status=DECODE_OK, ip_version=4, proto=17, src=PHONE, dst=SERVER,
           sport=33322, dport=3478, payload=20, icmp_type=-1, q_proto=0, tcp_flags=0)
    expect(row(t, 1), status=DECODE_OK, ip_version=4, proto=1, src=SERVER, dst=PHONE,
           sport=0, dport=0, icmp_type=3, icmp_code=3, q_proto=17, q_src=PHONE, q_dst=SERVER,
           q_sport=33322, q_dport=3478)


def test_icmp_quoting_tcp_header_cut_to_8_bytes(tmp_path):
    # routers quote only 8 bytes past the IP header: ports and sequence, no flags
    seg = IP(src=PHONE, dst=SERVER) / TCP(sport=40000, dport=443, flags="S", seq=9)
    err = IP(src="192.0.2.1", dst=PHONE) / ICMP(type=11, code=0) / Raw(bytes(seg)[:28])
    path = write_pcap(tmp_path / "ttl.pcap", [(T0, 0, eth(err))])
    _, t = read_all(path)
    expect(row(t, 0), status=DECODE_OK, proto=1, src="192.0.2.1", icmp_type=11, icmp_code=0,
           q_proto=6, q_src=PHONE, q_dst=SERVER, q_sport=40000, q_dport=443)


def test_ipv6_tcp(tmp_path):
    seg = TCP(sport=50000, dport=80, flags="S", seq=4000000000, window=64800)
    path = write_pcap(tmp_path / "v6.pcap", [(T0, 5, eth(IPv6(src=PHONE6, dst=SERVER6) / seg))])
    _, t = read_all(path)
    expect(row(t, 0), status=DECODE_OK, ip_version=6, proto=6, src=PHONE6, dst=SERVER6,
           sport=50000, dport=80, tcp_flags=0x02, seq=4000000000, ack=0, window=64800,
           payload=0, caplen=74, wirelen=74)


def test_ipv4_fragments_first_and_later(tmp_path):
    dgram = IP(src=PHONE, dst=SERVER, id=777) / UDP(sport=5353, dport=9999) / Raw(b"q" * 1000)
    frags = fragment(dgram, fragsize=400)
    assert len(frags) == 3
    path = write_pcap(tmp_path / "frag.pcap", [(T0, k, eth(f)) for k, f in enumerate(frags)])
    _, t = read_all(path)
    # each frame as it is on the wire: no reassembled view on the last fragment
    expect(row(t, 0), status=DECODE_OK, fragment=FRAG_FIRST, proto=17, src=PHONE, dst=SERVER,
           sport=5353, dport=9999, payload=1000)
    for k in (1, 2):
        expect(row(t, k), status=DECODE_OK, fragment=FRAG_LATER, proto=17, src=PHONE,
               dst=SERVER, sport=0, dport=0, payload=0)


def test_vlan_arp_and_order(tmp_path):
    tagged = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / Dot1Q(vlan=42)
                   / IP(src=PHONE, dst=SERVER) / TCP(sport=1111, dport=2222, flags="R", seq=77))
    arp = bytes(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=PHONE, pdst=SERVER))
    path = write_pcap(tmp_path / "vlan.pcap", [(T0, 0, tagged), (T0, 1, arp)])
    _, t = read_all(path)
    expect(row(t, 0), status=DECODE_OK, linktype=1, ip_version=4, src=PHONE, dst=SERVER,
           sport=1111, dport=2222, tcp_flags=0x04, seq=77)
    expect(row(t, 1), status=DECODE_NOT_IP, linktype=1, ip_version=0, proto=0, src_hi=0,
           src_lo=0, sport=0, icmp_type=-1, caplen=len(arp))


def test_nanosecond_pcap_keeps_every_nanosecond(tmp_path):
    fracs = [0, 1, 999_999_999, 123_456_789]
    pkt = eth(IP(src=PHONE, dst=SERVER) / UDP(sport=1, dport=2))
    path = write_pcap(tmp_path / "ns.pcap", [(T0 + k, f, pkt) for k, f in enumerate(fracs)],
                      nano=True, big_endian=True)
    _, t = read_all(path)
    assert t["ts_ns"].tolist() == [(T0 + k) * 10**9 + f for k, f in enumerate(fracs)]
    # a float of seconds cannot hold 1_700_000_003.123456789 s to the ns: int all the way
    assert int(float("1700000003.123456789") * 1e9) != t["ts_ns"][3]


def test_time_text_parsing():
    assert _time_ns("1700000003.123456789") == 1700000003123456789
    assert _time_ns("1258568548.135731000") == 1258568548135731000
    assert _time_ns("5.1") == 5_100_000_000
    assert _time_ns("-1.5") == -1_500_000_000
    assert _time_ns("") == 0


def test_wrapped_64bit_times_read_as_signed():
    # pcapng-example's interface 1: 2^64 - 505425287 microseconds
    assert _wrap_time(18446744073204126329000) == -505425287000
    assert _wrap_time(5 * 10**9) == 5 * 10**9


def test_raw_ip_linktype_from_header_and_truncated_and_malformed(tmp_path):
    good = bytes(IP(src=PHONE, dst=SERVER) / TCP(sport=1, dport=2, flags="S"))
    bogus_ihl = bytes(IP(src=PHONE, dst=SERVER, ihl=3) / TCP(sport=1, dport=2))
    cut_tcp = good[:30]                          # caplen == wirelen: too short for TCP
    snapped = good[:30]                          # caplen < wirelen: snapped by the capture
    path = write_pcap(tmp_path / "raw.pcap",
                      [(T0, 0, good), (T0, 1, bogus_ihl), (T0, 2, cut_tcp), (T0, 3, snapped, len(good))],
                      linktype=12)
    cap, t = read_all(path)
    assert cap.info["link_types"] == [12]
    assert t["linktype"].tolist() == [12] * 4
    expect(row(t, 0), status=DECODE_OK, src=PHONE, sport=1, tcp_flags=0x02)
    expect(row(t, 1), status=DECODE_MALFORMED)
    expect(row(t, 2), status=DECODE_TRUNCATED, src=PHONE, proto=6)
    expect(row(t, 3), status=DECODE_TRUNCATED, caplen=30, wirelen=len(good))


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def test_pcapng_interfaces_link_types_and_timeless_spb(tmp_path):
    ip = IP(src=PHONE, dst=SERVER) / UDP(sport=7, dport=8)
    sll = bytes(CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02" * 6, proto=0x0800) / ip)
    e = eth(ip)
    ts = (T0 * 10**6 + 250)  # microseconds (default if_tsresol)
    epb = lambda ifid, data: _block(6, struct.pack("<IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF,
                                                      len(data), len(data)) + data)
    blob = b"".join([
        _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
        _block(1, struct.pack("<HHI", 1, 0, 65535)),
        _block(1, struct.pack("<HHI", 113, 0, 65535)),
        epb(0, e), epb(1, sll), _block(3, struct.pack("<I", len(e)) + e),
    ])
    path = tmp_path / "two.pcapng"
    path.write_bytes(blob)
    cap, t = read_all(path)
    assert cap.info["format"] == "pcapng"
    assert t["linktype"].tolist() == [1, 113, 1]
    assert cap.info["link_types"] == [1, 113]
    assert t["ts_ns"].tolist() == [ts * 1000, ts * 1000, 0]
    assert t["status"].tolist() == [DECODE_OK] * 3
    assert (t["sport"] == 7).all() and (t["src_lo"] == addr_to_halves(PHONE)[1]).all()
    assert [w for w in cap.info["warnings"] if "1 frames carry no timestamp" in w]


# -- batching, errors, processes -----------------------------------------------------

def test_batches_split_in_frame_order(tcp_session):
    path, segs = tcp_session
    cap = TsharkCapture(path, batch_size=3)
    sizes, frames = [], []
    for b in cap.batches():
        assert len({len(v) for v in b.values()}) == 1
        sizes.append(len(b["frame"]))
        frames += b["frame"].tolist()
    assert sizes == [3, 3, 1]
    assert frames == list(range(1, 8))
    assert cap.info["packets"] == 7


def test_cut_short_file_yields_frames_and_warns(tcp_session, tmp_path):
    path, segs = tcp_session
    data = path.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-10])
    cap, t = read_all(cut)
    assert len(t["frame"]) == len(segs) - 1
    assert cap.info["packets"] == len(segs) - 1
    assert len(cap.info["warnings"]) == 1
    assert "cut short" in cap.info["warnings"][0] and "cut.pcap" in cap.info["warnings"][0]


def test_unreadable_file_raises_one_line(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 1, 0, 0, 0, 65535, 1) + b"\0" * 40)
    with pytest.raises(CaptureError) as err:
        list(TsharkCapture(bad).batches())
    msg = str(err.value)
    assert "bad.pcap" in msg and "\n" not in msg and "version" in msg


def test_missing_file_raises(tmp_path):
    with pytest.raises(CaptureError, match="nope.pcap"):
        list(TsharkCapture(tmp_path / "nope.pcap").batches())


def test_tshark_not_on_path(tcp_session, tmp_path, monkeypatch):
    path, _ = tcp_session
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(CaptureError) as err:
        list(TsharkCapture(path).batches())
    assert str(err.value) == TSHARK_NOT_FOUND


def test_no_tshark_left_running_when_consumer_stops(tcp_session, monkeypatch):
    path, _ = tcp_session
    started = []
    real_popen = subprocess.Popen

    def spy(*a, **kw):
        p = real_popen(*a, **kw)
        started.append(p)
        return p

    monkeypatch.setattr(tshark_engine.subprocess, "Popen", spy)
    gen = TsharkCapture(path, batch_size=1).batches()
    first = next(gen)
    assert first["frame"].tolist() == [1]
    assert len(started) == 1
    gen.close()
    assert started[0].returncode is not None  # killed and reaped: no zombie

    for _ in TsharkCapture(path, batch_size=1).batches():
        break  # a for loop left early closes the generator when it is dropped
    assert len(started) == 2 and started[1].poll() is not None


def test_dissect_one_frame_with_pyshark_even_inside_a_running_loop(tcp_session):
    path, segs = tcp_session
    cap = TsharkCapture(path)
    pkt = cap.dissect(4)
    assert int(pkt.tcp.srcport) == 33322 and int(pkt.tcp.len) == 300

    async def in_notebook():  # Jupyter runs user code while its event loop is running
        return cap.dissect(7)

    pkt = asyncio.run(in_notebook())
    assert int(pkt.tcp.flags, 16) == 0x04
    assert cap.dissect(99) is None


def test_dissect_past_the_end_leaves_nothing_for_pyshark_to_close_later(tcp_session, monkeypatch):
    """A frame past the end runs tshark to its end; nothing must be left for pyshark's
    Capture.__del__ to close on the worker's loop once it is closed ("Exception ignored in
    Capture.__del__ ... Event loop is closed" in a notebook)."""
    import gc
    import sys
    path, _ = tcp_session
    cap = TsharkCapture(path)
    ignored = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: ignored.append(info))
    for _ in range(3):
        assert cap.dissect(99) is None
        assert cap.dissect(4) is not None
    gc.collect()
    assert [repr(i.exc_value) for i in ignored] == []


# -- the corpus ------------------------------------------------------------------------

def _manifest():
    path = CORPUS / "MANIFEST.tsv"
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [(r["file"], r["packets_tshark"]) for r in csv.DictReader(fh, delimiter="\t")]


@pytest.mark.corpus
@pytest.mark.skipif(not (CORPUS / "pcaps").is_dir(), reason=f"corpus not found at {CORPUS}")
@pytest.mark.parametrize("name,expected", _manifest() or [("-", "-")])
def test_corpus_packet_counts_match_tshark(name, expected):
    path = CORPUS / "pcaps" / name
    assert path.is_file(), f"{name} listed in MANIFEST.tsv but missing"
    if expected.startswith("unreadable"):
        with pytest.raises(CaptureError) as err:
            list(TsharkCapture(path).batches())
        assert name in str(err.value) and "\n" not in str(err.value)
        return
    count = int(expected.split()[0])
    cap, t = read_all(path, batch_size=1000)
    assert cap.info["packets"] == count
    assert len(t.get("frame", [])) == count
    if count:
        assert t["frame"].tolist() == list(range(1, count + 1))
    stopped = [w for w in cap.info["warnings"] if "tshark stopped" in w]
    assert len(stopped) == ("partial read" in expected), cap.info["warnings"]
    timeless = [w for w in cap.info["warnings"] if "no timestamp" in w]
    n_zero = int((t["ts_ns"] == 0).sum()) if count else 0
    if timeless:  # a record with no time is read as 0; a real 0 time may exist too
        assert 0 < int(timeless[0].split(": ")[1].split()[0]) <= n_zero


@pytest.mark.corpus
@pytest.mark.skipif(not (CORPUS / "pcaps").is_dir(), reason=f"corpus not found at {CORPUS}")
def test_corpus_every_file_is_listed():
    listed = {name for name, _ in _manifest()}
    assert listed == {p.name for p in (CORPUS / "pcaps").iterdir()}
