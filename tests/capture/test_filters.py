"""Capture filter building."""

import shutil
import subprocess

import pytest

from analyzer.capture.filters import build_filter


def test_full_session_filter():
    f = build_filter("10.0.0.159", "10.0.1.238", udp_ports=[15000], tcp_ports=[15100],
                     ports=[33322, 33323])
    assert f == ("host 10.0.0.159 and host 10.0.1.238 and (udp port 15000 or tcp port 15100 "
                 "or port 33322 or port 33323 or icmp or icmp6)")


def test_ports_only_and_dedup():
    assert build_filter(udp_ports=[15000, 15000], tcp_ports=[15100]) == \
        "(udp port 15000 or tcp port 15100 or icmp or icmp6)"


def test_hosts_only_and_nothing():
    assert build_filter(phone="::1") == "host ::1"
    assert build_filter() == ""


@pytest.mark.parametrize("kw,msg", [
    (dict(udp_ports=[0]), "out of range"),
    (dict(tcp_ports=[70000]), "out of range"),
    (dict(ports=["http"]), "bad port"),
    (dict(phone="10.0.0.300"), "bad IP"),
    (dict(server="eth0; rm -rf /"), "bad IP"),
])
def test_rejects_bad_input(kw, msg):
    with pytest.raises(ValueError, match=msg):
        build_filter(**kw)


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump to compile BPF")
@pytest.mark.parametrize("phone", ["127.0.0.2", "::1"])
def test_filter_compiles_to_bpf(phone):
    f = build_filter(phone, None, [15000], [15100], [33322])
    run = subprocess.run(["tcpdump", "-d", "-y", "EN10MB", f], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "ret" in run.stdout
