"""`analyze session`: record, serve, emulate and analyse one session into one directory.

The server and the phone stand-in run as their own processes (real pids in the logs, and
signals reach each separately); the capture stops before they do, so the capture shows the
test as it stood at its end rather than our own shutdown.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import analyzer
from analyzer.capture.filters import build_filter
from analyzer.capture.logformat import tz_string, parse_tz
from analyzer.capture.recorder import Recorder
from analyzer.exceptions import RecordError

EXPECTED_BEHAVIOUR = {"huawei": "huawei_background_kill", "ios": "ios_suspend", "plain": None}


@dataclass
class SessionSpec:
    profile: str
    out: Path | None = None
    duration: float = 10.0
    background_after: float = 3.0
    resume_after: float = 6.0
    interval: float = 0.5
    dial_timeout: float = 1.0
    phone: str = "127.0.0.2"
    server: str = "127.0.0.1"
    port: int = 33322
    client_port: int = 33323
    udp_port: int = 15000
    tcp_port: int = 15100
    clock_offset: float = 2.5
    tz: str = "+0800"
    interface: str = "lo"
    tool: str | None = None
    reuseaddr: bool = False
    analyze: bool = True


def _env() -> dict:
    """Children import this same analyzer, installed or not."""
    env = dict(os.environ)
    root = str(Path(analyzer.__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _spawn(args: list[str], name: str, ready_timeout: float = 15.0) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "analyzer.cli", *args], env=_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + ready_timeout
    line = proc.stdout.readline()  # "ready", or EOF if it died
    if line.strip() != "ready" or time.monotonic() > deadline:
        _end(proc)
        err = (proc.stderr.read() or "").strip().splitlines()
        raise RecordError(f"{name} did not start: {err[-1] if err else 'no output'}")
    return proc


def _end(proc: subprocess.Popen, timeout: float = 10.0, signalled: bool = False) -> None:
    """SIGTERM (our commands shut down cleanly on it), then SIGKILL.

    Only one SIGTERM: a second one would hit the default handler mid-shutdown."""
    if proc.poll() is None:
        if not signalled:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_session(spec: SessionSpec) -> dict:
    out = Path(spec.out or f"session-{spec.profile}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("app.log", "server.log"):
        (out / stale).unlink(missing_ok=True)  # our logs append; a rerun starts fresh
    capture = out / "capture.pcapng"
    ports = {"udp": [spec.udp_port], "tcp": [spec.tcp_port],
             "phone": [spec.port, spec.client_port]}
    rec = Recorder(capture, interface=spec.interface, tool=spec.tool, ports=ports,
                   phone=spec.phone, server=spec.server,
                   capture_filter=build_filter(spec.phone, spec.server, ports["udp"],
                                               ports["tcp"], ports["phone"]))
    procs: list[subprocess.Popen] = []
    result: dict = {"dir": str(out)}
    try:
        rec.start()
        # The app first: its listener is up before the server's dialer tries it, and its
        # first send waits a second for the echo servers (no start-up noise in the capture).
        procs.append(_spawn([
            "emulate", "--profile", spec.profile, "--phone", spec.phone,
            "--server", spec.server, "--port", str(spec.port),
            "--client-port", str(spec.client_port), "--udp-port", str(spec.udp_port),
            "--tcp-port", str(spec.tcp_port), "--interval", str(spec.interval),
            "--read-timeout", "1", "--start-after", "1", "--background-after", str(spec.background_after),
            "--resume-after", str(spec.resume_after), "--log", str(out / "app.log"),
            "--truth", str(out / "app.truth.json"), "--clock-offset", str(spec.clock_offset),
            "--tz", spec.tz, *(["--reuseaddr"] if spec.reuseaddr else [])],
            "analyze emulate"))
        procs.append(_spawn([
            "serve", "--host", spec.server, "--udp-port", str(spec.udp_port),
            "--tcp-port", str(spec.tcp_port), "--phone", spec.phone,
            "--phone-port", str(spec.port), "--interval", str(spec.interval),
            "--dial-timeout", str(spec.dial_timeout), "--read-timeout", "2",
            "--log", str(out / "server.log")], "analyze serve"))
        deadline = time.monotonic() + spec.duration
        try:
            while time.monotonic() < deadline:
                if any(p.poll() is not None for p in procs):
                    raise RecordError("a session process exited early")
                time.sleep(0.1)
        except KeyboardInterrupt:  # Ctrl-C ends the session early but keeps what it has
            result["interrupted"] = True
        rec.stop()
    finally:
        rec.stop()
        # Both at once, so neither logs much about the other's exit.
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            _end(p, signalled=True)
    _write_truth(out, spec, rec.manifest())
    (out / "phone").write_text(spec.phone + "\n")  # what `make demo` reads for --phone
    if spec.analyze:
        result.update(analyse(out, spec.phone))
    return result


def _write_truth(out: Path, spec: SessionSpec, manifest: dict) -> None:
    app_truth_path = out / "app.truth.json"
    app = json.loads(app_truth_path.read_text()) if app_truth_path.exists() else None
    server_tz = parse_tz(None)
    truth = {
        "profile": spec.profile,
        "expected_behaviour": EXPECTED_BEHAVIOUR[spec.profile],
        "capture": "capture.pcapng",
        "manifest": Recorder(out / "capture.pcapng").manifest_path.name,
        "logs": {"app": "app.log", "server": "server.log"},
        "app": app,
        "server": {"clock": {"offset_s": 0.0, "tz": tz_string(server_tz)},
                   "address": spec.server, "udp_port": spec.udp_port,
                   "tcp_port": spec.tcp_port},
        "capture_start": manifest.get("start_time"),
        "capture_end": manifest.get("end_time"),
        "spec": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(spec).items()},
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")


def analyse(out: Path, phone: str) -> dict:
    """Run `analyze` on the session as a user would; report failure, do not raise."""
    cmd = [sys.executable, "-m", "analyzer.cli", str(out / "capture.pcapng"),
           "--logs", str(out / "app.log"), "--logs", str(out / "server.log"),
           "--phone", phone, "--out", str(out / "analysis")]
    try:
        run = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return {"analysis_error": "analyze took over 300 s"}
    if run.returncode != 0:
        lines = (run.stderr or run.stdout).strip().splitlines()
        return {"analysis_error": lines[-1] if lines else f"exit {run.returncode}"}
    return {"analysis": str(out / "analysis")}
