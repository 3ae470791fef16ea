"""The prebuilt kernels: same results as numba's JIT, chosen only when current, checked calls."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analyzer.dissect import kernels
from analyzer.exceptions import KernelError

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted(ROOT.glob("captures/*/capture.pcap*"))


def need_prebuilt():
    module, why = kernels.load_prebuilt()
    if module is None:
        pytest.skip(f"compiled kernels {why}; `make install` builds them")


def _analyze(capture: Path, out: Path, mode: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANALYZER_KERNELS=mode)
    return subprocess.run([sys.executable, "-m", "analyzer.cli", str(capture), "--out", str(out),
                           "--quiet", "--no-report"], env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A capture with every teardown kind, reused 4-tuples, IPv4 and IPv6 (the bench generator)."""
    path = tmp_path_factory.mktemp("gen") / "mix.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_capture.py"), "--packets", "60000",
                    "--out", str(path), "--seed", "7"], check=True, capture_output=True)
    return path


def test_compiled_and_jit_write_identical_tables(tmp_path, generated):
    need_prebuilt()
    captures = [generated, *SAMPLES]
    assert len(captures) >= 3
    for capture in captures:
        outs = {}
        for mode in ("compiled", "jit"):
            outs[mode] = tmp_path / f"{capture.parent.name}-{capture.stem}-{mode}"
            done = _analyze(capture, outs[mode], mode)
            assert done.returncode == 0, done.stderr
        for name in ("flows.csv", "events.csv"):
            compiled = (outs["compiled"] / name).read_bytes()
            assert compiled == (outs["jit"] / name).read_bytes(), f"{capture}: {name} differs"
            assert compiled.count(b"\n") > 1
        a, b = (json.loads((outs[m] / "summary.json").read_text()) for m in ("compiled", "jit"))
        assert a["capture"] == b["capture"] and a["verdicts"] == b["verdicts"]


def test_a_compiled_run_never_imports_numba(tmp_path):
    need_prebuilt()
    script = ("import sys; from pathlib import Path; from analyzer import pipeline; "
              f"pipeline.run(pipeline.Options(capture=Path({str(SAMPLES[0])!r}), "
              f"out=Path({str(tmp_path)!r}), report=False)); "
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite')))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dict(os.environ, ANALYZER_KERNELS="compiled"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "flows.csv").stat().st_size > 0


def test_a_stale_or_missing_build_is_not_used(tmp_path):
    need_prebuilt()
    assert kernels.load_prebuilt(tmp_path) == (None, "not built (python -m analyzer.dissect.build_kernels)")
    shutil.copy(kernels.module_path(), kernels.module_path(tmp_path))
    kernels.stamp_path(tmp_path).write_text(json.dumps({"fingerprint": "0" * 16}))
    module, why = kernels.load_prebuilt(tmp_path)
    assert module is None and "older source" in why
    # auto falls back to the JIT and says why; compiled refuses
    assert kernels.choose("auto", tmp_path) == (None, f"numba JIT (prebuilt kernels {why})")
    with pytest.raises(KernelError, match="ANALYZER_KERNELS=compiled"):
        kernels.choose("compiled", tmp_path)
    kernels.stamp_path(tmp_path).write_text(json.dumps({"fingerprint": kernels.fingerprint()}))
    module, why = kernels.load_prebuilt(tmp_path)
    assert why == "prebuilt" and callable(module.scan_pcap)


def test_unknown_mode_is_one_clear_error(tmp_path):
    with pytest.raises(KernelError, match="expected auto, compiled or jit"):
        kernels.choose("fast", tmp_path)
    assert kernels.choose("jit", tmp_path)[0] is None
    done = subprocess.run([sys.executable, "-m", "analyzer.cli", str(SAMPLES[0]), "--out",
                           str(tmp_path / "o"), "--quiet"], capture_output=True, text=True,
                          env=dict(os.environ, ANALYZER_KERNELS="fast"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "analyze: ANALYZER_KERNELS='fast': expected auto, compiled or jit"]


def test_a_call_with_a_wrong_array_is_refused_before_it_runs():
    from analyzer.dissect import flows
    FL = np.zeros((4, flows.N_FL), np.int64)
    EP = np.zeros((4, 2, flows.N_EP), np.int64)
    limits = np.zeros(flows.N_LIMITS, np.int64)
    assert kernels.mark_idle(FL, EP, 0, limits) == 0
    with pytest.raises(KernelError, match=r"mark_idle: argument 0 is int32 2-d, expected C-contiguous int64 2-d"):
        kernels.mark_idle(FL.astype(np.int32), EP, 0, limits)
    with pytest.raises(KernelError, match="argument 1 is int64 3-d strided"):
        kernels.mark_idle(FL, EP[:, :, ::2], 0, limits)
    with pytest.raises(KernelError, match="3 arguments, expected 4"):
        kernels.mark_idle(FL, EP, 0)


def test_the_signatures_match_what_the_callers_pass():
    """Every argument list in SIGNATURES has the length of the kernel's Python parameters."""
    import inspect
    import importlib
    for name, (_, params) in kernels.SIGNATURES.items():
        module = importlib.import_module(kernels.HOMES[name])
        function = getattr(module, name)
        source = getattr(function, "py_func", function)
        assert len(inspect.signature(source).parameters) == len(params), name
