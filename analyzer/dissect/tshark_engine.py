"""`--engine tshark`: the packet table through Wireshark's dissectors.

This engine exists for link layers our own reader does not know and as a cross-check of
it. It produces exactly the columns of `analyzer.dissect.packets` with the same meaning
as our reader: every frame as it is on the wire (no IP or TCP reassembly), raw sequence
numbers, the OUTER IP header for the main columns, the quoted header of ICMP/ICMPv6
errors in the q_* columns.

How it runs, and why (measured on this machine, 2 shared cores, tshark 4.0.17,
pyshark 0.6, a generated 20,000-packet Ethernet TCP/UDP pcap):

  pyshark FileCapture(use_json=True)           ~5,000 packets/s (first 4,000 packets)
  pyshark use_ek with `-e` field selection      not usable: pyshark's EK parser needs
                                                the full `frame` layer (KeyError 'frame')
  pyshark use_json with `-J frame ip tcp udp`   not usable either (KeyError
                                                'frame.protocols')
  tshark -T fields alone, these 36 fields       ~22,000 packets/s (0.92 s, start-up included)
  this module, end to end to numpy batches      ~25,000 packets/s (0.78 s): the Python
                                                parsing overlaps tshark, which is the
                                                bottleneck

So the bulk goes through `tshark -T fields` driven by `subprocess` (no asyncio, hence no
event-loop trouble in Jupyter or any other program with a running loop). pyshark is
used for what it is good at: locating tshark (honouring pyshark's config.ini), and
`TsharkCapture.dissect(frame)`, which hands back one frame as a full pyshark packet
object (every dissector field) for drill-down in a notebook. That call runs pyshark on
a private event loop in a worker thread, so it works whether or not the caller already
has a running loop (Jupyter does).

Known differences from our reader, by design of Wireshark:
  - a frame whose link layer Wireshark decodes but which carries no IP is DECODE_NOT_IP
    even when our reader would call the link type unknown (e.g. Netlink);
  - `payload` is `tcp.len` for TCP, `udp.length - 8` for UDP (the header's claim, clamped
    at 0), and 0 for anything else;
  - `linktype` comes from the file header for classic pcap (exact, e.g. 12 for BSD RAW);
    for pcapng and other formats it is mapped from Wireshark's encapsulation, so RAW
    interfaces read as 101 whatever the IDB said, and an encapsulation with no pcap
    equivalent reads as -1.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from analyzer.dissect.packets import (
    DECODE_MALFORMED,
    DECODE_NOT_IP,
    DECODE_OK,
    DECODE_TRUNCATED,
    DECODE_UNKNOWN_LINK,
    FRAG_FIRST,
    FRAG_LATER,
    FRAG_NONE,
    PACKET_COLUMNS,
    empty_batch,
)
from analyzer.exceptions import CaptureError

TSHARK_NOT_FOUND = "tshark not found; install Wireshark's tshark or use --engine native"

# The fields asked of tshark, in output order.
FIELDS = [
    "frame.number", "frame.time_epoch", "frame.encap_type", "frame.cap_len", "frame.len",
    "frame.protocols",
    "ip.src", "ip.dst", "ip.proto", "ip.flags.mf", "ip.frag_offset",
    "ipv6.src", "ipv6.dst", "ipv6.nxt",
    "ipv6.hopopts.nxt", "ipv6.routing.nxt", "ipv6.fraghdr.nxt", "ipv6.dstopts.nxt",
    "ipv6.fraghdr.offset", "ipv6.fraghdr.more",
    "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw",
    "tcp.window_size_value", "tcp.len",
    "udp.srcport", "udp.dstport", "udp.length",
    "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code",
    "_ws.malformed", "_ws.short",
]
_IX = {name: i for i, name in enumerate(FIELDS)}

# Preferences: every frame as it is on the wire, and skip analysis we do not use.
PREFS = [
    "ip.defragment:FALSE",
    "ipv6.defragment:FALSE",
    "tcp.desegment_tcp_streams:FALSE",
    "tcp.analyze_sequence_numbers:FALSE",
    "tcp.calculate_timestamps:FALSE",
]

# Wireshark WTAP_ENCAP_* -> pcap LINKTYPE_*. Every entry was checked against the
# corpus (file header link type vs. tshark's frame.encap_type), except the USERn range,
# which is contiguous in both numberings.
WTAP_TO_LINKTYPE = {
    1: 1,      # Ethernet
    4: 9,      # PPP
    7: 101,    # raw IP (LINKTYPE 12/14/101 all land here)
    15: 0,     # NULL / BSD loopback
    25: 113,   # Linux cooked (SLL)
    26: 107,   # Frame Relay
    129: 228,  # raw IPv4
    130: 229,  # raw IPv6
    141: 239,  # NFLOG
    158: 253,  # Netlink
    171: 258,  # Apple PKTAP
    210: 276,  # Linux cooked v2 (SLL2)
}
WTAP_TO_LINKTYPE.update({45 + i: 147 + i for i in range(16)})  # USER0..USER15

_L4_NUMBER = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
_V6_EXT_NXT = {
    "ipv6.hopopts": "ipv6.hopopts.nxt",
    "ipv6.routing": "ipv6.routing.nxt",
    "ipv6.fraghdr": "ipv6.fraghdr.nxt",
    "ipv6.dstopts": "ipv6.dstopts.nxt",
}
# Exceptions tshark reports inside these dissectors concern the headers we decode.
_HEADER_PROTOS = ("IPv4", "IPv6", "TCP", "UDP", "ICMP", "ICMPv6")

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",   # microseconds
    b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">",   # nanoseconds
    b"\x34\xcd\xb2\xa1": "<", b"\xa1\xb2\xcd\x34": ">",   # modified (Kuznetzov)
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def find_tshark() -> str:
    """Path of tshark, found the way pyshark finds it (its config.ini, then PATH)."""
    try:
        from pyshark.tshark.tshark import TSharkNotFoundException, get_process_path
    except ImportError:  # pragma: no cover - pyshark is a dependency
        import shutil

        path = shutil.which("tshark")
        if path is None:
            raise CaptureError(TSHARK_NOT_FOUND) from None
        return path
    try:
        path = get_process_path()
    except TSharkNotFoundException:
        raise CaptureError(TSHARK_NOT_FOUND) from None
    if not os.access(path, os.X_OK):
        raise CaptureError(TSHARK_NOT_FOUND)
    return path


def _sniff_format(path: Path) -> tuple[str, int | None]:
    """(format name, classic-pcap header link type or None) from the file's magic."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            compression = ""
            if head[:2] == b"\x1f\x8b":
                compression = "+gzip"
                fh.close()
                fh = gzip.open(path, "rb")
            elif head == b"\x28\xb5\x2f\xfd":
                compression = "+zstd"
                try:
                    import zstandard

                    fh.close()
                    fh = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))
                except ImportError:
                    return "unknown" + compression, None
            if compression:
                head = fh.read(4)
            if head in _PCAP_MAGICS:
                rest = fh.read(20)
                if len(rest) < 20:
                    return "pcap" + compression, None
                linktype = int.from_bytes(rest[16:20], "little" if _PCAP_MAGICS[head] == "<" else "big")
                return "pcap" + compression, linktype & 0xFFFF
            if head == _PCAPNG_MAGIC:
                return "pcapng" + compression, None
            return "unknown" + compression, None
    except (OSError, EOFError, ValueError):
        return "unknown", None


def _tshark_errors(text: str) -> list[str]:
    """tshark's error messages from its stderr, each joined onto one line.

    A message starts with "tshark: " and may continue on following lines (the
    parenthesised detail, e.g. "(pcapng: unknown SHB version 2.0)").
    """
    errors: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("tshark:"):
            errors.append(line[len("tshark:"):].strip())
        elif line and errors:
            errors[-1] += " " + line
    return errors


def _time_ns(text: str) -> int:
    """'1258568548.135731000' -> exact integer nanoseconds (no float on the way)."""
    if not text:
        return 0
    neg = text.startswith("-")
    if neg:
        text = text[1:]
    sec, _, frac = text.partition(".")
    ns = int(sec or "0") * 1_000_000_000 + int((frac + "000000000")[:9])
    return -ns if neg else ns


_INT64_MAX = 2**63 - 1


def _wrap_time(ns: int) -> int | None:
    """A time beyond int64 nanoseconds, read back as a wrapped signed 64-bit count.

    tshark prints an unsigned 64-bit timestamp that a capture meant as negative (pcapng
    block with units 2^64 - k) as a huge positive time. Read it the way a reader of the
    signed 64-bit field would: in the largest unit that divides it exactly (ns, us, ms,
    s), minus 2^64. None when that does not bring it into range either.
    """
    for unit in (10**9, 10**6, 10**3, 1):
        if ns % unit == 0:
            value = ns // unit
            if value >= 2**63:
                value -= 2**64
            wrapped = value * unit
            if -_INT64_MAX - 1 <= wrapped <= _INT64_MAX:
                return wrapped
    return None


def _ip_int(text: str) -> tuple[int, int]:
    """Address text -> (hi, lo) halves, IPv4-mapped for IPv4."""
    if ":" not in text:
        a, b, c, d = text.split(".")
        return 0, 0xFFFF00000000 | (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)
    import ipaddress

    value = int(ipaddress.IPv6Address(text))
    return value >> 64, value & 0xFFFFFFFFFFFFFFFF


def _pick(values: list[list[str]], name: str, occ: int) -> str:
    """The occ-th occurrence of a field in this frame, '' when absent."""
    lst = values[_IX[name]]
    return lst[occ] if occ < len(lst) else ""


def _int(text: str, default: int = 0) -> int:
    if not text:
        return default
    try:
        return int(text, 0) if text.startswith("0x") else int(text)
    except ValueError:
        return default


class _IpLayer:
    """One IP header (with its IPv6 extension headers) found in the protocol chain."""

    __slots__ = ("version", "src", "dst", "proto", "fragment", "l4_token", "l4_occ", "end")

    def __init__(self) -> None:
        self.version = 0
        self.src = ""
        self.dst = ""
        self.proto = 0
        self.fragment = FRAG_NONE
        self.l4_token = ""
        self.l4_occ = 0
        self.end = 0  # chain index just after this layer's L4 token (or ext headers)


def _ip_layer(tokens: list[str], occs: list[int], i: int, values: list[list[str]],
              has_src: bool) -> _IpLayer:
    layer = _IpLayer()
    tok, occ = tokens[i], occs[i]
    j = i + 1
    if tok == "ip":
        layer.version = 4
        if has_src:
            layer.src = _pick(values, "ip.src", occ)
            layer.dst = _pick(values, "ip.dst", occ)
        layer.proto = _int(_pick(values, "ip.proto", occ))
        mf = _pick(values, "ip.flags.mf", occ)
        off = _int(_pick(values, "ip.frag_offset", occ))
        if off:
            layer.fragment = FRAG_LATER
        elif mf in ("1", "True"):
            layer.fragment = FRAG_FIRST
    else:
        layer.version = 6
        if has_src:
            layer.src = _pick(values, "ipv6.src", occ)
            layer.dst = _pick(values, "ipv6.dst", occ)
        nxt = _pick(values, "ipv6.nxt", occ)
        while j < len(tokens) and tokens[j] in _V6_EXT_NXT:
            ext, eocc = tokens[j], occs[j]
            nxt = _pick(values, _V6_EXT_NXT[ext], eocc) or nxt
            if ext == "ipv6.fraghdr":
                off = _int(_pick(values, "ipv6.fraghdr.offset", eocc))
                more = _pick(values, "ipv6.fraghdr.more", eocc)
                if off:
                    layer.fragment = FRAG_LATER
                elif more in ("1", "True"):
                    layer.fragment = FRAG_FIRST
            j += 1
        layer.proto = _int(nxt)
    if j < len(tokens) and tokens[j] in _L4_NUMBER and layer.fragment != FRAG_LATER:
        layer.l4_token = tokens[j]
        layer.l4_occ = occs[j]
        if not layer.proto:
            layer.proto = _L4_NUMBER[tokens[j]]
        j += 1
    layer.end = j
    return layer


class TsharkCapture:
    """Read a capture through tshark and hand out packet-table batches.

    `info` is filled as reading goes; after a full iteration it holds
    {"file", "format", "link_types", "packets", "warnings"}. `format` is "pcap",
    "pcapng" or "unknown" (what the magic says; "+gzip"/"+zstd" when compressed),
    `link_types` the pcap LINKTYPE numbers seen (see the module note).
    """

    def __init__(self, path: str | os.PathLike, batch_size: int = 50_000):
        self.path = Path(path)
        self.batch_size = max(1, int(batch_size))
        fmt, header_linktype = _sniff_format(self.path) if self.path.is_file() else ("unknown", None)
        self._header_linktype = header_linktype if fmt.startswith("pcap") and not fmt.startswith("pcapng") else None
        self.info: dict = {
            "file": str(self.path),
            "format": fmt,
            "link_types": [header_linktype] if self._header_linktype is not None else [],
            "packets": 0,
            "warnings": [],
        }

    # -- the bulk path: tshark -T fields -------------------------------------------
    def _command(self, tshark: str) -> list[str]:
        cmd = [tshark, "-n", "-r", str(self.path), "-T", "fields",
               "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,",
               "-E", "quote=n", "-E", "header=n"]
        for pref in PREFS:
            cmd += ["-o", pref]
        for field in FIELDS:
            cmd += ["-e", field]
        return cmd

    def batches(self) -> Iterator[dict[str, np.ndarray]]:
        """Packet-table batches in frame order; the tshark process ends with the iterator."""
        if not self.path.exists():
            raise CaptureError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise CaptureError(f"{self.path}: not a file")
        tshark = find_tshark()
        stderr = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(
                self._command(tshark), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=stderr, env={**os.environ, "LC_ALL": "C"},
            )
        except OSError as exc:
            stderr.close()
            raise CaptureError(f"{TSHARK_NOT_FOUND} ({exc.strerror})") from None
        linktypes: set[int] = set(self.info["link_types"])
        self._odd_times = 0
        self._no_times = 0
        packets = 0
        finished = False
        try:
            rows: list[tuple] = []
            for raw in proc.stdout:
                rows.append(self._parse_line(raw.decode("utf-8", "replace").rstrip("\r\n")))
                if len(rows) >= self.batch_size:
                    batch = self._to_batch(rows)
                    packets += len(rows)
                    linktypes.update(int(x) for x in np.unique(batch["linktype"]) if x >= 0)
                    self.info["packets"] = packets
                    self.info["link_types"] = sorted(linktypes)
                    rows = []
                    yield batch
            proc.stdout.close()
            rc = proc.wait()
            stderr.seek(0)
            errors = _tshark_errors(stderr.read().decode("utf-8", "replace"))
            if rows:
                batch = self._to_batch(rows)
                packets += len(rows)
                linktypes.update(int(x) for x in np.unique(batch["linktype"]) if x >= 0)
            self.info["packets"] = packets
            self.info["link_types"] = sorted(linktypes)
            reason = "; ".join(errors)
            if rc != 0 or errors:
                if packets == 0:
                    raise CaptureError(
                        f"{self.path}: tshark cannot read it: {reason or f'tshark exit status {rc}'}")
                self.info["warnings"].append(
                    f"{self.path.name}: read {packets} frames, then tshark stopped: "
                    f"{reason or f'exit status {rc}'}")
            if self._odd_times:
                self.info["warnings"].append(
                    f"{self.path.name}: {self._odd_times} frames have timestamps beyond the "
                    "64-bit nanosecond range (wrapped unsigned values); read as signed 64-bit")
            if self._no_times:
                self.info["warnings"].append(
                    f"{self.path.name}: {self._no_times} frames carry no timestamp (ts_ns 0)")
            if rc == 0 and not errors and packets == 0 and self.path.stat().st_size == 0:
                self.info["warnings"].append(f"{self.path.name}: empty file (0 bytes), no frames")
            finished = True
            if rows:
                yield batch
        finally:
            if proc.poll() is None:
                proc.kill()
            if proc.stdout and not proc.stdout.closed:
                proc.stdout.close()
            proc.wait()
            stderr.close()
            if not finished:
                self.info["packets"] = packets

    def _parse_line(self, line: str) -> tuple:
        parts = line.split("\t")
        if len(parts) < len(FIELDS):
            parts += [""] * (len(FIELDS) - len(parts))
        values = [p.split(",") if p else [] for p in parts]
        frame = _int(parts[0])
        ts_ns = _time_ns(parts[1])
        if not parts[1]:
            self._no_times += 1  # a record without a time (pcapng SPB, custom block...)
        if not -_INT64_MAX - 1 <= ts_ns <= _INT64_MAX:
            wrapped = _wrap_time(ts_ns)
            self._odd_times += 1
            ts_ns = wrapped if wrapped is not None else 0
        encap = _int(parts[2], -1)
        if self._header_linktype is not None:
            linktype = self._header_linktype
        else:
            linktype = WTAP_TO_LINKTYPE.get(encap, -1)
        caplen = _int(parts[3])
        wirelen = _int(parts[4])
        tokens = [t for t in parts[5].split(":") if t] if parts[5] else []
        malformed = parts[_IX["_ws.malformed"]]
        short = bool(parts[_IX["_ws.short"]])

        # occurrence index of each chain token among tokens of the same name
        seen: dict[str, int] = {}
        occs = []
        for t in tokens:
            occs.append(seen.get(t, 0))
            seen[t] = occs[-1] + 1

        row = dict(frame=frame, ts_ns=ts_ns, linktype=linktype, caplen=caplen, wirelen=wirelen)
        first_ip = next((i for i, t in enumerate(tokens) if t in ("ip", "ipv6")), None)
        if first_ip is None:
            if not tokens or tokens[0] in ("data", "mime_dlt") or encap <= 0:
                row["status"] = DECODE_UNKNOWN_LINK
            elif short or "[Malformed Packet" in malformed:
                row["status"] = DECODE_TRUNCATED  # link header cut short before any IP
            else:
                row["status"] = DECODE_NOT_IP
            return row

        # Does the outer IP header carry its addresses? tshark leaves them out when it
        # gives up on a header (bogus version / length). A later IP layer missing its
        # addresses is usually the quoted packet of an ICMP error, cut short.
        tok = tokens[first_ip]
        n_tok = sum(1 for t in tokens if t == tok)
        n_src = len(values[_IX["ip.src" if tok == "ip" else "ipv6.src"]])
        has_src = n_src >= n_tok or (n_src > 0 and first_ip + 1 < len(tokens)
                                     and tokens[first_ip + 1] in ("icmp", "icmpv6"))
        outer = _ip_layer(tokens, occs, first_ip, values, has_src)
        row["ip_version"] = outer.version
        row["proto"] = outer.proto
        row["fragment"] = outer.fragment
        exception = short or "[Malformed Packet" in malformed
        if not outer.src:
            row["status"] = DECODE_TRUNCATED if exception else DECODE_MALFORMED
            return row
        row["src"] = _ip_int(outer.src)
        row["dst"] = _ip_int(outer.dst)

        complete = True
        l4, o = outer.l4_token, outer.l4_occ
        if outer.fragment != FRAG_LATER:
            if outer.proto == 6:
                flags = _pick(values, "tcp.flags", o) if l4 == "tcp" else ""
                row["sport"] = _int(_pick(values, "tcp.srcport", o)) if l4 == "tcp" else 0
                row["dport"] = _int(_pick(values, "tcp.dstport", o)) if l4 == "tcp" else 0
                if flags:
                    row["tcp_flags"] = _int(flags) & 0x1FF
                    row["seq"] = _int(_pick(values, "tcp.seq_raw", o))
                    row["ack"] = _int(_pick(values, "tcp.ack_raw", o))
                    row["window"] = _int(_pick(values, "tcp.window_size_value", o))
                    row["payload"] = max(0, _int(_pick(values, "tcp.len", o)))
                else:
                    complete = False
            elif outer.proto == 17:
                sport = _pick(values, "udp.srcport", o) if l4 == "udp" else ""
                length = _pick(values, "udp.length", o) if l4 == "udp" else ""
                if sport and length:
                    row["sport"] = _int(sport)
                    row["dport"] = _int(_pick(values, "udp.dstport", o))
                    row["payload"] = max(0, _int(length) - 8)
                    if _int(length) < 8:
                        row["status"] = DECODE_MALFORMED
                else:
                    complete = False
            elif outer.proto in (1, 58):
                name = "icmp" if outer.proto == 1 else "icmpv6"
                itype = _pick(values, f"{name}.type", o) if l4 == name else ""
                if itype:
                    row["icmp_type"] = _int(itype, -1)
                    row["icmp_code"] = _int(_pick(values, f"{name}.code", o), -1)
                    self._quoted(row, tokens, occs, values, outer.end)
                else:
                    complete = False
        if not complete:
            row["status"] = DECODE_TRUNCATED if exception else DECODE_MALFORMED
        elif "status" not in row:
            named = [m.split(":", 1)[1].strip(" ]") for m in malformed.split(",")
                     if m.startswith("[Malformed Packet:")]
            row["status"] = DECODE_MALFORMED if any(n in _HEADER_PROTOS for n in named) else DECODE_OK
        return row

    @staticmethod
    def _quoted(row: dict, tokens: list[str], occs: list[int], values: list[list[str]],
                start: int) -> None:
        """Fill q_* from the IP packet an ICMP error quotes (the next IP layer)."""
        i = next((k for k in range(start, len(tokens)) if tokens[k] in ("ip", "ipv6")), None)
        if i is None:
            return
        inner = _ip_layer(tokens, occs, i, values, True)
        if not inner.src:
            return
        row["q_proto"] = inner.proto
        row["q_src"] = _ip_int(inner.src)
        row["q_dst"] = _ip_int(inner.dst)
        if inner.l4_token in ("tcp", "udp"):
            row["q_sport"] = _int(_pick(values, f"{inner.l4_token}.srcport", inner.l4_occ))
            row["q_dport"] = _int(_pick(values, f"{inner.l4_token}.dstport", inner.l4_occ))

    @staticmethod
    def _to_batch(rows: list[dict]) -> dict[str, np.ndarray]:
        n = len(rows)
        batch = empty_batch(n)
        cols: dict[str, list] = {}
        for name in PACKET_COLUMNS:
            if name.endswith(("_hi", "_lo")):
                continue
            default = -1 if name in ("icmp_type", "icmp_code") else 0
            cols[name] = [r.get(name, default) for r in rows]
        for name, values in cols.items():
            batch[name][:] = np.asarray(values, dtype=np.int64).astype(PACKET_COLUMNS[name], copy=False)
        for key in ("src", "dst", "q_src", "q_dst"):
            his = batch[f"{key}_hi"]
            los = batch[f"{key}_lo"]
            for k, r in enumerate(rows):
                pair = r.get(key)
                if pair is not None:
                    his[k] = pair[0]
                    los[k] = pair[1]
        return batch

    # -- drill-down through pyshark --------------------------------------------------
    def dissect(self, frame: int, timeout: float = 60.0):
        """One frame as a pyshark packet object (all of Wireshark's fields), by 1-based number.

        pyshark drives tshark through asyncio. It runs here on a fresh event loop in a
        worker thread, so this works inside Jupyter (whose loop is already running) as
        well as in plain scripts. Returns None when the capture has no such frame.
        """
        tshark = find_tshark()
        result: dict = {}

        def work() -> None:
            import pyshark

            loop = asyncio.new_event_loop()
            cap = None
            try:
                asyncio.set_event_loop(loop)
                cap = pyshark.FileCapture(
                    str(self.path), display_filter=f"frame.number == {int(frame)}",
                    use_json=True, keep_packets=False, eventloop=loop, tshark_path=tshark,
                    override_prefs={p.split(":")[0]: p.split(":")[1] for p in PREFS},
                )
                for packet in cap:
                    result["packet"] = packet
                    break
            except Exception as exc:  # reported in the caller's thread
                result["error"] = exc
            finally:
                if cap is not None:
                    try:
                        cap.close()
                    except Exception:
                        pass
                    # a frame number past the end runs tshark to its end, after which
                    # pyshark's close() can fail on the process it already reaped and keep
                    # it listed; its __del__ would then close again on this loop, closed by
                    # then, and print "Exception ignored ... Event loop is closed"
                    getattr(cap, "_running_processes", set()).clear()
                loop.close()

        worker = threading.Thread(target=work, name="pyshark-dissect", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise CaptureError(f"{self.path}: pyshark did not answer within {timeout:g} s")
        if "error" in result:
            raise CaptureError(f"{self.path}: pyshark: {result['error']}".splitlines()[0])
        return result.get("packet")
