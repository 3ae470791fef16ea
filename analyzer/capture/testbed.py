"""The server side of the field report's three tests (`analyze serve`).

UDP echo, TCP echo, and a dialer that connects to the phone's listener, sends every
`interval` seconds, reads the echo and redials after any failure. Everything it does goes
to a Go-`log`-format file, with error texts as a Go server on Linux would print them.
"""

from __future__ import annotations

import select
import socket
import threading

from analyzer.capture.goerrors import EOF_TEXT, describe, hostport
from analyzer.capture.logformat import LogFile
from analyzer.exceptions import RecordError

TCP_USER_TIMEOUT = 18  # linux/tcp.h; bounds connect() too, so a dropped SYN fails fast
_POLL = 0.2  # how often blocking loops look at the stop flag


def _family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _hp(addr) -> str:
    return hostport(addr[0], addr[1])


class Testbed:
    def __init__(self, log: LogFile, host: str = "127.0.0.1", udp_port: int = 15000,
                 tcp_port: int = 15100, phone: str | None = None, phone_port: int = 33322,
                 interval: float = 2.0, dial_timeout: float = 5.0, read_timeout: float = 5.0):
        self.log, self.host = log, host
        self.udp_port, self.tcp_port = udp_port, tcp_port
        self.phone, self.phone_port = phone, phone_port
        self.interval, self.dial_timeout, self.read_timeout = interval, dial_timeout, read_timeout
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._udp = self._tcp = None

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        fam = _family(self.host)
        try:
            self._udp = socket.socket(fam, socket.SOCK_DGRAM)
            self._udp.bind((self.host, self.udp_port))
            self._tcp = socket.socket(fam, socket.SOCK_STREAM)
            self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._tcp.bind((self.host, self.tcp_port))
            self._tcp.listen(64)
        except OSError as exc:
            self._close_listeners()
            raise RecordError(f"serve: cannot bind {self.host} (udp {self.udp_port}, "
                              f"tcp {self.tcp_port}): {exc.strerror}") from None
        self.log.log(f"udp echo listening on {hostport(self.host, self.udp_port)}")
        self.log.log(f"tcp echo listening on {hostport(self.host, self.tcp_port)}")
        self._spawn(self._udp_echo)
        self._spawn(self._accept_loop)
        if self.phone:
            self._spawn(self._dialer)

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(t)
        t.start()

    def _close_listeners(self) -> None:
        for s in (self._udp, self._tcp):
            if s is not None:
                s.close()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(5)
        self._close_listeners()
        with self._lock:
            for c in self._conns:
                c.close()
        self.log.log("server shutting down")

    # -- UDP echo --------------------------------------------------------------------------
    def _udp_echo(self) -> None:
        me = hostport(self.host, self.udp_port)
        self._udp.settimeout(_POLL)
        while not self._stop.is_set():
            try:
                data, peer = self._udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError as exc:
                self.log.log(f"udp read error: {describe(exc, 'read', 'udp', me, syscall='recvfrom')}")
                continue
            self.log.log(f"udp read {len(data)} bytes from {_hp(peer)}")
            try:
                self._udp.sendto(data, peer)
                self.log.log(f"udp write {len(data)} bytes to {_hp(peer)}")
            except OSError as exc:
                err = describe(exc, "write", "udp", _hp(peer), source=me, syscall="sendto")
                self.log.log(f"udp write error: {err}")

    # -- TCP echo --------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        self._tcp.settimeout(_POLL)
        while not self._stop.is_set():
            try:
                conn, peer = self._tcp.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stop.is_set():
                    return
                me = hostport(self.host, self.tcp_port)
                self.log.log(f"accept error: {describe(exc, 'accept', 'tcp', me)}")
                continue
            with self._lock:
                self._conns.add(conn)
            self.log.log(f"recv new connection from {_hp(peer)}")
            self._spawn(self._echo_conn, conn, peer)

    def _echo_conn(self, conn: socket.socket, peer) -> None:
        who, local = _hp(peer), _hp(conn.getsockname())
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([conn], [], [], _POLL)
                if not ready:
                    continue
                try:
                    data = conn.recv(65536)
                except OSError as exc:
                    self.log.log(f"conn {who} read error: "
                                 f"{describe(exc, 'read', 'tcp', who, source=local)}")
                    return
                if not data:
                    self.log.log(f"conn {who} read error: {EOF_TEXT}")
                    return
                self.log.log(f"conn {who} read {len(data)} bytes")
                try:
                    conn.sendall(data)
                    self.log.log(f"conn {who} write {len(data)} bytes")
                except OSError as exc:
                    self.log.log(f"conn {who} write error: "
                                 f"{describe(exc, 'write', 'tcp', who, source=local)}")
                    return
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    # -- dialer to the phone's listener ----------------------------------------------------
    def _dialer(self) -> None:
        target = hostport(self.phone, self.phone_port)
        seq = 0
        while not self._stop.is_set():
            sock = socket.socket(_family(self.phone), socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, int(self.dial_timeout * 1000))
            sock.settimeout(self.dial_timeout + 2)  # safety net; the kernel gives up first
            try:
                sock.connect((self.phone, self.phone_port))
            except OSError as exc:
                sock.close()
                err = describe(exc, "dial", "tcp", target, syscall="connect")
                self.log.log(f"dial {target} err: {err}")
                self._redial_pause(target)
                continue
            local = _hp(sock.getsockname())
            self.log.log(f"dial {target} connected from {local}")
            with self._lock:
                self._conns.add(sock)
            try:
                seq = self._talk(sock, target, local, seq)
            finally:
                with self._lock:
                    self._conns.discard(sock)
                sock.close()
            self._redial_pause(target)

    def _redial_pause(self, target: str) -> None:
        if not self._stop.is_set():
            self.log.log(f"redial {target} in {self.interval:g}s")
            self._stop.wait(self.interval)

    def _talk(self, sock: socket.socket, target: str, local: str, seq: int) -> int:
        """Send, read the echo, repeat every interval; return at the first failure."""
        sock.settimeout(self.read_timeout)
        while not self._stop.wait(self.interval):
            seq += 1
            payload = f"dial {seq}\n".encode()
            try:
                sock.sendall(payload)
            except OSError as exc:
                self.log.log(f"conn {target} write error: "
                             f"{describe(exc, 'write', 'tcp', target, source=local)}")
                return seq
            self.log.log(f"conn {target} write {len(payload)} bytes")
            try:
                data = sock.recv(65536)
            except OSError as exc:
                self.log.log(f"conn {target} read error: "
                             f"{describe(exc, 'read', 'tcp', target, source=local)}")
                return seq
            if not data:
                self.log.log(f"conn {target} read error: {EOF_TEXT}")
                return seq
            self.log.log(f"conn {target} read {len(data)} bytes")
        return seq
