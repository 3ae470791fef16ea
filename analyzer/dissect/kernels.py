"""The compiled capture kernels: prebuilt when they can be, numba's JIT when not.

The kernels are written once, as numba functions, in records, decode, scan and flows (and
the CSV row formatter in analyzer/report/csv_rows.py).
`python -m analyzer.dissect.build_kernels` (run by `make install`) compiles the seven that
Python calls into one extension module beside this file. A run that finds that module, built
from the same source, loads it in a millisecond and never imports numba: that saves ~140 MB
(numba itself, and LLVM holding the loaded code) and ~0.8 s of start-up on every run.
Without it, or when the source changed after the build, numba compiles the kernels on first
use and caches them, as before. The results are the same either way (tests compare them).

ANALYZER_KERNELS=jit forces numba's JIT; ANALYZER_KERNELS=compiled makes a missing or stale
build an error instead of a fallback. (CI runs the build and fails if it fails.)

Python calls these seven kernels only through this module. Every call's arguments are checked
against SIGNATURES, the one statement of what each kernel takes: the compiled module checks
no more than each array's item size, and a wrong dtype would otherwise be read as garbage.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sysconfig
from pathlib import Path

import numpy as np

from analyzer.dissect.packets import DECODED_COLUMNS, FLOW_INPUT_COLUMNS, PACKET_COLUMNS
from analyzer.exceptions import KernelError

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent
MODULE_NAME = "_kernels"
# what the compiled module is built from (paths in the analyzer package): a change to any of
# these makes a build stale
SOURCES = ("dissect/records.py", "dissect/decode.py", "dissect/scan.py", "dissect/flows.py",
           "dissect/ports.py", "dissect/packets.py", "dissect/kernels.py", "report/csv_rows.py")


# --- what each kernel takes and returns ----------------------------------------------------
# An argument is a scalar type name ("int64", "bool") or (dtype name, ndim) for a C-contiguous
# array; "ro" marks the capture buffer, which may be a read-only view of the mapped file.
I64, BOOL = "int64", "bool"


def _columns(names):
    return [(PACKET_COLUMNS[n].name, 1) for n in names]


_RECORDS = [("int64", 1)] * 5                     # off, caplen, wirelen, ts_ns, flags
SIGNATURES: dict[str, tuple[tuple[str, int], list]] = {
    # name: ((return: "tuple" of N int64 / "int64" / "none", N), arguments)
    "scan_pcap": (("tuple", 4), [("uint8", 1, "ro"), I64, I64, BOOL, BOOL, I64, I64, I64]
                  + _RECORDS + _columns(DECODED_COLUMNS)),
    "scan_pcapng": (("tuple", 5), [("uint8", 1, "ro"), I64, I64, BOOL, I64] + [("int64", 1)] * 4
                    + [("int32", 1), I64, I64]         # per-interface arrays, last_ts, max_n
                    + _RECORDS[:4] + [("int64", 1)] * 3  # + iface, flags, skipped
                    + _columns(DECODED_COLUMNS)),
    "process_batch": (("tuple", 2), [I64, I64] + _columns(FLOW_INPUT_COLUMNS)
                      + [("uint64", 2), ("int64", 2), ("int64", 3), ("uint8", 2), ("int64", 1),
                         ("int64", 1), ("int64", 1), ("int64", 2), ("bool", 2), ("int64", 1)]),
    "mark_idle": (("int64", 0), [("int64", 2), ("int64", 3), I64, ("int64", 1)]),
    "rebuild_index": (("none", 0), [("int64", 1), ("uint64", 2), ("int64", 2)]),
    # slots, KEY, FL, EP, HIST, the summary rows S, the histories H
    "summarise_slots": (("none", 0), [("int64", 1), ("uint64", 2), ("int64", 2), ("int64", 3),
                                      ("uint8", 2), ("int64", 2), ("uint8", 2)]),
    # start, stop, cells (columns x rows), column kinds, fraction digits, quoted texts, their
    # offsets, each column's first text, the widest row, the output buffer
    "format_rows": (("tuple", 2), [I64, I64, ("int64", 2), ("int64", 1), I64, ("uint8", 1),
                                   ("int64", 1), ("int64", 1), I64, ("uint8", 1)]),
}
# the module each kernel's source is in
HOMES = {"scan_pcap": "analyzer.dissect.scan", "scan_pcapng": "analyzer.dissect.scan",
         "process_batch": "analyzer.dissect.flows", "mark_idle": "analyzer.dissect.flows",
         "rebuild_index": "analyzer.dissect.flows", "summarise_slots": "analyzer.dissect.flows",
         "format_rows": "analyzer.report.csv_rows"}


def fingerprint() -> str:
    """Hash of the kernel source: a build is used only if it was made from this source."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (PACKAGE / name).read_bytes())
    return digest.hexdigest()[:16]


def module_path(directory: Path = HERE) -> Path:
    return directory / (MODULE_NAME + sysconfig.get_config_var("EXT_SUFFIX"))


def stamp_path(directory: Path = HERE) -> Path:
    """Written after a successful build: the fingerprint it was built from."""
    return directory / (MODULE_NAME + ".json")


def load_prebuilt(directory: Path = HERE):
    """The compiled module if one built from this source is in `directory`, else (None, why)."""
    so, stamp = module_path(directory), stamp_path(directory)
    if not so.exists() or not stamp.exists():
        return None, "not built (python -m analyzer.dissect.build_kernels)"
    try:
        built_from = json.loads(stamp.read_text()).get("fingerprint")
    except (OSError, ValueError) as exc:
        return None, f"unreadable build stamp {stamp}: {exc}"
    if built_from != fingerprint():
        return None, "built from older source (python -m analyzer.dissect.build_kernels)"
    spec = importlib.util.spec_from_file_location(f"analyzer.dissect.{MODULE_NAME}", so)
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except (ImportError, OSError) as exc:
        return None, f"cannot load {so.name}: {exc}"
    return module, "prebuilt"


def choose(wanted: str, directory: Path = HERE):
    """(compiled module or None for the JIT, how it was decided) for ANALYZER_KERNELS=wanted."""
    if wanted not in ("auto", "compiled", "jit"):
        raise KernelError(f"ANALYZER_KERNELS={wanted!r}: expected auto, compiled or jit")
    if wanted == "jit":
        return None, "numba JIT (ANALYZER_KERNELS=jit)"
    module, why = load_prebuilt(directory)
    if module is not None:
        return module, "prebuilt"
    if wanted == "compiled":
        raise KernelError(f"ANALYZER_KERNELS=compiled, but the compiled kernels are {why}")
    return None, f"numba JIT (prebuilt kernels {why})"


_compiled, MODE = choose(os.environ.get("ANALYZER_KERNELS", "auto"))
USING_JIT = _compiled is None


def njit(**options):
    """numba.njit for the kernel source. With the prebuilt module in use the functions stay
    plain Python (they are then only the source it was built from) and numba is not imported."""
    if not USING_JIT:
        return lambda function: function
    import numba
    return numba.njit(**options)


# --- the calls --------------------------------------------------------------------------
def _dtype(name: str) -> np.dtype:
    return np.dtype(np.bool_) if name == "bool" else np.dtype(name)


def _checker(name: str):
    _, params = SIGNATURES[name]
    arrays = [(i, _dtype(p[0]), p[1]) for i, p in enumerate(params) if isinstance(p, tuple)]
    count = len(params)

    def check(args):
        if len(args) != count:
            raise KernelError(f"{name}: {len(args)} arguments, expected {count}")
        for i, dtype, ndim in arrays:
            a = args[i]
            if not (isinstance(a, np.ndarray) and a.dtype == dtype and a.ndim == ndim
                    and a.flags.c_contiguous):
                got = (f"{a.dtype} {a.ndim}-d{'' if a.flags.c_contiguous else ' strided'}"
                       if isinstance(a, np.ndarray) else type(a).__name__)
                raise KernelError(f"{name}: argument {i} is {got}, expected C-contiguous "
                                  f"{dtype} {ndim}-d")
    return check


def _kernel(name: str):
    if _compiled is not None:
        function = getattr(_compiled, name)
    else:
        import importlib
        function = getattr(importlib.import_module(HOMES[name]), name)
    check = _checker(name)

    def call(*args):
        check(args)
        return function(*args)
    call.__name__ = call.__qualname__ = name
    call.__doc__ = function.__doc__
    return call


def __getattr__(name: str):
    """kernels.scan_pcap and the others, bound on first use and kept as module attributes
    (in JIT mode, importing the source modules at import time would be circular)."""
    if name not in SIGNATURES:
        raise AttributeError(name)
    globals()[name] = bound = _kernel(name)
    return bound
