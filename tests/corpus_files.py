"""Where the third-party corpus lies (../shared beside the project, in CI) and its manifest."""

from __future__ import annotations

import csv
from pathlib import Path

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
