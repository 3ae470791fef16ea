"""Compile the capture kernels ahead of time: `python -m analyzer.dissect.build_kernels`.

Writes `_kernels<ext>` and its stamp `_kernels.json` beside analyzer/dissect/kernels.py (or
into --out), from the numba source in records, decode, scan, flows and report/csv_rows, with the signatures
kernels.SIGNATURES states. Needs numba and a C compiler; takes 10-20 s. `make install` runs it.
Exit status 0 when built, 1 (with one line on stderr) when it could not be.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# the source modules must be decorated by numba here, whatever is already built
os.environ["ANALYZER_KERNELS"] = "jit"


def _numba_type(spec):
    from numba import types
    if isinstance(spec, str):
        return types.boolean if spec == "bool" else getattr(types, spec)
    dtype, ndim = spec[0], spec[1]
    element = types.boolean if dtype == "bool" else getattr(types, dtype)
    return types.Array(element, ndim, "C", readonly=len(spec) > 2)


def _return_type(spec):
    from numba import types
    kind, count = spec
    if kind == "tuple":
        return types.UniTuple(types.int64, count)
    return types.none if kind == "none" else types.int64


def _release_the_gil() -> None:
    """pycc has no nogil option; its wrappers would hold the GIL, and the reader's two threads
    (scanning, and the flow table) would take turns instead of running together. Its compiler
    builds each export with a fresh Flags(); this makes those flags release the GIL."""
    import numba.pycc.compiler as pycc_compiler
    from numba.core.compiler import Flags

    class GilFreeFlags(Flags):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.release_gil = True

    pycc_compiler.Flags = GilFreeFlags


def build(out: Path) -> Path:
    import importlib

    from numba.core.typing import signature
    from numba.pycc import CC

    from analyzer.dissect import kernels

    _release_the_gil()
    cc = CC(kernels.MODULE_NAME)
    cc.verbose = False
    with tempfile.TemporaryDirectory(prefix="analyzer-kernels-") as scratch:
        cc.output_dir = scratch
        for name, (returns, params) in kernels.SIGNATURES.items():
            function = getattr(importlib.import_module(kernels.HOMES[name]), name)
            sig = signature(_return_type(returns), *[_numba_type(p) for p in params])
            cc.export(name, sig)(function.py_func)
        cc.compile()
        built = kernels.module_path(Path(scratch))
        out.mkdir(parents=True, exist_ok=True)
        target = kernels.module_path(out)
        # replace atomically, then stamp: a half-written build is never loaded
        stamp = kernels.stamp_path(out)
        stamp.unlink(missing_ok=True)
        shutil.copyfile(built, str(target) + ".tmp")
        os.replace(str(target) + ".tmp", target)
        stamp.write_text(json.dumps({"fingerprint": kernels.fingerprint(),
                                     "numba": __import__("numba").__version__}) + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analyzer.dissect.build_kernels",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="folder to write into (default: beside analyzer/dissect/kernels.py)")
    args = parser.parse_args(argv)
    from analyzer.dissect import kernels
    out = args.out or kernels.HERE
    started = time.perf_counter()
    try:
        target = build(out)
    except Exception as exc:    # any failure (no compiler, numba without pycc) means: use the JIT
        print(f"build_kernels: could not build the compiled kernels ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0] if str(exc) else ''}); analyze will compile them "
              f"with numba's JIT on first use instead", file=sys.stderr)
        return 1
    print(f"built {target} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
