"""`analyze compare`: the field report's table across several analysed sessions.

Each argument is a session's analysis folder (or its summary.json, or a session folder
holding analysis/): one column per session, as the field report sets Huawei beside iOS.
Writes comparison.html (self-contained) and prints the same table.
"""

from __future__ import annotations

import argparse
import html as html_mod
import json
import sys
from pathlib import Path

from analyzer.report.html import CSS, KIND_TITLES, platform_table


def _summary_path(arg: str) -> Path:
    path = Path(arg)
    for candidate in (path, path / "summary.json", path / "analysis" / "summary.json"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(arg)


def compare_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="analyze compare",
                                description="Put several analysed sessions side by side "
                                            "(the field report's table, one column per session).")
    p.add_argument("sessions", nargs="+", help="analysis folders, session folders or summary.json files")
    p.add_argument("--out", default="comparison.html", help="HTML file to write (default comparison.html)")
    args = p.parse_args(argv)
    summaries, names = [], []
    for arg in args.sessions:
        try:
            path = _summary_path(arg)
            summaries.append(json.loads(path.read_text()))
        except FileNotFoundError:
            print(f"analyze compare: {arg}: no summary.json there (run analyze on the session first)",
                  file=sys.stderr)
            return 2
        except (OSError, json.JSONDecodeError) as exc:
            print(f"analyze compare: {arg}: cannot read its summary.json ({exc})", file=sys.stderr)
            return 2
        names.append(arg)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Sessions side by side</title>"
            f"<style>{CSS}</style></head><body><h1>Sessions side by side</h1>"
            f"<p>{html_mod.escape(', '.join(names))}</p>{platform_table(summaries)}</body></html>")
    Path(args.out).write_text(page, encoding="utf-8")
    _print(summaries, names)
    print(f"wrote {args.out}")
    return 0


def _print(summaries: list[dict], names: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="the field report's table, one column per session")
    table.add_column("socket")
    table.add_column("side")
    for s, name in zip(summaries, names):
        verdict = ((s.get("verdicts") or {}).get("session") or {}).get("behaviour", "?")
        table.add_column(f"{s.get('platform') or '?'}\n{verdict}")
    for kind, title in KIND_TITLES.items():
        if not any(kind in (s.get("seed_table") or {}) for s in summaries):
            continue
        for side, key in (("app", "app_error"), ("server", "server_error"), ("reconnect", "reconnect")):
            cells = []
            for s in summaries:
                entry = (s.get("seed_table") or {}).get(kind)
                cells.append("—" if entry is None else str(entry.get(key) or ("n/a" if key == "reconnect" else "nothing")))
            table.add_row(title if side == "app" else "", side, *cells)
    Console().print(table)
