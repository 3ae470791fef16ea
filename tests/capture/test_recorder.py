"""Recording on lo with each tool; the manifest; clean stops; errors as one line."""

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzer.capture.recorder import Recorder, find_tool, rights_hint
from tests.capture.support import (PHONE, REPO, SERVER, needs_capture_tool, needs_root,
                                   needs_tshark, run_cli, tshark_count)


def _send_udp(port: int, n: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((PHONE, 0))
        for i in range(n):
            s.sendto(f"datagram {i}".encode(), (SERVER, port))
            time.sleep(0.02)


TOOLS = [pytest.param(t, marks=pytest.mark.skipif(
    t != "scapy" and shutil.which(t) is None, reason=f"needs {t} on PATH"))
    for t in ("dumpcap", "tcpdump", "scapy")]


@needs_root
@needs_tshark
@pytest.mark.parametrize("tool", TOOLS)
def test_record_each_tool(tmp_path, ports, tool):
    out = tmp_path / "cap.pcapng"
    flt = f"udp port {ports['udp']}"
    rec = Recorder(out, interface="lo", capture_filter=flt, tool=tool,
                   ports={"udp": [ports["udp"]]}, phone=PHONE)
    rec.start()
    _send_udp(ports["udp"], 5)
    _send_udp(ports["tcp"], 3)  # outside the filter
    time.sleep(0.5)
    manifest = rec.stop()
    assert tshark_count(out, f"udp.dstport == {ports['udp']}") == 5
    assert tshark_count(out, f"udp.dstport == {ports['tcp']}") == 0
    ftype = subprocess.run(["capinfos", "-t", str(out)], capture_output=True, text=True).stdout
    assert "pcapng" in ftype.lower() or "wireshark/... - pcapng" in ftype
    on_disk = json.loads(rec.manifest_path.read_text())
    assert on_disk == manifest
    assert manifest["tool"]["name"] == tool and manifest["tool"]["version"]
    assert manifest["interface"] == "lo" and manifest["filter"] == flt
    assert manifest["host_time_zone"]["utc_offset"][0] in "+-"
    assert manifest["start_time"] < manifest["end_time"]
    if tool != "scapy":
        assert manifest["packets"] == 5


def test_rights_hint_recognises_permission_errors():
    msg = "tcpdump: lo: You don't have permission to perform this capture on that device"
    assert rights_hint(msg, "lo").startswith("no permission to capture on lo")
    assert rights_hint("There is no device named 'nope0'", "nope0") is None


def test_auto_choice_prefers_dumpcap():
    tool = find_tool()
    expected = "dumpcap" if shutil.which("dumpcap") else "tcpdump" if shutil.which("tcpdump") else "scapy"
    assert tool.name == expected


@needs_root
@needs_capture_tool
def test_bad_interface_is_one_line_exit_2(tmp_path):
    run = run_cli("record", "-i", "nosuchif0", "-w", str(tmp_path / "x.pcapng"), "--duration", "1")
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith("analyze: ")


@needs_capture_tool
def test_without_rights_hint(tmp_path):
    # Drop to nobody: no capture rights (unless dumpcap carries file capabilities).
    setpriv = shutil.which("setpriv")
    if setpriv is None or subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0":
        pytest.skip("needs root and setpriv to run as an unprivileged user")
    import tempfile
    shared = Path(tempfile.mkdtemp(prefix="analyzer-rights-"))  # pytest's tmp is root-only
    shared.chmod(0o777)
    run = subprocess.run([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                          sys.executable, "-m", "analyzer.cli", "record", "--tool", "tcpdump",
                          "-w", str(shared / "x.pcapng"), "--duration", "1"],
                         capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/bin"})
    shutil.rmtree(shared)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("analyze: no permission to capture on lo")
    assert "Traceback" not in run.stderr


@needs_root
@needs_tshark
@needs_capture_tool
def test_record_command_stops_on_sigint_without_torn_record(tmp_path, ports):
    out = tmp_path / "sig.pcapng"
    env_cmd = [sys.executable, "-m", "analyzer.cli", "record", "-w", str(out),
               "--udp-port", str(ports["udp"]), "--tcp-port", str(ports["tcp"]),
               "--phone-port", str(ports["phone"]), "--phone", PHONE]
    proc = subprocess.Popen(env_cmd, env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/bin"},
                            stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert line.startswith("recording on lo"), line
    _send_udp(ports["udp"], 20)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert "stopped (signal)" in proc.stderr.read()
    # capinfos / tshark complain about a cut-short file; both must be silent.
    check = subprocess.run(["tshark", "-r", str(out), "-Y", "udp and not icmp"],
                           capture_output=True, text=True)
    assert check.returncode == 0 and "cut short" not in check.stderr
    assert len(check.stdout.splitlines()) == 20
    manifest = json.loads((tmp_path / "sig.manifest.json").read_text())
    assert manifest["ports"] == {"udp": [ports["udp"]], "tcp": [ports["tcp"]],
                                 "phone": [ports["phone"]]}
    assert f"host {PHONE}" in manifest["filter"]


@needs_root
@needs_tshark
def test_falls_back_to_scapy_and_says_so(tmp_path, ports):
    """With neither tool on PATH, scapy records (unfiltered if it cannot compile the filter)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    out = tmp_path / "fb.pcapng"
    env = {"PYTHONPATH": str(REPO), "PATH": str(bindir)}
    proc = subprocess.Popen([sys.executable, "-m", "analyzer.cli", "record", "-w", str(out),
                             "--udp-port", str(ports["udp"]), "--duration", "4"],
                            env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    _send_udp(ports["udp"], 3)
    assert proc.wait(60) == 0
    err = proc.stderr.read()
    assert "neither dumpcap nor tcpdump found on PATH: recording with scapy" in err
    assert tshark_count(out, f"udp.dstport == {ports['udp']} and not icmp") == 3
    manifest = json.loads((tmp_path / "fb.manifest.json").read_text())
    assert manifest["tool"]["name"] == "scapy"
