"""A phone stand-in (`analyze emulate`): the app side of the three tests, torn down for real.

The app binds fixed local ports, sends over UDP and a TCP client every `interval`, and
echoes on a TCP listener. On "background" the profile's teardown is applied to the real
sockets with the kernel mechanisms in `teardown`; on "resume" the app carries on as the
field report's app did: it writes, logs the errors, and re-creates its sockets on the same
fixed ports (bind fails with EADDRINUSE while the broken fd is still open, unless
`reuseaddr`). While in background the app runs no code, like a frozen/suspended app.
"""

from __future__ import annotations

import errno
import json
import os
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.capture import teardown
from analyzer.capture.goerrors import EOF_TEXT, describe, hostport
from analyzer.capture.logformat import LogFile, tz_string

_POLL = 0.2


@dataclass(frozen=True)
class Profile:
    name: str
    platform: str          # errno spelling: "android" (Linux) or "ios" (Darwin)
    log_format: str        # "logcat" or "xcode"
    background: str        # "destroy" (RST, SYN drop), "defunct" (FIN, SYN refused), "none"
    # The field report's Huawei app printed nothing for its listener's connections.
    quiet_conn_errors: bool = False


PROFILES = {
    "huawei": Profile("huawei", "android", "logcat", "destroy", quiet_conn_errors=True),
    "ios": Profile("ios", "ios", "xcode", "defunct"),
    "plain": Profile("plain", "android", "logcat", "none"),
}


@dataclass
class _Sock:
    """An app socket and what the app knows of it."""
    sock: socket.socket
    local: str
    remote: str
    broken: bool = False   # the app saw an error; it keeps the fd open (the field app's leak)
    defunct: bool = False  # iOS: xnu answers reads on a defunct socket with ENOTCONN


@dataclass
class PhoneApp:
    profile: Profile
    log: LogFile
    phone: str = "127.0.0.2"
    server: str = "127.0.0.1"
    port: int = 33322           # fixed local port: UDP sender and TCP listener
    client_port: int = 33323    # fixed local port of the TCP client
    udp_port: int = 15000
    tcp_port: int = 15100
    interval: float = 2.0
    read_timeout: float = 2.0
    reuseaddr: bool = False
    start_after: float = 0.0    # delay before the first send (let the server come up)
    truth: dict = field(default_factory=dict)

    def __post_init__(self):
        self._stop = threading.Event()
        self._awake = threading.Event()
        self._awake.set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._udp: _Sock | None = None
        self._tcp: _Sock | None = None
        self._listener: socket.socket | None = None
        self._listener_dead = False
        self._conns: list[_Sock] = []
        self._leaked: list[socket.socket] = []
        self._fam = socket.AF_INET6 if ":" in self.phone else socket.AF_INET
        self.truth.update(background_at=[], resume_at=[], mechanisms={})

    # -- helpers ---------------------------------------------------------------------------
    def _err(self, exc, op, net, addr, source=None, syscall=None) -> str:
        return describe(exc, op, net, addr, source=source, syscall=syscall,
                        platform=self.profile.platform)

    def _new_socket(self, kind: int) -> socket.socket:
        s = socket.socket(self._fam, kind)
        if self.reuseaddr:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return s

    def _gate(self) -> bool:
        """Block while in background (the app runs no code); False once stopping."""
        while not self._awake.wait(_POLL):
            if self._stop.is_set():
                return False
        return not self._stop.is_set()

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(t)
        t.start()

    def _forget(self, s: _Sock) -> None:
        # The app drops its handle but never closes the fd, so the port stays taken.
        with self._lock:
            self._leaked.append(s.sock)

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.truth.update(started_at=time.time(), pid=os.getpid())
        self._open_listener()
        self._spawn(self._ticker)

    def stop(self) -> None:
        self._stop.set()
        self._awake.set()
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(5)
        with self._lock:
            socks = [s.sock for s in (self._udp, self._tcp) if s] + [c.sock for c in self._conns]
            socks += self._leaked + ([self._listener] if self._listener else [])
        for s in socks:
            s.close()  # closing the listener also removes any drop filter on it
        self.log.log("app exiting")

    # -- background / resume ---------------------------------------------------------------
    def background(self) -> None:
        self._guarded("background", self._background)

    def resume(self) -> None:
        self._guarded("resume", self._resume)

    def _guarded(self, name: str, func) -> None:
        # Triggers run on timer/signal threads, where an exception would vanish unseen.
        try:
            func()
        except Exception as exc:  # noqa: BLE001 - reported, and kept in the truth file
            msg = f"{name} failed: {exc!r}"
            self.truth.setdefault("errors", []).append(msg)
            print(f"analyze emulate: {msg}", file=sys.stderr, flush=True)

    def _background(self) -> None:
        with self._lock:
            if self._stop.is_set() or len(self.truth["background_at"]) > len(self.truth["resume_at"]):
                return  # already in background
            self.truth["background_at"].append(self.log.log("app did enter background"))
            kind = self.profile.background
            if kind != "none":  # other brands let a background app keep running
                self._awake.clear()
            mech = self.truth["mechanisms"]
            conns = [s for s in (self._tcp, *self._conns) if s and not s.broken]
            if kind == "destroy":
                for s in conns + ([self._udp] if self._udp and not self._udp.broken else []):
                    try:
                        mech[s.local + "->" + s.remote] = teardown.abort(s.sock)
                    except OSError as exc:  # already gone (peer closed): nothing to destroy
                        mech[s.local + "->" + s.remote] = f"none ({exc.strerror})"
                if self._listener:
                    teardown.drop_incoming(self._listener)
                    mech["listener"] = "socket_filter_drop"
            elif kind == "defunct":
                for s in conns + ([self._udp] if self._udp else []):
                    teardown.defunct(s.sock)
                    s.defunct = True
                    mech[s.local + "->" + s.remote] = "shutdown"
                if self._listener:
                    teardown.defunct(self._listener)
                    self._listener_dead = True
                    mech["listener"] = "shutdown"

    def _resume(self) -> None:
        with self._lock:
            if self._stop.is_set() or len(self.truth["resume_at"]) >= len(self.truth["background_at"]):
                return  # not in background
            if self.profile.background == "destroy" and self._listener:
                teardown.allow_incoming(self._listener)  # the firewall lifts in foreground
            self.truth["resume_at"].append(self.log.log("app will enter foreground"))
            self._awake.set()

    # -- UDP and TCP client: send every interval -------------------------------------------
    def _ticker(self) -> None:
        seq = 0
        if self._stop.wait(self.start_after):
            return
        while not self._stop.wait(self.interval):
            if not self._gate():
                return
            seq += 1
            self._udp_tick(seq)
            self._tcp_tick(seq)

    def _udp_tick(self, seq: int) -> None:
        server = hostport(self.server, self.udp_port)
        if self._udp is None or self._udp.broken:
            local = hostport(self.phone, self.port)
            s = self._new_socket(socket.SOCK_DGRAM)
            try:
                s.bind((self.phone, self.port))
                s.connect((self.server, self.udp_port))
            except OSError as exc:
                s.close()
                self.log.log(f"udp dial err:  {self._err(exc, 'dial', 'udp', server, local, 'bind')}")
                return
            if self._udp is not None:
                self._forget(self._udp)
            self._udp = _Sock(s, local, server)
        u = self._udp
        payload = f"udp {seq}\n".encode()
        try:
            u.sock.send(payload)
        except OSError as exc:
            u.broken = True
            self.log.log(f"udp write err:  {self._err(exc, 'write', 'udp', u.remote, u.local)}")
            return
        self.log.log(f"udp write {len(payload)} bytes to {u.remote}")
        u.sock.settimeout(self.read_timeout)
        try:
            data = u.sock.recv(65535)
            self.log.log(f"udp read {len(data)} bytes from {u.remote}")
        except OSError as exc:
            self.log.log(f"udp read err:  {self._err(exc, 'read', 'udp', u.remote, u.local)}")

    def _tcp_tick(self, seq: int) -> None:
        server = hostport(self.server, self.tcp_port)
        if self._tcp is None or self._tcp.broken:
            local = hostport(self.phone, self.client_port)
            s = self._new_socket(socket.SOCK_STREAM)
            step = "bind"
            try:
                s.bind((self.phone, self.client_port))
                step = "connect"
                s.settimeout(self.read_timeout)
                s.connect((self.server, self.tcp_port))
            except OSError as exc:
                s.close()
                self.log.log(f"tcp dial err:  {self._err(exc, 'dial', 'tcp', server, local, step)}")
                return
            if self._tcp is not None:
                self._forget(self._tcp)
            self._tcp = _Sock(s, local, server)
            self.log.log(f"tcp connected {local}->{server}")
        t = self._tcp
        payload = f"tcp {seq}\n".encode()
        try:
            t.sock.sendall(payload)
        except OSError as exc:
            t.broken = True
            self.log.log(f"tcp write err:  {self._err(exc, 'write', 'tcp', t.remote, t.local)}")
            return
        self.log.log(f"tcp write {len(payload)} bytes to {t.remote}")
        try:
            data = t.sock.recv(65536)
        except OSError as exc:
            t.broken = not isinstance(exc, TimeoutError) or bool(exc.errno)
            self.log.log(f"tcp read err:  {self._err(exc, 'read', 'tcp', t.remote, t.local)}")
            return
        if not data:
            t.broken = True
            self.log.log(f"tcp read err:  {EOF_TEXT}")
            return
        self.log.log(f"tcp read {len(data)} bytes from {t.remote}")

    # -- TCP server: the listener and its connections --------------------------------------
    def _open_listener(self) -> None:
        local = hostport(self.phone, self.port)
        s = self._new_socket(socket.SOCK_STREAM)
        # Go's net.Listen always sets SO_REUSEADDR (a TIME_WAIT must not block a restart);
        # its dialers and UDP sockets do not, hence the field report's EADDRINUSE.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((self.phone, self.port))
            s.listen(16)
        except OSError as exc:
            s.close()
            self.log.log(f"listen err:  {self._err(exc, 'listen', 'tcp', local, syscall='bind')}")
            return
        self._listener = s
        self.log.log(f"tcp server listening on {local}")
        self._spawn(self._accept_loop)

    def _accept_loop(self) -> None:
        lst = self._listener
        while not self._stop.is_set():
            ready, _, _ = select.select([lst], [], [], _POLL)
            if not ready or not self._gate():
                continue
            if self._listener_dead:
                # Go's Accept retries ECONNABORTED silently, so a defunct listener just hangs.
                return
            try:
                conn, peer = lst.accept()
            except BlockingIOError:
                continue
            except OSError as exc:
                if self._stop.is_set():
                    return
                self.log.log(f"accept err:  {self._err(exc, 'accept', 'tcp', hostport(self.phone, self.port))}")
                continue
            c = _Sock(conn, hostport(*conn.getsockname()[:2]), hostport(*peer[:2]))
            with self._lock:
                self._conns.append(c)
            self.log.log(f"tcp server accepted {c.remote}")
            self._spawn(self._serve_conn, c)

    def _serve_conn(self, c: _Sock) -> None:
        quiet = self.profile.quiet_conn_errors
        while not self._stop.is_set():
            ready, _, _ = select.select([c.sock], [], [], _POLL)
            if not ready or not self._gate():
                continue
            try:
                if c.defunct:
                    raise OSError(errno.ENOTCONN, "defunct")
                data = c.sock.recv(65536)
            except OSError as exc:
                c.broken = True
                if not quiet:
                    self.log.log(f"conn {c.remote} read err:  "
                                 f"{self._err(exc, 'read', 'tcp', c.remote, c.local)}")
                return
            if not data:
                c.broken = True
                if not quiet:
                    self.log.log(f"conn {c.remote} read err:  {EOF_TEXT}")
                return
            self.log.log(f"conn {c.remote} read {len(data)} bytes")
            try:
                c.sock.sendall(data)
                self.log.log(f"conn {c.remote} write {len(data)} bytes")
            except OSError as exc:
                c.broken = True
                if not quiet:
                    self.log.log(f"conn {c.remote} write err:  "
                                 f"{self._err(exc, 'write', 'tcp', c.remote, c.local)}")
                return

    # -- truth -----------------------------------------------------------------------------
    def truth_record(self) -> dict:
        clock = self.log.clock
        fmt = lambda ts: clock.local(ts).isoformat()  # noqa: E731
        return {
            **self.truth,
            "profile": self.profile.name,
            "platform": self.profile.platform,
            "log_format": self.profile.log_format,
            "log": self.log.path.name,
            "phone": self.phone, "server": self.server,
            "ports": {"udp_local": self.port, "tcp_client_local": self.client_port,
                      "listener": self.port, "server_udp": self.udp_port,
                      "server_tcp": self.tcp_port},
            "clock": {"offset_s": clock.offset_s, "tz": tz_string(clock.tz),
                      "meaning": "phone clock = true time + offset_s, shown in tz"},
            "background_at_phone": [fmt(t) for t in self.truth["background_at"]],
            "resume_at_phone": [fmt(t) for t in self.truth["resume_at"]],
            "reuseaddr": self.reuseaddr,
        }


def write_truth(app: PhoneApp, path: str | Path) -> None:
    Path(path).write_text(json.dumps(app.truth_record(), indent=2) + "\n")
