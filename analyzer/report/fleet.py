"""The fleet summary of `analyze batch`: fleet.json and fleet.html (self-contained).

Per platform / device model / OS version: which behaviour the sessions' verdicts name, how
long after going to the background the phone tore sockets down (a distribution, plotted),
what reconnects got, and the field report's table per platform (the most frequent value of
each cell across that platform's sessions).
"""

from __future__ import annotations

import base64
import html as html_mod
import io
import json
import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

esc = html_mod.escape
SIDES = ("app_error", "server_error", "reconnect")


def _group_key(s: dict, dig: dict) -> tuple[str, str, str]:
    return (s.get("platform") or dig.get("platform") or "unknown",
            s.get("device_model") or "unknown", s.get("os_version") or "unknown")


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=float)
    return {"n": int(a.size), "min_s": float(a.min()), "median_s": float(np.median(a)),
            "p90_s": float(np.percentile(a, 90)), "max_s": float(a.max())}


def fleet_summary(results: list[dict], out: Path, seconds: float) -> dict:
    sessions = []
    groups: dict[tuple, dict] = {}
    by_platform: dict[str, dict] = {}
    for r in results:
        s, dig = r["session"], r.get("summary") or {}
        folder = Path(r["folder"])
        report = folder / "report.html"
        entry = {"session": s["name"], "status": r["status"], "error": r.get("error"),
                 "skipped": bool(r.get("skipped")), "seconds": round(float(r.get("seconds", 0.0)), 3),
                 "cpu_seconds": round(float(r.get("cpu_seconds", 0.0)), 3),
                 "capture": s["capture"], "platform": s.get("platform") or dig.get("platform"),
                 "device_model": s.get("device_model"), "os_version": s.get("os_version"),
                 "behaviour": dig.get("behaviour"), "confidence": dig.get("confidence"),
                 "report": os.path.relpath(report, out) if report.is_file() else None,
                 "teardown_delays_s": [d["delay_s"] for d in r.get("delays") or []]}
        sessions.append(entry)
        if r["status"] != "ok":
            continue
        key = _group_key(s, dig)
        for bucket, k in ((groups, key), (by_platform, key[0])):
            g = bucket.setdefault(k, {"sessions": 0, "behaviours": Counter(), "delays": [],
                                      "reconnect": defaultdict(Counter), "seed": defaultdict(Counter)})
            g["sessions"] += 1
            g["behaviours"][dig.get("behaviour") or "unknown"] += 1
            g["delays"] += entry["teardown_delays_s"]
            for kind, row in (dig.get("seed_table") or {}).items():
                g["reconnect"][kind][row.get("reconnect") or "n/a"] += 1
                for side in SIDES:
                    g["seed"][(kind, side)][row.get(side) or ""] += 1

    def plain(g: dict) -> dict:
        return {"sessions": g["sessions"], "behaviours": dict(g["behaviours"].most_common()),
                "teardown_delay": _stats(g["delays"]),
                "reconnect": {k: dict(v.most_common()) for k, v in g["reconnect"].items()}}

    platforms = {}
    for name, g in sorted(by_platform.items()):
        d = plain(g)
        table = {}
        for (kind, side), counts in g["seed"].items():
            value, n = counts.most_common(1)[0]
            table.setdefault(kind, {})[side] = value or None
            table[kind].setdefault("agreement", {})[side] = f"{n}/{sum(counts.values())}"
        d["seed_table"] = table
        d["teardown_delays_s"] = g["delays"]
        platforms[name] = d
    failed = [e for e in sessions if e["status"] != "ok"]
    return {
        "seconds": round(seconds, 3),
        "counts": {"sessions": len(sessions), "failed": len(failed),
                   "skipped": sum(e["skipped"] for e in sessions),
                   "analysed": sum(1 for e in sessions if e["status"] == "ok" and not e["skipped"])},
        "platforms": platforms,
        "groups": [{"platform": k[0], "device_model": k[1], "os_version": k[2], **plain(g)}
                   for k, g in sorted(groups.items())],
        "failed": [{"session": e["session"], "error": e["error"]} for e in failed],
        "sessions": sessions,
    }


def delay_plot(summary: dict) -> str | None:
    """Teardown delays after background, one box per platform/model/OS group, as a data URI."""
    groups = [g for g in summary["groups"] if g["teardown_delay"]["n"]]
    if not groups:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    by_key = {}
    for e in summary["sessions"]:
        if e["status"] == "ok":
            k = (e["platform"] or "unknown", e["device_model"] or "unknown", e["os_version"] or "unknown")
            by_key.setdefault(k, []).extend(e["teardown_delays_s"])
    labels, data = [], []
    for g in groups:
        k = (g["platform"], g["device_model"], g["os_version"])
        labels.append(f"{k[0]}\n{k[1]}\n{k[2]}")
        data.append([v * 1000 for v in by_key.get(k, [])])
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(data) + 2), 4), dpi=100)
    ax.boxplot(data, showfliers=True)
    for i, vals in enumerate(data, start=1):
        ax.scatter(np.full(len(vals), i) + np.linspace(-0.15, 0.15, len(vals)), vals, s=8, alpha=0.5)
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
    ax.set_ylabel("phone teardown after background (ms)")
    ax.set_title("Phone RST/FIN after going to background", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fmt_ms(stats: dict, key: str) -> str:
    return f"{stats[key] * 1000:.1f}" if stats.get("n") else "—"


def render(summary: dict) -> str:
    try:
        from analyzer.report.html import CSS, platform_table
    except ImportError:    # the session report's module is being changed: degrade, do not fail
        CSS, platform_table = "", None
    c = summary["counts"]
    parts = [f"<h1>Fleet: {c['sessions']} sessions</h1>",
             f"<p>{c['analysed']} analysed, {c['skipped']} unchanged since the last run, "
             f"{c['failed']} failed; {summary['seconds']:.1f} s.</p>"]
    if summary["failed"]:
        parts.append("<h2>Failed sessions</h2><ul>" + "".join(
            f"<li><b>{esc(f['session'])}</b>: <code>{esc(f['error'] or '')}</code></li>" for f in summary["failed"])
            + "</ul>")
    parts.append("<h2>Behaviour by platform, model and OS version</h2>"
                 "<table><tr><th>platform</th><th>model</th><th>OS</th><th>sessions</th><th>behaviour</th>"
                 "<th>teardowns after background</th><th>median ms</th><th>p90 ms</th><th>max ms</th>"
                 "<th>reconnects</th></tr>")
    for g in summary["groups"]:
        beh = ", ".join(f"{esc(b)} ×{n}" for b, n in g["behaviours"].items())
        rec = "; ".join(f"{esc(k)}: " + ", ".join(f"{esc(o)} ×{n}" for o, n in v.items())
                        for k, v in g["reconnect"].items())
        st = g["teardown_delay"]
        parts.append(f"<tr><td>{esc(g['platform'])}</td><td>{esc(g['device_model'])}</td>"
                     f"<td>{esc(g['os_version'])}</td><td>{g['sessions']}</td><td>{beh}</td>"
                     f"<td>{st['n']}</td><td>{_fmt_ms(st, 'median_s')}</td><td>{_fmt_ms(st, 'p90_s')}</td>"
                     f"<td>{_fmt_ms(st, 'max_s')}</td><td>{rec}</td></tr>")
    parts.append("</table>")
    uri = delay_plot(summary)
    if uri:
        parts.append(f"<h2>Teardown after background</h2><img alt='teardown delay distribution' src='{uri}'>")
    if summary["platforms"]:
        parts.append("<h2>The field report's table per platform</h2>"
                     "<p class='note'>Each cell: the most frequent value across the platform's sessions.</p>")
        if platform_table is not None:
            fake = [{"platform": f"{name} ({p['sessions']} sessions)", "seed_table": p["seed_table"]}
                    for name, p in summary["platforms"].items()]
            parts.append(platform_table(fake))
        else:
            parts.append(f"<pre>{esc(json.dumps({k: p['seed_table'] for k, p in summary['platforms'].items()}, indent=1))}</pre>")
    parts.append("<h2>Sessions</h2><table><tr><th>session</th><th>platform</th><th>model</th><th>OS</th>"
                 "<th>behaviour</th><th>status</th><th>report</th></tr>")
    for e in summary["sessions"]:
        link = f"<a href='{esc(e['report'])}'>report</a>" if e["report"] else "—"
        status = "unchanged" if e["skipped"] else ("ok" if e["status"] == "ok" else f"failed: {e['error']}")
        parts.append(f"<tr><td>{esc(e['session'])}</td><td>{esc(e['platform'] or '')}</td>"
                     f"<td>{esc(e['device_model'] or '')}</td><td>{esc(e['os_version'] or '')}</td>"
                     f"<td>{esc(e['behaviour'] or '')}</td><td>{esc(status)}</td><td>{link}</td></tr>")
    parts.append("</table>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Fleet summary</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>")


def write(summary: dict, results: list[dict], out: Path) -> None:
    (out / "fleet.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "fleet.html").write_text(render(summary), encoding="utf-8")
