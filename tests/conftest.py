"""Shared fixtures: skip with a reason where the corpus or a tool is missing."""

from __future__ import annotations

import shutil

import pytest

from tests.corpus_files import CORPUS


@pytest.fixture
def need_corpus():
    if not (CORPUS / "pcaps").is_dir():
        pytest.skip("../shared/corpus is absent (it lies beside the project in CI only)")


@pytest.fixture
def need_tshark():
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (apt-get install tshark)")
