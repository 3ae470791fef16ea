"""`analyze record|serve|emulate|session`: argument parsing only; the work is elsewhere.

Each entry point takes argv (list of str) and returns an exit code. Our own errors become
one line on stderr and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from analyzer.exceptions import AnalyzerError

DEFAULTS = dict(phone="127.0.0.2", server="127.0.0.1", udp_port=15000, tcp_port=15100,
                port=33322, client_port=33323)


def _one_line_errors(func):
    def wrapper(argv: list[str]) -> int:
        try:
            return func(argv)
        except AnalyzerError as exc:
            print(f"analyze: {exc}", file=sys.stderr)
            return 2
        except ValueError as exc:  # bad option values found past argparse (zones, filters)
            print(f"analyze: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:  # a log or output we cannot write
            where = f": {exc.filename}" if exc.filename else ""
            print(f"analyze: {exc.strerror or exc}{where}", file=sys.stderr)
            return 2
    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def wait_for_stop(duration: float | None, extra: dict | None = None,
                  alive=lambda: True) -> str:
    """Block until SIGINT/SIGTERM, `duration` seconds, or `alive()` turning False.

    `extra` maps more signals to callbacks (run on a thread: they may log and take locks).
    Returns why it stopped: "signal", "duration" or "died".
    """
    stop = threading.Event()
    why = {}

    def on_stop(signum, _frame):
        why.setdefault("reason", "signal")
        stop.set()

    old = {s: signal.signal(s, on_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    for sig, callback in (extra or {}).items():
        old[sig] = signal.signal(sig, lambda *_a, cb=callback: threading.Thread(
            target=cb, daemon=True).start())
    try:
        waited = 0.0
        while not stop.wait(0.1):
            waited += 0.1
            if duration is not None and waited >= duration:
                why.setdefault("reason", "duration")
                break
            if not alive():
                why.setdefault("reason", "died")
                break
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return why.get("reason", "signal")


# -- record --------------------------------------------------------------------------------
@_one_line_errors
def record_main(argv: list[str]) -> int:
    """Record a test session with dumpcap, else tcpdump, else scapy."""
    from analyzer.capture.filters import build_filter
    from analyzer.capture.recorder import Recorder

    p = argparse.ArgumentParser(prog="analyze record", description=record_main.__doc__)
    p.add_argument("-i", "--interface", default="lo")
    p.add_argument("-w", "--write", default="capture.pcapng", type=Path,
                   help="output file (.pcapng, or .pcap for pcap)")
    p.add_argument("--phone", help="phone IP: keep only its traffic")
    p.add_argument("--server", help="server IP: keep only its traffic")
    p.add_argument("--udp-port", type=int, action="append",
                   help=f"server UDP port (repeatable; default {DEFAULTS['udp_port']})")
    p.add_argument("--tcp-port", type=int, action="append",
                   help=f"server TCP port (repeatable; default {DEFAULTS['tcp_port']})")
    p.add_argument("--phone-port", type=int, action="append",
                   help=f"phone's fixed port, any protocol (repeatable; default "
                        f"{DEFAULTS['port']} and {DEFAULTS['client_port']})")
    p.add_argument("-f", "--filter", help="capture filter to use instead of the built one")
    p.add_argument("--duration", type=_positive, help="stop after this many seconds")
    p.add_argument("--tool", choices=("dumpcap", "tcpdump", "scapy"),
                   help="force a tool (default: the first found of dumpcap, tcpdump, scapy)")
    a = p.parse_args(argv)
    udp = a.udp_port or [DEFAULTS["udp_port"]]
    tcp = a.tcp_port or [DEFAULTS["tcp_port"]]
    phone_ports = a.phone_port or [DEFAULTS["port"], DEFAULTS["client_port"]]
    flt = a.filter if a.filter is not None else build_filter(
        a.phone, a.server, udp_ports=udp, tcp_ports=tcp, ports=phone_ports)
    rec = Recorder(a.write, interface=a.interface, capture_filter=flt, tool=a.tool,
                   ports={"udp": udp, "tcp": tcp, "phone": phone_ports},
                   phone=a.phone, server=a.server)
    rec.start()
    print(f"recording on {a.interface} with {rec.manifest()['tool']['name']} into {a.write}"
          f" (filter: {flt or 'none'}); Ctrl-C to stop", file=sys.stderr)
    reason = wait_for_stop(a.duration, alive=rec.alive)
    manifest = rec.stop()
    if reason == "died":
        raise AnalyzerError(f"{rec.failure()} (capture so far kept in {a.write})")
    print(f"stopped ({reason}): {manifest['packets'] if manifest['packets'] is not None else '?'}"
          f" packets in {a.write}, manifest {rec.manifest_path}", file=sys.stderr)
    return 0


# -- serve ---------------------------------------------------------------------------------
@_one_line_errors
def serve_main(argv: list[str]) -> int:
    """Run the server side of the three tests: UDP echo, TCP echo, dialer to the phone."""
    from analyzer.capture.logformat import Clock, LogFile, parse_tz
    from analyzer.capture.testbed import Testbed

    p = argparse.ArgumentParser(prog="analyze serve", description=serve_main.__doc__)
    p.add_argument("--host", default=DEFAULTS["server"], help="address to serve on")
    p.add_argument("--udp-port", type=int, default=DEFAULTS["udp_port"])
    p.add_argument("--tcp-port", type=int, default=DEFAULTS["tcp_port"])
    p.add_argument("--phone", help="phone IP to dial (no dialer without it)")
    p.add_argument("--phone-port", type=int, default=DEFAULTS["port"],
                   help="the phone's listening port")
    p.add_argument("--interval", type=_positive, default=2.0, help="dialer send interval, s")
    p.add_argument("--dial-timeout", type=_positive, default=5.0,
                   help="give up on an unanswered SYN after this many seconds")
    p.add_argument("--read-timeout", type=_positive, default=5.0)
    p.add_argument("--log", type=Path, default=Path("server.log"))
    p.add_argument("--duration", type=_positive)
    p.add_argument("--clock-offset", type=float, default=0.0,
                   help="server clock minus true time, s (for alignment tests)")
    p.add_argument("--tz", default="local", help="zone of the log's times, e.g. +0000")
    a = p.parse_args(argv)
    log = LogFile(a.log, "golog", Clock(a.clock_offset, parse_tz(a.tz)))
    bed = Testbed(log, host=a.host, udp_port=a.udp_port, tcp_port=a.tcp_port, phone=a.phone,
                  phone_port=a.phone_port, interval=a.interval, dial_timeout=a.dial_timeout,
                  read_timeout=a.read_timeout)
    try:
        bed.start()
        print("ready", flush=True)  # `analyze session` waits for this line
        wait_for_stop(a.duration)
    finally:
        bed.stop()
        log.close()
    return 0


# -- emulate -------------------------------------------------------------------------------
@_one_line_errors
def emulate_main(argv: list[str]) -> int:
    """Stand in for a phone app; tear its sockets down as a Huawei or iPhone would."""
    from analyzer.capture.emulate import PROFILES, PhoneApp, write_truth
    from analyzer.capture.logformat import Clock, LogFile, parse_tz

    p = argparse.ArgumentParser(prog="analyze emulate", description=emulate_main.__doc__)
    p.add_argument("--profile", choices=sorted(PROFILES), required=True)
    p.add_argument("--phone", default=DEFAULTS["phone"], help="the phone's (local) address")
    p.add_argument("--server", default=DEFAULTS["server"])
    p.add_argument("--port", type=int, default=DEFAULTS["port"],
                   help="fixed local port of the UDP sender and the TCP listener")
    p.add_argument("--client-port", type=int, default=DEFAULTS["client_port"],
                   help="fixed local port of the TCP client")
    p.add_argument("--udp-port", type=int, default=DEFAULTS["udp_port"])
    p.add_argument("--tcp-port", type=int, default=DEFAULTS["tcp_port"])
    p.add_argument("--interval", type=_positive, default=2.0, help="send interval, s")
    p.add_argument("--read-timeout", type=_positive, default=2.0)
    p.add_argument("--start-after", type=float, default=0.0,
                   help="wait this long before the first send (the listener opens at once)")
    p.add_argument("--background-after", type=_positive,
                   help="go to background after this many seconds (also: SIGUSR1)")
    p.add_argument("--resume-after", type=_positive,
                   help="come back to foreground after this many seconds (also: SIGUSR2)")
    p.add_argument("--duration", type=_positive)
    p.add_argument("--log", type=Path, default=Path("app.log"))
    p.add_argument("--truth", type=Path, help="truth JSON (default: LOG's name + .truth.json)")
    p.add_argument("--clock-offset", type=float, default=0.0,
                   help="phone clock minus true time, s")
    p.add_argument("--tz", default="+0800", help="phone's zone, e.g. +0800")
    p.add_argument("--reuseaddr", action="store_true",
                   help="set SO_REUSEADDR, so re-binding the fixed ports works after resume")
    a = p.parse_args(argv)
    if a.background_after and a.resume_after and a.resume_after <= a.background_after:
        p.error("--resume-after must be later than --background-after")
    profile = PROFILES[a.profile]
    log = LogFile(a.log, profile.log_format, Clock(a.clock_offset, parse_tz(a.tz)))
    app = PhoneApp(profile, log, phone=a.phone, server=a.server, port=a.port,
                   client_port=a.client_port, udp_port=a.udp_port, tcp_port=a.tcp_port,
                   interval=a.interval, read_timeout=a.read_timeout, reuseaddr=a.reuseaddr,
                   start_after=a.start_after)
    timers = [threading.Timer(t, f) for t, f in ((a.background_after, app.background),
                                                 (a.resume_after, app.resume)) if t]
    try:
        app.start()
        for t in timers:
            t.daemon = True
            t.start()
        print("ready", flush=True)
        wait_for_stop(a.duration, extra={signal.SIGUSR1: app.background,
                                         signal.SIGUSR2: app.resume})
    finally:
        for t in timers:
            t.cancel()
        app.stop()
        log.close()
        write_truth(app, a.truth or a.log.with_name(a.log.stem + ".truth.json"))
    return 0


# -- session -------------------------------------------------------------------------------
@_one_line_errors
def session_main(argv: list[str]) -> int:
    """Emulate a phone, serve, record and analyse one session, into one directory."""
    from analyzer.capture.session import SessionSpec, run_session

    p = argparse.ArgumentParser(prog="analyze session", description=session_main.__doc__)
    p.add_argument("--profile", choices=("huawei", "ios", "plain"), required=True)
    p.add_argument("--out", type=Path, help="session directory (default: session-PROFILE-TIME)")
    p.add_argument("--duration", type=_positive, default=10.0)
    p.add_argument("--background-after", type=_positive, default=3.0)
    p.add_argument("--resume-after", type=_positive, default=6.0)
    p.add_argument("--interval", type=_positive, default=0.5)
    p.add_argument("--dial-timeout", type=_positive, default=1.0)
    p.add_argument("--phone", default=DEFAULTS["phone"])
    p.add_argument("--server", default=DEFAULTS["server"])
    p.add_argument("--port", type=int, default=DEFAULTS["port"])
    p.add_argument("--client-port", type=int, default=DEFAULTS["client_port"])
    p.add_argument("--udp-port", type=int, default=DEFAULTS["udp_port"])
    p.add_argument("--tcp-port", type=int, default=DEFAULTS["tcp_port"])
    p.add_argument("--clock-offset", type=float, default=2.5, help="phone clock minus true time")
    p.add_argument("--tz", default="+0800", help="phone's zone")
    p.add_argument("--interface", default="lo")
    p.add_argument("--tool", choices=("dumpcap", "tcpdump", "scapy"))
    p.add_argument("--reuseaddr", action="store_true")
    p.add_argument("--no-analyze", action="store_true", help="record only; skip `analyze`")
    a = p.parse_args(argv)
    if not a.background_after < a.resume_after < a.duration:
        p.error("need --background-after < --resume-after < --duration")
    spec = SessionSpec(**{k: v for k, v in vars(a).items() if k != "no_analyze"},
                       analyze=not a.no_analyze)
    result = run_session(spec)
    print(f"session in {result['dir']}", file=sys.stderr)
    if result.get("analysis_error"):
        print(f"analyze: analysis step failed: {result['analysis_error']}", file=sys.stderr)
        return 1
    return 0
