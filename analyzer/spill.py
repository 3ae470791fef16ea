"""The tables of finished flows and events, kept in files and mapped into memory rather than
held on the heap.

A 25M-packet capture has ~1.2M flows and ~3.6M events: ~250 MB of columns, most of a run's
memory budget on their own. Written to a file and mapped, a column costs memory only while a
stage reads it: `trim()` hands those pages back (a `Pager` thread calls it every 10 ms while
a run lasts, and so do `memory.release()` and the steps that make whole columns). The
kernel keeps them in its file cache, and can write them out and drop them when memory is
short, which it cannot do for the heap.

Each file is unlinked as soon as it is made, so nothing is left behind, not even by a
crash. The files go in the run's output folder, on the user's disk: a temporary folder may
be a RAM file system, which would save nothing.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import weakref
from pathlib import Path

import numpy as np

_mappings: "weakref.WeakSet[mmap.mmap]" = weakref.WeakSet()
STEP = 262144       # items a whole-column step handles at a time (1-2 MB of temporaries)
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None) if hasattr(mmap.mmap, "madvise") else None


def _unlinked_file(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)     # made on first use: not for a bad capture
    fd, path = tempfile.mkstemp(prefix=".analyzer-spill-", dir=directory)
    os.unlink(path)
    return os.fdopen(fd, "w+b")


def _mapped(f, dtype: np.dtype, count: int) -> np.ndarray:
    """The file's first `count` items as a writable array over a shared mapping (writes go
    to the file, so dropping the pages never loses one)."""
    if count == 0:
        return np.zeros(0, dtype)
    mm = mmap.mmap(f.fileno(), count * dtype.itemsize, access=mmap.ACCESS_WRITE)
    _mappings.add(mm)
    return np.frombuffer(mm, dtype, count)


def _allocate(f, size: int) -> None:
    """Give the file `size` bytes of disk (zeros), or raise OSError. posix_fallocate where
    the system has it (Linux); else zeros written a megabyte at a time (macOS)."""
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(f.fileno(), 0, size)
        return
    zeros = bytes(min(size, 1 << 20))
    for at in range(0, size, len(zeros) or 1):
        f.write(zeros[:size - at])
    f.flush()


def is_mapped(array: np.ndarray) -> bool:
    """Whether the array (or the one it views) lies in a mapped file."""
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if isinstance(base, memoryview):       # np.frombuffer's base
        base = base.obj
    return isinstance(base, mmap.mmap)


class Spill:
    """Where one run keeps its mapped columns: a folder, or None to keep them on the heap
    (small captures in tests, and callers that want plain arrays)."""

    def __init__(self, directory: Path | None):
        self.directory = None if directory is None else Path(directory)

    def keep(self, array: np.ndarray) -> np.ndarray:
        """`array`, or the same values in a mapped file (the caller lets go of `array`)."""
        array = np.asarray(array)
        if self.directory is None or array.ndim != 1 or len(array) == 0 or is_mapped(array):
            return array
        with _unlinked_file(self.directory) as f:
            f.write(memoryview(np.ascontiguousarray(array)).cast("B"))
            f.flush()
            return _mapped(f, array.dtype, len(array))    # the mapping outlives the file object

    def empty(self, count: int, dtype) -> np.ndarray:
        """A zeroed column of `count` items, mapped (on the heap without a folder), to be
        filled a step at a time."""
        dtype = np.dtype(dtype)
        if self.directory is None or count == 0:
            return np.zeros(count, dtype)
        with _unlinked_file(self.directory) as f:
            # the blocks are allocated now: a full disk is an OSError here, where a write
            # through the mapping into a hole would be a SIGBUS
            _allocate(f, count * dtype.itemsize)
            return _mapped(f, dtype, count)

    def gather(self, column: np.ndarray, order: np.ndarray | None = None, dtype=None) -> np.ndarray:
        """column[order] (or the column itself) as `dtype`, made STEP items at a time into a
        mapped column: the heap holds one step of it, not a whole column."""
        dtype = np.dtype(dtype if dtype is not None else column.dtype)
        if self.directory is None:
            out = column if order is None else column[order]
            return out.astype(dtype, copy=False)
        if order is None and dtype == column.dtype and is_mapped(column):
            return column
        count = len(column) if order is None else len(order)
        out = self.empty(count, dtype)
        for at in range(0, count, STEP):
            out[at:at + STEP] = column[at:at + STEP] if order is None else column[order[at:at + STEP]]
            trim()
        return out

    def blocks(self) -> list | "Blocks":
        """Somewhere to append blocks of columns: a list on the heap, or files."""
        return [] if self.directory is None else Blocks(self.directory)


HEAP = Spill(None)      # columns kept as they are


class Blocks:
    """Blocks of same-named columns, appended to one file per column as they come (a list
    of dicts, as far as `append` goes). `pop(name)` maps one whole column."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.files: dict[str, object] = {}
        self.dtypes: dict[str, np.dtype] = {}
        self.rows = 0

    def append(self, block: dict[str, np.ndarray]) -> None:
        for name, column in block.items():
            if name not in self.files:
                self.files[name] = _unlinked_file(self.directory)
                self.dtypes[name] = column.dtype
            elif column.dtype != self.dtypes[name]:
                raise TypeError(f"{name}: {column.dtype} after {self.dtypes[name]}")
            self.files[name].write(memoryview(np.ascontiguousarray(column)).cast("B"))
        self.rows += len(next(iter(block.values()))) if block else 0

    def __len__(self) -> int:
        return self.rows

    def names(self) -> list[str]:
        return list(self.files)

    def pop(self, name: str) -> np.ndarray:
        """Column `name`, mapped from its file (which is then closed: the mapping keeps it)."""
        f = self.files.pop(name)
        dtype = self.dtypes.pop(name)
        with f:
            f.flush()
            return _mapped(f, dtype, f.tell() // dtype.itemsize)

    def peek(self, name: str) -> np.ndarray:
        """Column `name`, mapped from its file, which takes further blocks."""
        f = self.files[name]
        f.flush()
        return _mapped(f, self.dtypes[name], f.tell() // self.dtypes[name].itemsize)


def trim() -> None:
    """Drop every mapped column's pages from this process (they are read back from the file
    cache, or the file, when next touched)."""
    if _DONTNEED is None:              # no madvise here (Windows): the pages stay
        return
    for mm in list(_mappings):
        try:
            mm.madvise(_DONTNEED)
        except (ValueError, OSError):      # closed meanwhile
            pass


def row_steps(n: int, step: int):
    """range(0, n, step), with the mapped columns' pages dropped after each step: a loop
    over a table's steps reads faster than the pager trims (50M packets: the seed table's
    scans had ~60 MB of pages mapped between two trims), so each such loop trims for itself."""
    for at in range(0, n, step):
        yield at
        trim()


class Pager:
    """While a run lasts, drop the mapped columns' pages every `interval` seconds (a
    thread): whatever a stage reads of them, and however, counts against this process
    only until the next trim. Reading them again costs little: summing a 128 MB column took
    4.1-4.4 ms just after a trim against 3.8-4.1 ms with its pages mapped (the kernel maps
    pages back from its cache many at a time)."""

    def __init__(self, interval: float = 0.01):
        import threading
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spill-pager", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if _mappings:
                trim()

    def __enter__(self) -> "Pager":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
