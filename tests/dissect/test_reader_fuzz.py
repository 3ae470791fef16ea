"""Property tests: random bytes and mutated captures never raise anything but CaptureError."""

from __future__ import annotations

import gzip

from hypothesis import HealthCheck, given, settings, strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from analyzer.dissect.flows import FlowTable
from analyzer.dissect.reader import CaptureReader
from analyzer.exceptions import CaptureError

from . import capfiles as cf

PACKETS = [
    bytes(Ether() / IP(src="10.0.0.159", dst="10.0.1.238") / TCP(sport=33322, dport=15100, flags="S")),
    bytes(Ether() / Dot1Q() / IPv6(src="::1", dst="::2") / TCP(sport=1, dport=2, flags="RA")),
    bytes(Ether() / IP(src="10.0.1.238", dst="10.0.0.159") / ICMP(type=3, code=3)
          / IP(src="10.0.0.159", dst="10.0.1.238") / UDP(sport=33322, dport=15000)),
]
PCAP = cf.pcap([(i, i, p) for i, p in enumerate(PACKETS * 3)])
PCAPNG = (cf.shb() + cf.idb(1, tsresol=9) + cf.idb(101) + b"".join(cf.epb(0, i, p) for i, p in enumerate(PACKETS))
          + cf.spb(PACKETS[0]) + cf.custom() + cf.opb(0, 5, PACKETS[1]))
SEEDS = [PCAP, PCAPNG, cf.pcap([(1, 0, PACKETS[0][14:])], linktype=101, big=True, nanos=True)]


def run_reader(tmp_path, data: bytes, name="f.pcap") -> None:
    path = tmp_path / name
    path.write_bytes(data)
    table = FlowTable()
    try:
        for batch in CaptureReader(path, chunk_bytes=256, batch_size=4).batches():
            table.feed(batch)      # the flow engine must survive whatever the decoder yields
        table.finish()
    except CaptureError as exc:
        assert "\n" not in str(exc)


settings_ = settings(max_examples=300, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings_
@given(st.binary(max_size=600))
def test_random_bytes(tmp_path, data):
    run_reader(tmp_path, data)


@settings_
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_captures(tmp_path, seed, data):
    buf = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 12))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    run_reader(tmp_path, bytes(buf[:cut]))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(SEEDS), st.integers(0, 400))
def test_truncated_compressed(tmp_path, seed, cut):
    run_reader(tmp_path, gzip.compress(seed)[:cut], "f.pcap.gz")
