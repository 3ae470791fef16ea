"""The synthetic capture must read back in tshark exactly as its truth file says.

    python -m pytest bench -q
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "gen_capture.py")
sys.path.insert(0, HERE)
import gen_capture  # noqa: E402

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not on PATH")


def generate(tmp_path, n=2000, seed=7, ns=False):
    out = str(tmp_path / f"g{n}{'ns' if ns else ''}.pcap")
    cmd = [sys.executable, GEN, "--packets", str(n), "--out", out, "--seed", str(seed)]
    if ns:
        cmd.append("--ns")
    subprocess.run(cmd, check=True, capture_output=True)
    with open(gen_capture.truth_path(out)) as fh:
        return out, json.load(fh)


def tshark_fields(path, *fields, extra=()):
    cmd = ["tshark", "-n", "-r", path, *extra, "-T", "fields", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return [line.split("\t") for line in r.stdout.splitlines()]


@pytest.fixture(scope="module", params=[False, True], ids=["usec", "nsec"])
def capture(request, tmp_path_factory):
    return generate(tmp_path_factory.mktemp("gen"), ns=request.param)


@needs_tshark
def test_tshark_counts_equal_truth(capture):
    path, truth = capture
    rows = tshark_fields(path, "frame.number", "tcp.flags")
    assert len(rows) == truth["packets"] == 2000
    flags = [int(r[1], 16) for r in rows if len(r) > 1 and r[1]]
    assert len(flags) == truth["tcp_packets"]
    syn = sum(1 for f in flags if f & 0x12 == 0x02)
    synack = sum(1 for f in flags if f & 0x12 == 0x12)
    fin = sum(1 for f in flags if f & 0x01)
    rst = sum(1 for f in flags if f & 0x04)
    assert (syn, synack, fin, rst) == (truth["syn_packets"], truth["synack_packets"],
                                       truth["fin_packets"], truth["rst_packets"])
    # the generator's mix is all there
    assert truth["syn_retransmissions"] > 0 and truth["rst_packets_refused"] > 0
    assert truth["reused_tuple_flows"] > 0 and truth["ipv6_packets"] > 0
    assert truth["udp_flows"] > 0 and truth["expected_teardown"]["udp_unanswered"] > 0


@needs_tshark
def test_checksums_valid_and_time_ordered(capture):
    path, truth = capture
    on = ("-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
          "-o", "udp.check_checksum:TRUE")
    bad = tshark_fields(path, "frame.number", extra=on + (
        "-Y", "ip.checksum.status == 0 || tcp.checksum.status == 0 || udp.checksum.status == 0"
              " || (ip && ip.len != frame.len - 14)"))
    assert bad == []
    rows = tshark_fields(path, "frame.time_epoch", "frame.time_delta")
    assert all(float(r[1]) >= 0 for r in rows)
    assert abs(float(rows[0][0]) - truth["first_ts"]) < 1e-5


@needs_tshark
def test_ipv6_and_reused_tuple_seen_by_tshark(capture):
    path, truth = capture
    v6 = tshark_fields(path, "frame.number", extra=("-Y", "ipv6"))
    assert len(v6) == truth["ipv6_packets"]
    reused = tshark_fields(path, "frame.number", extra=("-Y", "tcp.analysis.reused_ports"))
    assert len(reused) >= 1


def test_magic_and_exact_size(tmp_path):
    for ns, magic in ((False, 0xA1B2C3D4), (True, 0xA1B23C4D)):
        path, truth = generate(tmp_path, n=777, seed=2, ns=ns)
        with open(path, "rb") as fh:
            data = fh.read()
        assert struct.unpack("<I", data[:4])[0] == magic
        assert len(data) == truth["file_size"]
        # walk the records: exactly n of them, time never decreases
        off, n, last = 24, 0, (0, 0)
        while off < len(data):
            sec, frac, incl, orig = struct.unpack_from("<IIII", data, off)
            assert incl == orig and 54 <= incl <= 1514
            assert (sec, frac) >= last
            assert frac < (10**9 if ns else 10**6)
            last = (sec, frac)
            off += 16 + incl
            n += 1
        assert off == len(data) and n == truth["packets"] == 777


def test_deterministic(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, ta = generate(tmp_path / "a", n=500, seed=5)
    b, tb = generate(tmp_path / "b", n=500, seed=5)
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read()
    assert ta["syn_packets"] == tb["syn_packets"]


def test_tiny_counts(tmp_path):
    for n in (1, 2, 5, 31):
        _, t = generate(tmp_path, n=n, seed=n)
        assert t["packets"] == n
