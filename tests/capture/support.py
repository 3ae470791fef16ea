"""Helpers for the capture-layer tests: skips with reasons, free ports, tshark reading."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PHONE, SERVER = "127.0.0.2", "127.0.0.1"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to capture on lo "
                                "and to destroy sockets (CI runs as root)")
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark on PATH")
needs_capture_tool = pytest.mark.skipif(
    not (shutil.which("dumpcap") or shutil.which("tcpdump")),
    reason="needs dumpcap or tcpdump on PATH")


def _free(port: int) -> bool:
    for host in (PHONE, SERVER):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    return False
    return True


def pick_ports() -> dict:
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 30000, 4)
        if all(_free(base + i) for i in range(4)):
            return {"udp": base, "tcp": base + 1, "phone": base + 2, "client": base + 3}
    pytest.fail("no four free ports found")


def run_cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "analyzer.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, **kw)


TCP_FIELDS = ["frame.number", "frame.time_epoch", "ip.src", "tcp.srcport", "ip.dst",
              "tcp.dstport", "tcp.stream", "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.fin",
              "tcp.flags.reset", "tcp.len"]


def tshark_tcp(capture: Path) -> list[dict]:
    """Every TCP packet of `capture` as a dict of TCP_FIELDS (flags as bools)."""
    cmd = ["tshark", "-r", str(capture), "-Y", "tcp", "-T", "fields", "-E", "separator=\t"]
    for f in TCP_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        vals = dict(zip(TCP_FIELDS, line.split("\t")))
        for flag in ("syn", "ack", "fin", "reset"):
            vals[flag] = vals.pop(f"tcp.flags.{flag}") in ("1", "True")
        vals["sport"], vals["dport"] = int(vals.pop("tcp.srcport")), int(vals.pop("tcp.dstport"))
        vals["stream"], vals["ts"] = int(vals.pop("tcp.stream")), float(vals.pop("frame.time_epoch"))
        vals["src"], vals["dst"] = vals.pop("ip.src"), vals.pop("ip.dst")
        rows.append(vals)
    return rows


def tshark_count(capture: Path, display_filter: str) -> int:
    out = subprocess.run(["tshark", "-r", str(capture), "-Y", display_filter],
                         capture_output=True, text=True, check=True).stdout
    return len(out.splitlines())
