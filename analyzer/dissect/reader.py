"""Our own capture reader: pcap and pcapng (plain, .gz, .zst) into packet-table batches.

The file is read in fixed-size chunks, so memory does not grow with the file's size.
Format, compression and byte order come from the file's magic numbers, never from its
name. Structural problems stop the reading where they occur: if nothing could be read
the file is rejected with a CaptureError; otherwise what was read is kept and a warning
says where and why the rest was lost.
"""

from __future__ import annotations

import gzip
import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from analyzer.dissect import decode, kernels, records
from analyzer.dissect.packets import DECODED_COLUMNS, empty_batch
from analyzer.exceptions import CaptureError

PCAP_MAGICS = {
    # magic as read little-endian -> (big_endian, nanoseconds, record header length)
    0xA1B2C3D4: (False, False, 16), 0xD4C3B2A1: (True, False, 16),
    0xA1B23C4D: (False, True, 16), 0x4D3CB2A1: (True, True, 16),
    0xA1B2CD34: (False, False, 24), 0x34CDB2A1: (True, False, 24),  # Kuznetzov "modified"
}
PCAPNG_SHB = 0x0A0D0D0A
BYTE_ORDER_MAGIC = 0x1A2B3C4D
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
STANDARD_MAX_CAPLEN = 262144    # the largest packet most readers accept without a larger snaplen

DEFAULT_CHUNK = 8 * 1024 * 1024
DEFAULT_BATCH = 16384


@dataclass
class CaptureInfo:
    """What the reader learned about the file; filled in while reading."""
    file: str
    format: str = ""                 # pcap | pcapng
    compression: str = "none"        # none | gzip | zstd
    byte_order: str = ""             # le | be (pcapng: of the first section)
    ts_resolution: str = ""          # e.g. "1e-6", "1e-9", "2^-8"; several joined by ","
    link_types: list = field(default_factory=list)   # [(linktype, name), ...] as declared
    packets: int = 0                 # every frame read (Wireshark's numbering)
    undecodable: int = 0             # frames on link types we do not decode
    truncated: int = 0               # frames cut short of the headers they announce
    malformed: int = 0
    not_ip: int = 0
    non_packet: int = 0              # pcapng custom blocks kept as frames
    damaged: bool = False            # reading stopped before the end of the file
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    warnings: list = field(default_factory=list)
    sections: int = 0
    skipped_blocks: dict = field(default_factory=dict)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _open_stream(path: Path) -> tuple[BinaryIO, str]:
    """Open a capture, undoing gzip or zstd compression, sniffed from the first bytes."""
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise CaptureError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CaptureError(f"{path}: is a directory, not a capture file") from None
    except PermissionError:
        raise CaptureError(f"{path}: permission denied") from None
    except OSError as exc:
        raise CaptureError(f"{path}: cannot open: {exc.strerror or exc}") from None
    head = raw.read(4)
    raw.seek(0)
    if head[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), "gzip"
    if head == ZSTD_MAGIC:
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True), "zstd"
    return raw, "none"


class _Chunks:
    """A growing window on the (decompressed) byte stream: the unread tail of the last
    chunk plus the next chunk, as one numpy array."""

    def __init__(self, stream: BinaryIO, path: Path, chunk: int, piece: int | None = None):
        self.stream = stream
        # compressed streams are read in small pieces, so a break late in a piece does
        # not take the whole piece's good data with it
        self.piece = piece or chunk
        # read1 hands back what has been decompressed so far instead of failing the
        # whole request when the stream breaks
        self._read = getattr(stream, "read1", stream.read) if piece else stream.read
        self.path = path
        self.chunk = chunk
        self.buf = np.zeros(0, dtype=np.uint8)
        self.base = 0          # file offset of buf[0]
        self.eof = False
        self.error = ""        # why the stream ended early (broken compression), if it did

    def read_more(self, minimum: int = 1) -> bool:
        """Append at least `minimum` bytes (or up to EOF). False if nothing came."""
        parts = []
        got = 0
        want = max(self.chunk, minimum)
        while got < want:
            try:
                data = self._read(min(want - got, self.piece))
            except Exception as exc:  # gzip: OSError/EOFError; zstandard: its own ZstdError
                # a broken compressed stream ends the data; what came before is kept
                self.error = f"compressed stream is broken ({exc})"
                data = b""
            if not data:
                self.eof = True
                break
            parts.append(np.frombuffer(data, dtype=np.uint8))
            got += len(data)
        if not parts:
            return False
        self.buf = np.concatenate([self.buf] + parts) if len(self.buf) else (
            parts[0] if len(parts) == 1 else np.concatenate(parts))
        return True

    def consume(self, pos: int) -> None:
        """Drop buf[:pos]."""
        if pos:
            self.base += pos
            self.buf = self.buf[pos:]

    def ensure(self, n: int) -> bool:
        """Make at least n bytes available; False if the file ends first."""
        while len(self.buf) < n and not self.eof:
            self.read_more(n - len(self.buf))
        return len(self.buf) >= n


class _MappedChunks(_Chunks):
    """The same window, on an uncompressed file mapped once: no copy of the bytes. Pages
    already read are dropped from the process (the kernel's page cache keeps them), so the
    resident part stays a few slices whatever the file's size."""

    DROP_BYTES = 32 * 1024 * 1024      # drop what lies behind the window in steps this big

    def __init__(self, raw: BinaryIO, path: Path, chunk: int):
        super().__init__(raw, path, chunk)
        self.fd = raw.fileno()
        self.size = os.fstat(self.fd).st_size
        self.buf = np.zeros(0, dtype=np.uint8)
        self.eof = self.size == 0
        self.whole = None
        self.dropped = 0               # file offset up to which pages were let go of
        if self.size:
            self.mapped = mmap.mmap(self.fd, self.size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
            if hasattr(self.mapped, "madvise"):
                self.mapped.madvise(mmap.MADV_SEQUENTIAL)
            self.whole = np.frombuffer(self.mapped, dtype=np.uint8)

    def read_more(self, minimum: int = 1) -> bool:
        have_end = self.base + len(self.buf)
        if have_end >= self.size:
            self.eof = True
            return False
        end = min(self.size, max(have_end + self.chunk, self.base + minimum))
        self.buf = self.whole[self.base:end]
        self.eof = end >= self.size
        self._drop_behind()
        return True

    def _drop_behind(self) -> None:
        behind = (self.base // mmap.PAGESIZE) * mmap.PAGESIZE
        if behind - self.dropped >= self.DROP_BYTES and hasattr(mmap, "MADV_DONTNEED"):
            self.mapped.madvise(mmap.MADV_DONTNEED, self.dropped, behind - self.dropped)
            self.dropped = behind


def _tsres_text(raw: int) -> str:
    """if_tsresol as text: '1e-6' (decimal) or '2^-8' (binary, high bit set)."""
    if raw & 0x80:
        return f"2^-{raw & 0x7F}"
    return f"1e-{raw}"


class CaptureReader:
    """Streams a capture file as packet-table batches (dicts of numpy columns)."""

    def __init__(self, path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK,
                 batch_size: int = DEFAULT_BATCH, recycle: int = 0):
        """`recycle=k`: reuse a batch's arrays once k more batches have been handed out
        (for consumers that are done with a batch by then); 0 gives every batch its own."""
        self.path = Path(path)
        self._ring: list[dict[str, np.ndarray]] = []
        self._ring_size = recycle + 1 if recycle else 0
        self._ring_next = 0
        self.chunk_bytes = chunk_bytes
        self.batch_size = batch_size
        self.info = CaptureInfo(file=str(self.path))
        self._unknown_links: dict[int, int] = {}
        self._chunks: _Chunks | None = None
        self._stream = None
        self._flag_counts = {"ts_fraction": 0, "caplen_gt_wirelen": 0, "no_timestamp": 0}
        # record buffers, reused for every batch
        n = batch_size
        self._off = np.zeros(n, np.int64)
        self._cap = np.zeros(n, np.int64)
        self._wire = np.zeros(n, np.int64)
        self._ts = np.zeros(n, np.int64)
        self._iface = np.zeros(n, np.int64)
        self._flags = np.zeros(n, np.int64)

    # ------------------------------------------------------------------ public
    def batches(self) -> Iterator[dict[str, np.ndarray]]:
        if self.path.is_dir():
            raise CaptureError(f"{self.path}: is a directory, not a capture file")
        stream, compression = _open_stream(self.path)
        self._stream = stream
        self.info.compression = compression
        try:
            chunks = None
            if compression == "none" and self._mappable(stream):
                try:
                    chunks = _MappedChunks(stream, self.path, self.chunk_bytes)
                except (OSError, ValueError):
                    chunks = None       # a file system that cannot map: read it instead
            if chunks is None:
                chunks = _Chunks(stream, self.path, self.chunk_bytes,
                                 None if compression == "none" else 64 * 1024)
            self._chunks = chunks
            chunks.ensure(4)
            if len(chunks.buf) == 0:
                raise CaptureError(f"{self.path}: empty file (0 bytes), not a capture")
            if len(chunks.buf) < 4:
                raise CaptureError(f"{self.path}: only {len(chunks.buf)} bytes, too short for any capture format")
            magic = struct.unpack("<I", chunks.buf[:4].tobytes())[0]
            if magic in PCAP_MAGICS:
                yield from self._read_pcap(chunks, magic)
            elif magic == PCAPNG_SHB:
                yield from self._read_pcapng(chunks)
            else:
                raise CaptureError(
                    f"{self.path}: not a pcap or pcapng file (starts with bytes "
                    f"{chunks.buf[:4].tobytes().hex(' ')})")
        finally:
            stream.close()
        self._finish()

    @staticmethod
    def _mappable(stream) -> bool:
        """A regular file (not a pipe or FIFO) can be mapped."""
        try:
            import stat
            return stat.S_ISREG(os.fstat(stream.fileno()).st_mode) and os.fstat(stream.fileno()).st_size > 0
        except (OSError, AttributeError, ValueError):
            return False

    def position(self) -> int:
        """How far into the file (on disk) reading has got, for progress bars."""
        chunks = self._chunks
        if chunks is None:
            return 0
        if self.info.compression == "none":
            return chunks.base
        raw = getattr(self._stream, "fileobj", None) or getattr(self._stream, "_fp", None)
        try:
            return raw.tell() if raw is not None else 0
        except (OSError, ValueError):
            return 0

    # ------------------------------------------------------------------ pcap
    def _read_pcap(self, chunks: _Chunks, magic: int):
        info = self.info
        info.format = "pcap"
        big, nanos, hdr_len = PCAP_MAGICS[magic]
        if not chunks.ensure(24):
            raise CaptureError(
                f"{self.path}: pcap file header cut short ({len(chunks.buf)} of 24 bytes)")
        endian = ">" if big else "<"
        _, vmaj, vmin, _, _, snaplen, lt_field = struct.unpack(endian + "IHHiIII", chunks.buf[:24].tobytes())
        info.byte_order = "be" if big else "le"
        info.ts_resolution = "1e-9" if nanos else "1e-6"
        if hdr_len == 24:
            info.format = "pcap (modified, Kuznetzov)"
        if vmaj != 2:
            raise CaptureError(f"{self.path}: pcap version {vmaj}.{vmin} is not supported (only 2.x exists)")
        if vmin != 4:
            info.warn(f"pcap version 2.{vmin} is unusual (expected 2.4); read as 2.4")
        linktype = lt_field & 0xFFFF
        reserved = lt_field & 0x03FF0000
        if reserved:
            raise CaptureError(
                f"{self.path}: reserved bits of the pcap link-type field are not zero "
                f"(0x{lt_field & 0xFFFF0000:08x}); the header is damaged")
        self._note_linktype(linktype)
        chunks.consume(24)
        max_caplen = max(STANDARD_MAX_CAPLEN, snaplen)
        if max_caplen > records.MAX_RECORD:
            max_caplen = records.MAX_RECORD
        frame = 0
        while True:
            batch = self._new_batch()
            batch["linktype"][:] = linktype
            n, pos, code, reason = kernels.scan_pcap(
                chunks.buf, 0, len(chunks.buf), big, nanos, hdr_len, max_caplen,
                self.batch_size, self._off, self._cap, self._wire, self._ts, self._flags,
                *self._decode_columns(batch))
            if n:
                yield self._finish_batch(batch, n, frame)
                frame += n
            if code == records.CORRUPT:
                self._stop_damaged(chunks.base + pos, frame, records.REASONS[reason]
                                   + f" ({records.rd32(chunks.buf, pos + 8, big)} bytes)")
                return
            chunks.consume(pos)
            if n == self.batch_size:
                continue
            if chunks.eof:
                if len(chunks.buf):
                    self._stop_cut_short(chunks.base, len(chunks.buf), frame,
                                         "record header" if len(chunks.buf) < hdr_len else "record", chunks)
                return
            chunks.read_more()

    # ------------------------------------------------------------------ pcapng
    def _read_pcapng(self, chunks: _Chunks):
        info = self.info
        info.format = "pcapng"
        frame = 0
        big = False
        ifaces: list[dict] = []
        arrays = None
        last_ts = 0
        skipped = np.zeros(3, np.int64)
        resolutions: list[str] = []
        while True:
            # --- structural block at the start of the buffer (SHB, IDB, unknown)
            if not chunks.ensure(12):
                if len(chunks.buf):
                    self._stop_cut_short(chunks.base, len(chunks.buf), frame, "block header", chunks)
                break
            btype_le = struct.unpack("<I", chunks.buf[:4].tobytes())[0]
            if btype_le == PCAPNG_SHB:
                big = self._read_shb(chunks, frame)
                if big is None:
                    break
                ifaces = []
                arrays = None
                info.sections += 1
                continue
            endian = ">" if big else "<"
            btype, blen = struct.unpack(endian + "II", chunks.buf[:8].tobytes())
            if btype == 1:
                iface = self._read_idb(chunks, big, blen, len(ifaces), frame)
                if iface is None:
                    break
                ifaces.append(iface)
                resolutions.append(iface["tsres_text"])
                arrays = None
                continue
            if btype not in (2, 3, 4, 5, 6, 0xA, 0xBAD, 0x40000BAD):
                if not self._skip_block(chunks, big, btype, blen, frame):
                    break
                continue
            # --- packet blocks: the compiled walker
            if arrays is None:
                arrays = self._iface_arrays(ifaces)
            if_snap, if_mode, if_factor, if_off, if_lt = arrays
            batch = self._new_batch()
            n, pos, code, reason, last_ts = kernels.scan_pcapng(
                chunks.buf, 0, len(chunks.buf), big, len(ifaces), if_snap, if_mode, if_factor,
                if_off, if_lt, last_ts, self.batch_size, self._off, self._cap, self._wire,
                self._ts, self._iface, self._flags, skipped, *self._decode_columns(batch))
            if n:
                yield self._finish_batch(batch, n, frame)
                frame += n
            if code == records.CORRUPT:
                self._stop_damaged(chunks.base + pos, frame, records.REASONS[reason])
                break
            chunks.consume(pos)
            if code == records.STRUCTURAL or n == self.batch_size:
                continue
            # NEED_MORE: an incomplete block at the start of the buffer
            if chunks.eof:
                if len(chunks.buf):
                    self._stop_cut_short(chunks.base, len(chunks.buf), frame, "block", chunks)
                break
            need = 12
            if len(chunks.buf) >= 8:
                need = max(need, struct.unpack(endian + "I", chunks.buf[4:8].tobytes())[0])
            if need > records.MAX_RECORD:
                self._stop_damaged(chunks.base, frame, records.REASONS[records.R_CAPLEN_TOO_BIG])
                break
            chunks.read_more(need)
        info.ts_resolution = ",".join(dict.fromkeys(resolutions))
        names = {0: "statistics", 1: "name resolution", 2: "decryption secrets"}
        for k, count in enumerate(skipped):
            if count:
                info.skipped_blocks[names[k]] = int(count)

    def _read_shb(self, chunks: _Chunks, frame: int):
        """Parse a Section Header Block; returns big-endian flag, or None to stop."""
        info = self.info
        if not chunks.ensure(28):
            self._stop_or_fail(chunks.base, frame,
                               f"section header block cut short ({len(chunks.buf)} of at least 28 bytes)")
            return None
        bom = struct.unpack("<I", chunks.buf[8:12].tobytes())[0]
        if bom == BYTE_ORDER_MAGIC:
            big = False
        elif bom == 0x4D3C2B1A:
            big = True
        else:
            self._stop_or_fail(chunks.base, frame, f"section header has no valid byte-order magic (0x{bom:08x})")
            return None
        endian = ">" if big else "<"
        blen, _, vmaj, vmin = struct.unpack(endian + "IIHH", chunks.buf[4:16].tobytes())
        if blen < 28 or blen % 4:
            self._stop_or_fail(chunks.base, frame, f"section header block length {blen} is invalid")
            return None
        if vmaj != 1 or vmin != 0:
            self._stop_or_fail(chunks.base, frame, f"unknown section header version {vmaj}.{vmin} (only 1.0 exists)")
            return None
        if not chunks.ensure(blen):
            self._stop_or_fail(chunks.base, frame,
                               f"section header block length {blen} runs past the end of the file")
            return None
        block = chunks.buf[:blen].tobytes()
        if struct.unpack(endian + "I", block[-4:])[0] != blen:
            self._stop_or_fail(chunks.base, frame, "section header block's trailing length does not match")
            return None
        if self._parse_options(block[24:-4], endian) is None:
            self._stop_or_fail(chunks.base, frame, "section header option runs past the end of its block")
            return None
        if not info.byte_order:
            info.byte_order = "be" if big else "le"
        chunks.consume(blen)
        return big

    def _read_idb(self, chunks: _Chunks, big: bool, blen: int, index: int, frame: int):
        endian = ">" if big else "<"
        if blen < 20 or blen % 4:
            self._stop_or_fail(chunks.base, frame, f"interface description block length {blen} is invalid")
            return None
        if not chunks.ensure(blen):
            self._stop_or_fail(chunks.base, frame, "interface description block cut short")
            return None
        block = chunks.buf[:blen].tobytes()
        if struct.unpack(endian + "I", block[-4:])[0] != blen:
            self._stop_or_fail(chunks.base, frame, "interface description block's trailing length does not match")
            return None
        linktype, _, snaplen = struct.unpack(endian + "HHI", block[8:16])
        options = self._parse_options(block[16:-4], endian)
        if options is None:
            self._stop_or_fail(chunks.base, frame, "interface description option runs past the end of its block")
            return None
        tsres = 6
        tsoff = 0
        for code, value in options:
            if code == 9 and len(value) >= 1:
                tsres = value[0]
            elif code == 14 and len(value) >= 8:
                tsoff = struct.unpack(endian + "q", value[:8])[0]
        if tsres & 0x80:
            shift = tsres & 0x7F
            if shift > 63:
                self._stop_or_fail(chunks.base, frame,
                                   f"interface {index} has timestamp resolution 2^-{shift}, beyond 64-bit timestamps")
                return None
            mode, factor = records.TS_BIN, shift
        elif tsres <= 9:
            mode, factor = records.TS_MUL, 10 ** (9 - tsres)
        elif tsres <= 19:
            mode, factor = records.TS_DIV, 10 ** (tsres - 9)
            self.info.warn(f"interface {index} has timestamp resolution 1e-{tsres}; kept to the nanosecond")
        else:
            self._stop_or_fail(chunks.base, frame, f"interface {index} has timestamp resolution 1e-{tsres}, beyond 64-bit timestamps")
            return None
        self._note_linktype(linktype)
        chunks.consume(blen)
        return {"linktype": linktype, "snaplen": snaplen, "mode": mode, "factor": factor,
                "tsoff_ns": tsoff * 1_000_000_000, "tsres_text": _tsres_text(tsres)}

    def _skip_block(self, chunks: _Chunks, big: bool, btype: int, blen: int, frame: int) -> bool:
        if blen < 12 or blen % 4:
            self._stop_or_fail(chunks.base, frame, f"block of type 0x{btype:x} has invalid length {blen}")
            return False
        if not chunks.ensure(blen):
            self._stop_cut_short(chunks.base, len(chunks.buf), frame, "block", chunks)
            return False
        name = {0x80000001: "Apple process information"}.get(btype, f"0x{btype:x}")
        self.info.skipped_blocks[name] = self.info.skipped_blocks.get(name, 0) + 1
        chunks.consume(blen)
        return True

    @staticmethod
    def _parse_options(raw: bytes, endian: str):
        """pcapng options as [(code, value)], or None if one runs past the end."""
        out = []
        pos = 0
        while pos + 4 <= len(raw):
            code, length = struct.unpack(endian + "HH", raw[pos:pos + 4])
            if code == 0:
                break
            end = pos + 4 + length
            if end > len(raw):
                return None
            out.append((code, raw[pos + 4:end]))
            pos = 4 + pos + ((length + 3) & ~3)
        return out

    @staticmethod
    def _iface_arrays(ifaces: list[dict]):
        n = max(len(ifaces), 1)
        snap = np.zeros(n, np.int64)
        mode = np.zeros(n, np.int64)
        factor = np.ones(n, np.int64)
        off = np.zeros(n, np.int64)
        lt = np.zeros(len(ifaces), np.int32)
        for i, f in enumerate(ifaces):
            snap[i] = f["snaplen"]
            mode[i] = f["mode"]
            factor[i] = f["factor"]
            off[i] = f["tsoff_ns"]
            lt[i] = f["linktype"]
        return snap, mode, factor, off, lt

    # ------------------------------------------------------------------ helpers
    def _note_linktype(self, linktype: int) -> None:
        name = decode.KNOWN_LINKTYPES.get(linktype) or decode.OTHER_LINKTYPE_NAMES.get(linktype) \
            or f"LINKTYPE {linktype}"
        entry = [linktype, name]
        if entry not in self.info.link_types:
            self.info.link_types.append(entry)

    def _new_batch(self) -> dict[str, np.ndarray]:
        """Zeroed batch arrays: fresh ones, or the ring's oldest, cleared (reusing them
        saves the page faults of ~10 MB of new memory per batch)."""
        if not self._ring_size:
            return empty_batch(self.batch_size)
        if len(self._ring) < self._ring_size:
            self._ring.append(empty_batch(self.batch_size))
            return self._ring[-1]
        batch = self._ring[self._ring_next]
        self._ring_next = (self._ring_next + 1) % self._ring_size
        for name, column in batch.items():
            column.fill(-1 if name in ("icmp_type", "icmp_code") else 0)
        return batch

    @staticmethod
    def _decode_columns(batch):
        """The batch's columns in the order the scanners take them."""
        return tuple(batch[name] for name in DECODED_COLUMNS)

    def _finish_batch(self, batch, n: int, frame0: int):
        """Trim a decoded batch to its n rows and fill the record columns."""
        batch = {k: v[:n] for k, v in batch.items()}
        batch["frame"][:] = np.arange(frame0 + 1, frame0 + n + 1)
        batch["ts_ns"][:] = self._ts[:n]
        batch["caplen"][:] = self._cap[:n]
        batch["wirelen"][:] = self._wire[:n]
        self._account(batch, self._flags[:n])
        return batch

    def _account(self, batch, flags) -> None:
        info = self.info
        status = batch["status"]
        n = len(status)
        info.packets += n
        counts = np.bincount(status, minlength=6)
        info.not_ip += int(counts[1])
        info.truncated += int(counts[3])
        info.malformed += int(counts[4])
        info.non_packet += int(counts[5])
        if counts[2]:
            unknown = batch["linktype"][status == 2]
            for lt, c in zip(*np.unique(unknown, return_counts=True)):
                self._unknown_links[int(lt)] = self._unknown_links.get(int(lt), 0) + int(c)
            info.undecodable += int(counts[2])
        self._flag_counts["ts_fraction"] += int(np.count_nonzero(flags & records.F_TS_FRACTION_RANGE))
        self._flag_counts["caplen_gt_wirelen"] += int(np.count_nonzero(flags & records.F_CAPLEN_GT_WIRELEN))
        real = (flags & records.F_NON_PACKET) == 0
        if real.any():
            ts = batch["ts_ns"][real]
            lo, hi = int(ts.min()), int(ts.max())
            info.first_ts_ns = lo if info.first_ts_ns is None else min(info.first_ts_ns, lo)
            info.last_ts_ns = hi if info.last_ts_ns is None else max(info.last_ts_ns, hi)

    def _stop_or_fail(self, offset: int, frames: int, reason: str) -> None:
        """Damage in a structural block: fatal before any frame, a warning after."""
        if frames == 0:
            raise CaptureError(f"{self.path}: {reason} (at byte {offset})")
        self._stop_damaged(offset, frames, reason)

    def _stop_damaged(self, offset: int, frames: int, reason: str) -> None:
        if frames == 0:
            raise CaptureError(f"{self.path}: {reason} (at byte {offset})")
        self.info.damaged = True
        self.info.warn(f"capture damaged at byte {offset}: {reason}; reading stopped after frame {frames}")

    def _stop_cut_short(self, offset: int, leftover: int, frames: int, what: str,
                        chunks: "_Chunks | None" = None) -> None:
        if chunks is not None and chunks.error:
            what = f"{what} ({chunks.error})"
        if frames == 0:
            raise CaptureError(f"{self.path}: cut short: the file ends {leftover} bytes into its "
                               f"first {what} (at byte {offset}); no frame could be read")
        self.info.damaged = True
        self.info.warn(f"capture cut short: the file ends {leftover} bytes into a {what} at byte "
                       f"{offset}; {frames} complete frames were read")

    def _finish(self) -> None:
        info = self.info
        if self._chunks is not None and self._chunks.error and not info.damaged:
            if info.packets == 0:
                raise CaptureError(f"{self.path}: {self._chunks.error}; no frame could be read")
            info.damaged = True
            info.warn(f"{self._chunks.error}; {info.packets} complete frames were read")
        for lt, count in sorted(self._unknown_links.items()):
            name = decode.OTHER_LINKTYPE_NAMES.get(lt, f"LINKTYPE {lt}")
            info.warn(f"{count} frames on link type {lt} ({name}), which this reader does not decode; "
                      f"try --engine tshark")
        fc = self._flag_counts
        if fc["ts_fraction"]:
            info.warn(f"{fc['ts_fraction']} frames have a timestamp fraction out of range "
                      f"(kept as written)")
        if fc["caplen_gt_wirelen"]:
            info.warn(f"{fc['caplen_gt_wirelen']} frames claim a captured length larger than their "
                      f"length on the wire")
        if info.non_packet:
            info.warn(f"{info.non_packet} pcapng custom blocks kept as frames without packet data "
                      f"(Wireshark numbers them as frames too)")
        if info.truncated:
            info.warn(f"{info.truncated} frames are cut short of the headers they announce")
        if info.malformed:
            info.warn(f"{info.malformed} frames have malformed IP or TCP headers")
        for name, count in info.skipped_blocks.items():
            if name not in ("statistics", "name resolution", "decryption secrets"):
                info.warn(f"{count} pcapng blocks of type {name} skipped")


def read_all(path: str | os.PathLike, **kwargs) -> tuple[dict[str, np.ndarray], CaptureInfo]:
    """The whole packet table of a (small) capture in memory; for tests and notebooks."""
    reader = CaptureReader(path, **kwargs)
    parts = list(reader.batches())
    if not parts:
        return empty_batch(0), reader.info
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, reader.info
