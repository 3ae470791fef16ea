"""Shared test fixtures: where the third-party corpus lies, and tool checks."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"
CORPUS = SHARED / "corpus"


def corpus_manifest() -> dict[str, dict]:
    path = CORPUS / "MANIFEST.tsv"
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


def corpus_pcaps() -> list[Path]:
    folder = CORPUS / "pcaps"
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def need_corpus():
    if not (CORPUS / "pcaps").is_dir():
        pytest.skip("../shared/corpus is absent (it lies beside the project in CI only)")


@pytest.fixture
def need_tshark():
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (apt-get install tshark)")
