"""Recording a session: dumpcap, else tcpdump, else scapy's sniffer; pcapng plus a manifest.

The real tools are preferred because engineers trust them and they keep up with load. Both
are stopped with SIGINT, which makes them flush and close the file, so the last record is
never torn.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.capture import pcapng
from analyzer.exceptions import RecordError

TOOLS = ("dumpcap", "tcpdump")
_READY = {"dumpcap": re.compile(r"^Capturing on"), "tcpdump": re.compile(r"listening on ")}
_NO_RIGHTS = re.compile(r"permission|not permitted|EPERM|privileges", re.I)


@dataclass
class Tool:
    name: str
    path: str
    version: str = ""


def tool_version(name: str, path: str) -> str:
    """First line of `TOOL --version` (tcpdump prints its own version first, then libpcap's)."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    lines = (out.stdout + out.stderr).strip().splitlines()
    text = " ".join(line.strip() for line in lines[:2] if line.strip()) if name == "tcpdump" \
        else (lines[0].strip() if lines else "")
    return text


def find_tool(name: str | None = None) -> Tool:
    """The capture tool to use: `name` if given, else dumpcap, else tcpdump, else scapy."""
    wanted = [name] if name else [*TOOLS, "scapy"]
    for candidate in wanted:
        if candidate == "scapy":
            import scapy
            return Tool("scapy", "", f"scapy {scapy.__version__}")
        path = shutil.which(candidate)
        if path:
            return Tool(candidate, path, tool_version(candidate, path))
    raise RecordError(f"{name} not found on PATH")


def rights_hint(message: str, interface: str) -> str | None:
    """A one-line hint when a tool's error says it lacks capture rights, else None."""
    if not _NO_RIGHTS.search(message):
        return None
    return (f"no permission to capture on {interface}: run as root, or grant the capture "
            f"capability (e.g. setcap cap_net_raw,cap_net_admin+eip $(command -v dumpcap))")


def host_zone() -> dict:
    now = dt.datetime.now().astimezone()
    return {"name": now.tzname(), "utc_offset": now.strftime("%z"),
            "tz_env": os.environ.get("TZ")}


@dataclass
class Recorder:
    """One recording. `start()` returns once the tool is capturing; `stop()` ends it cleanly."""

    out: Path
    interface: str = "lo"
    capture_filter: str = ""
    tool: str | None = None
    ports: dict = field(default_factory=dict)
    phone: str | None = None
    server: str | None = None
    notify: object = None  # callable(str) for user-facing notes; default: stderr

    def __post_init__(self):
        self.out = Path(self.out)
        if self.out.is_dir():
            raise RecordError(f"{self.out} is a directory; give a capture file name")
        self.manifest_path = self.out.with_name(self.out.stem + ".manifest.json")
        self._proc: subprocess.Popen | None = None
        self._stderr: list[str] = []
        self._ready = threading.Event()
        self._sniffer = None
        self._writer = None
        self._tmp_pcap: Path | None = None
        self._started: float | None = None
        self._filter_applied = True
        self._manifest: dict = {}
        self._stopped = False
        self.packets: int | None = None
        self.dropped: int | None = None

    def _say(self, text: str) -> None:
        (self.notify or (lambda t: print(t, file=sys.stderr)))(text)

    # -- start -----------------------------------------------------------------------------
    def start(self, ready_timeout: float = 15.0) -> None:
        self._tool = find_tool(self.tool)
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.touch()  # fail here, in one line, rather than inside the tool
        except OSError as exc:
            raise RecordError(f"cannot write {self.out}: {exc.strerror}") from None
        if self._tool.name == "scapy":
            if self.tool is None:
                self._say("neither dumpcap nor tcpdump found on PATH: recording with scapy's "
                          "sniffer (slower; may miss packets under load)")
            self._start_scapy()
        else:
            self._start_tool(ready_timeout)
        self._started = time.time()
        self._write_manifest(end=None)

    def _command(self) -> list[str]:
        t = self._tool
        if t.name == "dumpcap":
            cmd = [t.path, "-i", self.interface, "-w", str(self.out), "-q"]
            cmd.append("-n" if self.out.suffix != ".pcap" else "-P")
        else:
            # tcpdump writes pcap only: record beside the target, convert at stop.
            self._tmp_pcap = (self.out if self.out.suffix == ".pcap"
                              else self.out.with_name(self.out.name + ".part.pcap"))
            # --immediate-mode: without it packets still in the ring at SIGINT are lost.
            cmd = [t.path, "-i", self.interface, "-w", str(self._tmp_pcap), "-U", "-s", "0",
                   "--immediate-mode", "--time-stamp-precision", "nano"]
            if os.geteuid() == 0:
                cmd += ["-Z", "root"]  # Debian's tcpdump otherwise drops to a user that may not write here
        if self.capture_filter:
            cmd += ["-f", self.capture_filter] if t.name == "dumpcap" else [self.capture_filter]
        return cmd

    def _start_tool(self, ready_timeout: float) -> None:
        cmd = self._command()
        try:
            # Own session: a Ctrl-C at the terminal reaches us, and we stop the tool in order.
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True,
                                          start_new_session=True)
        except OSError as exc:
            raise RecordError(f"cannot run {self._tool.path}: {exc.strerror}") from None
        threading.Thread(target=self._read_stderr, daemon=True).start()
        deadline = time.monotonic() + ready_timeout
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._fail_start()
        time.sleep(0.3)  # the ready line precedes the first read by a hair...
        if self._proc.poll() is not None:  # ...and dumpcap prints it even for a bad interface
            self._fail_start()

    def _read_stderr(self) -> None:
        pattern = _READY[self._tool.name]
        for line in self._proc.stderr:
            line = line.rstrip("\n")
            self._stderr.append(line)
            if pattern.search(line):
                self._ready.set()

    def _fail_start(self) -> None:
        if self._proc.poll() is None:
            self._terminate()
        time.sleep(0.1)
        raise RecordError(self.failure())

    def failure(self) -> str:
        """One line on why the tool stopped or would not start, from its own words."""
        text = "\n".join(self._stderr)
        hint = rights_hint(text, self.interface)
        if hint:
            return hint
        lines = [ln for ln in self._stderr if ln.strip() and "could be dangerous" not in ln
                 and not _READY[self._tool.name].search(ln) and not ln.startswith("(")]
        why = lines[-1].strip() if lines else "no output"
        return f"{self._tool.name} failed capturing on {self.interface}: {why}"

    def _start_scapy(self) -> None:
        from scapy.sendrecv import AsyncSniffer
        from scapy.utils import PcapNgWriter, PcapWriter
        writer_cls = PcapWriter if self.out.suffix == ".pcap" else PcapNgWriter
        self._writer = writer_cls(str(self.out))
        args = dict(iface=self.interface, store=False, prn=self._writer.write)
        if self.interface == "lo" and sys.platform.startswith("linux"):
            # On lo every packet passes the tap twice (out, then in); libpcap keeps one, and
            # scapy's sending socket class skips the outgoing copy the same way.
            from scapy.arch.linux import L2Socket
            args["L2socket"] = L2Socket
        try:
            self._sniffer = AsyncSniffer(filter=self.capture_filter or None, **args)
            self._sniffer.start()
            time.sleep(0.5)
            if not self._sniffer.running:
                raise RuntimeError("sniffer did not start")
        except PermissionError:
            raise RecordError(rights_hint("permission", self.interface)) from None
        except Exception as exc:  # scapy needs tcpdump to compile filters: keep everything
            if not self.capture_filter:
                raise RecordError(f"scapy sniffer failed on {self.interface}: {exc}") from None
            self._say(f"scapy could not apply the capture filter ({exc}); recording unfiltered")
            self._filter_applied = False
            self._sniffer = AsyncSniffer(**args)
            self._sniffer.start()
            time.sleep(0.5)

    # -- stop ------------------------------------------------------------------------------
    def alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return bool(self._sniffer and self._sniffer.running)

    def _terminate(self) -> None:
        """SIGINT first (the tools flush and close the file), then SIGTERM, then SIGKILL."""
        for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            if self._proc.poll() is not None:
                return
            try:
                self._proc.send_signal(sig)
            except ProcessLookupError:
                return
            try:
                self._proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def stop(self, grace: float = 0.5) -> dict:
        """End the recording; `grace` lets the kernel hand over its last ring block first
        (dumpcap has no immediate mode: a block still in the ring at SIGINT is lost)."""
        if self._stopped:
            return self._manifest
        self._stopped = True
        if self._proc is not None:
            if self._proc.poll() is None:
                time.sleep(grace)
            self._terminate()
            time.sleep(0.05)
            self._parse_counts()
            if self._tmp_pcap is not None and self._tmp_pcap != self.out:
                if not self._tmp_pcap.exists():
                    raise RecordError(f"tcpdump wrote no capture ({self._tmp_pcap})")
                self.packets = pcapng.convert(self._tmp_pcap, self.out, if_name=self.interface)
                self._tmp_pcap.unlink()
        elif self._sniffer is not None:
            if self._sniffer.running:
                self._sniffer.stop()
            self._writer.close()
        return self._write_manifest(end=time.time())

    def _parse_counts(self) -> None:
        text = "\n".join(self._stderr)
        m = re.search(r"Packets captured: (\d+)", text) or re.search(r"(\d+) packets? captured", text)
        if m:
            self.packets = int(m.group(1))
        m = re.search(r"received/dropped on interface .*?: \d+/(\d+)", text) \
            or re.search(r"(\d+) packets? dropped by kernel", text)
        if m:
            self.dropped = int(m.group(1))

    def _write_manifest(self, end: float | None) -> dict:
        start = self._started or time.time()
        manifest = {
            "capture": self.out.name,
            "format": "pcap" if self.out.suffix == ".pcap" else "pcapng",
            "start_time": start,
            "start_time_utc": dt.datetime.fromtimestamp(start, dt.timezone.utc).isoformat(),
            "end_time": end,
            "host_time_zone": host_zone(),
            "interface": self.interface,
            "filter": self.capture_filter,
            "filter_applied": self._filter_applied,
            "tool": {"name": self._tool.name, "path": self._tool.path,
                     "version": self._tool.version},
            "ports": self.ports,
            "phone": self.phone,
            "server": self.server,
            "packets": self.packets,
            "dropped": self.dropped,
        }
        self.manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        self._manifest = manifest
        return manifest

    def manifest(self) -> dict:
        """The manifest as last written (at start, then at stop)."""
        return self._manifest

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
