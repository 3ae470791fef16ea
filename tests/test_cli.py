"""The command line's own checks: every mistake is one line on stderr and exit 2."""

from __future__ import annotations

import pytest

from analyzer.cli import main
from tests.corpus_files import PROJECT

SAMPLE = PROJECT / "captures" / "huawei"


@pytest.mark.parametrize("extra, says", [
    (["--clock-offset", "app.log"], "expected FILE=VALUE"),
    (["--clock-offset", "app.log=soon"], "must be a number"),
    (["--log-role", "app.log=phone"], "app or server"),
    (["--logs", "no-such.log"], "no-such.log"),
    (["--format", "xml"], "unknown format"),
])
def test_bad_arguments_are_one_line(tmp_path, capsys, extra, says):
    rc = main([str(SAMPLE / "capture.pcapng"), "--out", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and says in err


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    rc = main([str(SAMPLE / "capture.pcapng"), "--out", str(blocker / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith(f"analyze: {blocker / 'o'}: ")


def test_clock_offset_override_wins(tmp_path):
    import json
    out = tmp_path / "o"
    assert main([str(SAMPLE / "capture.pcapng"), "--logs", str(SAMPLE / "app.log"), "--phone",
                 "127.0.0.2", "--clock-offset", "app.log=-28800", "--out", str(out), "--quiet",
                 "--no-report"]) == 0
    clock = json.loads((out / "summary.json").read_text())["clocks"]["app.log"]
    assert clock["offset_s"] == pytest.approx(-28800) and "clock-offset" in clock["method"]


def test_log_role_override(tmp_path):
    import json
    out = tmp_path / "o"
    assert main([str(SAMPLE / "capture.pcapng"), "--logs", str(SAMPLE / "server.log"), "--phone",
                 "127.0.0.2", "--log-role", "server.log=app", "--out", str(out), "--quiet",
                 "--no-report"]) == 0
    assert json.loads((out / "summary.json").read_text())["logs"]["server.log"]["role"] == "app"
