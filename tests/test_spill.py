"""spill.py: the tables' columns in unlinked, mapped files, their pages handed back."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from analyzer import pipeline, spill
from analyzer.dissect import labels
from tests.corpus_files import PROJECT

MB = 1 << 20


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_kept_column_is_mapped_writable_and_leaves_no_file(tmp_path):
    store = spill.Spill(tmp_path / "out")
    plain = np.arange(1000, dtype=np.int64)
    kept = store.keep(plain)
    assert spill.is_mapped(kept) and not spill.is_mapped(plain)
    np.testing.assert_array_equal(kept, plain)
    assert kept.dtype == plain.dtype
    kept[3] = -1                     # pandas may write into a column it holds
    assert kept[3] == -1
    assert list((tmp_path / "out").iterdir()) == []      # unlinked as soon as made
    assert store.keep(kept) is kept                      # mapped once, not copied again
    assert spill.is_mapped(kept[10:20])                  # a view of it is mapped too
    assert not spill.is_mapped(spill.HEAP.keep(plain))
    empty = store.empty(5, np.int32)
    assert spill.is_mapped(empty) and empty.tolist() == [0] * 5


def test_trim_hands_the_pages_back_and_keeps_every_value(tmp_path):
    column = spill.Spill(tmp_path).keep(np.arange(8 * MB, dtype=np.int64))     # 64 MB
    column[5] = 42                   # a write through the mapping outlives a trim
    spill.trim()
    before = rss()
    total = int(column.sum())        # every page read once
    touched = rss()
    assert touched - before > 48 * MB
    spill.trim()
    assert rss() < touched - 48 * MB
    assert int(column.sum()) == total and column[5] == 42


def test_the_pager_trims_while_it_runs(tmp_path):
    column = spill.Spill(tmp_path).keep(np.ones(8 * MB, dtype=np.int64))
    spill.trim()
    with spill.Pager(interval=0.005) as pager:
        before = rss()
        assert int(column.sum()) == 8 * MB
        deadline = time.monotonic() + 5
        while rss() > before + 16 * MB and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rss() <= before + 16 * MB
    assert not pager._thread.is_alive()


def test_blocks_refuse_a_column_whose_type_changes(tmp_path):
    blocks = spill.Blocks(tmp_path)
    blocks.append({"a": np.zeros(3, np.int64)})
    with pytest.raises(TypeError, match="int32 after int64"):
        blocks.append({"a": np.zeros(3, np.int32)})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=8), st.integers(0, 2**32 - 1), st.booleans())
def test_blocks_in_files_come_back_as_blocks_in_lists_do(sizes, seed, ordered):
    """labels.concat of blocks appended to files gives, column by column, what it gives for
    the same blocks held in a list: the same values, types and order (sorted by flow id,
    or as they came)."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(sum(sizes)).astype(np.int64) + 1
    made, at = [], 0
    for size in sizes:
        made.append({"flow_id": ids[at:at + size], "kind": rng.integers(-3, 9, size).astype(np.int8),
                     "ts_ns": rng.integers(0, 2**62, size)})
        at += size
    empty = {"flow_id": np.zeros(0, np.int64), "kind": np.zeros(0, np.int8), "ts_ns": np.zeros(0, np.int64)}
    order_by = ("flow_id",) if ordered else ()
    want = labels.concat([dict(b) for b in made], empty, order_by)
    with tempfile.TemporaryDirectory() as folder:
        store = spill.Spill(Path(folder))
        blocks = store.blocks()
        for block in made:
            blocks.append(block)
        got = labels.concat(blocks, empty, order_by, store)
        assert list(got) == list(want)
        for name in want:
            assert got[name].dtype == want[name].dtype
            np.testing.assert_array_equal(got[name], want[name])
            assert spill.is_mapped(got[name]) == bool(len(want[name]))
        assert list(Path(folder).iterdir()) == []


def test_a_run_with_its_tables_in_files_writes_what_one_on_the_heap_writes(tmp_path):
    """The pipeline with the finished flows and events in mapped files (the default) and
    on the heap: the same tables, the same files, and no file of the spill left behind."""
    sample = PROJECT / "captures" / "huawei"
    runs = {}
    for in_files in (True, False):
        opts = pipeline.Options(capture=sample / "capture.pcapng", out=tmp_path / str(in_files),
                                logs=[sample / "app.log", sample / "server.log"], report=False,
                                spill=in_files)
        runs[in_files] = pipeline.run(opts)
    pd.testing.assert_frame_equal(runs[True].flows, runs[False].flows)
    pd.testing.assert_frame_equal(runs[True].events, runs[False].events)
    assert spill.is_mapped(runs[True].flows["first_ts_ns"].to_numpy())
    assert spill.is_mapped(runs[True].events["src_ip"].array.codes)
    assert not spill.is_mapped(runs[False].flows["first_ts_ns"].to_numpy())
    names = sorted(p.name for p in (tmp_path / "True").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "False").iterdir())
    assert not [n for n in names if n.startswith(".")]
    for name in ("flows.csv", "events.csv", "logs.csv"):
        assert (tmp_path / "True" / name).read_bytes() == (tmp_path / "False" / name).read_bytes()


def test_a_full_disk_is_an_error_not_a_bus_error(tmp_path):
    """A column made empty and filled through its mapping has its blocks allocated first: on
    a full file system that is an OSError, where writing into a hole of the mapped file
    would kill the process with SIGBUS (a 10 MB output folder did, on 1M packets)."""
    import os
    import subprocess
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(tiny)], check=True)
    try:
        store = spill.Spill(tiny)
        with pytest.raises(OSError) as caught:
            store.empty(1 << 20, np.int64)          # 8 MB
        assert caught.value.errno == 28             # ENOSPC
        small = store.empty(1000, np.int64)         # what fits still works
        small[:] = 7
        assert int(small.sum()) == 7000
    finally:
        subprocess.run(["umount", "-l", str(tiny)], check=False)


def test_columns_made_empty_get_their_disk_without_posix_fallocate(tmp_path, monkeypatch):
    """Where the system has no posix_fallocate (macOS), the column's zeros are written out
    instead: the same zeroed, writable, mapped column, its blocks on disk."""
    import os
    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    store = spill.Spill(tmp_path)
    for count in (1, 1000, (1 << 17) + 3):          # under, and over, one megabyte of zeros
        column = store.empty(count, np.int64)
        assert spill.is_mapped(column) and len(column) == count and not column.any()
        column[-1] = 5
        assert int(column.sum()) == 5


def test_row_steps_are_a_range_and_trim_after_each_step(monkeypatch):
    """row_steps(n, step) gives range(0, n, step), and drops the mapped pages after each
    step's work (before the next step is handed out)."""
    trims = []
    monkeypatch.setattr(spill, "trim", lambda: trims.append(len(trims)))
    seen = []
    for at in spill.row_steps(10, 3):
        seen.append((at, len(trims)))
    assert seen == [(0, 0), (3, 1), (6, 2), (9, 3)] and len(trims) == 4
    assert list(spill.row_steps(0, 3)) == []
