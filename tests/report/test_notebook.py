"""The notebook runs top to bottom on a bundled session."""

from __future__ import annotations

import shutil

import pytest

from tests.corpus_files import PROJECT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def test_notebook_executes(tmp_path):
    # work on a copy of the session, so the test never writes into the repository
    work = tmp_path / "repo"
    (work / "captures").mkdir(parents=True)
    shutil.copytree(PROJECT / "captures" / "huawei", work / "captures" / "huawei",
                    ignore=shutil.ignore_patterns("analysis"))
    nb = nbformat.read(PROJECT / "notebooks" / "explore_session.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "huawei_background_kill" in outputs
    assert (work / "captures" / "huawei" / "analysis" / "logs.csv").exists()
