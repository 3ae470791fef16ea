"""Every corpus capture is read with tshark's frame count and TCP flag counts, or rejected
with one line naming the file; never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.cli import main

from tests.corpus_files import corpus_manifest, corpus_pcaps

MANIFEST = corpus_manifest()
FILES = corpus_pcaps()
# files the corpus itself calls broken: we may reject them where tshark reads something
BROKEN = {name for name, row in MANIFEST.items() if "BROKEN" in row.get("notes", "")}


def tshark_counts(path: Path) -> tuple[int, dict, bool]:
    """Frames and outer-TCP flag counts as tshark sees them (reassembly off, so every
    frame is judged as it is on the wire). The bool says whether tshark read the whole file."""
    proc = subprocess.run(
        ["tshark", "-r", str(path), "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
         "-o", "tcp.desegment_tcp_streams:FALSE", "-T", "fields", "-e", "frame.number", "-e", "tcp.flags"],
        capture_output=True, text=True)
    frames = 0
    counts = {"syn": 0, "synack": 0, "fin": 0, "rst": 0}
    for line in proc.stdout.splitlines():
        frames += 1
        parts = line.split("\t")
        if len(parts) > 1 and parts[1]:
            flags = int(parts[1].split(",")[0], 16)   # the outer TCP header only
            if flags & 0x02:
                counts["synack" if flags & 0x10 else "syn"] += 1
            counts["fin"] += bool(flags & 0x01)
            counts["rst"] += bool(flags & 0x04)
    return frames, counts, proc.returncode == 0


@pytest.mark.corpus
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_corpus_file_matches_tshark_or_is_rejected(path, tmp_path, capsys, need_corpus, need_tshark):
    out = tmp_path / "out"
    rc = main([str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    frames, counts, complete = tshark_counts(path)
    if rc != 0:
        assert rc == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and path.name in lines[0], err
        # we reject only what tshark cannot read either, or what the corpus calls broken
        assert not complete or path.name in BROKEN, f"tshark reads {frames} frames: {err}"
        return
    summary = json.loads((out / "summary.json").read_text())
    cap = summary["capture"]
    if frames == 0 and not complete:
        # tshark cannot read it at all; we read it and say which frames we could not decode
        assert cap["undecodable"] == cap["packets"] > 0
        assert any("does not decode" in w for w in summary["warnings"])
        return
    assert cap["packets"] == frames
    assert cap["tcp_flag_packets"] == counts
    if not complete:
        # tshark stopped with an error after some frames: we must say the file is damaged
        assert cap["damaged"] and summary["warnings"], summary["warnings"]
    for name in ("flows.csv", "events.csv"):
        assert (out / name).exists()


@pytest.mark.corpus
def test_rejection_is_one_line_without_traceback(need_corpus):
    """Run as a user would (a fresh process): one line on stderr, exit 2."""
    bad = [p for p in FILES if p.name in ("libpcap__pcap-invalid-version-1.pcap",
                                          "libpcap-pr1704__pcap-empty-file.pcap",
                                          "pcapparser__err-eof.bin")]
    assert bad
    for path in bad:
        proc = subprocess.run([sys.executable, "-m", "analyzer.cli", str(path), "--out", "/tmp/unused-out"],
                              capture_output=True, text=True)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr
        assert proc.stderr.count("\n") == 1 and path.name in proc.stderr
