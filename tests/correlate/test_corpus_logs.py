"""The real logs of ../shared/corpus/logs go through alignment without a traceback; with no
anchor in a capture they are about, each says so and falls back."""

from __future__ import annotations

import pytest

from analyzer.correlate.align import LOG_COLUMNS, align_logs
from analyzer.logs import read_log

from ..conftest import CORPUS
from . import sessions as S


def test_corpus_logs_align_or_say_why(tmp_path):
    folder = CORPUS / "logs"
    if not folder.is_dir():
        pytest.skip("../shared/corpus is absent")
    logs = [read_log(p) for p in sorted(folder.iterdir()) if p.name != "MANIFEST.tsv"]
    w = S.huawei(S.Device(8 * 3600, 3.27), S.Device(0, -1.6)).write(tmp_path, "logcat")
    out, clocks = align_logs(logs, w.flows, w.events, [S.HUAWEI], int(w.info["first_ts_ns"]),
                             int(w.info["last_ts_ns"]))
    assert list(out.columns) == list(LOG_COLUMNS) + ["lifecycle"]
    assert len(out) == sum(len(log.events) for log in logs)
    assert set(clocks) == {log.name for log in logs}
    for name, c in clocks.items():
        assert c["method"].startswith("fallback"), name
        assert c["note"], name
