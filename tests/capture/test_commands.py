"""The subcommands as a user runs them: options, signals, clean exits, one-line errors."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.capture.support import PHONE, REPO, SERVER, needs_root, run_cli


def _wait_for_text(path, text: str, timeout: float) -> None:
    """Until `text` is in the file at `path`, or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.05)


def _start(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "analyzer.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def test_emulate_signals_drive_background_and_resume(tmp_path, ports):
    """SIGUSR1/SIGUSR2 trigger the lifecycle; SIGTERM ends it with the truth written."""
    log = tmp_path / "app.log"
    srv = _start("serve", "--udp-port", str(ports["udp"]), "--tcp-port", str(ports["tcp"]),
                 "--log", str(tmp_path / "server.log"))
    app = _start("emulate", "--profile", "ios", "--interval", "0.3", "--log", str(log),
                 "--port", str(ports["phone"]), "--client-port", str(ports["client"]),
                 "--udp-port", str(ports["udp"]), "--tcp-port", str(ports["tcp"]),
                 "--tz", "-0700", "--clock-offset", "-30")
    broken = f"write tcp {PHONE}:{ports['client']}->{SERVER}:{ports['tcp']}: write: broken pipe"
    try:
        time.sleep(1.2)
        app.send_signal(signal.SIGUSR1)
        # in the background until the app has hit the broken pipe (a fixed wait was too
        # short on a busy machine: the write comes on the app's next 0.3 s tick)
        _wait_for_text(log, broken, timeout=20)
        app.send_signal(signal.SIGUSR2)
        time.sleep(1.0)
    finally:
        for p in (app, srv):
            p.send_signal(signal.SIGTERM)
        assert app.wait(20) == 0 and srv.wait(20) == 0
    truth = json.loads((tmp_path / "app.truth.json").read_text())
    assert len(truth["background_at"]) == 1 and len(truth["resume_at"]) == 1
    assert truth["clock"]["tz"] == "-0700" and truth["clock"]["offset_s"] == -30
    text = log.read_text()
    assert "-0700 anet[" in text and "app did enter background" in text
    assert broken in text
    assert text.rstrip().endswith("app exiting")
    assert "server shutting down" in (tmp_path / "server.log").read_text()


@needs_root
def test_huawei_listener_drop_is_removed_on_exit(tmp_path, ports):
    """No rule or filter outlives the emulator: the port takes connections once it is gone."""
    app = _start("emulate", "--profile", "huawei", "--log", str(tmp_path / "a.log"),
                 "--port", str(ports["phone"]), "--client-port", str(ports["client"]),
                 "--udp-port", str(ports["udp"]), "--tcp-port", str(ports["tcp"]),
                 "--background-after", "0.3")
    import socket
    time.sleep(0.8)
    with socket.socket() as c:
        c.setsockopt(socket.IPPROTO_TCP, 18, 500)
        with pytest.raises(OSError):  # dropped while in background
            c.connect((PHONE, ports["phone"]))
    app.send_signal(signal.SIGTERM)
    assert app.wait(20) == 0
    with socket.socket() as lst:  # the port is free again, without leftovers
        lst.bind((PHONE, ports["phone"]))


@pytest.mark.parametrize("args,msg", [
    (["emulate", "--profile", "plain", "--tz", "CEST"], "bad time zone"),
    (["emulate", "--profile", "plain", "--log", "/nonexistent/dir/app.log"], "No such file"),
    (["serve", "--host", "192.0.2.1", "--udp-port", "1"], "cannot bind"),
    (["record", "--phone", "not-an-ip", "--duration", "1"], "bad IP address"),
])
def test_bad_input_is_one_line_exit_2(args, msg, tmp_path):
    run = run_cli(*args, cwd=tmp_path, timeout=30)
    assert run.returncode == 2
    assert run.stderr.startswith("analyze: ") and msg in run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_session_rejects_inverted_times():
    run = run_cli("session", "--profile", "ios", "--background-after", "5", "--resume-after", "4",
                  timeout=30)
    assert run.returncode == 2 and "background-after" in run.stderr
